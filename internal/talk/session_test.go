package talk

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
)

// testConfig is a config with short times for tests.
func testConfig(dev Device, l *stateLog) Config {
	cfg := Config{
		Device:       dev,
		Framer:       &G711Framer{Name: "PCMU"},
		IdleTimeout:  time.Hour, // tests that need the idle close set it
		CloseTimeout: time.Second,
		BusyRetry:    10 * time.Millisecond,
		BusyTries:    3,
		FailDelay:    time.Millisecond,
		MaxFailures:  3,
	}
	if l != nil {
		cfg.OnState = l.on
	}
	return cfg
}

func newSession(t *testing.T, cfg Config) *Session {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if f, ok := cfg.Device.(*fakeDevice); ok {
		f.mu.Lock()
		f.sess = s
		f.mu.Unlock()
	}
	t.Cleanup(s.Stop)
	return s
}

// packet returns a 160-byte G.711 payload whose bytes encode its number.
func packet(i int) []byte {
	p := make([]byte, 160)
	for j := range p {
		p[j] = byte(i*7 + j)
	}
	return p
}

func TestNewValidates(t *testing.T) {
	if _, err := New(Config{Framer: &G711Framer{}}); err == nil {
		t.Error("New without Device: no error")
	}
	if _, err := New(Config{Device: newFake()}); err == nil {
		t.Error("New without Framer: no error")
	}
}

func TestLazyOpenOnFirstWrite(t *testing.T) {
	base := runtime.NumGoroutine()
	f := newFake()
	l := newStateLog()
	s := newSession(t, testConfig(f, l))
	if got := s.State(); got != StateIdle {
		t.Fatalf("state after New = %s, want idle", got)
	}
	before := time.Now()
	s.Write(packet(1))
	waitFor(t, "first packet at the device", func() bool { return len(f.received()) == 160 })

	calls := f.callList()
	if calls[0].at.Before(before) {
		t.Errorf("device call %q before the first Write", calls[0].op)
	}
	if got, want := f.ops(), []string{"open", "audioData"}; !slices.Equal(got, want) {
		t.Errorf("calls = %v, want %v", got, want)
	}
	if !bytes.Equal(f.received(), packet(1)) {
		t.Error("the device got other bytes than the packet")
	}
	if s.State() != StateOpen {
		t.Errorf("state = %s, want open", s.State())
	}
	if st := s.Stats(); st.Opens != 1 || st.Bytes != 160 || st.Packets != 1 || st.Drops != 0 {
		t.Errorf("stats = %+v", st)
	}
	if l.count(StateOpening) != 1 || l.count(StateOpen) != 1 {
		t.Errorf("OnState calls: %v", l.states)
	}
	s.Stop()
	if got, want := f.ops(), []string{"open", "audioData", "close"}; !slices.Equal(got, want) {
		t.Errorf("calls after Stop = %v, want %v", got, want)
	}
	if f.ourSessionOpen() {
		t.Error("session left open on the device")
	}
	if s.State() != StateStopped {
		t.Errorf("state = %s, want stopped", s.State())
	}
	checkGoroutines(t, base)
}

func TestHeldAudioFlushedInOrder(t *testing.T) {
	f := newFake()
	release := make(chan struct{})
	entered := make(chan struct{})
	f.openHook = func(ctx context.Context, n int) error {
		close(entered)
		<-release
		return nil
	}
	s := newSession(t, testConfig(f, nil))

	var want []byte
	s.Write(packet(0))
	want = append(want, packet(0)...)
	<-entered                 // the session is opening: everything from now on is held
	for i := 1; i < 60; i++ { // 60 × 20 ms = 1.2 s of audio < HoldMax
		s.Write(packet(i))
		want = append(want, packet(i)...)
	}
	if got := len(f.received()); got != 0 {
		t.Fatalf("%d bytes at the device before open returned", got)
	}
	close(release)
	waitFor(t, "all held audio", func() bool { return len(f.received()) >= len(want) })
	if !bytes.Equal(f.received(), want) {
		t.Fatal("held audio arrived altered or out of order")
	}
	if st := s.Stats(); st.Drops != 0 || st.Opens != 1 {
		t.Errorf("stats = %+v", st)
	}
}

func TestHoldIsBounded(t *testing.T) {
	f := newFake()
	release := make(chan struct{})
	entered := make(chan struct{})
	f.openHook = func(ctx context.Context, n int) error {
		close(entered)
		<-release
		return nil
	}
	cfg := testConfig(f, nil)
	cfg.HoldMax = 200 * time.Millisecond // 10 packets of 20 ms
	s := newSession(t, cfg)
	s.Write(packet(0))
	<-entered
	for i := 1; i <= 30; i++ {
		s.Write(packet(i))
	}
	if st := s.Stats(); st.Drops != 20 {
		t.Errorf("drops = %d, want 20 (30 written, 10 held)", st.Drops)
	}
	close(release)
	want := 11 * 160
	waitFor(t, "held audio", func() bool { return len(f.received()) >= want })
	var exp []byte
	for i := 0; i <= 10; i++ {
		exp = append(exp, packet(i)...)
	}
	if !bytes.Equal(f.received(), exp) {
		t.Error("held audio is not the first 11 packets in order")
	}
}

func TestMaxWriteChunks(t *testing.T) {
	f := newFake()
	cfg := testConfig(f, nil)
	cfg.MaxWrite = 100
	s := newSession(t, cfg)
	big := bytes.Repeat([]byte{1, 2, 3}, 150) // 450 bytes
	s.Write(big)
	waitFor(t, "data", func() bool { return len(f.received()) == len(big) })
	var sizes []int
	for _, c := range f.callList() {
		if c.op == "write" {
			sizes = append(sizes, c.n)
		}
	}
	if !slices.Equal(sizes, []int{100, 100, 100, 100, 50}) {
		t.Errorf("write sizes = %v", sizes)
	}
}

func TestIdleCloseThenReopen(t *testing.T) {
	f := newFake()
	l := newStateLog()
	cfg := testConfig(f, l)
	cfg.IdleTimeout = 50 * time.Millisecond
	s := newSession(t, cfg)

	var want []byte
	for burst := 0; burst < 3; burst++ {
		for i := 0; i < 20; i++ {
			p := packet(burst*100 + i)
			s.Write(p)
			want = append(want, p...)
		}
		l.waitState(t, StateOpen)
		l.waitState(t, StateIdle) // silence → we close
		wantOps := slices.Repeat([]string{"open", "audioData", "close"}, burst+1)
		if got := f.ops(); !slices.Equal(got, wantOps) {
			t.Fatalf("burst %d: calls = %v, want %v", burst, got, wantOps)
		}
		if f.ourSessionOpen() {
			t.Fatalf("burst %d: session still open after idle close", burst)
		}
	}
	if !bytes.Equal(f.received(), want) {
		t.Error("audio lost or reordered across bursts")
	}
	if st := s.Stats(); st.Opens != 3 || st.Closes != 3 || st.Drops != 0 {
		t.Errorf("stats = %+v", st)
	}
}

// feed writes packets every 2 ms until stop is closed.
func feed(s *Session, stop <-chan struct{}) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(2 * time.Millisecond)
		defer tk.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tk.C:
				s.Write(packet(i))
			}
		}
	}()
	return done
}

func TestBusyByAnotherClient(t *testing.T) {
	f := newFake()
	f.setForeign(true)
	l := newStateLog()
	cfg := testConfig(f, l)
	cfg.IdleTimeout = 60 * time.Millisecond
	s := newSession(t, cfg)

	stop := make(chan struct{})
	fed := feed(s, stop)
	l.waitState(t, StateBusy)
	waitFor(t, "the retry budget", func() bool { return f.count("open") >= cfg.BusyTries })
	// Audio keeps coming for many retry periods: the budget holds.
	deadline := time.Now().Add(8 * cfg.BusyRetry)
	for time.Now().Before(deadline) {
		if n := f.count("open"); n > cfg.BusyTries {
			t.Fatalf("%d opens while busy, budget %d", n, cfg.BusyTries)
		}
		time.Sleep(time.Millisecond)
	}
	if s.State() != StateBusy {
		t.Errorf("state = %s, want busy", s.State())
	}
	if n := l.count(StateBusy); n != 1 {
		t.Errorf("OnState(busy) called %d times, want 1", n)
	}
	_, err := l.last()
	var se *isapi.StatusError
	if !errors.Is(err, ErrBusy) || !errors.As(err, &se) || se.SubStatusCode != "invalidOperation" {
		t.Errorf("busy error = %v", err)
	}
	if f.count("close") != 0 || f.cutOther != 0 {
		t.Errorf("sent %d closes (cut the other client %d times)", f.count("close"), f.cutOther)
	}
	if st := s.Stats(); st.BusyRefusals != uint64(cfg.BusyTries) || st.Drops == 0 || st.Bytes != 0 {
		t.Errorf("stats = %+v", st)
	}

	// The other client hangs up and our talker goes quiet: idle, and the
	// next burst gets a fresh try that succeeds.
	f.setForeign(false)
	close(stop)
	<-fed
	l.waitState(t, StateIdle)
	s.Write(packet(1))
	waitFor(t, "audio after busy", func() bool { return len(f.received()) == 160 })
	if got := f.count("open"); got != cfg.BusyTries+1 {
		t.Errorf("opens = %d, want %d", got, cfg.BusyTries+1)
	}
	s.Stop()
	if f.cutOther != 0 || f.ourSessionOpen() {
		t.Errorf("cutOther=%d ourSessionOpen=%v", f.cutOther, f.ourSessionOpen())
	}
}

func TestBusyRetrySucceeds(t *testing.T) {
	f := newFake()
	f.setForeign(true)
	l := newStateLog()
	s := newSession(t, testConfig(f, l))
	f.openHook = func(ctx context.Context, n int) error {
		if n == 2 {
			f.setForeign(false) // the other client finished before our retry
		}
		return nil
	}
	stop := make(chan struct{})
	fed := feed(s, stop)
	l.waitState(t, StateBusy)
	l.waitState(t, StateOpen)
	waitFor(t, "audio", func() bool { return len(f.received()) > 0 })
	close(stop)
	<-fed
	if got, want := f.ops(), []string{"open", "open", "audioData"}; !slices.Equal(got, want) {
		t.Errorf("calls = %v, want %v", got, want)
	}
	if st := s.Stats(); st.BusyRefusals != 1 || st.Opens != 1 {
		t.Errorf("stats = %+v", st)
	}
}

func TestStaleOwnSessionClosedAndReopened(t *testing.T) {
	f := newFake()
	f.mu.Lock()
	f.open = true // our previous run left it open
	f.sessNo = 7
	f.mu.Unlock()
	cfg := testConfig(f, nil)
	cfg.StaleSession = true
	s := newSession(t, cfg)
	s.Write(packet(1))
	waitFor(t, "audio", func() bool { return len(f.received()) == 160 })
	if got, want := f.ops(), []string{"open", "close", "open", "audioData"}; !slices.Equal(got, want) {
		t.Errorf("calls = %v, want %v", got, want)
	}
	if st := s.Stats(); st.BusyRefusals != 1 || st.Opens != 1 || st.Closes != 1 {
		t.Errorf("stats = %+v", st)
	}
}

func TestOwnSessionAfterFailedCloseReopenedOnce(t *testing.T) {
	f := newFake()
	f.closeHook = func(n int) error {
		if n == 1 {
			return errors.New("fake: connection reset") // our idle close is lost
		}
		return nil
	}
	l := newStateLog()
	cfg := testConfig(f, l)
	cfg.IdleTimeout = 30 * time.Millisecond
	s := newSession(t, cfg)
	s.Write(packet(1))
	l.waitState(t, StateOpen)
	l.waitState(t, StateIdle)
	if _, err := l.last(); err == nil {
		t.Error("the failed idle close was not reported")
	}
	if !f.ourSessionOpen() {
		t.Fatal("fake: session should still be open after the lost close")
	}
	s.Write(packet(2))
	waitFor(t, "second burst audio", func() bool { return len(f.received()) == 320 })
	want := []string{"open", "audioData", "close", "open", "close", "open", "audioData"}
	if got := f.ops(); !slices.Equal(got, want) {
		t.Errorf("calls = %v, want %v", got, want)
	}
}

func TestOwnStaleButStillBusyIsBusy(t *testing.T) {
	// We believe a session of ours is open; after our close, open is
	// refused again (someone else took the line): one close only, then busy.
	f := newFake()
	f.setForeign(true)
	f.closeHook = func(n int) error { f.setForeign(true); return errors.New("fake: not closed") }
	l := newStateLog()
	cfg := testConfig(f, l)
	cfg.StaleSession = true
	cfg.BusyTries = 1
	s := newSession(t, cfg)
	s.Write(packet(1))
	l.waitState(t, StateBusy)
	if got, want := f.ops(), []string{"open", "close", "open"}; !slices.Equal(got, want) {
		t.Errorf("calls = %v, want %v", got, want)
	}
}

func TestTakeOver(t *testing.T) {
	f := newFake()
	f.setForeign(true)
	cfg := testConfig(f, nil)
	cfg.TakeOver = true
	s := newSession(t, cfg)
	s.Write(packet(1))
	waitFor(t, "audio", func() bool { return len(f.received()) == 160 })
	if got, want := f.ops(), []string{"close", "open", "audioData"}; !slices.Equal(got, want) {
		t.Errorf("calls = %v, want %v", got, want)
	}
	if f.cutOther != 1 {
		t.Errorf("TakeOver cut the other client %d times, want 1", f.cutOther)
	}
}

func TestStopDuringOpenInFlight(t *testing.T) {
	cases := []struct {
		name      string
		outcome   func(ctx context.Context, release <-chan struct{}) error
		wantClose bool
	}{
		// The device answers after Stop: the session exists, close it.
		{"open succeeds", func(ctx context.Context, release <-chan struct{}) error { <-release; return nil }, true},
		// The device refuses after Stop: nothing was opened, send nothing.
		{"open refused", func(ctx context.Context, release <-chan struct{}) error { <-release; return errBusyAnswer }, false},
		// The device never answers: cancelled after the grace; it may have opened.
		{"open hangs", func(ctx context.Context, release <-chan struct{}) error { <-ctx.Done(); return ctx.Err() }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			base := runtime.NumGoroutine()
			f := newFake()
			entered := make(chan struct{})
			release := make(chan struct{})
			f.openHook = func(ctx context.Context, n int) error {
				close(entered)
				return tc.outcome(ctx, release)
			}
			cfg := testConfig(f, nil)
			cfg.CloseTimeout = 50 * time.Millisecond
			s, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			f.sess = s
			s.Write(packet(1))
			<-entered
			stopped := make(chan struct{})
			go func() { s.Stop(); close(stopped) }()
			waitFor(t, "stop flag", func() bool { return s.stopFlag.Load() })
			s.Write(packet(2)) // dropped
			close(release)
			<-stopped

			calls := f.callList()
			var ops []string
			for _, c := range calls {
				ops = append(ops, c.op)
			}
			want := []string{"open", "open-return"}
			if tc.wantClose {
				want = append(want, "close")
			}
			if !slices.Equal(ops, want) {
				t.Errorf("calls = %v, want %v", ops, want)
			}
			if f.ourSessionOpen() {
				t.Error("session left open on the device")
			}
			if s.State() != StateStopped {
				t.Errorf("state = %s", s.State())
			}
			s.Write(packet(3))
			if n := len(f.callList()); n != len(calls) {
				t.Errorf("calls after Stop returned: %d more", n-len(calls))
			}
			checkGoroutines(t, base)
		})
	}
}

func TestStopCutsBlockedWrite(t *testing.T) {
	base := runtime.NumGoroutine()
	f := newFake()
	f.writeHook = func(w *fakeWriter) error {
		<-w.unblock // the device stopped reading: the write blocks until Close
		return net.ErrClosed
	}
	s, err := New(testConfig(f, nil))
	if err != nil {
		t.Fatal(err)
	}
	f.sess = s
	s.Write(packet(1))
	f.waitEvent(t, "write")
	s.Stop()
	if got, want := f.ops(), []string{"open", "audioData", "close"}; !slices.Equal(got, want) {
		t.Errorf("calls = %v, want %v", got, want)
	}
	checkGoroutines(t, base)
}

func TestStopWhenIdleSendsNothing(t *testing.T) {
	f := newFake()
	s := newSession(t, testConfig(f, nil))
	s.Stop()
	s.Stop() // twice is fine
	s.Write(packet(1))
	if n := len(f.callList()); n != 0 {
		t.Errorf("%d device calls for a session that never talked", n)
	}
	if st := s.Stats(); st.Drops != 1 {
		t.Errorf("drops = %d, want 1", st.Drops)
	}
}

func TestDeviceHangUpReopens(t *testing.T) {
	f := newFake()
	l := newStateLog()
	s := newSession(t, testConfig(f, l))
	s.Write(packet(1))
	waitFor(t, "audio", func() bool { return len(f.received()) == 160 })
	f.hangUp() // the device ends the talk
	s.Write(packet(2))
	l.waitState(t, StateIdle)
	if _, err := l.last(); !errors.Is(err, isapi.ErrTalkEnded) {
		t.Errorf("idle error = %v, want ErrTalkEnded", err)
	}
	s.Write(packet(3))
	waitFor(t, "audio after reopen", func() bool { return len(f.received()) == 320 })
	want := []string{"open", "audioData", "close", "open", "audioData"}
	if got := f.ops(); !slices.Equal(got, want) {
		t.Errorf("calls = %v, want %v", got, want)
	}
	if got := f.received()[160:]; !bytes.Equal(got, packet(3)) {
		t.Error("wrong audio after reopen")
	}
}

func TestPermanentErrorStopsTalk(t *testing.T) {
	for _, perm := range []error{
		&isapi.AuthError{Method: "PUT", Path: "/open", RetryLoginTime: 3},
		&isapi.AuthError{Method: "PUT", Path: "/open", Locked: true},
		&isapi.StatusError{Method: "PUT", Path: "/open", HTTPStatus: 403, StatusCode: 4, SubStatusCode: "notSupport"},
	} {
		f := newFake()
		f.openHook = func(ctx context.Context, n int) error { return perm }
		l := newStateLog()
		s := newSession(t, testConfig(f, l))
		s.Write(packet(1))
		l.waitState(t, StateFailed)
		if !errors.Is(s.Err(), perm) {
			t.Errorf("Err() = %v, want %v", s.Err(), perm)
		}
		for i := 0; i < 10; i++ {
			s.Write(packet(i))
		}
		s.Stop()
		if got := f.ops(); !slices.Equal(got, []string{"open"}) {
			t.Errorf("%v: calls = %v, want one open", perm, got)
		}
	}
}

func TestFailureBudget(t *testing.T) {
	f := newFake()
	f.openHook = func(ctx context.Context, n int) error {
		return &net.OpError{Op: "dial", Err: errors.New("connection refused")}
	}
	l := newStateLog()
	s := newSession(t, testConfig(f, l))
	stop := make(chan struct{})
	fed := feed(s, stop)
	l.waitState(t, StateFailed)
	close(stop)
	<-fed
	if !errors.Is(s.Err(), ErrGaveUp) {
		t.Errorf("Err() = %v, want ErrGaveUp", s.Err())
	}
	// Each failed open may have opened (no device answer): each is closed.
	want := slices.Repeat([]string{"open", "close"}, 3)
	if got := f.ops(); !slices.Equal(got, want) {
		t.Errorf("calls = %v, want %v", got, want)
	}
	if st := s.Stats(); st.Failures != 3 {
		t.Errorf("failures = %d", st.Failures)
	}
}

func TestAudioDataFailureClosesOurSession(t *testing.T) {
	f := newFake()
	f.audioDataHook = func(n int) error {
		if n == 1 {
			return &net.OpError{Op: "dial", Err: errors.New("connection refused")}
		}
		return nil
	}
	l := newStateLog()
	s := newSession(t, testConfig(f, l))
	s.Write(packet(1))
	l.waitState(t, StateIdle)
	if f.ourSessionOpen() {
		t.Error("session left open after audioData failed")
	}
	if got, want := f.ops(), []string{"open", "audioData", "close"}; !slices.Equal(got, want) {
		t.Errorf("calls = %v, want %v", got, want)
	}
	if _, err := l.last(); err == nil {
		t.Error("the audioData failure was not reported")
	}
	// After the pause, the next audio opens again.
	waitFor(t, "reopen", func() bool {
		s.Write(packet(2))
		return len(f.received()) > 0
	})
}

func TestStateString(t *testing.T) {
	want := map[State]string{StateIdle: "idle", StateOpening: "opening", StateOpen: "open",
		StateBusy: "busy", StateFailed: "failed", StateStopped: "stopped", State(42): "State(42)"}
	for st, s := range want {
		if st.String() != s {
			t.Errorf("%d.String() = %q, want %q", int(st), st.String(), s)
		}
	}
}

// discardDevice accepts everything, for benchmarks.
type discardDevice struct{}

func (discardDevice) Open(context.Context) (string, error) { return "1", nil }
func (discardDevice) Close(context.Context) error          { return nil }
func (discardDevice) AudioData(context.Context, string) (io.WriteCloser, error) {
	return nopCloser{io.Discard}, nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

func BenchmarkSessionWriteG711(b *testing.B) {
	s, err := New(Config{Device: discardDevice{}, Framer: &G711Framer{Name: "PCMU"}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Stop()
	p := packet(1)
	s.Write(p)
	waitFor(b, "open", func() bool { return s.State() == StateOpen })
	b.ReportAllocs()
	b.SetBytes(int64(len(p)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.Write(p)
		for s.queued.Load() > int64(time.Second) { // don't measure drops
			runtime.Gosched()
		}
	}
}

func TestWriteNeverBlocks(t *testing.T) {
	f := newFake()
	f.writeHook = func(w *fakeWriter) error {
		<-w.unblock // the device stopped reading
		return net.ErrClosed
	}
	s := newSession(t, testConfig(f, nil))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 2000; i++ { // 40 s of audio
			s.Write(packet(i))
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Write blocked on a stuck device")
	}
	st := s.Stats()
	// At most HoldMax (2 s = 100 packets) queued, one being written.
	if st.Packets > 102 || st.Drops < 2000-102 || st.Packets+st.Drops != 2000 {
		t.Errorf("stats = %+v", st)
	}
}

// latencyWriter signals each write.
type latencyWriter struct{ got chan struct{} }

func (w latencyWriter) Write(p []byte) (int, error) { w.got <- struct{}{}; return len(p), nil }
func (w latencyWriter) Close() error                { return nil }

type latencyDevice struct{ w latencyWriter }

func (latencyDevice) Open(context.Context) (string, error) { return "1", nil }
func (latencyDevice) Close(context.Context) error          { return nil }
func (d latencyDevice) AudioData(context.Context, string) (io.WriteCloser, error) {
	return d.w, nil
}

// BenchmarkAddedLatency: time from Write to the bytes handed to the device
// connection, with the session open (ns/op is the added latency per packet).
func BenchmarkAddedLatency(b *testing.B) {
	d := latencyDevice{latencyWriter{make(chan struct{})}}
	s, err := New(Config{Device: d, Framer: &G711Framer{Name: "PCMU"}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Stop()
	p := packet(1)
	s.Write(p)
	<-d.w.got
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.Write(p)
		<-d.w.got
	}
}

func TestSlowWriteIsNotSilence(t *testing.T) {
	f := newFake()
	release := make(chan struct{})
	first := true
	f.writeHook = func(w *fakeWriter) error {
		if first { // only the session goroutine writes
			first = false
			<-release
		}
		return nil
	}
	l := newStateLog()
	cfg := testConfig(f, l)
	cfg.IdleTimeout = 20 * time.Millisecond
	s := newSession(t, cfg)
	s.Write(packet(0))
	f.waitEvent(t, "write")
	for i := 1; i < 10; i++ {
		s.Write(packet(i))
	}
	time.Sleep(3 * cfg.IdleTimeout) // the scenario: the device stalls longer than the idle time
	close(release)
	waitFor(t, "all audio", func() bool { return len(f.received()) == 10*160 })
	l.waitState(t, StateIdle)
	if got, want := f.ops(), []string{"open", "audioData", "close"}; !slices.Equal(got, want) {
		t.Errorf("calls = %v, want %v", got, want)
	}
}
