package guard_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/guard"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
)

// lockingDevice counts failed logins like a device that locks a client
// address after max wrong passwords (all our processes share one address).
type lockingDevice struct {
	max, failures int
	locked        bool
	logins        int
}

func (d *lockingDevice) left() int { return d.max - d.failures }

// login is one wrong-password login.
func (d *lockingDevice) login(context.Context) error {
	d.logins++
	if d.locked {
		return &isapi.AuthError{Method: "GET", Path: "/ISAPI/System/deviceInfo", Locked: true, UnlockTime: 30 * time.Minute, RetryLoginTime: -1}
	}
	d.failures++
	if d.failures >= d.max {
		d.locked = true
		return &isapi.AuthError{Method: "GET", Path: "/ISAPI/System/deviceInfo", Locked: true, UnlockTime: 30 * time.Minute, RetryLoginTime: -1}
	}
	return &isapi.AuthError{Method: "GET", Path: "/ISAPI/System/deviceInfo", RetryLoginTime: d.left()}
}

func (d *lockingDevice) peek(context.Context) (guard.Peeked, error) {
	if d.locked {
		return guard.Peeked{Locked: true, UnlockTime: 30 * time.Minute, TriesLeft: -1}, nil
	}
	return guard.Peeked{TriesLeft: d.left()}, nil
}

// run has processes guards (one registry each: separate processes) ask for
// a login every 5 s for 10 minutes, in turn, against one 5-try device.
func runProcesses(t *testing.T, processes int, peek bool) *lockingDevice {
	t.Helper()
	c := newClock()
	dev := &lockingDevice{max: 5}
	var gs []*guard.Guard
	for i := 0; i < processes; i++ {
		gs = append(gs, guard.NewRegistry(guard.Config{Now: c.Now}).Get("10.0.0.5", "admin", guard.Secret("wrong")))
	}
	var p guard.Peek
	if peek {
		p = dev.peek
	}
	for round := 0; round < 120; round++ {
		for _, g := range gs {
			_ = g.Do(context.Background(), p, dev.login)
		}
		c.Add(5 * time.Second)
	}
	return dev
}

// Three processes with the same wrong password never lock a 5-try device,
// and never spend its last try; without reading the device's count they do
// (each process alone stays within its own budget of 2).
func TestDoPeersNeverLock(t *testing.T) {
	t.Parallel()
	dev := runProcesses(t, 3, true)
	if dev.locked || dev.left() < guard.DefaultReserveTries {
		t.Fatalf("with peeks: device locked %v, %d tries left after %d logins", dev.locked, dev.left(), dev.logins)
	}
	t.Logf("with peeks: %d logins, %d tries left", dev.logins, dev.left())

	if dev := runProcesses(t, 3, false); !dev.locked {
		t.Fatalf("without peeks the device did not lock (%d logins, %d left): the test cannot tell the rule from its absence",
			dev.logins, dev.left())
	}
}

// Up to PeerReserve+1 processes deciding on the same reading at the same
// moment still leave ReserveTries unused.
func TestDoPeersSameMoment(t *testing.T) {
	t.Parallel()
	c := newClock()
	dev := &lockingDevice{max: 5}
	var gs []*guard.Guard
	for i := 0; i < guard.DefaultPeerReserve+1; i++ {
		g := guard.NewRegistry(guard.Config{Now: c.Now}).Get("10.0.0.5", "admin", guard.Secret("wrong"))
		gs = append(gs, g)
	}
	for round := 0; round < 240; round++ {
		// every process reads the count first, then all log in
		states := make([]guard.Peeked, len(gs))
		for i := range gs {
			states[i], _ = dev.peek(context.Background())
		}
		for i, g := range gs {
			st := states[i]
			_ = g.Do(context.Background(), func(context.Context) (guard.Peeked, error) { return st, nil }, dev.login)
		}
		c.Add(5 * time.Second)
	}
	if dev.locked || dev.left() < guard.DefaultReserveTries {
		t.Fatalf("device locked %v, %d tries left after %d logins", dev.locked, dev.left(), dev.logins)
	}
}

// Do's outcomes: one classifier for every request.
func TestDoOutcomes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		err    error
		status guard.State
		logins int
	}{
		{"ok", nil, guard.StateOK, 0},
		{"accepted: device answered past the login", fmt.Errorf("probe: %w", &isapi.StatusError{HTTPStatus: 403}), guard.StateOK, 0},
		{"failed login", wrongPass, guard.StateFailing, 1},
		{"unreachable", fmt.Errorf("dial: %w", errors.New("connection refused")), guard.StateFailing, 0},
		{"abandoned", fmt.Errorf("stopped: %w", context.Canceled), guard.StateIdle, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, _ := newGuard(t, guard.Config{})
			ran := false
			err := g.Do(ctx, nil, func(context.Context) error { ran = true; return tc.err })
			if !ran || !errors.Is(err, tc.err) && err != tc.err {
				t.Fatalf("Do = %v (ran %v), want the request's own error %v", err, ran, tc.err)
			}
			st := g.Snapshot()
			if st.State != tc.status || st.LoginFailures != tc.logins || st.Allowed != 1 {
				t.Fatalf("state %+v, want %s with %d failed logins", st, tc.status, tc.logins)
			}
			// nothing is left in flight: two more logins are allowed at once
			a, b := g.Allow(), g.Allow()
			if tc.logins == 0 && (a != nil || b != nil) {
				t.Fatalf("a login left in flight: %v %v", a, b)
			}
		})
	}
}

// A hold answers without running the request.
func TestDoHoldRunsNothing(t *testing.T) {
	t.Parallel()
	g, _ := newGuard(t, guard.Config{})
	for i := 0; i < 2; i++ {
		_ = g.Do(context.Background(), nil, func(context.Context) error { return wrongPass })
	}
	err := g.Do(context.Background(), nil, func(context.Context) error {
		t.Fatal("the request ran while the guard holds")
		return nil
	})
	var h *guard.HoldError
	if !errors.As(err, &h) || h.Reason != guard.KindWrongCredentials {
		t.Fatalf("Do = %v, want a hold for wrong credentials", err)
	}
}
