package ps_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/pion/rtp"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/ps"
)

// FuzzDemux: any input, cut anywhere, gives the same units and reports as in
// one piece; units respect the cap and their codec's framing; the Source
// never fails on it and keeps RTP packets within the MTU.
func FuzzDemux(f *testing.F) {
	add := func(b []byte) {
		f.Add(b, uint64(7))
		f.Add(b, uint64(1))
	}
	h264 := hikStream{video: media(f, "h264_sub.h264"), audio: media(f, "tone_1khz_8k.alaw"), audioType: 0x90, maxPES: 300}.build(f)
	add(h264.ps[:h264.frameAt[3]])
	add(h264.ps[h264.frameAt[24]:h264.frameAt[27]])
	h265 := hikStream{video: media(f, "h265_main.h265"), h265: true, audio: media(f, "tone_1khz_16k.aac"), audioType: 0x0F, maxPES: 500}.build(f)
	add(h265.ps[:h265.frameAt[2]])
	mpeg1 := hikStream{video: media(f, "h264_sub.h264"), audio: media(f, "tone_1khz_8k.ulaw"), audioType: 0x91, mpeg1: true, noHeader: true}.build(f)
	add(mpeg1.ps[:mpeg1.frameAt[2]])
	add([]byte("IMKH\x01\x01"))
	add([]byte{0, 0, 1, 0xBA, 0x44, 0, 4, 0, 4, 1, 1, 0x86, 0xA3, 0xFF, 0, 0, 1, 0xE0, 0, 0})

	f.Fuzz(func(t *testing.T, data []byte, seed uint64) {
		const maxUnit = 20000
		whole, wholeStats := fuzzRun(data, maxUnit, func() int { return len(data) })
		x := seed | 1
		cut, cutStats := fuzzRun(data, maxUnit, func() int {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			return int(x%64) + 1
		})
		if whole != cut {
			t.Fatalf("cut in pieces the input gives other units or reports:\n%s\n---\n%s", whole, cut)
		}
		if wholeStats != cutStats {
			t.Fatalf("stats differ: %+v vs %+v", wholeStats, cutStats)
		}
		if wholeStats.Bytes != int64(len(data)) {
			t.Fatalf("stats count %d bytes of %d", wholeStats.Bytes, len(data))
		}
		for _, mtu := range []uint16{0, 400} {
			s := ps.NewSource(ps.SourceConfig{MTU: mtu, MaxUnitSize: maxUnit, MaxBacklog: 8, OnPacket: func(_ int, p *rtp.Packet) {
				if mtu > 0 && p.Version == 2 && 12+len(p.Payload) > int(mtu) {
					t.Fatalf("RTP packet of %d bytes, MTU %d", 12+len(p.Payload), mtu)
				}
			}})
			_ = s.Write(data[:len(data)/2])
			s.Ready()
			s.Medias()
			s.Start()
			_ = s.Write(data[len(data)/2:])
		}
	})
}

// fuzzRun demuxes data and describes every unit and report, checking each
// unit's framing.
func fuzzRun(data []byte, maxUnit int, sizes func() int) (string, ps.Stats) {
	var out bytes.Buffer
	var bad string
	d := &ps.Demuxer{
		MaxUnitSize: maxUnit,
		OnUnit: func(u *ps.Unit) {
			fmt.Fprintf(&out, "unit %x %v %d %v %v %x\n", u.StreamID, u.Type, u.PTS, u.HasPTS, u.Keyframe, u.Data)
			switch {
			case len(u.Data) == 0 || len(u.Data) > maxUnit:
				bad = fmt.Sprintf("unit of %d bytes", len(u.Data))
			case u.Type.IsVideo() && !bytes.HasPrefix(u.Data, []byte{0, 0, 1}) && !bytes.HasPrefix(u.Data, []byte{0, 0, 0, 1}):
				bad = fmt.Sprintf("video unit starts with %x", u.Data[:min(4, len(u.Data))])
			case u.Type == ps.StreamAAC:
				n := int(u.Data[3]&3)<<11 | int(u.Data[4])<<3 | int(u.Data[5]>>5)
				if u.Data[0] != 0xFF || n != len(u.Data) {
					bad = fmt.Sprintf("AAC unit of %d bytes, frame_length %d", len(u.Data), n)
				}
			}
		},
		OnStreams: func(s []ps.Stream) { fmt.Fprintf(&out, "streams %v\n", s) },
		OnHeader:  func(h ps.MediaHeader) { fmt.Fprintf(&out, "header %+v\n", h) },
		OnError:   func(err error) { fmt.Fprintf(&out, "error %v\n", err) },
	}
	for p := data; len(p) > 0; {
		n := min(max(sizes(), 1), len(p))
		_, _ = d.Write(p[:n])
		p = p[n:]
	}
	d.Flush()
	if bad != "" {
		panic(bad)
	}
	return out.String(), d.Stats()
}
