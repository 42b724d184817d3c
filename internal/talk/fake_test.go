package talk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
)

// fakeCall is one call the fake device saw.
type fakeCall struct {
	op      string // open, open-return, audioData, write, close
	at      time.Time
	stopped bool   // the session's stop flag was set when the call entered
	result  string // for open-return: ok, busy, refused, cancelled
	n       int    // bytes, for write
}

// fakeDevice is one talk channel with the device's rules: one session at a
// time, open refused while one is open (403 Invalid Operation), close always
// accepted, audioData only on an open session; it records every call.
type fakeDevice struct {
	mu       sync.Mutex
	sess     *Session
	calls    []fakeCall
	open     bool // a talk session is open
	foreign  bool // ... and it is someone else's
	sessNo   int
	data     []byte
	writers  []*fakeWriter
	cutOther int // closes that ended someone else's session

	// hooks (nil: default behaviour)
	openHook      func(ctx context.Context, n int) error // before deciding; an error is returned as is
	closeHook     func(n int) error
	writeHook     func(w *fakeWriter) error // inside Write, without the lock
	audioDataHook func(n int) error         // an error is returned as is
	audioDatas    int

	opens, closes int
	events        chan string
}

func newFake() *fakeDevice { return &fakeDevice{events: make(chan string, 4096)} }

func (f *fakeDevice) record(op string, n int, result string) {
	stopped := false
	if f.sess != nil {
		f.sess.mu.Lock()
		stopped = f.sess.stopped
		f.sess.mu.Unlock()
	}
	f.calls = append(f.calls, fakeCall{op: op, at: time.Now(), stopped: stopped, n: n, result: result})
	select {
	case f.events <- op:
	default:
	}
}

var errBusyAnswer = &isapi.StatusError{Method: "PUT", Path: "/ISAPI/System/TwoWayAudio/channels/1/open",
	HTTPStatus: 403, StatusCode: 4, StatusString: "Invalid Operation", SubStatusCode: "invalidOperation"}

func (f *fakeDevice) Open(ctx context.Context) (string, error) {
	f.mu.Lock()
	f.opens++
	n := f.opens
	f.record("open", 0, "")
	hook := f.openHook
	f.mu.Unlock()
	if hook != nil {
		if err := hook(ctx, n); err != nil {
			f.mu.Lock()
			res := "refused"
			if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				res = "cancelled"
			}
			f.record("open-return", 0, res)
			f.mu.Unlock()
			return "", err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.open {
		f.record("open-return", 0, "busy")
		return "", errBusyAnswer
	}
	f.open, f.foreign = true, false
	f.sessNo++
	f.record("open-return", 0, "ok")
	return fmt.Sprintf("sid-%d", f.sessNo), nil
}

func (f *fakeDevice) Close(ctx context.Context) error {
	f.mu.Lock()
	f.closes++
	n := f.closes
	f.record("close", 0, "")
	hook := f.closeHook
	f.mu.Unlock()
	if hook != nil {
		if err := hook(n); err != nil {
			return err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.open && f.foreign {
		f.cutOther++
	}
	f.endSessionLocked()
	return nil
}

// endSessionLocked ends the device session: its audioData writers fail from now on.
func (f *fakeDevice) endSessionLocked() {
	f.open, f.foreign = false, false
	for _, w := range f.writers {
		w.dead = true
	}
	f.writers = nil
}

// hangUp is the device ending the session by itself.
func (f *fakeDevice) hangUp() {
	f.mu.Lock()
	f.endSessionLocked()
	f.mu.Unlock()
}

// setForeign opens (or ends) a session of another client.
func (f *fakeDevice) setForeign(open bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if open {
		if !f.open { // the device refuses a second talker too
			f.open, f.foreign = true, true
		}
	} else if f.foreign {
		f.open, f.foreign = false, false
	}
}

func (f *fakeDevice) AudioData(ctx context.Context, sid string) (io.WriteCloser, error) {
	f.mu.Lock()
	f.record("audioData", 0, "")
	f.audioDatas++
	n, hook := f.audioDatas, f.audioDataHook
	f.mu.Unlock()
	if hook != nil {
		if err := hook(n); err != nil {
			return nil, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.open || f.foreign || sid != fmt.Sprintf("sid-%d", f.sessNo) {
		return nil, &isapi.StatusError{Method: "PUT", Path: "/audioData", HTTPStatus: 403, StatusCode: 4, SubStatusCode: "invalidOperation"}
	}
	w := &fakeWriter{f: f, unblock: make(chan struct{})}
	f.writers = append(f.writers, w)
	return w, nil
}

type fakeWriter struct {
	f       *fakeDevice
	dead    bool // under f.mu
	closed  bool // under f.mu
	unblock chan struct{}
	once    sync.Once
}

func (w *fakeWriter) Write(p []byte) (int, error) {
	w.f.mu.Lock()
	w.f.record("write", len(p), "")
	hook := w.f.writeHook
	w.f.mu.Unlock()
	if hook != nil {
		if err := hook(w); err != nil {
			return 0, err
		}
	}
	w.f.mu.Lock()
	defer w.f.mu.Unlock()
	if w.closed {
		return 0, errors.New("fake: write on closed connection")
	}
	if w.dead {
		return 0, fmt.Errorf("fake: %w", isapi.ErrTalkEnded)
	}
	w.f.data = append(w.f.data, p...)
	return len(p), nil
}

func (w *fakeWriter) Close() error {
	w.f.mu.Lock()
	w.closed = true
	w.f.mu.Unlock()
	w.once.Do(func() { close(w.unblock) })
	return nil
}

// snapshot helpers

func (f *fakeDevice) callList() []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeCall(nil), f.calls...)
}

func (f *fakeDevice) ops() []string {
	var out []string
	for _, c := range f.callList() {
		if c.op != "write" && c.op != "open-return" {
			out = append(out, c.op)
		}
	}
	return out
}

func (f *fakeDevice) count(op string) int {
	n := 0
	for _, c := range f.callList() {
		if c.op == op {
			n++
		}
	}
	return n
}

func (f *fakeDevice) received() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]byte(nil), f.data...)
}

func (f *fakeDevice) ourSessionOpen() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.open && !f.foreign
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitEvent waits for the fake to see op.
func (f *fakeDevice) waitEvent(t testing.TB, op string) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case got := <-f.events:
			if got == op {
				return
			}
		case <-timeout:
			t.Fatalf("timed out waiting for device call %q; calls: %v", op, f.ops())
		}
	}
}

// checkGoroutines fails if the goroutine count does not come back to base.
func checkGoroutines(t testing.TB, base int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			n := runtime.Stack(buf, true)
			t.Fatalf("goroutines: %d, want <= %d\n%s", runtime.NumGoroutine(), base, buf[:n])
		}
		time.Sleep(time.Millisecond)
	}
}

// stateLog records OnState callbacks.
type stateLog struct {
	mu     sync.Mutex
	states []State
	errs   []error
	ch     chan State
}

func newStateLog() *stateLog { return &stateLog{ch: make(chan State, 1024)} }

func (l *stateLog) on(st State, err error) {
	l.mu.Lock()
	l.states = append(l.states, st)
	l.errs = append(l.errs, err)
	l.mu.Unlock()
	select {
	case l.ch <- st:
	default:
	}
}

func (l *stateLog) count(st State) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.states {
		if s == st {
			n++
		}
	}
	return n
}

func (l *stateLog) last() (State, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.states) == 0 {
		return StateIdle, nil
	}
	return l.states[len(l.states)-1], l.errs[len(l.errs)-1]
}

// waitState waits for a callback with st.
func (l *stateLog) waitState(t testing.TB, st State) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case got := <-l.ch:
			if got == st {
				return
			}
		case <-timeout:
			l.mu.Lock()
			defer l.mu.Unlock()
			t.Fatalf("timed out waiting for state %s; seen %v", st, l.states)
		}
	}
}
