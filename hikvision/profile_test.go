//lint:file-ignore SA1019 go2rtc v1.9.14 marks core.Producer Start/Stop, Receiver.WriteRTP and Sender.HandleRTP deprecated, yet they are the interface it calls; the tests drive the producer as go2rtc does.

package hikvision

import (
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/AlexxIT/go2rtc/pkg/core"
	"github.com/AlexxIT/go2rtc/pkg/rtsp"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

// Issue 6 item 3: CPU profile of N streams (default 32) from the simulator,
// once through hikvision:// (Dial/GetTrack/Start of this package) and once
// through go2rtc's own pkg/rtsp client (what a stock rtsp:// source runs),
// each stream with one consumer attached the way go2rtc attaches them (a
// started core.Sender on the receiver). Both phases use the same simulated
// devices, the same settle time and the same profiling window. Skipped
// unless HIKVISION_PROFILE names an output directory; see
// internal/bench/PROFILE.md for the commands and the results.
//
//	HIKVISION_PROFILE=/tmp/prof go test -run='^TestProfileStreams$' -v -count=1 ./hikvision/
//
// Optional: HIKVISION_PROFILE_STREAMS (default 32), HIKVISION_PROFILE_SECONDS
// (default 30), HIKVISION_PROFILE_ORDER=stock-first (run the stock phase
// first; the order is a source of bias on a shared machine). Writes <dir>/hikvision.pprof and <dir>/stock.pprof.
func TestProfileStreams(t *testing.T) {
	t.Parallel()
	dir := os.Getenv("HIKVISION_PROFILE")
	if dir == "" {
		t.Skip("set HIKVISION_PROFILE=<output dir> to take the CPU profiles")
	}
	n := envInt(t, "HIKVISION_PROFILE_STREAMS", 32)
	window := time.Duration(envInt(t, "HIKVISION_PROFILE_SECONDS", 30)) * time.Second
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}

	const pass = "hik/12@45"
	devices := make([]*sim.Device, 0, n)
	defer func() {
		for _, d := range devices {
			_ = d.Close()
		}
	}()
	for range n {
		d, err := sim.Start(sim.Config{Users: map[string]string{"admin": pass}})
		if err != nil {
			t.Fatal(err)
		}
		devices = append(devices, d)
	}
	user := url.UserPassword("admin", pass).String()

	hik := func(d *sim.Device) (profStream, error) {
		prod, err := mod(t).Dial("hikvision://" + user + "@" + d.HTTPAddr() + "/?channel=1&stream=main")
		if err != nil {
			return nil, err
		}
		return prod.(*Producer), nil
	}
	stock := func(d *sim.Device) (profStream, error) {
		// as go2rtc's internal/rtsp opens an rtsp:// source (without the
		// ONVIF backchannel, which the hikvision path does not request either)
		conn := rtsp.NewClient("rtsp://" + user + "@" + d.RTSPAddr() + "/Streaming/Channels/101")
		conn.Backchannel = false
		if err := conn.Dial(); err != nil {
			return nil, err
		}
		if err := conn.Describe(); err != nil {
			_ = conn.Stop()
			return nil, err
		}
		return conn, nil
	}
	type phase struct {
		name string
		open func(*sim.Device) (profStream, error)
	}
	phases := []phase{{"hikvision", hik}, {"stock", stock}}
	if os.Getenv("HIKVISION_PROFILE_ORDER") == "stock-first" {
		phases[0], phases[1] = phases[1], phases[0]
	}
	for _, ph := range phases {
		t.Run(ph.name, func(t *testing.T) {
			profilePhase(t, filepath.Join(dir, ph.name+".pprof"), devices, window, ph.open)
		})
	}
}

// profStream is what both a *Producer and a go2rtc *rtsp.Conn offer.
type profStream interface {
	GetMedias() []*core.Media
	GetTrack(*core.Media, *core.Codec) (*core.Receiver, error)
	Start() error
	Stop() error
}

func profilePhase(t *testing.T, out string, devices []*sim.Device, window time.Duration, open func(*sim.Device) (profStream, error)) {
	base := runtime.NumGoroutine()
	var packets atomic.Uint64
	type stream struct {
		s       profStream
		senders []*core.Sender
		got     atomic.Bool
		started chan error
	}
	streams := make([]*stream, 0, len(devices))
	stopAll := func() {
		for _, st := range streams {
			if err := st.s.Stop(); err != nil {
				t.Errorf("Stop: %v", err)
			}
			if st.started != nil {
				<-st.started // Start's error after Stop is the client's business
			}
			for _, s := range st.senders {
				s.Close()
				s.Wait()
			}
		}
	}
	defer stopAll()

	for i, d := range devices {
		s, err := open(d)
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		st := &stream{s: s}
		streams = append(streams, st)
		for _, m := range s.GetMedias() {
			if m.Direction != core.DirectionRecvonly {
				continue
			}
			r, err := s.GetTrack(m, m.Codecs[0])
			if err != nil {
				t.Fatalf("stream %d: GetTrack %v: %v", i, m, err)
			}
			snd := core.NewSender(m, m.Codecs[0])
			snd.Handler = func(*core.Packet) {
				packets.Add(1)
				st.got.Store(true)
			}
			snd.HandleRTP(r)
			st.senders = append(st.senders, snd)
		}
		if len(st.senders) == 0 {
			t.Fatalf("stream %d: no recvonly media in %v", i, s.GetMedias())
		}
		st.started = make(chan error, 1)
		go func() { st.started <- s.Start() }()
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, st := range streams {
		for !st.got.Load() {
			if time.Now().After(deadline) {
				t.Fatal("not every stream delivered a packet within 20 s")
			}
			time.Sleep(10 * time.Millisecond) // polling with a deadline
		}
	}
	// settle: the first keyframes and set-up are not part of the window
	settle := time.NewTimer(3 * time.Second)
	<-settle.C

	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cpu0, p0, t0 := processCPU(t), packets.Load(), time.Now()
	if err := pprof.StartCPUProfile(f); err != nil {
		t.Fatal(err)
	}
	w := time.NewTimer(window)
	<-w.C
	pprof.StopCPUProfile()
	cpu1, p1, t1 := processCPU(t), packets.Load(), time.Now()
	for i, st := range streams {
		select {
		case err := <-st.started:
			st.started = nil
			t.Fatalf("stream %d ended during the window: %v", i, err)
		default:
		}
	}

	n := float64(len(devices))
	streamMin := n * t1.Sub(t0).Minutes()
	pps := float64(p1-p0) / n / t1.Sub(t0).Seconds()
	if pps == 0 {
		t.Fatal("no packets in the window")
	}
	t.Logf("%d streams, %v: process CPU (simulator + client + consumers) %.3f CPU s / stream-min, %.1f pkt/s per stream at the consumers; profile %s",
		len(devices), t1.Sub(t0).Round(time.Millisecond), (cpu1-cpu0).Seconds()/streamMin, pps, out)

	stopAll()
	streams = nil
	deadline = time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			t.Fatalf("goroutines %d after Stop, %d before", runtime.NumGoroutine(), base)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func processCPU(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}
