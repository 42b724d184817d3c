package hikvision

import (
	"sync"
	"sync/atomic"

	"github.com/AlexxIT/go2rtc/pkg/core"
)

// track is one receiver handed to go2rtc. It outlives sessions: each
// session's packets of it are forwarded into it, so consumers see a gap, not a
// disconnect. Sequence numbers and timestamps are rebased so that the output
// stays continuous across sessions (the timestamp gap equals the real gap).
type track struct {
	media *core.Media // the producer's media (from Dial's session)
	codec *core.Codec
	recv  *core.Receiver

	// Output state, touched only under the producer's gate (one session's
	// read goroutine at a time: a stalled session and the one tried beside
	// it both call in, see gate).
	out     bool
	lastSeq uint16
	lastTS  uint32
	lastAt  int64 // mono ns
}

// forward returns the per-packet handler of one session's track t (a
// Backend's Track.Out):
// it stamps the heartbeat, counts sequence gaps and forwards into t.recv. It
// allocates nothing per packet, and everything it touches per packet is in
// one forwarder and the track (few cache lines: at 32 streams of 2 Mbit/s
// this runs ~9000 times a second).
func (p *Producer) forward(t *track) core.HandlerFunc {
	p.gate.mu.Lock()
	gen := p.gate.current
	p.gate.mu.Unlock()
	return p.forwardGen(t, gen)
}

// forwardGen is forward for the session of generation gen (see gate).
func (p *Producer) forwardGen(t *track, gen uint64) core.HandlerFunc {
	f := &forwarder{
		t: t, next: t.recv.Input, clock: int64(t.codec.ClockRate), gen: gen, gate: &p.gate,
		video:      t.media.Kind == core.KindVideo,
		lastPacket: &p.status.lastPacket, lost: &p.status.packetsLost, first: p.firstPacket,
	}
	return f.handle
}

// gate decides which session's packets reach the consumers. Each session
// has a generation; owner is the one whose packets pass, the others' are
// dropped. While a stalled session is kept beside a new attempt (make before
// break) owner is 0: the first of the two to deliver a video packet takes it
// and tells the supervisor on claimed. Only video claims (unless anyTrack):
// the race is about video being back, and audio comes in its own rhythm, so
// a resumed session whose audio happens to come first would otherwise win
// and hold the video back until its next frame, though the new session's
// key frame was already there. Packets that cannot claim are dropped while
// the gate is open. mu is held for the whole of a packet's forwarding, so
// two sessions never touch a track's output state at once; outside that
// window it is never contended.
type gate struct {
	mu    sync.Mutex
	owner uint64
	// anyTrack lets a packet of any track claim an open gate: set when the
	// producer forwards no video, or when a new session delivered no video
	// for a StallTimeout (see play)
	anyTrack bool
	current  uint64      // generation of the producer's current session
	next     uint64      // last generation handed out
	claimed  chan uint64 // buffered 1
}

// forwarder is the state of one session's track (see forward). Only the
// session's read goroutine touches it.
type forwarder struct {
	have   bool
	inLast uint16
	seqOff uint16
	tsOff  uint32
	clock  int64
	gen    uint64
	gate   *gate
	video  bool // a video track's: may claim an open gate

	t          *track
	next       core.HandlerFunc // t.recv.Input: go2rtc's own fan-out to the consumers
	lastPacket *atomic.Int64
	lost       *atomic.Uint64
	first      chan struct{}
}

func (f *forwarder) handle(pkt *core.Packet) {
	g := f.gate
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.owner != f.gen {
		if g.owner != 0 || !f.video && !g.anyTrack {
			return // another session's turn, or not a packet that decides
		}
		g.owner = f.gen
		select {
		case g.claimed <- f.gen:
		default:
		}
	}
	now := mono()
	f.lastPacket.Store(now)
	t := f.t
	if !f.have {
		f.have = true
		select { // play sets the state to streaming
		case f.first <- struct{}{}:
		default:
		}
		if t.out && f.clock > 0 {
			ticks := (now - t.lastAt) / 1000 * f.clock / 1_000_000
			f.tsOff = t.lastTS + uint32(ticks) - pkt.Timestamp
			f.seqOff = t.lastSeq + 1 - pkt.SequenceNumber
		}
	} else if gap := pkt.SequenceNumber - f.inLast - 1; gap != 0 && gap < 0x8000 {
		f.lost.Add(uint64(gap))
	}
	f.inLast = pkt.SequenceNumber
	pkt.SequenceNumber += f.seqOff
	pkt.Timestamp += f.tsOff
	t.out, t.lastSeq, t.lastTS, t.lastAt = true, pkt.SequenceNumber, pkt.Timestamp, now
	f.next(pkt)
}
