package ps_test

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/AlexxIT/go2rtc/pkg/aac"
	"github.com/AlexxIT/go2rtc/pkg/core"
	"github.com/AlexxIT/go2rtc/pkg/h264"
	"github.com/AlexxIT/go2rtc/pkg/h265"
	"github.com/AlexxIT/go2rtc/pkg/mp4"
	"github.com/pion/rtp"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/ps"
)

type sourcePackets struct {
	byTrack map[int][]*rtp.Packet
}

// runSource feeds stream in chunks of chunk bytes, probing until Ready,
// then takes the medias and starts.
func runSource(t *testing.T, stream []byte, chunk int, mtu uint16) (*ps.Source, []*core.Media, *sourcePackets) {
	t.Helper()
	out := &sourcePackets{byTrack: map[int][]*rtp.Packet{}}
	s := ps.NewSource(ps.SourceConfig{
		MTU: mtu,
		OnPacket: func(track int, pkt *rtp.Packet) {
			out.byTrack[track] = append(out.byTrack[track], pkt)
		},
	})
	var medias []*core.Media
	for len(stream) > 0 {
		n := min(chunk, len(stream))
		if err := s.Write(stream[:n]); err != nil {
			t.Fatal(err)
		}
		stream = stream[n:]
		if medias == nil && s.Ready() {
			medias = s.Medias()
			if len(out.byTrack) != 0 {
				t.Fatal("packets delivered before Start")
			}
			s.Start()
		}
	}
	if medias == nil {
		t.Fatal("never ready")
	}
	return s, medias, out
}

// annexBNoAUD is an access unit as go2rtc carries it, back in Annex B:
// 4-byte start codes, no access unit delimiter.
func annexBNoAUD(au []byte, h265 bool) []byte {
	var out []byte
	for _, n := range nalsOf(au) {
		i := bytes.Index(n, []byte{0, 0, 1})
		nal := n[i+3:]
		if (!h265 && nal[0]&0x1F == 9) || (h265 && nal[0]>>1&0x3F == 35) {
			continue
		}
		out = append(out, 0, 0, 0, 1)
		out = append(out, nal...)
	}
	return out
}

func avccToAnnexB(avcc []byte) []byte {
	var out []byte
	for len(avcc) >= 4 {
		n := 4 + int(binary.BigEndian.Uint32(avcc))
		out = append(out, 0, 0, 0, 1)
		out = append(out, avcc[4:n]...)
		avcc = avcc[n:]
	}
	return out
}

func TestSourceH264G711(t *testing.T) {
	want := hikStream{video: media(t, "h264_main.h264"), audio: media(t, "tone_1khz_8k.alaw"), audioType: 0x90}.build(t)
	s, medias, out := runSource(t, want.ps, 1316, 0)
	if len(medias) != 2 || medias[0].Kind != core.KindVideo || medias[1].Kind != core.KindAudio {
		t.Fatalf("medias %v", medias)
	}
	v, a := medias[0].Codecs[0], medias[1].Codecs[0]
	if v.Name != core.CodecH264 || v.ClockRate != 90000 || v.PayloadType != core.PayloadTypeRAW {
		t.Fatalf("video codec %+v", v)
	}
	// fmtp carries the stream's own SPS and PPS
	sps, pps := h264.GetParameterSet(v.FmtpLine)
	first := annexBNoAUD(want.aus[0], false)
	if len(sps) == 0 || !bytes.Contains(first, append([]byte{0, 0, 1}, sps...)) || !bytes.Contains(first, append([]byte{0, 0, 1}, pps...)) {
		t.Fatalf("fmtp %q does not hold the stream's parameter sets", v.FmtpLine)
	}
	if !strings.Contains(v.FmtpLine, "profile-level-id=4d") {
		t.Fatalf("fmtp %q: want Main profile", v.FmtpLine)
	}
	if a.Name != core.CodecPCMA || a.ClockRate != 8000 || a.PayloadType != 8 {
		t.Fatalf("audio codec %+v", a)
	}
	video := out.byTrack[0]
	if len(video) != 99 { // the last unit waits for Flush or the next one
		t.Fatalf("%d video packets, want 99", len(video))
	}
	s.Flush()
	if len(out.byTrack[0]) != 100 {
		t.Fatalf("%d video packets after Flush, want 100", len(out.byTrack[0]))
	}
	for i, p := range video {
		if p.Version != h264.RTPPacketVersionAVC || p.Timestamp != uint32(want.ausPTS[i]) {
			t.Fatalf("packet %d: version %d timestamp %d", i, p.Version, p.Timestamp)
		}
		if !bytes.Equal(avccToAnnexB(p.Payload), annexBNoAUD(want.aus[i], false)) {
			t.Fatalf("packet %d: payload is not the access unit", i)
		}
		if h264.IsKeyframe(p.Payload) != (i%25 == 0) {
			t.Fatalf("packet %d: keyframe %v", i, !(i%25 == 0))
		}
	}
	audio := out.byTrack[1]
	var pcm []byte
	for i, p := range audio {
		pcm = append(pcm, p.Payload...)
		if i > 0 && (p.Timestamp-audio[i-1].Timestamp != 160 || p.SequenceNumber != audio[i-1].SequenceNumber+1) {
			t.Fatalf("audio packet %d: timestamp %d after %d, seq %d", i, p.Timestamp, audio[i-1].Timestamp, p.SequenceNumber)
		}
	}
	// audio from the first key frame on (PTS 0) was held and delivered
	if !bytes.Equal(pcm, media(t, "tone_1khz_8k.alaw")) || audio[0].Timestamp != 0 {
		t.Fatalf("%d audio bytes, first timestamp %d", len(pcm), audio[0].Timestamp)
	}
	if st := s.Streams(); len(st) != 2 || st[0].Type != ps.StreamG711A || st[1].Type != ps.StreamH264 {
		t.Fatalf("streams %v", st)
	}
	if h, ok := s.Header(); !ok || h.Video() != ps.StreamH264 {
		t.Fatalf("header %+v %v", h, ok)
	}

	// go2rtc's own MP4 muxer takes the packets, and ffprobe reads its output:
	// 99 frames of H.264 and 4 s of A-law
	mux := &mp4.Muxer{}
	mux.AddTrack(v)
	mux.AddTrack(a)
	file, err := mux.GetInit()
	if err != nil {
		t.Fatal(err)
	}
	vi, ai := 0, 0
	for vi < len(video) || ai < len(audio) {
		if ai >= len(audio) || (vi < len(video) && int64(video[vi].Timestamp) <= int64(audio[ai].Timestamp)*90000/8000) {
			file = append(file, mux.GetPayload(0, video[vi])...)
			vi++
		} else {
			file = append(file, mux.GetPayload(1, audio[ai])...)
			ai++
		}
	}
	path := filepath.Join(t.TempDir(), "out.mp4")
	if err := os.WriteFile(path, file, 0o644); err != nil {
		t.Fatal(err)
	}
	probe, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-show_entries",
		"stream=codec_name,width,height,nb_read_frames,sample_rate", "-of", "csv=p=0", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe: %v\n%s", err, probe)
	}
	if got := strings.TrimSpace(string(probe)); got != "h264,640,360,99\npcm_alaw,8000,200" {
		t.Fatalf("ffprobe on go2rtc's MP4 of the packets:\n%s", got)
	}
}

// In RTP mode the packets fit the MTU and go2rtc's own depacketisers give
// back the access units.
func TestSourceRTP(t *testing.T) {
	for _, tc := range []struct {
		file string
		h265 bool
	}{{"h264_main.h264", false}, {"h265_main.h265", true}} {
		want := hikStream{video: media(t, tc.file), h265: tc.h265, audio: media(t, "tone_1khz_16k.aac"), audioType: 0x0F}.build(t)
		const mtu = 1200
		_, medias, out := runSource(t, want.ps, 4000, mtu)
		v := medias[0].Codecs[0]
		if v.PayloadType != 96 || medias[1].Codecs[0].PayloadType != 97 {
			t.Fatalf("payload types %d %d", v.PayloadType, medias[1].Codecs[0].PayloadType)
		}
		if tc.h265 {
			vps, sps, pps := h265.GetParameterSet(v.FmtpLine)
			if len(vps) == 0 || len(sps) == 0 || len(pps) == 0 {
				t.Fatalf("fmtp %q", v.FmtpLine)
			}
		}
		var aus [][]byte
		handler := func(p *rtp.Packet) { aus = append(aus, bytes.Clone(p.Payload)) }
		var depay core.HandlerFunc
		if tc.h265 {
			depay = h265.RTPDepay(v, handler)
		} else {
			depay = h264.RTPDepay(v, handler)
		}
		for _, p := range out.byTrack[0] {
			if p.Version != 2 || 12+len(p.Payload) > mtu || p.PayloadType != 96 {
				t.Fatalf("RTP packet version %d, %d bytes", p.Version, 12+len(p.Payload))
			}
			raw, err := p.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			var q rtp.Packet
			if err := q.Unmarshal(raw); err != nil {
				t.Fatal(err)
			}
			depay(&q)
		}
		if len(aus) != 99 {
			t.Fatalf("%s: %d access units after go2rtc's depacketiser, want 99", tc.file, len(aus))
		}
		for i, au := range aus {
			got := avccToAnnexB(au)
			if tc.h265 {
				got = expandAP(got)
			}
			exp := annexBNoAUD(want.aus[i], tc.h265)
			if !bytes.Equal(got, exp) {
				t.Fatalf("%s: unit %d differs after RTP (%d bytes, want %d)\n%x\n%x", tc.file, i, len(got), len(exp), got[:min(80, len(got))], exp[:min(80, len(exp))])
			}
		}
		// AAC: RFC 3640 packets that go2rtc's depacketiser turns back into
		// the frames
		ac := medias[1].Codecs[0]
		if ac.Name != core.CodecAAC || ac.ClockRate != 16000 || ac.Channels != 1 || !strings.Contains(ac.FmtpLine, "config=1408") {
			t.Fatalf("AAC codec %+v", ac)
		}
		var frames [][]byte
		adepay := aac.RTPDepay(func(p *rtp.Packet) { frames = append(frames, bytes.Clone(p.Payload)) })
		apk := out.byTrack[1]
		for i, p := range apk {
			if i > 0 && p.Timestamp-apk[i-1].Timestamp != 1024 {
				t.Fatalf("AAC packet %d: timestamp step %d", i, p.Timestamp-apk[i-1].Timestamp)
			}
			adepay(p)
		}
		if len(frames) != len(want.audio) || len(frames) < 60 {
			t.Fatalf("%d AAC frames, want %d", len(frames), len(want.audio))
		}
		for i, f := range frames {
			if !bytes.Equal(f, want.audio[i][7:]) {
				t.Fatalf("AAC frame %d differs", i)
			}
		}
	}
}

// After Medias, a program stream map that changes the video codec fails
// Write with ErrCodecChanged; before Medias it only re-describes the track.
func TestSourceCodecChange(t *testing.T) {
	a := hikStream{video: media(t, "h264_sub.h264"), noHeader: true}.build(t)
	b := hikStream{video: media(t, "h265_main.h265"), h265: true, noHeader: true, ptsBase: 100 * 3600}.build(t)

	s := ps.NewSource(ps.SourceConfig{})
	if err := s.Write(a.ps); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(b.ps); err != nil {
		t.Fatal(err)
	}
	if tr := s.Tracks(); len(tr) != 1 || tr[0].Type != ps.StreamH265 || tr[0].Codec.Name != core.CodecH265 {
		t.Fatalf("tracks before Medias: %+v", tr)
	}

	s = ps.NewSource(ps.SourceConfig{})
	_ = s.Write(a.ps)
	if m := s.Medias(); len(m) != 1 || m[0].Codecs[0].Name != core.CodecH264 {
		t.Fatalf("medias %v", m)
	}
	err := s.Write(b.ps)
	var cc *ps.CodecChangeError
	if !errors.Is(err, ps.ErrCodecChanged) || !errors.As(err, &cc) || cc.Old != ps.StreamH264 || cc.New != ps.StreamH265 || cc.StreamID != 0xE0 {
		t.Fatalf("err %v", err)
	}
	if !strings.Contains(err.Error(), "H.264") || !strings.Contains(err.Error(), "H.265") {
		t.Fatalf("error text %q", err)
	}
}

// Nothing is held before the first key frame; a probe that outlasts the
// backlog starts again at the next key frame.
func TestSourceBacklog(t *testing.T) {
	want := hikStream{video: media(t, "h264_main.h264"), audio: media(t, "tone_1khz_8k.ulaw"), audioType: 0x91}.build(t)
	// start in the middle of the first GOP
	stream := want.ps[want.frameAt[10]:]
	var got []*rtp.Packet
	var tracks []int
	s := ps.NewSource(ps.SourceConfig{MaxBacklog: 40, OnPacket: func(tr int, p *rtp.Packet) {
		got = append(got, p)
		tracks = append(tracks, tr)
	}})
	// feed up to frame 30 (key frame 25 plus 5), then start
	cut := want.frameAt[30] - want.frameAt[10]
	_ = s.Write(stream[:cut])
	if !s.Ready() {
		t.Fatal("not ready after a key frame")
	}
	s.Start()
	firstVideo := func() []byte {
		for i, tr := range tracks {
			if tr == 0 {
				return avccToAnnexB(got[i].Payload)
			}
		}
		return nil
	}
	if !bytes.Equal(firstVideo(), annexBNoAUD(want.aus[25], false)) {
		t.Fatalf("first delivered video packet is not key frame 25 (%d packets)", len(got))
	}
	// audio before the key frame's time is not delivered
	for i, tr := range tracks {
		if tr == 1 && int64(got[i].Timestamp)*90000/8000 < want.ausPTS[25] {
			t.Fatalf("audio at %d delivered, key frame at %d", got[i].Timestamp, want.ausPTS[25])
		}
	}
	// key frame 25 to frame 29 and the audio between
	if n := len(got); n < 5+8 || n > 40 {
		t.Fatalf("%d packets held", n)
	}

	// a backlog of 10 overflows between key frames: delivery starts at
	// the last key frame before Start
	got, tracks = nil, nil
	s = ps.NewSource(ps.SourceConfig{MaxBacklog: 10, OnPacket: func(tr int, p *rtp.Packet) {
		got = append(got, p)
		tracks = append(tracks, tr)
	}})
	_ = s.Write(want.ps[:want.frameAt[77]])
	s.Medias()
	s.Start()
	if !bytes.Equal(firstVideo(), annexBNoAUD(want.aus[75], false)) {
		t.Fatalf("first delivered packet is not key frame 75 (%d packets)", len(got))
	}
	_ = base64.StdEncoding
}

// expandAP splits H.265 aggregation packets (RFC 7798 4.4.2: a 2-byte
// header, then 16-bit sizes and NAL units) that go2rtc's H.265 depacketiser
// passes through as one NAL unit.
func expandAP(annexb []byte) []byte {
	var out []byte
	for _, n := range nalsOf(annexb) {
		nal := n[4:]
		if nal[0]>>1&0x3F != 48 {
			out = append(out, n...)
			continue
		}
		for b := nal[2:]; len(b) >= 2; {
			size := int(binary.BigEndian.Uint16(b))
			out = append(out, 0, 0, 0, 1)
			out = append(out, b[2:2+size]...)
			b = b[2+size:]
		}
	}
	return out
}

// Write runs on the SDK's thread while go2rtc probes, takes the medias and
// starts on its own: safe under -race, and the video delivered is an
// unbroken run of access units from a key frame on.
func TestSourceConcurrent(t *testing.T) {
	want := hikStream{video: media(t, "h264_main.h264"), audio: media(t, "tone_1khz_8k.alaw"), audioType: 0x90}.build(t)
	packets := make(chan *rtp.Packet, 1000)
	// a backlog that holds the whole stream: however the goroutines
	// interleave, delivery starts at the first key frame
	s := ps.NewSource(ps.SourceConfig{MaxBacklog: 1000, OnPacket: func(tr int, p *rtp.Packet) {
		if tr == 0 {
			packets <- p
		}
	}})
	done := make(chan error, 1)
	go func() {
		for p := want.ps; len(p) > 0; {
			n := min(1000, len(p))
			if err := s.Write(p[:n]); err != nil {
				done <- err
				return
			}
			p = p[n:]
		}
		done <- nil
	}()
	var writeErr error
	finished := false
	for !s.Ready() {
		if finished {
			t.Fatalf("stream ended and not Ready: %v", writeErr)
		}
		select {
		case writeErr = <-done:
			finished = true
		default:
		}
		_ = s.Stats()
	}
	if m := s.Medias(); len(m) != 2 {
		t.Fatalf("medias %v", m)
	}
	s.Start()
	if !finished {
		writeErr = <-done
	}
	if writeErr != nil {
		t.Fatal(writeErr)
	}
	close(packets)
	var got [][]byte
	for p := range packets {
		got = append(got, avccToAnnexB(p.Payload))
	}
	first := -1
	for i := range want.aus {
		if len(got) > 0 && bytes.Equal(got[0], annexBNoAUD(want.aus[i], false)) {
			first = i
		}
	}
	if first != 0 || len(got) != 99 {
		t.Fatalf("%d video packets from unit %d", len(got), first)
	}
	for i, g := range got {
		if !bytes.Equal(g, annexBNoAUD(want.aus[first+i], false)) {
			t.Fatalf("packet %d is not unit %d", i, first+i)
		}
	}
}
