package hikvision

import (
	"testing"

	"github.com/AlexxIT/go2rtc/pkg/core"
	"github.com/pion/rtp"
)

// gateRig is a producer with a video and an audio track whose receivers
// count what reaches go2rtc, and the handlers of two sessions (generations
// 1 and 2) for each track.
type gateRig struct {
	p            *Producer
	video, audio map[uint64]core.HandlerFunc // per generation
	got          map[string][]uint16         // per kind: sequence numbers in
}

func newGateRig() *gateRig {
	p := &Producer{firstPacket: make(chan struct{}, 1)}
	p.gate.claimed = make(chan uint64, 1)
	p.gate.next, p.gate.current, p.gate.owner = 2, 1, 1
	r := &gateRig{p: p, video: map[uint64]core.HandlerFunc{}, audio: map[uint64]core.HandlerFunc{},
		got: map[string][]uint16{}}
	for _, kind := range []string{core.KindVideo, core.KindAudio} {
		codec := &core.Codec{Name: core.CodecH264, ClockRate: 90000, PayloadType: 96}
		if kind == core.KindAudio {
			codec = &core.Codec{Name: core.CodecPCMU, ClockRate: 8000, PayloadType: 0}
		}
		media := &core.Media{Kind: kind, Direction: core.DirectionRecvonly, Codecs: []*core.Codec{codec}}
		t := &track{media: media, codec: codec, recv: core.NewReceiver(media, codec)}
		t.recv.AppendChild(&core.Node{Codec: codec, Input: func(pkt *core.Packet) {
			r.got[kind] = append(r.got[kind], pkt.SequenceNumber)
		}})
		p.tracks = append(p.tracks, t)
		for gen := uint64(1); gen <= 2; gen++ {
			h := p.forwardGen(t, gen)
			if kind == core.KindVideo {
				r.video[gen] = h
			} else {
				r.audio[gen] = h
			}
		}
	}
	return r
}

// open opens the gate as the supervisor does on a stall.
func (r *gateRig) open(anyTrack bool) {
	r.p.gate.mu.Lock()
	r.p.gate.owner, r.p.gate.anyTrack = 0, anyTrack
	r.p.gate.mu.Unlock()
}

func (r *gateRig) claimed() (uint64, bool) {
	select {
	case g := <-r.p.gate.claimed:
		return g, true
	default:
		return 0, false
	}
}

func pkt(seq uint16) *rtp.Packet {
	return &rtp.Packet{Header: rtp.Header{SequenceNumber: seq, Timestamp: uint32(seq) * 3600}}
}

// While a stalled session is kept beside a new one, the first video packet
// decides: the old session's audio, resuming a moment before the new
// session's key frame, must not win the race and hold the video back until
// the old session's next frame.
func TestGateVideoDecides(t *testing.T) {
	r := newGateRig()
	r.video[1](pkt(100)) // the first session plays
	r.audio[1](pkt(200))
	r.open(false) // it stalled; session 2 is tried beside it

	r.audio[1](pkt(201)) // the old session's audio resumes first
	if g, ok := r.claimed(); ok {
		t.Fatalf("an audio packet claimed the gate for session %d", g)
	}
	r.video[2](pkt(7000)) // the new session's key frame
	if g, ok := r.claimed(); !ok || g != 2 {
		t.Fatalf("claimed %d (%v), want session 2 by its video", g, ok)
	}
	r.video[1](pkt(101)) // the old session's next frame: too late
	r.audio[1](pkt(202))
	r.audio[2](pkt(9000))

	if n := len(r.got[core.KindVideo]); n != 2 {
		t.Fatalf("video packets passed %d (%v), want 2: the first session's, then the new one's", n, r.got[core.KindVideo])
	}
	// rebased: the output continues the first session's numbering
	if got := r.got[core.KindVideo][1]; got != 101 {
		t.Errorf("the new session's first video packet went out as seq %d, want 101", got)
	}
	if got := r.got[core.KindAudio]; len(got) != 2 || got[0] != 200 || got[1] != 201 {
		t.Errorf("audio out %v, want [200 201]: the first session's, then the new one's (the old one's dropped)", got)
	}
}

// The stalled session's own video resuming first keeps it.
func TestGateOldSessionVideoKeeps(t *testing.T) {
	r := newGateRig()
	r.video[1](pkt(100))
	r.open(false)
	r.audio[2](pkt(9000)) // the new session's audio: does not decide
	r.video[1](pkt(101))
	if g, ok := r.claimed(); !ok || g != 1 {
		t.Fatalf("claimed %d (%v), want session 1", g, ok)
	}
	r.video[2](pkt(7000))
	if got := r.got[core.KindVideo]; len(got) != 2 || got[1] != 101 {
		t.Errorf("video out %v, want [100 101]", got)
	}
	if got := r.got[core.KindAudio]; len(got) != 0 {
		t.Errorf("audio out %v, want none", got)
	}
}

// With anyTrack (no video forwarded, or the new session sent no video for a
// StallTimeout) an audio packet decides.
func TestGateAnyTrack(t *testing.T) {
	r := newGateRig()
	r.video[1](pkt(100))
	r.open(true)
	r.audio[2](pkt(9000))
	if g, ok := r.claimed(); !ok || g != 2 {
		t.Fatalf("claimed %d (%v), want session 2 by its audio", g, ok)
	}
	if got := r.got[core.KindAudio]; len(got) != 1 {
		t.Errorf("audio out %v, want one packet", got)
	}
}
