//lint:file-ignore SA1019 go2rtc v1.9.14 marks core.Producer Start/Stop, Receiver.WriteRTP and Sender.HandleRTP deprecated, yet they are the interface it calls; the tests drive the producer as go2rtc does.

package hikvision

import (
	"testing"

	"github.com/AlexxIT/go2rtc/pkg/core"
	"github.com/pion/rtp"
)

// Issue 6 item 3: the module's per-packet forwarding (a session receiver's
// Input = p.forward(t), writing into the long-lived track receiver) must add
// no allocation and no lock per packet beyond go2rtc's own. Compare
//
//	go test -run='^$' -bench='Forward|Go2rtcReceiverOnly' -benchmem ./hikvision/
//
// BenchmarkForwardRTP against BenchmarkGo2rtcReceiverOnly: the difference is
// the module's cost. Both feed the same packets to the same consumer (a
// started go2rtc Sender with a no-op handler, as go2rtc attaches consumers).

const benchRing = 1024 // packets reused in turn: no allocation in the loop

func benchMedia() (*core.Media, *core.Codec) {
	codec := &core.Codec{Name: core.CodecH264, ClockRate: 90000, PayloadType: 96}
	media := &core.Media{Kind: core.KindVideo, Direction: core.DirectionRecvonly,
		ID: "trackID=1", Codecs: []*core.Codec{codec}}
	return media, codec
}

func benchPackets() []*rtp.Packet {
	payload := make([]byte, 1400) // a typical H.264 FU-A fragment
	pkts := make([]*rtp.Packet, benchRing)
	for i := range pkts {
		pkts[i] = &rtp.Packet{
			Header:  rtp.Header{Version: 2, PayloadType: 96, SSRC: 0x1234},
			Payload: payload,
		}
	}
	return pkts
}

// benchConsumer attaches a started go2rtc Sender with a no-op handler to r;
// the returned func closes it and waits for its goroutine.
func benchConsumer(b *testing.B, media *core.Media, codec *core.Codec, r *core.Receiver) (*core.Sender, func()) {
	b.Helper()
	s := core.NewSender(media, codec)
	s.Handler = func(*core.Packet) {}
	s.HandleRTP(r)
	return s, func() {
		s.Close()
		s.Wait()
	}
}

// benchTrack builds the minimum state forward needs: a Producer (only its
// status box is touched per packet) and a track with its own receiver.
func benchTrack(media *core.Media, codec *core.Codec) (*Producer, *track) {
	p := &Producer{}
	t := &track{media: media, codec: codec, recv: core.NewReceiver(media, codec)}
	return p, t
}

// benchSession returns one RTSP session's receiver whose Input is the real
// per-packet handler (exactly what setupTracks/GetTrack install). With
// rebased set, a previous session already delivered a packet, so the
// handler runs with non-zero sequence/timestamp offsets (after a reconnect).
func benchSession(p *Producer, t *track, rebased bool) *core.Receiver {
	if rebased {
		prev := core.NewReceiver(t.media, t.codec)
		prev.Input = p.forward(t)
		prev.WriteRTP(&rtp.Packet{Header: rtp.Header{SequenceNumber: 50000, Timestamp: 123456}})
	}
	inner := core.NewReceiver(t.media, t.codec)
	inner.Input = p.forward(t)
	return inner
}

// benchFeed writes b.N consecutive packets into r the way go2rtc's RTSP
// client does (receiver.WriteRTP per packet).
func benchFeed(b *testing.B, r *core.Receiver, pkts []*rtp.Packet) {
	var seq uint16
	var ts uint32
	b.SetBytes(int64(len(pkts[0].Payload)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		pkt := pkts[i%benchRing]
		pkt.SequenceNumber = seq
		pkt.Timestamp = ts
		seq++
		ts += 3000
		r.WriteRTP(pkt)
	}
	b.StopTimer()
}

func reportDrops(b *testing.B, s *core.Sender) {
	// Sender counters are guarded by its (unexported) mutex; the sender's
	// goroutine has ended (Wait) before this is read.
	b.ReportMetric(float64(s.Drops)/float64(b.N), "drops/op")
}

// BenchmarkGo2rtcReceiverOnly is the baseline: packets straight into a go2rtc
// Receiver, with the same consumer ("consumer") or with none ("no-consumer":
// the receiver alone, which isolates the CPU cost from the consumer's
// channel hand-off and its scheduling noise).
func BenchmarkGo2rtcReceiverOnly(b *testing.B) {
	b.Run("consumer", func(b *testing.B) {
		media, codec := benchMedia()
		r := core.NewReceiver(media, codec)
		s, stop := benchConsumer(b, media, codec, r)
		benchFeed(b, r, benchPackets())
		stop()
		reportDrops(b, s)
	})
	b.Run("no-consumer", func(b *testing.B) {
		media, codec := benchMedia()
		r := core.NewReceiver(media, codec)
		benchFeed(b, r, benchPackets())
		if r.Packets != b.N {
			b.Fatalf("receiver got %d packets, want %d", r.Packets, b.N)
		}
	})
}

// BenchmarkForwardRTP drives the module's forwarding path: session receiver
// → p.forward(t) → the track's long-lived receiver → consumer.
func BenchmarkForwardRTP(b *testing.B) {
	for _, bc := range []struct {
		name    string
		rebased bool
	}{{"first-session", false}, {"after-reconnect", true}} {
		b.Run(bc.name, func(b *testing.B) {
			media, codec := benchMedia()
			p, t := benchTrack(media, codec)
			s, stop := benchConsumer(b, media, codec, t.recv)
			inner := benchSession(p, t, bc.rebased)
			benchFeed(b, inner, benchPackets())
			stop()
			reportDrops(b, s)
			if lost := p.status.packetsLost.Load(); lost != 0 {
				b.Fatalf("consecutive packets counted %d lost", lost)
			}
			if p.status.lastPacket.Load() == 0 {
				b.Fatal("heartbeat never stamped")
			}
			if t.recv.Packets != b.N+boolInt(bc.rebased) {
				b.Fatalf("track receiver got %d packets, want %d", t.recv.Packets, b.N+boolInt(bc.rebased))
			}
		})
	}
	b.Run("no-consumer", func(b *testing.B) {
		media, codec := benchMedia()
		p, t := benchTrack(media, codec)
		inner := benchSession(p, t, false)
		benchFeed(b, inner, benchPackets())
		if t.recv.Packets != b.N || p.status.packetsLost.Load() != 0 {
			b.Fatalf("track receiver got %d packets (want %d), %d counted lost",
				t.recv.Packets, b.N, p.status.packetsLost.Load())
		}
	})
}

func boolInt(v bool) int {
	if v {
		return 1
	}
	return 0
}

// BenchmarkForwardRTPParallel: several tracks forwarded at once, each on its
// own goroutine (as several producers' RTSP read loops run), all tracks of
// one Producer so that they share its heartbeat and loss atomics (the worst
// case for contention in the module's state).
func BenchmarkForwardRTPParallel(b *testing.B) {
	media, codec := benchMedia()
	p := &Producer{}
	type lane struct {
		t     *track
		s     *core.Sender
		stop  func()
		inner *core.Receiver
		pkts  []*rtp.Packet
	}
	lanes := make(chan *lane, 16)
	var all []*lane
	for range cap(lanes) {
		t := &track{media: media, codec: codec, recv: core.NewReceiver(media, codec)}
		s, stop := benchConsumer(b, media, codec, t.recv)
		l := &lane{t: t, s: s, stop: stop, inner: benchSession(p, t, false), pkts: benchPackets()}
		lanes <- l
		all = append(all, l)
	}
	writeParallel(b, lanes, func(l *lane) []*rtp.Packet { return l.pkts }, func(l *lane, pkt *rtp.Packet) { l.inner.WriteRTP(pkt) })
	drops := 0
	for _, l := range all {
		l.stop()
		drops += l.s.Drops
	}
	b.ReportMetric(float64(drops)/float64(b.N), "drops/op")
	if lost := p.status.packetsLost.Load(); lost != 0 {
		b.Fatalf("consecutive packets counted %d lost", lost)
	}
}

// writeParallel times RunParallel goroutines, each taking a lane of its own
// (RunParallel uses GOMAXPROCS of them) and writing that lane's packets,
// numbered in sequence, 1400 bytes each.
func writeParallel[L any](b *testing.B, lanes chan L, pkts func(L) []*rtp.Packet, write func(L, *rtp.Packet)) {
	b.SetBytes(1400)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		l := <-lanes
		ring := pkts(l)
		var seq uint16
		var ts uint32
		i := 0
		for pb.Next() {
			pkt := ring[i%benchRing]
			pkt.SequenceNumber = seq
			pkt.Timestamp = ts
			seq++
			ts += 3000
			i++
			write(l, pkt)
		}
	})
	b.StopTimer()
}

// BenchmarkGo2rtcReceiverOnlyParallel is the parallel baseline.
func BenchmarkGo2rtcReceiverOnlyParallel(b *testing.B) {
	media, codec := benchMedia()
	type lane struct {
		r    *core.Receiver
		s    *core.Sender
		stop func()
		pkts []*rtp.Packet
	}
	lanes := make(chan *lane, 16)
	var all []*lane
	for range cap(lanes) {
		r := core.NewReceiver(media, codec)
		s, stop := benchConsumer(b, media, codec, r)
		l := &lane{r: r, s: s, stop: stop, pkts: benchPackets()}
		lanes <- l
		all = append(all, l)
	}
	writeParallel(b, lanes, func(l *lane) []*rtp.Packet { return l.pkts }, func(l *lane, pkt *rtp.Packet) { l.r.WriteRTP(pkt) })
	drops := 0
	for _, l := range all {
		l.stop()
		drops += l.s.Drops
	}
	b.ReportMetric(float64(drops)/float64(b.N), "drops/op")
}

// TestForwardAllocFree keeps the "no per-packet allocation" rule true in
// every test run (the benchmarks above only report it): the forwarding path,
// first session and after a reconnect, into a receiver with a started
// consumer, allocates nothing per packet.
func TestForwardAllocFree(t *testing.T) {
	// not parallel: AllocsPerRun counts every goroutine's allocations
	for _, rebased := range []bool{false, true} {
		media, codec := benchMedia()
		p, tr := benchTrack(media, codec)
		s := core.NewSender(media, codec)
		s.Handler = func(*core.Packet) {}
		s.HandleRTP(tr.recv)
		inner := benchSession(p, tr, rebased)
		pkts := benchPackets()
		var seq uint16
		allocs := testing.AllocsPerRun(10000, func() {
			pkt := pkts[int(seq)%benchRing]
			pkt.SequenceNumber = seq
			seq++
			inner.WriteRTP(pkt)
		})
		s.Close()
		s.Wait()
		if allocs != 0 {
			t.Errorf("rebased=%v: forwarding allocates %v times per packet, want 0", rebased, allocs)
		}
		if got, want := tr.recv.Packets, 10001+boolInt(rebased); got != want {
			t.Errorf("rebased=%v: track receiver got %d packets, want %d", rebased, got, want)
		}
	}
}
