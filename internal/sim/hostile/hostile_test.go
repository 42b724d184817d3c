package hostile_test

// go2rtc v1.9.14's core.Producer has only Start and Stop (their Run/Close
// replacements do not exist yet) and its streams call them: the test drives
// the producer the way go2rtc does.
//lint:file-ignore SA1019 go2rtc v1.9.14 core.Producer offers no Run/Close to call instead

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/AlexxIT/go2rtc/pkg/core"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/hikvision"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim/hostile"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/snapshot"
)

const (
	password = "Hostile-Pw-7qZ" // distinctive: grepped for in every error
	timeout  = 2 * time.Second  // #timeout=2 and isapi.Config.Timeout
	// slack on top of a timeout for a loaded 2-core machine under -race
	slack = 3 * time.Second
	// Dial's probe makes its first requests concurrently, but the isapi
	// client serialises requests until a challenge has been answered: against
	// a device that never answers, the three probe calls time out one after
	// the other.
	probeSerial = 3 * timeout
	// go2rtc's pkg/rtsp reads every RTSP answer with its own 5 s deadline
	// (rtsp.Timeout), whatever #timeout says.
	rtspTimeout = 5 * time.Second
	// Per connection: the client's body cap (isapi.DefaultMaxBodyBytes) plus
	// what the kernel buffers on both sides of a loopback connection (the
	// server's send buffer is set small; the client's receive buffer
	// autotunes). Seen: about 1.04 MiB.
	sentCap = isapi.DefaultMaxBodyBytes + 1<<20
	// peak heap above the baseline while a hostile device is served
	heapCap = 48 << 20
)

// healthy is a simulated camera Dial'ed and streaming through hikvision, in
// the same process as the hostile devices.
type healthy struct {
	dev     *sim.Device
	prod    core.Producer
	startCh chan error

	packets atomic.Int64
	mu      sync.Mutex
	last    time.Time
	maxGap  time.Duration
}

func startHealthy(t *testing.T) *healthy {
	t.Helper()
	dev, err := sim.Start(sim.Config{Users: map[string]string{"admin": password}})
	if err != nil {
		t.Fatal(err)
	}
	src := "hikvision://" + url.UserPassword("admin", password).String() + "@" + dev.HTTPAddr() + "/?channel=1&stream=sub#timeout=2"
	prod, err := hikvision.Dial(src)
	if err != nil {
		dev.Close()
		t.Fatal(err)
	}
	h := &healthy{dev: dev, prod: prod, startCh: make(chan error, 1), last: time.Now()}
	for _, m := range prod.GetMedias() {
		if m.Direction != core.DirectionRecvonly {
			continue // the talk media
		}
		r, err := prod.GetTrack(m, m.Codecs[0])
		if err != nil {
			t.Fatal(err)
		}
		r.AppendChild(&core.Node{Codec: r.Codec, Input: func(*core.Packet) {
			now := time.Now()
			h.mu.Lock()
			if gap := now.Sub(h.last); gap > h.maxGap {
				h.maxGap = gap
			}
			h.last = now
			h.mu.Unlock()
			h.packets.Add(1)
		}})
	}
	go func() { h.startCh <- prod.Start() }()
	deadline := time.Now().Add(10 * time.Second)
	for h.packets.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("healthy camera sends no packets")
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.resetGap()
	return h
}

func (h *healthy) resetGap() {
	h.mu.Lock()
	h.last, h.maxGap = time.Now(), 0
	h.mu.Unlock()
}

// check: packets kept coming, never more than a second apart (the stream is
// 25 fps), from the reset up to now.
func (h *healthy) check(t *testing.T, since int64, start time.Time) {
	t.Helper()
	h.mu.Lock()
	gap := max(h.maxGap, time.Since(h.last))
	h.mu.Unlock()
	n := h.packets.Load() - since
	if gap > time.Second || (time.Since(start) > time.Second && n == 0) {
		t.Errorf("healthy camera: %d packets, longest gap %v while the hostile device was served", n, gap)
	}
}

func (h *healthy) stop(t *testing.T) {
	if err := h.prod.Stop(); err != nil {
		t.Error(err)
	}
	if err := <-h.startCh; err != nil {
		t.Errorf("healthy Start: %v", err)
	}
	h.dev.Close()
}

// heapMonitor samples HeapInuse until stopped and keeps the peak.
type heapMonitor struct {
	stop chan struct{}
	done chan struct{}
	peak uint64
}

func watchHeap() *heapMonitor {
	m := &heapMonitor{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		tk := time.NewTicker(20 * time.Millisecond)
		defer tk.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			m.peak = max(m.peak, ms.HeapInuse)
			select {
			case <-m.stop:
				return
			case <-tk.C:
			}
		}
	}()
	return m
}

func (m *heapMonitor) Stop() uint64 {
	close(m.stop)
	<-m.done
	return m.peak
}

func heapInuse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// waitGoroutines polls until the goroutine count is back to base.
func waitGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= base {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before:\n%s", n, base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitClosed polls until every connection of the hostile server is over (the
// client hung up). It returns the connections.
func waitClosed(t *testing.T, s *hostile.Server) []hostile.ConnStats {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		cs := s.Conns()
		open := 0
		for _, c := range cs {
			if !c.Closed {
				open++
			}
		}
		if open == 0 {
			return cs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d connections still open: %+v", open, len(cs), cs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func noPassword(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	s := err.Error()
	for _, f := range []string{password, url.QueryEscape(password), url.PathEscape(password)} {
		if strings.Contains(s, f) {
			t.Errorf("error holds the password: %v", err)
		}
	}
}

// within checks that a call that must give up took at most limit.
func within(t *testing.T, what string, took, limit time.Duration) {
	t.Helper()
	if took > limit {
		t.Errorf("%s took %v, limit %v", what, took, limit)
	}
}

type modeCase struct {
	name string
	cfg  hostile.Config
	// isapiCall runs one isapi call against the device and checks its result.
	isapiCall func(t *testing.T, c *isapi.Client, s *hostile.Server)
	isapiTime time.Duration // the call must return within this
	dialTime  time.Duration // hikvision.Dial must fail within this
	dialOK    bool          // Dial is expected to reach RTSP (silent RTSP)
	maxSent   int64         // bytes the HTTP side may have sent on one connection
}

func TestHostileDevices(t *testing.T) {
	h := startHealthy(t)
	defer h.stop(t)

	ctx := context.Background()
	errIs := func(target error) func(*testing.T, *isapi.Client, *hostile.Server) {
		return func(t *testing.T, c *isapi.Client, _ *hostile.Server) {
			_, err := c.DeviceInfo(ctx)
			if !errors.Is(err, target) {
				t.Errorf("DeviceInfo: %v, want %v", err, target)
			}
			noPassword(t, err)
		}
	}
	timedOut := func(t *testing.T, c *isapi.Client, _ *hostile.Server) {
		_, err := c.DeviceInfo(ctx)
		if err == nil || !(errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "timeout")) {
			t.Errorf("DeviceInfo: %v, want a timeout", err)
		}
		noPassword(t, err)
	}
	// authLoop: DeviceInfo fails with target after at most requests
	// requests, logins of them with credentials.
	authLoop := func(requests, logins int, target error) func(*testing.T, *isapi.Client, *hostile.Server) {
		return func(t *testing.T, c *isapi.Client, s *hostile.Server) {
			before, authBefore := s.Requests(), s.AuthAttempts()
			errIs(target)(t, c, s)
			if n, a := s.Requests()-before, s.AuthAttempts()-authBefore; n > requests || a > logins {
				t.Errorf("DeviceInfo made %d requests (%d with credentials) against a 401 loop, want at most %d (%d)",
					n, a, requests, logins)
			}
		}
	}
	cases := []modeCase{
		{name: "endless body", cfg: hostile.Config{Mode: hostile.ModeEndlessBody},
			isapiCall: timedOut, isapiTime: timeout + slack, dialTime: probeSerial + slack, maxSent: 64 << 10},
		{name: "gigabyte body", cfg: hostile.Config{Mode: hostile.ModeHugeBody},
			isapiCall: errIs(isapi.ErrTooLarge), isapiTime: slack, dialTime: slack, maxSent: sentCap},
		{name: "megabyte element", cfg: hostile.Config{Mode: hostile.ModeBigElement},
			isapiCall: errIs(isapi.ErrTooLarge), isapiTime: slack, dialTime: slack, maxSent: sentCap},
		{name: "megabyte element under the cap", cfg: hostile.Config{Mode: hostile.ModeBigElement, ElementBytes: isapi.DefaultMaxBodyBytes - 4096},
			isapiCall: func(t *testing.T, c *isapi.Client, _ *hostile.Server) {
				info, err := c.DeviceInfo(ctx)
				if err != nil || len(info.DeviceName) != isapi.DefaultMaxBodyBytes-4096 {
					t.Errorf("DeviceInfo under the cap: %v", err)
				}
			}, isapiTime: slack, dialTime: rtspTimeout + slack,
			// whole bodies under the cap: the three probe requests may share
			// one kept-alive connection
			maxSent: 3 * sentCap},
		{name: "trickled headers", cfg: hostile.Config{Mode: hostile.ModeTrickleHeaders},
			isapiCall: timedOut, isapiTime: timeout + slack, dialTime: probeSerial + slack, maxSent: 64},
		{name: "wrong content type", cfg: hostile.Config{Mode: hostile.ModeWrongContentType},
			isapiCall: errIs(isapi.ErrProtocol), isapiTime: slack, dialTime: slack, maxSent: 64 << 10},
		{name: "JPEG that is HTML", cfg: hostile.Config{Mode: hostile.ModeHTMLJPEG},
			isapiCall: func(t *testing.T, c *isapi.Client, _ *hostile.Server) {
				// the module's snapshot path: Do, then snapshot.Validate
				_, body, err := c.Do(ctx, http.MethodGet, "/ISAPI/Streaming/channels/101/picture", nil)
				var jpg []byte
				if err == nil {
					jpg, err = snapshot.Validate(body)
				}
				var fe *snapshot.FetchError
				if jpg != nil || !errors.As(err, &fe) || fe.Reason != snapshot.ReasonHTML {
					t.Errorf("snapshot of HTML: %d bytes, %v; want %s", len(jpg), err, snapshot.ReasonHTML)
				}
				noPassword(t, err)
			}, isapiTime: slack, dialTime: slack, maxSent: 64 << 10},
		{name: "401 loop", cfg: hostile.Config{Mode: hostile.ModeAuthLoop, NeverStale: true},
			isapiCall: authLoop(2, 1, isapi.ErrUnauthorized), isapiTime: slack, dialTime: slack, maxSent: 64 << 10},
		// stale="TRUE" to a fresh answer is retried once with the new nonce;
		// the device never said the password was wrong: ErrNonceRefused
		{name: "401 loop stale", cfg: hostile.Config{Mode: hostile.ModeAuthLoop},
			isapiCall: authLoop(3, 2, isapi.ErrNonceRefused), isapiTime: slack, dialTime: slack, maxSent: 64 << 10},
		{name: "redirect to another host", cfg: hostile.Config{Mode: hostile.ModeRedirect},
			isapiCall: func(t *testing.T, c *isapi.Client, _ *hostile.Server) {
				_, err := c.DeviceInfo(ctx)
				var se *isapi.StatusError
				if !errors.As(err, &se) || se.HTTPStatus != 302 {
					t.Errorf("DeviceInfo redirected: %v, want a 302 StatusError", err)
				}
				noPassword(t, err)
			}, isapiTime: slack, dialTime: slack, maxSent: 64 << 10},
		{name: "silent RTSP", cfg: hostile.Config{Mode: hostile.ModeSilentRTSP},
			isapiCall: func(t *testing.T, c *isapi.Client, _ *hostile.Server) {
				if port, err := c.RTSPPort(ctx); err != nil || port == 0 {
					t.Errorf("silent RTSP device's ISAPI: port %d, %v", port, err)
				}
			}, isapiTime: slack, dialTime: timeout + rtspTimeout + slack, dialOK: true, maxSent: 64 << 10},
	}

	for i, tc := range cases {
		// Each hostile device on its own loopback address: hikvision keys its
		// login guard by host (not port), and the 401 loop trips it.
		tc.cfg.Host = fmt.Sprintf("127.0.0.%d", 20+i)
		t.Run(tc.name, func(t *testing.T) {
			base := runtime.NumGoroutine()
			heap0 := heapInuse()
			mon := watchHeap()
			since, start := h.packets.Load(), time.Now()
			h.resetGap()

			s, err := hostile.Start(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			c, err := isapi.New(isapi.Config{Host: s.HTTPAddr(), Username: "admin", Password: password, Timeout: timeout})
			if err != nil {
				t.Fatal(err)
			}
			t0 := time.Now()
			tc.isapiCall(t, c, s)
			within(t, "isapi call", time.Since(t0), tc.isapiTime)
			c.Close()

			src := "hikvision://" + url.UserPassword("admin", password).String() + "@" + s.HTTPAddr() + "/#timeout=2"
			authBefore := s.AuthAttempts()
			t0 = time.Now()
			prod, err := hikvision.Dial(src)
			took := time.Since(t0)
			if err == nil {
				_ = prod.Stop()
				t.Fatalf("Dial of a hostile device (%s) succeeded", tc.cfg.Mode)
			}
			noPassword(t, err)
			within(t, "Dial", took, tc.dialTime)
			t.Logf("Dial gave up after %v: %v", took.Round(time.Millisecond), err)
			if tc.cfg.Mode == hostile.ModeAuthLoop {
				// one login (two answers when the device says stale), not one per probe call
				want := 1
				if !tc.cfg.NeverStale {
					want = 2
				}
				if n := s.AuthAttempts() - authBefore; n > want {
					t.Errorf("Dial made %d login attempts against a 401 loop, want at most %d", n, want)
				}
			}
			if tc.dialOK && !strings.Contains(err.Error(), "rtsp") {
				t.Errorf("Dial of the silent RTSP device failed before RTSP: %v", err)
			}

			conns := waitClosed(t, s)
			for _, cs := range conns {
				if cs.Listener == "http" && cs.Sent > tc.maxSent {
					t.Errorf("hostile device sent %d bytes on one connection before the client hung up, cap %d", cs.Sent, tc.maxSent)
				}
			}
			if s.Followed() != 0 {
				t.Errorf("%d requests followed the redirect to %s", s.Followed(), s.RedirectHost())
			}
			if tc.cfg.Mode == hostile.ModeSilentRTSP {
				n := 0
				for _, cs := range conns {
					if cs.Listener == "rtsp" {
						n++
						if !cs.PeerClosed || cs.Sent != 0 || cs.Received == 0 {
							t.Errorf("silent RTSP connection %+v", cs)
						}
					}
				}
				if n == 0 {
					t.Error("Dial never connected to the silent RTSP server")
				}
			}
			t.Logf("%d connections, %d bytes sent, %d requests", len(conns), s.Sent(""), s.Requests())

			h.check(t, since, start)
			if err := s.Close(); err != nil {
				t.Error(err)
			}
			if peak := mon.Stop(); peak > heap0+heapCap {
				t.Errorf("heap in use peaked at %d MiB, %d MiB before", peak>>20, heap0>>20)
			}
			waitGoroutines(t, base)
		})
	}
}

// TestHostileServerCounts: the server's own counters are right (what the
// tests above rely on), and Close ends endless answers.
func TestHostileServerCounts(t *testing.T) {
	base := runtime.NumGoroutine()
	s, err := hostile.Start(hostile.Config{Mode: hostile.ModeHugeBody, HugeBytes: 100 << 10})
	if err != nil {
		t.Fatal(err)
	}
	c, err := isapi.New(isapi.Config{Host: s.HTTPAddr(), Username: "admin", Password: password, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	// 100 KiB body under the cap: read whole, then a protocol error (no XML)
	if _, err := c.DeviceInfo(context.Background()); !errors.Is(err, isapi.ErrProtocol) {
		t.Errorf("DeviceInfo of 100 KiB of filler: %v", err)
	}
	c.Close()
	waitClosed(t, s)
	if sent := s.Sent("http"); sent < 100<<10 || sent > 100<<10+512 {
		t.Errorf("sent %d bytes for a 100 KiB body", sent)
	}
	if s.Requests() != 1 {
		t.Errorf("%d requests", s.Requests())
	}
	s.Close()

	// an endless answer in progress ends at Close
	s, err = hostile.Start(hostile.Config{Mode: hostile.ModeEndlessBody, SlowInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	c, err = isapi.New(isapi.Config{Host: s.HTTPAddr(), Username: "admin", Password: password, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := c.DeviceInfo(context.Background()); done <- err }()
	deadline := time.Now().Add(10 * time.Second)
	for s.Sent("http") < 1000 {
		if time.Now().After(deadline) {
			t.Fatal("endless body does not flow")
		}
		time.Sleep(5 * time.Millisecond)
	}
	s.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Error("DeviceInfo of a body cut by Close succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("client still reading after the server closed")
	}
	c.Close()
	if _, err := hostile.Start(hostile.Config{Mode: "nonsense"}); err == nil {
		t.Error("unknown mode accepted")
	}
	waitGoroutines(t, base)
}
