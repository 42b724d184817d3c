package guard_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/guard"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/testclock"
)

// newClock is a settable clock for guard.Config.Now.
func newClock() *testclock.Clock {
	return testclock.New(time.Date(2025, 3, 1, 13, 35, 30, 0, time.UTC))
}

func newGuard(t *testing.T, cfg guard.Config) (*guard.Guard, *testclock.Clock) {
	t.Helper()
	c := newClock()
	cfg.Now = c.Now
	return guard.NewRegistry(cfg).Get("10.0.0.5", "admin", guard.Secret("pw1")), c
}

var wrongPass = &isapi.AuthError{Method: "GET", Path: "/ISAPI/System/deviceInfo", RetryLoginTime: -1}

// A client asks for the stream every second for 10 minutes with a wrong
// password: only the budget's 2 logins may reach the device.
func TestWrongPasswordEverySecond(t *testing.T) {
	t.Parallel()
	g, c := newGuard(t, guard.Config{})

	allowed := 0
	var lastHold error
	for i := 0; i < 600; i++ {
		if err := g.Allow(); err != nil {
			lastHold = err
		} else {
			allowed++
			if k := g.Report(fmt.Errorf("dial: %w", wrongPass)); k != guard.KindWrongCredentials {
				t.Fatalf("Report kind = %v", k)
			}
		}
		c.Add(time.Second)
	}
	if allowed != 2 {
		t.Fatalf("allowed %d logins in 10 min, want 2", allowed)
	}

	var hold *guard.HoldError
	if !errors.As(lastHold, &hold) {
		t.Fatalf("hold error = %T %v", lastHold, lastHold)
	}
	want := "hikvision: 10.0.0.5: wrong credentials: not trying again before 14:05:30 (wrong credentials twice in 30m0s)"
	if hold.Error() != want {
		t.Fatalf("hold message\n got: %s\nwant: %s", hold.Error(), want)
	}
	if hold.Reason != guard.KindWrongCredentials || !guard.Permanent(hold.Reason) || !hold.Permanent() {
		t.Fatalf("hold reason = %v", hold.Reason)
	}
	if !errors.Is(lastHold, isapi.ErrUnauthorized) {
		t.Fatal("hold does not unwrap to isapi.ErrUnauthorized")
	}
	if k := guard.Classify(lastHold); k != guard.KindWrongCredentials {
		t.Fatalf("Classify(hold) = %v", k)
	}

	st := g.Snapshot()
	if st.State != guard.StateHolding || st.FailedLogins != 2 || st.Budget != 2 ||
		st.Allowed != 2 || st.Held != 598 || st.Failures != 2 || !st.HoldUntil.Equal(hold.Until) ||
		!strings.Contains(st.LastError, "wrong credentials") {
		t.Fatalf("state = %+v", st)
	}
}

// Over two hours of trying every second, no 30-minute window sees more than
// 2 logins, and logins resume as old failures leave the window.
func TestBudgetSlidingWindow(t *testing.T) {
	t.Parallel()
	g, c := newGuard(t, guard.Config{})
	var at []time.Time
	for i := 0; i < 2*3600; i++ {
		if g.Allow() == nil {
			at = append(at, c.Now())
			g.Report(wrongPass)
		}
		c.Add(time.Second)
	}
	for i := range at {
		n := 0
		for j := i; j < len(at) && at[j].Sub(at[i]) < 30*time.Minute; j++ {
			n++
		}
		if n > 2 {
			t.Fatalf("%d logins in the 30 min from %s: %v", n, at[i].Format(time.TimeOnly), at)
		}
	}
	if len(at) < 6 {
		t.Fatalf("only %d logins in 2 h: the budget never refills: %v", len(at), at)
	}
}

func TestLockHoldsUntilUnlockTime(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		unlock time.Duration
		want   time.Duration // hold from the report
	}{
		{"unlockTime given", 10 * time.Minute, 10*time.Minute + guard.DefaultLockMargin},
		{"unlockTime unknown", 0, guard.DefaultLockHold},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// a large budget, so only the lock can hold
			g, c := newGuard(t, guard.Config{MaxFailedLogins: 100})
			if err := g.Allow(); err != nil {
				t.Fatal(err)
			}
			locked := &isapi.AuthError{Method: "GET", Path: "/x", Locked: true, UnlockTime: tc.unlock, RetryLoginTime: -1}
			if k := g.Report(locked); k != guard.KindLocked {
				t.Fatalf("kind %v", k)
			}
			start := c.Now()
			for c.Now().Sub(start) < tc.want {
				err := g.Allow()
				var hold *guard.HoldError
				if !errors.As(err, &hold) || hold.Reason != guard.KindLocked || !hold.Until.Equal(start.Add(tc.want)) {
					t.Fatalf("at +%s: Allow = %v", c.Now().Sub(start), err)
				}
				if !strings.Contains(err.Error(), "device locked this client") || !errors.Is(err, isapi.ErrLocked) {
					t.Fatalf("message %q", err)
				}
				if st := g.Snapshot(); st.State != guard.StateLocked || !st.LockedUntil.Equal(start.Add(tc.want)) {
					t.Fatalf("state %+v", st)
				}
				c.Add(7 * time.Second)
			}
			c.Add(start.Add(tc.want).Sub(c.Now()))
			if err := g.Allow(); err != nil {
				t.Fatalf("at unlock time: %v", err)
			}
		})
	}
}

func TestChangedPasswordResets(t *testing.T) {
	t.Parallel()
	c := newClock()
	r := guard.NewRegistry(guard.Config{Now: c.Now})
	g := r.Get("10.0.0.5", "admin", guard.Secret("old"))
	for g.Allow() == nil {
		g.Report(wrongPass)
	}
	// same password again: still holding, same guard
	if g2 := r.Get("10.0.0.5", "admin", guard.Secret("old")); g2 != g || g2.Allow() == nil {
		t.Fatal("same password: want the same guard, still holding")
	}
	// another port is another device (port forwarding): its own budget
	if g2 := r.Get("10.0.0.5:8080", "admin", guard.Secret("old")); g2 == g || g2.Allow() != nil {
		t.Fatal("another port: want another guard, not held by the first device's failures")
	}
	// another user is another guard
	if r.Get("10.0.0.5", "operator", guard.Secret("old")).Allow() != nil {
		t.Fatal("another user is held by admin's failures")
	}
	g3 := r.Get("10.0.0.5", "admin", guard.Secret("new"))
	if g3 != g {
		t.Fatal("a changed password must keep the shared guard")
	}
	if err := g.Allow(); err != nil {
		t.Fatalf("changed password still held: %v", err)
	}
	if st := g.Snapshot(); st.FailedLogins != 0 || st.LastError != "" {
		t.Fatalf("state after reset: %+v", st)
	}
	a1, a2 := guard.Secret("a"), guard.Secret("a")
	if guard.Secret("new") == "new" || a1 == guard.Secret("b") || a1 != a2 {
		t.Fatal("Secret is not a stable keyed hash")
	}
}

func TestRetryLoginTime(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		left    int
		reserve int
		hold    bool
	}{
		{left: -1, hold: false}, // not sent
		{left: 4, hold: false},
		{left: 2, hold: false}, // one more try leaves 1 for a person
		{left: 1, hold: true},
		{left: 0, hold: true},
		{left: 2, reserve: 2, hold: true},
		{left: 1, reserve: -1, hold: false}, // reserve 0: may use the last try
	} {
		t.Run(fmt.Sprintf("left=%d,reserve=%d", tc.left, tc.reserve), func(t *testing.T) {
			g, c := newGuard(t, guard.Config{MaxFailedLogins: 100, ReserveTries: tc.reserve})
			if err := g.Allow(); err != nil {
				t.Fatal(err)
			}
			g.Report(&isapi.AuthError{Method: "GET", Path: "/x", RetryLoginTime: tc.left})
			c.Add(time.Minute)
			err := g.Allow()
			if (err != nil) != tc.hold {
				t.Fatalf("Allow = %v, want hold %v", err, tc.hold)
			}
			if tc.hold {
				var hold *guard.HoldError
				if !errors.As(err, &hold) || hold.Reason != guard.KindWrongCredentials ||
					!hold.Until.Equal(c.Now().Add(-time.Minute).Add(guard.DefaultWindow)) ||
					!strings.Contains(err.Error(), fmt.Sprintf("device allows %d more login tries", tc.left)) {
					t.Fatalf("hold = %v", err)
				}
				if st := g.Snapshot(); st.RetryLoginTime != tc.left {
					t.Fatalf("state RetryLoginTime = %d", st.RetryLoginTime)
				}
			}
		})
	}
}

// Transient failures never spend the login budget.
func TestTransientNotCounted(t *testing.T) {
	t.Parallel()
	g, c := newGuard(t, guard.Config{})
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	for i := 0; i < 100; i++ {
		if err := g.Allow(); err != nil {
			t.Fatalf("attempt %d held: %v", i, err)
		}
		if k := g.Report(refused); k != guard.KindUnreachable {
			t.Fatalf("kind %v", k)
		}
		c.Add(time.Second)
	}
	st := g.Snapshot()
	if st.State != guard.StateFailing || st.FailedLogins != 0 || st.ConsecutiveFailures != 100 || st.Reason != guard.KindUnreachable {
		t.Fatalf("state %+v", st)
	}
	g.Success()
	if st := g.Snapshot(); st.State != guard.StateOK || st.ConsecutiveFailures != 0 || st.LastError != "" || st.Successes != 1 {
		t.Fatalf("state after success %+v", st)
	}
}

func TestSuccessClearsFailures(t *testing.T) {
	t.Parallel()
	g, _ := newGuard(t, guard.Config{})
	_ = g.Allow()
	g.Report(wrongPass)
	_ = g.Allow()
	g.Success()
	if st := g.Snapshot(); st.FailedLogins != 0 || st.State != guard.StateOK {
		t.Fatalf("state %+v", st)
	}
	// a nil report is a success
	if k := g.Report(nil); k != guard.KindNone {
		t.Fatalf("Report(nil) = %v", k)
	}
}

// Until a login has succeeded, logins in flight count against the budget, so
// concurrent sessions cannot overrun it together; afterwards they do not.
func TestLoginsInFlight(t *testing.T) {
	t.Parallel()
	g, c := newGuard(t, guard.Config{})
	first, second := g.Allow(), g.Allow()
	if first != nil || second != nil {
		t.Fatal("first two logins held")
	}
	err := g.Allow()
	var hold *guard.HoldError
	if !errors.As(err, &hold) || hold.Reason != guard.KindLoginPending || guard.Permanent(hold.Reason) ||
		!hold.Until.Equal(c.Now().Add(guard.DefaultPendingRetry)) {
		t.Fatalf("third login in flight: %v", err)
	}
	g.Success()
	g.Success()
	for i := 0; i < 10; i++ {
		if err := g.Allow(); err != nil {
			t.Fatalf("verified credentials, login %d held: %v", i, err)
		}
	}
	// an allowed login that is never reported is forgotten after PendingTimeout
	g2, c2 := newGuard(t, guard.Config{})
	_, _ = g2.Allow(), g2.Allow()
	if g2.Allow() == nil {
		t.Fatal("third login allowed")
	}
	c2.Add(guard.DefaultPendingTimeout)
	if err := g2.Allow(); err != nil {
		t.Fatalf("after PendingTimeout: %v", err)
	}
}

// Many sessions of one device hammering a wrong password concurrently:
// still at most the budget reaches the device.
func TestConcurrentWrongPassword(t *testing.T) {
	t.Parallel()
	c := newClock()
	r := guard.NewRegistry(guard.Config{Now: c.Now})
	var mu sync.Mutex
	allowed := 0
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := r.Get("cam.local", "admin", guard.Secret("pw"))
			for i := 0; i < 200; i++ {
				if g.Allow() == nil {
					mu.Lock()
					allowed++
					mu.Unlock()
					g.Report(errors.New("rtsp: wrong user/pass"))
				}
				_ = g.Snapshot()
				c.Add(100 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	st := r.Get("cam.local", "admin", guard.Secret("pw")).Snapshot()
	if allowed > 2 || allowed < 1 || st.FailedLogins != allowed {
		t.Fatalf("allowed %d concurrent logins (state %+v)", allowed, st)
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	for _, tc := range []struct {
		err  error
		want guard.Kind
	}{
		{nil, guard.KindNone},
		{isapi.ErrUnauthorized, guard.KindWrongCredentials},
		{fmt.Errorf("x: %w", &isapi.AuthError{RetryLoginTime: 3}), guard.KindWrongCredentials},
		{&isapi.AuthError{Locked: true, UnlockTime: time.Minute}, guard.KindLocked},
		{isapi.ErrLocked, guard.KindLocked},
		{isapi.ErrNotActivated, guard.KindNotActivated},
		{&isapi.StatusError{HTTPStatus: 403, SubStatusCode: "lowPrivilege"}, guard.KindLowPrivilege},
		{&isapi.StatusError{HTTPStatus: 403}, guard.KindNotSupported},
		{&isapi.StatusError{HTTPStatus: 200, StatusCode: 2}, guard.KindBusy},
		{fmt.Errorf("talk: %w", isapi.ErrDeviceBusy), guard.KindBusy},
		{isapi.ErrProtocol, guard.KindProtocol},
		{isapi.ErrTooLarge, guard.KindProtocol},
		{errors.New("wrong user/pass"), guard.KindWrongCredentials},
		{fmt.Errorf("rtsp: describe: %w", errors.New("wrong user/pass")), guard.KindWrongCredentials},
		{errors.New("user/pass not provided"), guard.KindNoCredentials},
		{refused, guard.KindUnreachable},
		{fmt.Errorf("dial: %w", syscall.EHOSTUNREACH), guard.KindUnreachable},
		{&net.DNSError{Err: "no such host", Name: "cam"}, guard.KindUnreachable},
		{&net.DNSError{Err: "timeout", Name: "cam", IsTimeout: true}, guard.KindTimeout},
		{io.EOF, guard.KindUnreachable},
		{fmt.Errorf("read: %w", os.ErrDeadlineExceeded), guard.KindTimeout},
		{context.DeadlineExceeded, guard.KindTimeout},
		{&net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}, guard.KindTimeout},
		{errors.New("something else"), guard.KindOther},
	} {
		if got := guard.Classify(tc.err); got != tc.want {
			t.Errorf("Classify(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestPermanent(t *testing.T) {
	t.Parallel()
	perm := map[guard.Kind]bool{
		guard.KindWrongCredentials: true, guard.KindNoCredentials: true, guard.KindLocked: true,
		guard.KindNotActivated: true, guard.KindLowPrivilege: true, guard.KindNotSupported: true,
	}
	for k := guard.KindNone; k <= guard.KindOther; k++ {
		if guard.Permanent(k) != perm[k] {
			t.Errorf("Permanent(%v) = %v", k, !perm[k])
		}
		if s := k.String(); s == "" || s == "unknown" {
			t.Errorf("Kind %d has no name", k)
		}
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	// no jitter at rnd = 0.5: 1s, 1.6s, 2.56s, ... capped at 30s
	want := time.Second
	for a := 0; a < 20; a++ {
		got := guard.Backoff(a, 0.5)
		exp := want
		if exp > 30*time.Second {
			exp = 30 * time.Second
		}
		if d := got - exp; d < -time.Microsecond || d > time.Microsecond {
			t.Fatalf("Backoff(%d, 0.5) = %s, want %s", a, got, exp)
		}
		want = time.Duration(float64(want) * 1.6)
	}
	// jitter bounds and determinism
	for a := 0; a < 20; a++ {
		lo, hi := guard.Backoff(a, 0), guard.Backoff(a, 0.999999)
		mid := guard.Backoff(a, 0.5)
		if lo > mid || mid > hi || hi > 30*time.Second || float64(lo) < 0.79*float64(mid) {
			t.Fatalf("attempt %d: jitter range %s..%s around %s", a, lo, hi, mid)
		}
		if d1, d2 := guard.Backoff(a, 0.3), guard.Backoff(a, 0.3); d1 != d2 {
			t.Fatal("not deterministic")
		}
	}
	if guard.Backoff(0, 0) != 800*time.Millisecond || guard.Backoff(-5, 0.5) != time.Second {
		t.Fatalf("Backoff(0,0) = %s, Backoff(-5,.5) = %s", guard.Backoff(0, 0), guard.Backoff(-5, 0.5))
	}
	cfg := guard.BackoffConfig{Base: 100 * time.Millisecond, Multiplier: 2, Max: time.Second}
	if got := cfg.Delay(3, 0.9); got != 800*time.Millisecond {
		t.Fatalf("Delay(3) = %s", got)
	}
	if got := cfg.Delay(1000, 0.9); got != time.Second {
		t.Fatalf("Delay(1000) = %s", got)
	}
}

// Several streams of one device dialled at once, before any login succeeded:
// Wait holds the later callers until the first login's outcome instead of
// failing them (Frigate opens every channel of an NVR at start-up).
func TestWaitForLoginInFlight(t *testing.T) {
	t.Parallel()
	r := guard.NewRegistry(guard.Config{PendingRetry: time.Minute})
	g := r.Get("10.0.0.7:80", "admin", guard.Secret("pw"))
	if err := g.Wait(context.Background()); err != nil { // first login: allowed
		t.Fatal(err)
	}
	if err := g.Wait(context.Background()); err != nil { // second: still within the budget
		t.Fatal(err)
	}
	var hold *guard.HoldError
	if err := g.Allow(); !errors.As(err, &hold) || hold.Reason != guard.KindLoginPending {
		t.Fatalf("third concurrent login: Allow = %v, want a login-pending hold", err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Wait(context.Background()) }()
	select {
	case err := <-done:
		t.Fatalf("Wait returned %v before any login was reported", err)
	default:
	}
	g.Success() // the first login succeeded: the waiter may go
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Wait after a good login = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not wake up on Success")
	}

	// A wrong-password hold is not waited for.
	g2 := r.Get("10.0.0.7:81", "admin", guard.Secret("pw"))
	for g2.Allow() == nil {
		g2.Report(wrongPass)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g2.Wait(ctx); !errors.As(err, &hold) || hold.Reason != guard.KindWrongCredentials {
		t.Fatalf("Wait on a spent budget = %v, want a wrong-credentials hold at once", err)
	}
	if ctx.Err() != nil {
		t.Fatal("Wait waited on a permanent hold")
	}
}
