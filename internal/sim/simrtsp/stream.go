package simrtsp

import (
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"strings"
	"time"
)

// stream paces one session's RTP in real time until the session stops or the
// connection closes. Video and audio loop independently with continuous
// timestamps and sequence numbers; each access unit is written in one write.
func (c *conn) stream(sess *session) {
	st := sess.st
	v, a := &sess.tracks[0], &sess.tracks[1]
	fps := int64(st.FPS)
	start := time.Now()
	videoDue := func(n int64) time.Time { return start.Add(time.Duration(n) * time.Second / time.Duration(fps)) }
	var audioDue func(m int64) time.Time
	if a.setup {
		spf, clock := int64(st.Audio.SamplesPerFrame), int64(st.Audio.ClockRate)
		audioDue = func(m int64) time.Time { return start.Add(time.Duration(m*spf) * time.Second / time.Duration(clock)) }
	}
	var out []byte // reused; grows to the largest access unit once
	var n, m int64
	nextSR := start
	waitKey := false
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		stalled := c.srv.stall.Load()
		if d := videoDue(n); !now.Before(d) {
			f := &st.Video.frames[n%int64(len(st.Video.frames))]
			ts := v.ts0 + uint32(n*90000/fps)
			n++
			switch {
			case stalled:
				waitKey = true
			case !v.setup, waitKey && !f.key:
			default:
				waitKey = false
				out = out[:0]
				for i, p := range f.packets {
					out = appendRTP(out, v, ts, i == len(f.packets)-1, p)
				}
				if !c.send(out, len(f.packets)) {
					return
				}
			}
			continue
		}
		if audioDue != nil {
			if d := audioDue(m); !now.Before(d) {
				p := st.Audio.frames[m%int64(len(st.Audio.frames))]
				ts := a.ts0 + uint32(m*int64(st.Audio.SamplesPerFrame))
				if !stalled {
					// AAC: every packet holds a whole AU (marker set); G.711: marker on the first packet.
					marker := st.Audio.Codec == CodecAAC || a.packets == 0
					out = appendRTP(out[:0], a, ts, marker, p)
					if !c.send(out, 1) {
						return
					}
				}
				m++
				continue
			}
		}
		if !now.Before(nextSR) {
			out = out[:0]
			for _, t := range []*track{v, a} {
				if t.setup {
					out = appendSR(out, t, now, start)
				}
			}
			c.srv.rtcp.Add(uint64(len(out) / 32))
			if err := c.writeRaw(out); err != nil {
				return
			}
			nextSR = nextSR.Add(c.srv.cfg.RTCPInterval)
			continue
		}
		next := videoDue(n)
		if audioDue != nil {
			next = earliest(next, audioDue(m))
		}
		next = earliest(next, nextSR)
		timer.Reset(next.Sub(now))
		select {
		case <-timer.C:
		case <-sess.stop:
			return
		case <-c.quit:
			return
		}
	}
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// send writes RTP packets; they are counted before the write so a client
// that has read them always sees them in Stats.
func (c *conn) send(b []byte, packets int) bool {
	c.srv.packets.Add(uint64(packets))
	return c.writeRaw(b) == nil
}

// appendRTP appends one interleaved RTP packet ('$', channel, length, RFC 3550 header, payload).
func appendRTP(out []byte, t *track, ts uint32, marker bool, payload []byte) []byte {
	pt := t.pt
	if marker {
		pt |= 0x80
	}
	l := 12 + len(payload)
	out = append(out, '$', t.ch, byte(l>>8), byte(l), 0x80, pt)
	out = binary.BigEndian.AppendUint16(out, t.seq)
	out = binary.BigEndian.AppendUint32(out, ts)
	out = binary.BigEndian.AppendUint32(out, t.ssrc)
	out = append(out, payload...)
	t.seq++
	t.packets++
	t.octets += uint32(len(payload))
	return out
}

// appendSR appends one interleaved RTCP sender report (RFC 3550 6.4.1, no report blocks): 4+28 bytes.
func appendSR(out []byte, t *track, now, start time.Time) []byte {
	el := now.Sub(start)
	if el < 0 {
		el = 0
	}
	sec := int64(el / time.Second)
	rtpTS := t.ts0 + uint32(sec*int64(t.clock)+int64(el%time.Second)*int64(t.clock)/int64(time.Second))
	ntpSec := uint32(now.Unix() + 2208988800)
	ntpFrac := uint32(uint64(now.Nanosecond()) << 32 / 1e9)
	out = append(out, '$', t.rtcpCh, 0, 28, 0x80, 200, 0, 6)
	out = binary.BigEndian.AppendUint32(out, t.ssrc)
	out = binary.BigEndian.AppendUint32(out, ntpSec)
	out = binary.BigEndian.AppendUint32(out, ntpFrac)
	out = binary.BigEndian.AppendUint32(out, rtpTS)
	out = binary.BigEndian.AppendUint32(out, t.packets)
	return binary.BigEndian.AppendUint32(out, t.octets)
}

// buildSDP writes a session description shaped like a Hikvision camera's.
func buildSDP(st *Stream, host string) []byte {
	if host == "" {
		host = "0.0.0.0"
	}
	ipver := "IP4"
	if strings.Contains(host, ":") {
		ipver = "IP6"
	}
	id := strconv.FormatUint(uint64(rand32()), 10)
	var b strings.Builder
	w := func(s string) { b.WriteString(s + "\r\n") }
	w("v=0")
	w("o=- " + id + " " + id + " IN " + ipver + " " + host)
	w("s=Media Presentation")
	w("e=NONE")
	w("b=AS:5100")
	w("t=0 0")
	w("a=control:*")
	if st.Video.Codec == CodecJPEG {
		w("m=video 0 RTP/AVP 26")
		w("c=IN IP4 0.0.0.0")
		w("b=AS:5000")
		w("a=recvonly")
		w("a=control:trackID=1")
		w("a=rtpmap:26 JPEG/90000")
	} else {
		w("m=video 0 RTP/AVP 96")
		w("c=IN IP4 0.0.0.0")
		w("b=AS:5000")
		w("a=recvonly")
		w("a=control:trackID=1")
		w("a=rtpmap:96 " + st.Video.Codec + "/90000")
		w("a=fmtp:96 " + st.Video.fmtp())
	}
	if au := st.Audio; au != nil {
		pt := strconv.Itoa(int(au.PayloadType()))
		w("m=audio 0 RTP/AVP " + pt)
		w("c=IN IP4 0.0.0.0")
		w("b=AS:50")
		w("a=recvonly")
		w("a=control:trackID=2")
		if au.Codec == CodecAAC {
			w("a=rtpmap:" + pt + " mpeg4-generic/" + strconv.Itoa(au.ClockRate) + "/" + strconv.Itoa(au.Channels))
			w("a=fmtp:" + pt + " profile-level-id=15; streamtype=5; mode=AAC-hbr; config=" +
				strings.ToUpper(hex.EncodeToString(au.Config)) + "; sizelength=13; indexlength=3; indexdeltalength=3; profile=1")
		} else {
			w("a=rtpmap:" + pt + " " + au.Codec + "/8000")
		}
	}
	return []byte(b.String())
}
