//lint:file-ignore SA1019 go2rtc v1.9.14 marks core.Producer Start/Stop, Receiver.WriteRTP and Sender.HandleRTP deprecated, yet they are the interface it calls; the tests drive the producer as go2rtc does.

package hikvision

import (
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/guard"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

type permanent interface{ Permanent() bool }

func isPermanent(err error) bool {
	var p permanent
	return errors.As(err, &p) && p.Permanent()
}

// A wrong password, with Dial called every 100 ms for 10 minutes (on the
// guard's clock): at most 2 failed logins reach the device, it never locks,
// and every error says "wrong credentials" and is permanent.
func TestWrongPasswordBudget(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	e := newSimEnv(t, sim.Config{}, guard.Config{Now: clock}, ReconnectOptions{})
	src := simURL(e.dev, "wrong-pass")

	var held, before int
	for i := 0; i < 6000; i++ { // 6000 × 100 ms = 10 min
		_, err := mod(t).Dial(src)
		if err == nil {
			t.Fatal("Dial with a wrong password succeeded")
		}
		if !strings.Contains(err.Error(), "wrong credentials") || !isPermanent(err) {
			t.Fatalf("dial %d: %v (permanent %v)", i, err, isPermanent(err))
		}
		if !errors.Is(err, isapi.ErrUnauthorized) {
			t.Errorf("dial %d: %v is not isapi.ErrUnauthorized", i, err)
		}
		var h *HoldError
		if errors.As(err, &h) {
			if held == 0 {
				before = totalRequests(e.dev)
				t.Logf("held: %v", err)
			}
			held++
		}
		mu.Lock()
		now = now.Add(100 * time.Millisecond)
		mu.Unlock()
	}
	cs := e.dev.Client("127.0.0.1")
	t.Logf("failed logins %d (ISAPI %d, RTSP %d), lock events %d, held Dials %d",
		failedLogins(e.dev), cs.FailedLogins, cs.RTSPFailedLogins, cs.LockEvents, held)
	if n := failedLogins(e.dev); n > 2 {
		t.Errorf("%d failed logins, want <= 2", n)
	}
	if cs.LockEvents != 0 {
		t.Errorf("device locked %d times", cs.LockEvents)
	}
	if held < 5990 {
		t.Errorf("only %d of 6000 Dials were held", held)
	}
	if after := totalRequests(e.dev); after != before {
		t.Errorf("held Dials made %d ISAPI requests", after-before)
	}
	// a corrected password is tried at once
	if _, err := mod(t).Dial(e.src); err != nil {
		t.Errorf("Dial with the right password: %v", err)
	}
}

// The device locked this client: after the Dial that learns it, nothing
// reaches the device until unlockTime has passed; then Dial works.
func TestLockedNoRequestUntilUnlock(t *testing.T) {
	t.Parallel()
	e := newSimEnv(t, sim.Config{}, guard.Config{LockMargin: 200 * time.Millisecond}, ReconnectOptions{})
	const lockFor = 2 * time.Second
	if err := e.dev.LockIP("127.0.0.1", lockFor); err != nil {
		t.Fatal(err)
	}
	locked := time.Now()
	_, err := mod(t).Dial(e.src)
	if err == nil || !isPermanent(err) || !strings.Contains(err.Error(), "lock") {
		t.Fatalf("Dial on a locked device: %v (permanent %v)", err, isPermanent(err))
	}
	t.Logf("first Dial: %v", err)
	reqs, conns := totalRequests(e.dev), e.dev.Client("127.0.0.1").RTSPConnections
	var last error
	for {
		_, err := mod(t).Dial(e.src)
		if err == nil {
			break
		}
		var h *HoldError
		if !errors.As(err, &h) {
			t.Fatalf("Dial while locked: %v, want *HoldError", err)
		}
		if !strings.Contains(err.Error(), "locked until ") || h.Reason != "locked" {
			t.Errorf("hold: %v", err)
		}
		// the guard is keyed by host:port: the hold names both
		if addr := e.dev.HTTPAddr(); h.Host != addr || !strings.HasPrefix(err.Error(), "hikvision: "+addr+": ") {
			t.Fatalf("hold %q names host %q, want %q", err, h.Host, addr)
		}
		if n := totalRequests(e.dev); n != reqs {
			t.Fatalf("a held Dial reached the device (%d ISAPI requests)", n-reqs)
		}
		if e.dev.Client("127.0.0.1").RTSPConnections != conns {
			t.Fatal("a held Dial opened RTSP")
		}
		if time.Since(locked) > 10*time.Second {
			t.Fatalf("still held after 10 s: %v", err)
		}
		last = err
		time.Sleep(50 * time.Millisecond) // Dial every 50 ms, as a client would
	}
	if d := time.Since(locked); d < lockFor {
		t.Errorf("Dial went through %s after the lock, before it ended", d)
	}
	if last == nil {
		t.Error("no Dial was held")
	}
	if cs := e.dev.Client("127.0.0.1"); cs.LockedRejects > 3 {
		t.Errorf("locked rejects %d: requests hit the locked device", cs.LockedRejects)
	}
}

// The password changes on the device while streaming; the link drops: Start
// ends with a permanent "wrong credentials" error after one failed login.
func TestPasswordChangedWhileStreaming(t *testing.T) {
	e := newSimEnv(t, sim.Config{}, guard.Config{}, ReconnectOptions{})
	base := runtime.NumGoroutine()
	pl := startPlaying(t, e.src)
	pl.waitPacket(t, 0, 5*time.Second)
	if err := e.dev.SetPassword("admin", "changed-1"); err != nil {
		t.Fatal(err)
	}
	e.dev.DropRTSP()
	select {
	case err := <-pl.startErr:
		if err == nil || !isPermanent(err) || !strings.Contains(err.Error(), "wrong credentials") {
			t.Errorf("Start: %v (permanent %v)", err, isPermanent(err))
		}
		noPassword(t, "Start error", err.Error())
		pl.startErr <- nil // for stop
	case <-time.After(10 * time.Second):
		t.Fatal("Start did not end")
	}
	if st := pl.p.Status(); st.State != StateAuthFailed {
		t.Errorf("state %s", st.State)
	}
	if n := failedLogins(e.dev); n != 1 {
		t.Errorf("failed logins %d, want 1", n)
	}
	pl.stop(t)
	waitGoroutines(t, base)
}
