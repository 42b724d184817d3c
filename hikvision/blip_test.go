package hikvision

import (
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/AlexxIT/go2rtc/pkg/core"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/guard"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

// A device that goes completely silent for longer than StallTimeout (TCP
// intact) and then resumes, several times in a row: the stalled session is
// kept while new ones are tried beside it (one at a time, again at once when
// one meets silence), and video is back as soon as the device sends again,
// on whichever of the two delivers first; the other is closed. The silences
// outlast the attempts' answer timeout, and sessions this short would count
// as flapping if each silence ended in a reconnect: the backoff must not
// grow.
func TestFreezeKeepsSession(t *testing.T) {
	e := newSimEnv(t, sim.Config{}, guard.Config{}, ReconnectOptions{StallTimeout: time.Second})
	px := newBlackholeProxy(t, e.dev.RTSPAddr()) // counts the RTSP connections
	base := runtime.NumGoroutine()
	pl := startPlaying(t, e.src+"&rtsp_port="+strconv.Itoa(px.port())+"#timeout=2")
	pl.waitPacket(t, 0, 5*time.Second)

	const freezes = 3
	for i := range freezes {
		// stall after 1 s, an attempt waits 2 s for an answer, then another
		freezeThenPacket(t, e.dev, pl, 4500*time.Millisecond, fmt.Sprintf("freeze %d: video", i+1))
		// the loser is closed: one RTSP connection left
		deadline := time.Now().Add(5 * time.Second)
		for px.open() != 1 {
			if time.Now().After(deadline) {
				t.Fatalf("freeze %d: %d RTSP connections open, want 1", i+1, px.open())
			}
			time.Sleep(20 * time.Millisecond) // polling with a deadline
		}
		// 1.5 s of video before the next
		until := time.Now().Add(1500 * time.Millisecond)
		for time.Now().Before(until) {
			pl.waitPacket(t, pl.packets.Load(), 2*time.Second)
		}
	}
	st := pl.p.Status()
	if st.Stalls != freezes {
		t.Errorf("stalls %d, want %d", st.Stalls, freezes)
	}
	if st.Reconnects > freezes {
		t.Errorf("reconnects %d, want at most one per freeze", st.Reconnects)
	}
	if n := failedLogins(e.dev); n != 0 {
		t.Errorf("failed logins %d", n)
	}
	pl.stop(t)
	waitGoroutines(t, base)
}

// The link to the device silently drops the playing session's connection
// (no FIN, no RST), while new connections get through: the stall timer
// notices, the new session takes over, and the dead one is closed.
func TestStalledSessionReplaced(t *testing.T) {
	e := newSimEnv(t, sim.Config{}, guard.Config{}, ReconnectOptions{})
	px := newBlackholeProxy(t, e.dev.RTSPAddr())
	base := runtime.NumGoroutine()
	src := e.src + "&rtsp_port=" + strconv.Itoa(px.port())
	pl := startPlaying(t, src)
	pl.waitPacket(t, 0, 5*time.Second)

	px.blackholeAll() // the playing session's connection goes silent
	// Packets already past the proxy still arrive: the silence (and the
	// stall timer) starts after the last of them, once none came for 300 ms.
	cut := time.Now()
	giveUp := cut.Add(3 * time.Second)
	for n, quiet := pl.packets.Load(), cut; time.Since(quiet) < 300*time.Millisecond; {
		if time.Now().After(giveUp) {
			t.Fatal("packets still arrive 3 s after the connection was silenced")
		}
		select {
		case <-pl.got:
		case <-time.After(50 * time.Millisecond): // polling with a deadline
		}
		if m := pl.packets.Load(); m != n {
			n, cut, quiet = m, time.Now(), time.Now()
		}
	}
	got := pl.waitPacket(t, pl.packets.Load(), 10*time.Second)
	back := got.Sub(cut)
	t.Logf("video back %s after the connection went silent", back.Round(time.Millisecond))
	if back < 3*time.Second-100*time.Millisecond || back > 5*time.Second {
		t.Errorf("video back after %s, want after the 3 s stall timeout and within 5 s", back)
	}
	// the supervisor counts the takeover just after the packet passed
	deadline := time.Now().Add(5 * time.Second)
	for st := pl.p.Status(); st.Stalls != 1 || st.Reconnects != 1; st = pl.p.Status() {
		if time.Now().After(deadline) {
			t.Fatalf("stalls %d, reconnects %d; want 1, 1", st.Stalls, st.Reconnects)
		}
		time.Sleep(20 * time.Millisecond) // polling with a deadline
	}
	// the silent connection was closed by the client
	for px.open() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections open through the proxy, want 1", px.open())
		}
		time.Sleep(20 * time.Millisecond) // polling with a deadline
	}
	pl.stop(t)
	waitGoroutines(t, base)
}

// blackholeProxy forwards TCP connections to a target; blackholeAll makes
// the connections open at that moment drop everything both ways without
// closing (a dead link), while later connections pass.
type blackholeProxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns map[*bhConn]bool
}

type bhConn struct {
	client, server net.Conn
	mu             sync.Mutex
	dead           bool
}

func (c *bhConn) isDead() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dead
}

func newBlackholeProxy(t *testing.T, target string) *blackholeProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	px := &blackholeProxy{ln: ln, target: target, conns: map[*bhConn]bool{}}
	px.wg.Add(1)
	go px.serve()
	t.Cleanup(func() {
		_ = ln.Close()
		px.mu.Lock()
		for c := range px.conns {
			_ = c.client.Close()
			_ = c.server.Close()
		}
		px.mu.Unlock()
		px.wg.Wait()
	})
	return px
}

func (px *blackholeProxy) port() int { return px.ln.Addr().(*net.TCPAddr).Port }

func (px *blackholeProxy) open() int {
	px.mu.Lock()
	defer px.mu.Unlock()
	return len(px.conns)
}

func (px *blackholeProxy) blackholeAll() {
	px.mu.Lock()
	defer px.mu.Unlock()
	for c := range px.conns {
		c.mu.Lock()
		c.dead = true
		c.mu.Unlock()
	}
}

func (px *blackholeProxy) serve() {
	defer px.wg.Done()
	for {
		cl, err := px.ln.Accept()
		if err != nil {
			return
		}
		sv, err := net.Dial("tcp", px.target)
		if err != nil {
			_ = cl.Close()
			continue
		}
		c := &bhConn{client: cl, server: sv}
		px.mu.Lock()
		px.conns[c] = true
		px.mu.Unlock()
		var once sync.Once
		done := func() {
			once.Do(func() {
				_ = cl.Close()
				_ = sv.Close()
				px.mu.Lock()
				delete(px.conns, c)
				px.mu.Unlock()
			})
		}
		px.wg.Add(2)
		go func() { defer px.wg.Done(); defer done(); px.pipe(c, sv, cl) }()
		go func() { defer px.wg.Done(); defer done(); px.pipe(c, cl, sv) }()
	}
}

// pipe copies src to dst until either fails; once c is dead it reads and
// drops (the peer's writes do not block, nothing arrives).
func (px *blackholeProxy) pipe(c *bhConn, dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !c.isDead() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// A consumer of audio only: with no video forwarded, an audio packet
// decides the race after a silence, so the sound is back as soon as the
// device sends again (not a StallTimeout later).
func TestFreezeAudioOnly(t *testing.T) {
	e := newSimEnv(t, sim.Config{}, guard.Config{}, ReconnectOptions{StallTimeout: time.Second})
	base := runtime.NumGoroutine()
	prod, err := mod(t).Dial(e.src + "#timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	pl := play(t, prod.(*Producer), func(m *core.Media) bool { return m.Kind == core.KindAudio })
	if len(pl.recv) != 1 {
		t.Fatalf("%d audio tracks, want 1", len(pl.recv))
	}
	pl.waitPacket(t, 0, 5*time.Second)

	// stall after 1 s; the attempt beside it waits for the device
	freezeThenPacket(t, e.dev, pl, 2500*time.Millisecond, "audio")
	if st := pl.p.Status(); st.Stalls != 1 {
		t.Errorf("stalls %d, want 1", st.Stalls)
	}
	pl.stop(t)
	waitGoroutines(t, base)
}

// freezeThenPacket freezes dev for d and checks that pl's next packet (what)
// comes within 0.5 s of the freeze's end: the kept session resumed, or the
// one waiting beside it delivered, not a reconnect after a timeout.
func freezeThenPacket(t *testing.T, dev *sim.Device, pl *playing, d time.Duration, what string) {
	t.Helper()
	if err := dev.Freeze(d); err != nil {
		t.Fatal(err)
	}
	_, over := dev.Frozen()
	<-over
	ended := time.Now()
	back := pl.waitPacket(t, pl.packets.Load(), 5*time.Second).Sub(ended)
	t.Logf("%s back %s after the freeze ended", what, back.Round(time.Millisecond))
	if back > 500*time.Millisecond {
		t.Errorf("%s back %s after the freeze ended, want < 0.5 s", what, back)
	}
}
