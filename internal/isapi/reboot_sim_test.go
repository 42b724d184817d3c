package isapi_test

import (
	"errors"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

const simPass = "Secret#Pa55"

// startSim starts a simulated camera with user admin / simPass.
func startSim(t *testing.T, cfg sim.Config) (*sim.Device, *isapi.Client) {
	t.Helper()
	cfg.Users = map[string]string{"admin": simPass}
	d, err := sim.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	c, err := isapi.New(isapi.Config{Host: d.HTTPAddr(), Username: "admin", Password: simPass, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return d, c
}

// rebootIdle reboots d while the client sends nothing and waits until it is up:
// the client never sees the device unreachable, only the old nonce unknown.
func rebootIdle(t *testing.T, d *sim.Device) {
	t.Helper()
	if err := d.Reboot(50 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.Up():
	case <-time.After(10 * time.Second):
		t.Fatal("simulator did not come back from the reboot")
	}
}

// A device that rebooted while the client was idle has forgotten the cached
// nonce. Whether it answers stale=TRUE or a plain 401 it does not count, the
// next request succeeds with one new challenge answer and no failed login.
func TestRebootUnknownNonceSim(t *testing.T) {
	for _, mode := range []string{sim.UnknownNonceStale, sim.UnknownNoncePlain} {
		name := mode
		if name == "" {
			name = "stale"
		}
		t.Run(name, func(t *testing.T) {
			d, c := startSim(t, sim.Config{UnknownNonce: mode})
			if _, err := c.DeviceInfo(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			rebootIdle(t, d)
			if _, err := c.DeviceInfo(ctxT(t)); err != nil {
				t.Fatalf("first request after the reboot: %v", err)
			}
			if _, err := c.DeviceInfo(ctxT(t)); err != nil {
				t.Fatalf("second request after the reboot: %v", err)
			}
			cs := d.Client("127.0.0.1")
			if cs.FailedLogins != 0 {
				t.Fatalf("%d failed logins spent on a reboot, want 0", cs.FailedLogins)
			}
			// the old nonce once, then the new challenge answered: 3 good logins in all
			if cs.GoodLogins != 3 || cs.StaleNonces+cs.UnknownNonces != 1 {
				t.Fatalf("good %d stale %d unknown %d; want 3 good and one answer to the old nonce",
					cs.GoodLogins, cs.StaleNonces, cs.UnknownNonces)
			}
			if locked, _, left := d.LockStatus("127.0.0.1"); locked || left != 5 {
				t.Fatalf("lock status after the reboot: locked %v, %d tries left; want 5", locked, left)
			}
		})
	}
}

// A device that counts a plain 401 to an unknown nonce as a failed login says
// so (one try fewer): the client takes it as the failed login it was and
// does not spend a second one; the caller's next request logs in afresh.
func TestRebootUnknownNonceCountedSim(t *testing.T) {
	d, c := startSim(t, sim.Config{UnknownNonce: sim.UnknownNonceCounted})
	if _, err := c.DeviceInfo(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	rebootIdle(t, d)
	_, err := c.DeviceInfo(ctxT(t))
	if !errors.Is(err, isapi.ErrUnauthorized) {
		t.Fatalf("request after the reboot: %v, want ErrUnauthorized (the device counted it)", err)
	}
	if cs := d.Client("127.0.0.1"); cs.FailedLogins != 1 {
		t.Fatalf("%d failed logins, want exactly the one the device counted", cs.FailedLogins)
	}
	if _, err := c.DeviceInfo(ctxT(t)); err != nil {
		t.Fatalf("next request: %v", err)
	}
	if cs := d.Client("127.0.0.1"); cs.FailedLogins != 1 {
		t.Fatalf("%d failed logins after the next request, want 1", cs.FailedLogins)
	}
}

// A reboot seen by the client (a request fails while the device is down):
// the cached challenge is dropped, and the request after the reboot starts
// with a fresh challenge in every answer mode.
func TestRebootSeenSim(t *testing.T) {
	for _, mode := range []string{sim.UnknownNonceStale, sim.UnknownNoncePlain, sim.UnknownNonceCounted} {
		t.Run("mode="+mode, func(t *testing.T) {
			d, c := startSim(t, sim.Config{UnknownNonce: mode})
			if _, err := c.DeviceInfo(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			if err := d.Reboot(time.Hour); err != nil {
				t.Fatal(err)
			}
			if _, err := c.DeviceInfo(ctxT(t)); err == nil {
				t.Fatal("a request to a rebooting device succeeded")
			}
			if err := d.Reboot(0); err != nil { // cut the reboot short
				t.Fatal(err)
			}
			select {
			case <-d.Up():
			case <-time.After(10 * time.Second):
				t.Fatal("simulator did not come back")
			}
			if _, err := c.DeviceInfo(ctxT(t)); err != nil {
				t.Fatalf("first request after the reboot: %v", err)
			}
			cs := d.Client("127.0.0.1")
			if cs.FailedLogins != 0 || cs.StaleNonces+cs.UnknownNonces != 0 {
				t.Fatalf("failed %d stale %d unknown %d after a seen reboot; want 0 0 0",
					cs.FailedLogins, cs.StaleNonces, cs.UnknownNonces)
			}
		})
	}
}

// The password changed on the device (no reboot): the plain 401 to the cached
// challenge is counted by the device (one try fewer), so it stays one failed
// login, with no re-challenge, in every unknown-nonce mode.
func TestPasswordChangedSim(t *testing.T) {
	for _, mode := range []string{sim.UnknownNonceStale, sim.UnknownNoncePlain, sim.UnknownNonceCounted} {
		t.Run("mode="+mode, func(t *testing.T) {
			d, c := startSim(t, sim.Config{UnknownNonce: mode})
			if _, err := c.DeviceInfo(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			if err := d.SetPassword("admin", "changed-Pa55"); err != nil {
				t.Fatal(err)
			}
			_, err := c.DeviceInfo(ctxT(t))
			var ae *isapi.AuthError
			if !errors.As(err, &ae) || ae.Locked || ae.RetryLoginTime != 4 {
				t.Fatalf("error %v, want wrong credentials with 4 tries left", err)
			}
			cs := d.Client("127.0.0.1")
			if cs.FailedLogins != 1 || cs.Challenges != 1 {
				t.Fatalf("failed %d challenges %d; want 1 failed login and no re-challenge", cs.FailedLogins, cs.Challenges)
			}
		})
	}
}

// A device that counts a right answer to a nonce it forgot rebooted while the
// client was idle; then several requests start at once. Only the first goes
// out with the forgotten nonce (one counted failure, the one the package doc
// allows); the others wait for its answer and log in afresh. Sent at once,
// each would count, and five lock the client out.
func TestIdleRebootThenBurstCountedSim(t *testing.T) {
	d, c := startSim(t, sim.Config{UnknownNonce: sim.UnknownNonceCounted})
	isapi.SetIdleProbe(c, time.Nanosecond) // every challenge counts as not accepted lately
	if _, err := c.DeviceInfo(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	rebootIdle(t, d)
	const n = 8
	start := make(chan struct{})
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			<-start
			_, err := c.DeviceInfo(ctxT(t))
			errs <- err
		}()
	}
	close(start)
	refused := 0
	for i := 0; i < n; i++ {
		err := <-errs
		switch {
		case errors.Is(err, isapi.ErrUnauthorized):
			refused++
		case err != nil:
			t.Errorf("request %d: %v", i, err)
		}
	}
	cs := d.Client("127.0.0.1")
	if refused != 1 || cs.FailedLogins != 1 || cs.LockEvents != 0 {
		t.Fatalf("%d requests refused, %d failed logins, %d locks; want 1, 1, 0", refused, cs.FailedLogins, cs.LockEvents)
	}
}
