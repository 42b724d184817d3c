//go:build hcnetsdk && linux && (amd64 || arm64)

package hcnetsdk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/hcnetsdk/hcfake"
)

// Sizes and offsets of the Go mirrors against the C structures of the fake
// (written from the public header).
func TestLayout(t *testing.T) {
	for name, goVal := range layout() {
		c := fakeLayout(name)
		if c < 0 {
			t.Errorf("%s: the fake does not know it", name)
			continue
		}
		if uintptr(c) != goVal {
			t.Errorf("%s: C %d, Go %d", name, c, goVal)
		}
	}
}

func TestMissingLibrary(t *testing.T) {
	dir := t.TempDir()
	for _, path := range []string{dir, filepath.Join(dir, "libhcnetsdk.so"), ""} {
		_, err := Open(Config{Path: path})
		if !errors.Is(err, ErrLibraryMissing) {
			t.Fatalf("Open(%q): %v, want ErrLibraryMissing", path, err)
		}
		var le *LoadError
		if !errors.As(err, &le) {
			t.Fatalf("Open(%q): %T, want *LoadError", path, err)
		}
		msg := err.Error()
		for _, want := range []string{"libhcnetsdk.so", "Hikvision", "HCNetSDKCom/", "Linux"} {
			if !strings.Contains(msg, want) {
				t.Errorf("Open(%q) error %q lacks %q", path, msg, want)
			}
		}
		if strings.Contains(msg, "\n") {
			t.Errorf("error is not one line: %q", msg)
		}
	}
	// A library that is not the SDK names the missing entry point.
	notSDK := filepath.Join(dir, "libhcnetsdk.so")
	if err := os.WriteFile(filepath.Join(dir, "x.c"), []byte("int x(void){return 1;}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runCC(filepath.Join(dir, "x.c"), notSDK); err != nil {
		t.Fatalf("cc: %v\n%s", err, out)
	}
	_, err := Open(Config{Path: dir})
	if !errors.Is(err, ErrLibrary) || !strings.Contains(err.Error(), "NET_DVR_Init") {
		t.Fatalf("Open(not the SDK): %v, want ErrLibrary naming NET_DVR_Init", err)
	}
	// A file that is no library at all.
	bad := filepath.Join(t.TempDir(), "libhcnetsdk.so")
	if err := os.WriteFile(bad, []byte("not an ELF file"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Config{Path: bad}); !errors.Is(err, ErrLibrary) {
		t.Fatalf("Open(garbage): %v, want ErrLibrary", err)
	}
}

func TestOpenClose(t *testing.T) {
	base := runtime.NumGoroutine()
	initCalls := fakeCount("init_calls")
	cleanups := fakeCount("cleanup_calls")
	for i := range 3 {
		fakeFault("reset")
		s, err := Open(Config{Path: filepath.Dir(fakePath), ConnectTimeout: 2 * time.Second, RecvTimeout: 7 * time.Second})
		if err != nil {
			t.Fatalf("round %d: Open: %v", i, err)
		}
		checks := map[string]int64{
			"inited": 1, "reconnect_enabled": 0, "connect_wait_ms": 2000, "connect_tries": 1,
			"recv_timeout_ms": 7000, "exception_callback_set": 1,
			"sdk_path_len": int64(len(filepath.Dir(fakePath))),
		}
		for k, want := range checks {
			if got := fakeCount(k); got != want {
				t.Errorf("round %d: fake %s = %d, want %d", i, k, got, want)
			}
		}
		if _, err := Open(Config{Path: fakePath}); !errors.Is(err, ErrInUse) {
			t.Errorf("second Open: %v, want ErrInUse", err)
		}
		ss := login(t, s)
		if err := s.Close(context.Background()); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if _, err := ss.RealPlay(context.Background(), PlayParams{Channel: 1}); !errors.Is(err, ErrClosed) {
			t.Errorf("RealPlay after Close: %v, want ErrClosed", err)
		}
		if _, err := s.Login(context.Background(), LoginParams{Address: "x", Port: 8000, User: "admin"}); !errors.Is(err, ErrClosed) {
			t.Errorf("Login after Close: %v, want ErrClosed", err)
		}
		if fakeCount("inited") != 0 {
			t.Errorf("round %d: still initialised after Close", i)
		}
		assertNoHandles(t)
	}
	if got := fakeCount("init_calls") - initCalls; got != 3 {
		t.Errorf("NET_DVR_Init called %d times, want 3", got)
	}
	if got := fakeCount("cleanup_calls") - cleanups; got != 3 {
		t.Errorf("NET_DVR_Cleanup called %d times, want 3", got)
	}
	goroutinesBackTo(t, base)
}

func TestLoginFacts(t *testing.T) {
	s := setup(t, "serial=DS-7608NI-K2 0820200101CCRR;analog=4;start_chan=1;ip_chans=300;start_dchan=33;talk_chans=2")
	ss := login(t, s)
	info := ss.Info()
	want := DeviceInfo{Serial: "DS-7608NI-K2 0820200101CCRR", DeviceType: 0x1234, AnalogChannels: 4, FirstAnalogChannel: 1,
		IPChannels: 300, FirstIPChannel: 33, TalkChannels: 2, PasswordLevel: 2, LockSupported: true, TriesLeft: 5}
	if info != want {
		t.Errorf("Info:\n got %+v\nwant %+v", info, want)
	}
	if err := ss.Logout(); err != nil {
		t.Fatal(err)
	}
	if err := ss.Logout(); err != nil {
		t.Errorf("second Logout: %v", err)
	}
}

func TestLoginLock(t *testing.T) {
	s := setup(t, "lock_after=3;lock_seconds=600")
	ctx := context.Background()
	bad := LoginParams{Address: "127.0.0.1", Port: 8000, User: "admin", Password: "wrong-secret"}
	for i, left := range []int{2, 1} {
		_, err := s.Login(ctx, bad)
		var e *Error
		if !errors.As(err, &e) || !errors.Is(err, ErrWrongPassword) {
			t.Fatalf("try %d: %v, want *Error matching ErrWrongPassword", i, err)
		}
		if e.Code != 1 || !e.LockReported || e.TriesLeft != left {
			t.Errorf("try %d: %+v, want code 1, %d tries left", i, e, left)
		}
		if strings.Contains(err.Error(), "wrong-secret") {
			t.Errorf("error shows the password: %q", err)
		}
	}
	// The third failure locks the user; so does any login while locked.
	for i, p := range []LoginParams{bad, {Address: "127.0.0.1", Port: 8000, User: "admin", Password: "12345"}} {
		_, err := s.Login(ctx, p)
		var e *Error
		if !errors.As(err, &e) || !errors.Is(err, ErrUserLocked) {
			t.Fatalf("locked %d: %v, want ErrUserLocked", i, err)
		}
		if e.Code != 153 || e.LockRemaining < 590*time.Second || e.LockRemaining > 600*time.Second {
			t.Errorf("locked %d: %+v, want code 153 with about 600 s left", i, e)
		}
		if !strings.Contains(err.Error(), "locked for another") {
			t.Errorf("locked %d: message %q does not say how long", i, err)
		}
	}
	if got := fakeCount("failed_logins"); got != 4 {
		t.Errorf("fake counted %d failed logins, want 4", got)
	}
	// A wrong port is a network error, not a password one.
	_, err := s.Login(ctx, LoginParams{Address: "127.0.0.1", Port: 8001, User: "admin", Password: "12345"})
	if !errors.Is(err, ErrNetwork) || errors.Is(err, ErrWrongPassword) {
		t.Errorf("wrong port: %v, want ErrNetwork", err)
	}
	// Bad parameters never reach the SDK.
	before := fakeCount("login_attempts")
	for _, p := range []LoginParams{
		{Port: 8000, User: "admin"},
		{Address: "h", Port: 0, User: "admin"},
		{Address: "h", Port: 8000},
		{Address: "h", Port: 8000, User: "admin", Password: strings.Repeat("p", 64)},
	} {
		if _, err := s.Login(ctx, p); !errors.Is(err, ErrParameter) || strings.Contains(err.Error(), "ppppp") {
			t.Errorf("Login(%+v): %v, want ErrParameter without the password", p.Address, err)
		}
	}
	if fakeCount("login_attempts") != before {
		t.Error("a malformed login reached the SDK")
	}
}

// The SDK keeps its last error per OS thread: the fake as the vendor's
// library. A failed call's error is only visible on its own thread, which
// is why the binding reads it on the same locked thread.
func TestLastErrorIsPerThread(t *testing.T) {
	s := setup(t, "")
	l := s.lib
	runtime.LockOSThread()
	in, err := LoginParams{Address: "127.0.0.1", Port: 8000, User: "admin", Password: "nope"}.loginInfo()
	if err != nil {
		t.Fatal(err)
	}
	r := l.loginV40(in, new(deviceInfoV40))
	same := l.getLastError()
	other := fakeErrorOnNewThread()
	runtime.UnlockOSThread()
	if r != -1 || same != 1 {
		t.Fatalf("login: %d, error on the same thread %d; want -1, 1", r, same)
	}
	if other != 0 {
		t.Fatalf("error read on another thread = %d, want 0 (thread-local)", other)
	}
	// Through the binding, many concurrent failures all report their code
	// while successes on other threads reset theirs.
	fakeFault("reset")
	fakeConfig("lock_after=1000000")
	var wg sync.WaitGroup
	errs := make(chan error, 400)
	for i := range 400 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := LoginParams{Address: "127.0.0.1", Port: 8000, User: "admin", Password: "12345"}
			if i%2 == 0 {
				p.Password = "bad"
			}
			ss, err := s.Login(context.Background(), p)
			if i%2 == 1 {
				if err != nil {
					errs <- err
					return
				}
				errs <- ss.Logout()
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.Code != 1 {
				errs <- errors.New("failed login reported " + errString(err))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}

func TestPlayDeliversPSIntact(t *testing.T) {
	ps := psFile(t)
	s := setup(t, "media="+ps+";loop=0;video_format=0x0100")
	ss := login(t, s)
	want, err := os.ReadFile(ps)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	p, err := ss.RealPlay(context.Background(), PlayParams{Channel: 1, Stream: StreamMain, Queue: 4096})
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	first := true
	timeout := time.After(60 * time.Second)
	for got.Len() < len(want) {
		select {
		case pkt := <-p.Data():
			if first {
				if pkt.Type != DataSysHead || len(pkt.Data) != 40 || string(pkt.Data[:4]) != "IMKH" || pkt.Data[8] != 2 {
					t.Fatalf("first packet %v %d bytes %q, want the 40-byte IMKH header with system format 2", pkt.Type, len(pkt.Data), pkt.Data[:min(4, len(pkt.Data))])
				}
				first = false
				continue
			}
			if pkt.Type != DataStream {
				t.Fatalf("packet type %v, want stream", pkt.Type)
			}
			got.Write(pkt.Data)
			p.Recycle(pkt.Data) // reused buffers must not corrupt what is queued
		case <-timeout:
			t.Fatalf("got %d of %d bytes", got.Len(), len(want))
		}
	}
	elapsed := time.Since(start)
	if sha256.Sum256(got.Bytes()) != sha256.Sum256(want) {
		t.Fatalf("PS bytes differ: got %d bytes, want %d", got.Len(), len(want))
	}
	// The file spans 4 s of SCR; paced delivery cannot be faster than that
	// (slower is fine on a loaded machine).
	if elapsed < 3500*time.Millisecond {
		t.Errorf("4 s of stream delivered in %s: not paced", elapsed)
	}
	if p.Dropped() != 0 {
		t.Errorf("dropped %d packets with a reader keeping up", p.Dropped())
	}
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-p.Data(); ok {
		t.Error("Data not closed by Stop")
	}
	if fakeCount("plays") != 0 {
		t.Error("play still open in the SDK after Stop")
	}
	if err := p.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestRealPlayErrors(t *testing.T) {
	s := setup(t, "analog=2;start_chan=1;ip_chans=4;start_dchan=33")
	ss := login(t, s)
	ctx := context.Background()
	for _, ch := range []int{1, 2, 33, 36} {
		p, err := ss.RealPlay(ctx, PlayParams{Channel: ch, Stream: StreamSub})
		if err != nil {
			t.Fatalf("channel %d: %v", ch, err)
		}
		if err := p.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	for _, ch := range []int{3, 32, 37} {
		if _, err := ss.RealPlay(ctx, PlayParams{Channel: ch}); !errors.Is(err, ErrChannel) {
			t.Errorf("channel %d: %v, want ErrChannel", ch, err)
		}
	}
	if _, err := ss.RealPlay(ctx, PlayParams{Channel: 0}); !errors.Is(err, ErrParameter) {
		t.Errorf("channel 0: %v, want ErrParameter", err)
	}
	if _, err := ss.RealPlay(ctx, PlayParams{Channel: 1, Stream: 7}); !errors.Is(err, ErrParameter) {
		t.Errorf("stream 7: %v, want ErrParameter", err)
	}
	if fakeCount("plays") != 0 {
		t.Error("failed real-plays left handles open")
	}
}

// A device reboot: the SDK reports it through the exception callback, data
// stops, logins fail until the device is back, and (the SDK's reconnect
// being off) the old login must be replaced.
func TestRebootExceptions(t *testing.T) {
	s := setup(t, "")
	ss := login(t, s)
	ctx := context.Background()
	p, err := ss.RealPlay(ctx, PlayParams{Channel: 1})
	if err != nil {
		t.Fatal(err)
	}
	// the header arrives even without media
	if pkt := <-p.Data(); pkt.Type != DataSysHead {
		t.Fatalf("first packet %v", pkt.Type)
	}
	if fakeFault("reboot") != 0 {
		t.Fatal("reboot fault")
	}
	want := map[Exception]bool{ExceptionPreview: false, ExceptionExchange: false}
	timeout := time.After(10 * time.Second)
	for !want[ExceptionPreview] || !want[ExceptionExchange] {
		select {
		case ev := <-p.Events():
			if ev.Type == ExceptionReconnect {
				t.Errorf("the SDK reconnects by itself: %v", ev.Type)
			}
			if ev.Handle != p.Handle() && ev.Type == ExceptionPreview {
				t.Errorf("preview event for handle %d, play is %d", ev.Handle, p.Handle())
			}
			if !ev.Type.Lost() {
				t.Errorf("%v does not say lost", ev.Type)
			}
			want[ev.Type] = true
		case <-timeout:
			t.Fatalf("play events seen: %v", want)
		}
	}
	select {
	case ev := <-ss.Events():
		if ev.Type != ExceptionExchange || ev.UserID != ss.UserID() {
			t.Errorf("session event %+v, want EXCEPTION_EXCHANGE for user %d", ev, ss.UserID())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no session event")
	}
	if _, err := s.Login(ctx, LoginParams{Address: "127.0.0.1", Port: 8000, User: "admin", Password: "12345"}); !errors.Is(err, ErrNetwork) {
		t.Errorf("login while down: %v, want ErrNetwork", err)
	}
	fakeFault("back")
	if _, err := ss.RealPlay(ctx, PlayParams{Channel: 1}); !errors.Is(err, ErrLoginGone) {
		t.Errorf("real-play on the old login: %v, want ErrLoginGone", err)
	}
	if err := ss.Logout(); err != nil {
		t.Fatalf("Logout of the old login: %v", err)
	}
	ss2 := login(t, s)
	p2, err := ss2.RealPlay(ctx, PlayParams{Channel: 1})
	if err != nil {
		t.Fatal(err)
	}
	if pkt := <-p2.Data(); pkt.Type != DataSysHead {
		t.Fatalf("after reboot: first packet %v", pkt.Type)
	}
	if err := ss2.Logout(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-p2.Data(); ok {
		t.Error("Logout did not stop the play")
	}
}

func TestStallKeepsPlayOpen(t *testing.T) {
	ps := psFile(t)
	s := setup(t, "media="+ps+";speed=8")
	ss := login(t, s)
	p, err := ss.RealPlay(context.Background(), PlayParams{Channel: 1, Queue: 4096})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "data", 20*time.Second, func() bool { return p.Delivered() > 5 })
	fakeFault("stall")
	// Once stalled, the count stops moving; the play stays open.
	var last uint64
	waitFor(t, "the stall", 20*time.Second, func() bool {
		n := p.Delivered()
		if n == last {
			time.Sleep(300 * time.Millisecond)
			return p.Delivered() == n
		}
		last = n
		return false
	})
	if fakeCount("plays") != 1 {
		t.Error("stalled play closed")
	}
	fakeFault("resume")
	n := p.Delivered()
	waitFor(t, "data after resume", 20*time.Second, func() bool { return p.Delivered() > n })
}

func TestCallbackAfterStopDropped(t *testing.T) {
	s := setup(t, "")
	ss := login(t, s)
	ctx := context.Background()
	p, err := ss.RealPlay(ctx, PlayParams{Channel: 1})
	if err != nil {
		t.Fatal(err)
	}
	tk, err := ss.StartTalk(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := tk.Stop(); err != nil {
		t.Fatal(err)
	}
	before := ReadStats()
	delivered := p.Delivered()
	if calls := fakeLateCallbacks(500); calls != 1000 {
		t.Fatalf("fake made %d late calls, want 1000", calls)
	}
	after := ReadStats()
	if got := after.LateCallbacks - before.LateCallbacks; got < 1000 {
		t.Errorf("%d late callbacks counted as dropped, want 1000", got)
	}
	if got := after.UnroutedExceptions - before.UnroutedExceptions; got < 500 {
		t.Errorf("%d late exceptions counted unrouted, want >= 500", got)
	}
	if p.Delivered() != delivered || tk.Received() != 0 {
		t.Error("a late callback reached a stopped play or talk")
	}
}

// A storm: many SDK threads calling back at once while nobody reads. The
// callbacks must never block (the storm ends), must drop what does not fit
// and count it, and -race must stay quiet.
func TestCallbackStorm(t *testing.T) {
	s := setup(t, "")
	ss := login(t, s)
	ctx := context.Background()
	const plays, queue = 4, 8
	var ps []*Play
	for range plays {
		p, err := ss.RealPlay(ctx, PlayParams{Channel: 1, Queue: queue})
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
		waitFor(t, "the header", 10*time.Second, func() bool { return p.Delivered() == 1 })
	}
	const threads, per, size = 8, 500, 1400
	done := make(chan int64, 1)
	go func() { done <- fakeStorm(threads, per, size) }()
	var maxUS int64
	select {
	case maxUS = <-done:
	case <-time.After(120 * time.Second):
		t.Fatal("storm did not finish: a callback blocks the SDK's thread")
	}
	if maxUS < 0 {
		t.Fatal("storm found no plays")
	}
	for i, p := range ps {
		total := p.Delivered() + p.Dropped()
		if total != threads*per+1 { // +1: the header
			t.Errorf("play %d: delivered %d + dropped %d = %d, want %d", i, p.Delivered(), p.Dropped(), total, threads*per+1)
		}
		if p.Delivered() > queue {
			t.Errorf("play %d: delivered %d into a queue of %d nobody reads", i, p.Delivered(), queue)
		}
	}
	t.Logf("storm: %d plays x %d threads x %d data callbacks, each followed by an exception callback: mean %.1f µs per pair, slowest %d µs",
		plays, threads, per, float64(fakeCount("storm_total_us"))/float64(fakeCount("storm_calls")), maxUS)
	// With readers, nothing queued is lost and every packet is whole.
	var wg sync.WaitGroup
	var bad sync.Map
	for i, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for pkt := range p.Data() {
				if pkt.Type == DataStream {
					// the fake fills byte k with k*7 + the play's handle
					if len(pkt.Data) != size {
						bad.Store(i, fmt.Sprintf("packet of %d bytes, want %d", len(pkt.Data), size))
					}
					for k, c := range pkt.Data {
						if c != byte(k*7+int(p.Handle())) {
							bad.Store(i, fmt.Sprintf("byte %d is %d", k, c))
							break
						}
					}
				}
				p.Recycle(pkt.Data)
			}
		}()
	}
	if fakeStorm(threads, per, size) < 0 {
		t.Fatal("second storm found no plays")
	}
	for _, p := range ps {
		if err := p.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	bad.Range(func(k, v any) bool {
		t.Errorf("play %v: %v", k, v)
		return true
	})
}

func TestTalk(t *testing.T) {
	tone, err := os.ReadFile(filepath.Join("..", "..", "testdata", "media", "tone_1khz_8k.alaw"))
	if err != nil {
		t.Fatal(err)
	}
	s := setup(t, "talk_encoding=2;talk_chans=1")
	ss := login(t, s)
	ctx := context.Background()
	ac, err := ss.AudioCompress(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ac.Encoding != TalkG711A {
		t.Errorf("talk encoding %v, want G.711 A-law", ac.Encoding)
	}
	tk, err := ss.StartTalk(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ss.StartTalk(ctx, 1); !errors.Is(err, ErrTalkBusy) {
		t.Errorf("second talk: %v, want ErrTalkBusy", err)
	}
	for off := 0; off < len(tone); off += 160 {
		if err := tk.Send(tone[off:min(off+160, len(tone))]); err != nil {
			t.Fatal(err)
		}
	}
	got := make([]byte, len(tone)+1)
	n := fakeTalkBytes(&got[0], int64(len(got)))
	if !bytes.Equal(got[:n], tone) {
		t.Errorf("device received %d bytes, want the %d-byte tone unchanged", n, len(tone))
	}
	if tk.Sent() != uint64(len(tone)) {
		t.Errorf("Sent %d, want %d", tk.Sent(), len(tone))
	}
	if err := tk.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := tk.Send(tone[:160]); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after Stop: %v, want ErrClosed", err)
	}
	if fakeCount("talks") != 0 {
		t.Error("talk still open after Stop")
	}
	fakeConfig("talk_busy=1")
	if _, err := ss.StartTalk(ctx, 1); !errors.Is(err, ErrTalkBusy) {
		t.Errorf("busy device: %v, want ErrTalkBusy", err)
	}
	if _, err := ss.StartTalk(ctx, 2); err == nil || !errors.Is(err, ErrChannel) && !errors.Is(err, ErrTalkBusy) {
		t.Errorf("talk channel 2: %v, want an error", err)
	}
}

// Slow SDK calls: a caller that gives up gets its context's error at once;
// what the SDK opens meanwhile is released when the call returns, and Close
// waits for it within its own deadline only.
func TestSlowCallsAbandoned(t *testing.T) {
	base := runtime.NumGoroutine()
	s := setup(t, "slow_ms=400")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	start := time.Now()
	_, err := s.Login(ctx, LoginParams{Address: "127.0.0.1", Port: 8000, User: "admin", Password: "12345"})
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Login: %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 300*time.Millisecond {
		t.Errorf("abandoned Login returned after %s", d)
	}
	waitFor(t, "the abandoned login logged out", 10*time.Second, func() bool {
		return fakeCount("login_attempts") == 1 && fakeCount("logins") == 0
	})
	ss := login(t, s)
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	_, err = ss.RealPlay(ctx, PlayParams{Channel: 1})
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("RealPlay: %v, want DeadlineExceeded", err)
	}
	// Logout waits for the abandoned real-play to be stopped, then logs out.
	if err := ss.Logout(); err != nil {
		t.Fatalf("Logout: %v", err)
	}
	if fakeCount("plays") != 0 || fakeCount("logins") != 0 {
		t.Errorf("plays %d logins %d after Logout", fakeCount("plays"), fakeCount("logins"))
	}
	// Close with an in-flight login and too short a deadline returns at once.
	go func() {
		_, _ = s.Login(context.Background(), LoginParams{Address: "127.0.0.1", Port: 8000, User: "admin", Password: "12345"})
	}()
	waitFor(t, "the login in flight", 5*time.Second, func() bool { return fakeCount("in_slow") == 1 })
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	start = time.Now()
	if err := s.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close with a login in flight: %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 300*time.Millisecond {
		t.Errorf("Close waited %s past its deadline", d)
	}
	t.Cleanup(func() { goroutinesBackTo(t, base) })
}

// 1000 login/play/stop/logout cycles leave no handle and no goroutine.
func TestThousandCycles(t *testing.T) {
	base := runtime.NumGoroutine()
	fds := openFDs(t)
	s := setup(t, "")
	ctx := context.Background()
	for i := range 1000 {
		ss := login(t, s)
		p, err := ss.RealPlay(ctx, PlayParams{Channel: 1, Stream: StreamType(i % 3)})
		if err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		if i%10 == 0 {
			tk, err := ss.StartTalk(ctx, 1)
			if err != nil {
				t.Fatalf("cycle %d: talk: %v", i, err)
			}
			if err := tk.Send([]byte{0xd5, 0xd5}); err != nil {
				t.Fatal(err)
			}
			if i%20 == 0 {
				if err := tk.Stop(); err != nil {
					t.Fatal(err)
				}
			} // else Logout stops it
		}
		if i%2 == 0 {
			if err := p.Stop(); err != nil {
				t.Fatalf("cycle %d: %v", i, err)
			}
		} // else Logout stops it
		if err := ss.Logout(); err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
	}
	for _, n := range []string{"logins", "plays", "talks"} {
		if v := fakeCount(n); v != 0 {
			t.Errorf("after 1000 cycles: %d %s open", v, n)
		}
	}
	reg.mu.RLock()
	left := len(reg.sessions)
	reg.mu.RUnlock()
	reg.plays.mu.RLock()
	left += len(reg.plays.byKey) + len(reg.plays.byHandle)
	reg.plays.mu.RUnlock()
	reg.talks.mu.RLock()
	left += len(reg.talks.byKey) + len(reg.talks.byHandle)
	reg.talks.mu.RUnlock()
	if left != 0 {
		t.Errorf("registry holds %d entries after 1000 cycles", left)
	}
	goroutinesBackTo(t, base)
	if n := openFDs(t); n > fds {
		t.Errorf("open files: %d after 1000 cycles, %d before", n, fds)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func runCC(src, out string) ([]byte, error) {
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "cc"
	}
	args := append(strings.Fields(cc), "-shared", "-fPIC", "-o", out, src)
	return exec.Command(args[0], args[1:]...).CombinedOutput()
}

// Stopping plays while SDK threads are still calling back: deliveries and
// the close never race (-race), nothing blocks, and every callback is
// either delivered, dropped as full, or dropped as late.
func TestStopDuringStorm(t *testing.T) {
	s := setup(t, "")
	ss := login(t, s)
	var ps []*Play
	for range 4 {
		p, err := ss.RealPlay(context.Background(), PlayParams{Channel: 1, Queue: 64})
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
		go func() {
			for range p.Data() {
			}
		}()
	}
	lateBefore := ReadStats().LateCallbacks
	done := make(chan int64, 1)
	go func() { done <- fakeStorm(6, 2000, 200) }()
	waitFor(t, "the storm to reach the plays", 30*time.Second, func() bool { return ps[3].Delivered()+ps[3].Dropped() > 100 })
	for _, p := range ps {
		if err := p.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(120 * time.Second):
		t.Fatal("storm did not finish after Stop: a callback blocks")
	}
	var counted uint64
	for _, p := range ps {
		counted += p.Delivered() + p.Dropped()
	}
	late := ReadStats().LateCallbacks - lateBefore
	if want := uint64(4 * (6*2000 + 1)); counted+late < want {
		t.Errorf("delivered+dropped %d + late %d < %d callbacks made", counted, late, want)
	}
	if late == 0 {
		t.Error("no callback arrived after Stop: the test did not test that")
	}
}

// The fake as another process drives it: configuration from HCNETSDK_FAKE
// at NET_DVR_Init, faults from lines appended to a control file, counters
// read from its stats file.
func TestFakeEnvAndControlFile(t *testing.T) {
	control := filepath.Join(t.TempDir(), "control")
	stats := filepath.Join(t.TempDir(), "stats")
	if err := os.WriteFile(control, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HCNETSDK_FAKE", "port=9000;user=op;password=pw;control="+control+";stats="+stats)
	s := setup(t, "")
	ctx := context.Background()
	ss, err := s.Login(ctx, LoginParams{Address: "127.0.0.1", Port: 9000, User: "op", Password: "pw"})
	if err != nil {
		t.Fatalf("login with the environment's settings: %v", err)
	}
	p, err := ss.RealPlay(ctx, PlayParams{Channel: 1})
	if err != nil {
		t.Fatal(err)
	}
	appendLine := func(line string) {
		f, err := os.OpenFile(control, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(line + "\n"); err != nil {
			t.Fatal(err)
		}
	}
	appendLine("reboot")
	waitFor(t, "the reboot from the control file", 10*time.Second, func() bool { return fakeCount("device_down") == 1 })
	for seen := false; !seen; {
		select {
		case ev := <-p.Events():
			seen = ev.Type == ExceptionPreview
		case <-time.After(10 * time.Second):
			t.Fatal("no EXCEPTION_PREVIEW after the reboot")
		}
	}
	appendLine("back")
	appendLine("talk_busy=1")
	waitFor(t, "back from the control file", 10*time.Second, func() bool { return fakeCount("device_down") == 0 })
	if err := ss.Logout(); err != nil {
		t.Fatal(err)
	}
	ss, err = s.Login(ctx, LoginParams{Address: "127.0.0.1", Port: 9000, User: "op", Password: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "talk_busy from the control file", 10*time.Second, func() bool {
		tk, err := ss.StartTalk(ctx, 1)
		if err == nil {
			_ = tk.Stop()
		}
		return errors.Is(err, ErrTalkBusy)
	})
	// the stats file follows the counters, refused talk starts included
	want := fmt.Sprintf("play_starts 1\ntalk_starts %d\n", fakeCount("talk_starts"))
	waitFor(t, "the stats file", 10*time.Second, func() bool {
		b, _ := os.ReadFile(stats)
		return strings.Contains(string(b), want)
	})
	if n := fakeCount("talk_starts"); n < 1 {
		t.Errorf("talk_starts %d after a refused talk start, want at least 1", n)
	}
}

// The cost of one data callback (copy and queue, reader draining) plus one
// exception callback, from one SDK thread.
func BenchmarkCallbackPair(b *testing.B) {
	fakeFault("reset")
	s, err := Open(Config{Path: fakePath})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(context.Background())
	ss, err := s.Login(context.Background(), LoginParams{Address: "127.0.0.1", Port: 8000, User: "admin", Password: "12345"})
	if err != nil {
		b.Fatal(err)
	}
	p, err := ss.RealPlay(context.Background(), PlayParams{Channel: 1, Queue: 1024})
	if err != nil {
		b.Fatal(err)
	}
	if pkt := <-p.Data(); pkt.Type != DataSysHead {
		b.Fatalf("first packet %v", pkt.Type)
	}
	go func() {
		for pkt := range p.Data() {
			p.Recycle(pkt.Data)
		}
	}()
	b.SetBytes(1400)
	b.ResetTimer()
	fakeStorm(1, int32(b.N), 1400)
	b.StopTimer()
	if p.Delivered()+p.Dropped() != uint64(b.N)+1 {
		b.Fatalf("delivered %d + dropped %d, want %d", p.Delivered(), p.Dropped(), b.N+1)
	}
}

// H.265 with G.711 A-law as a device sends it: the header names both
// codecs, then whole packs follow.
func TestPlayHeaderNamesCodecs(t *testing.T) {
	ps := filepath.Join(t.TempDir(), "h265-alaw.ps")
	if err := hcfake.WritePS(ps, hcfake.PSOptions{
		Video: filepath.Join("..", "..", "testdata", "media", "h265_main.h265"), H265: true,
		Audio: filepath.Join("..", "..", "testdata", "media", "tone_1khz_8k.alaw"), AudioCodec: hcfake.G711A,
	}); err != nil {
		t.Fatal(err)
	}
	s := setup(t, "media="+ps+";video_format=0x0005;audio_format=0x7111;audio_rate=8000;speed=4")
	ss := login(t, s)
	p, err := ss.RealPlay(context.Background(), PlayParams{Channel: 1, Queue: 1024})
	if err != nil {
		t.Fatal(err)
	}
	h := <-p.Data()
	if h.Type != DataSysHead || len(h.Data) != 40 {
		t.Fatalf("first packet %v of %d bytes", h.Type, len(h.Data))
	}
	if v, a, r := binary.LittleEndian.Uint16(h.Data[10:]), binary.LittleEndian.Uint16(h.Data[12:]), binary.LittleEndian.Uint32(h.Data[16:]); v != 5 || a != 0x7111 || r != 8000 {
		t.Errorf("header: video 0x%x audio 0x%x rate %d, want 0x5 0x7111 8000", v, a, r)
	}
	for i := range 20 {
		select {
		case pkt := <-p.Data():
			if pkt.Type != DataStream || !bytes.HasPrefix(pkt.Data, []byte{0, 0, 1, 0xBA}) {
				t.Fatalf("packet %d: %v %x", i, pkt.Type, pkt.Data[:min(4, len(pkt.Data))])
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("packet %d did not come", i)
		}
	}
}

// Were the SDK's own reconnect on (the vendor's default, which Open turns
// off), its reconnect events would reach the play they name.
func TestSDKReconnectEventsRouted(t *testing.T) {
	ps := psFile(t)
	s := setup(t, "media="+ps+";speed=4")
	runtime.LockOSThread()
	ok := s.lib.setReconnect(1000, 1)
	runtime.UnlockOSThread()
	if ok == 0 || fakeCount("reconnect_enabled") != 1 {
		t.Fatal("could not turn the SDK's reconnect on")
	}
	ss := login(t, s)
	p, err := ss.RealPlay(context.Background(), PlayParams{Channel: 1, Queue: 4096})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "data", 20*time.Second, func() bool { return p.Delivered() > 3 })
	expect := func(want Exception) {
		t.Helper()
		for {
			select {
			case ev := <-p.Events():
				if ev.Handle != p.Handle() && ev.Type != ExceptionExchange && ev.Type != ResumeExchange {
					t.Errorf("%v for handle %d on play %d", ev.Type, ev.Handle, p.Handle())
				}
				if ev.Type == want {
					return
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("no %v", want)
			}
		}
	}
	fakeFault("reboot")
	expect(ExceptionReconnect)
	fakeFault("back")
	expect(PreviewReconnectSuccess)
	n := p.Delivered()
	waitFor(t, "data after the SDK's reconnect", 20*time.Second, func() bool { return p.Delivered() > n })
}
