package sim_test

import (
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

// After a reboot the device no longer knows the nonces it issued: a right
// answer to one gets stale=TRUE (default), a plain 401 that does not count, or
// a plain 401 that counts as a failed login (Config.UnknownNonce). An expired
// nonce the device still knows stays stale in every mode.
func TestUnknownNonceAfterReboot(t *testing.T) {
	for _, tc := range []struct {
		mode                   string
		stale                  string
		retries, failed, unknw int
	}{
		{sim.UnknownNonceStale, "TRUE", 5, 0, 0},
		{sim.UnknownNoncePlain, "FALSE", 5, 0, 1},
		{sim.UnknownNonceCounted, "FALSE", 4, 1, 0},
	} {
		t.Run("mode="+tc.mode, func(t *testing.T) {
			clock := newFakeClock()
			d := start(t, sim.Config{UnknownNonce: tc.mode, NonceLifetime: time.Minute, Now: clock.Now})
			c := newClient(t, d)
			ch := c.challengeFor(devInfo, "MD5")
			if status, _, _ := c.do("GET", devInfo, digestAuthorization(ch, "GET", devInfo, "admin", "hik12345", 1)); status != 200 {
				t.Fatalf("fresh nonce: status %d", status)
			}
			// an expired, still known nonce: stale whatever the mode, also
			// for the next request on its way with it (several requests
			// share a nonce): the device does not forget it at the first
			clock.Add(2 * time.Minute)
			status, h, _ := c.do("GET", devInfo, digestAuthorization(ch, "GET", devInfo, "admin", "hik12345", 3))
			if st := parseChallenge(t, h.Get("WWW-Authenticate")); status != 401 || st.params["stale"] != "TRUE" {
				t.Fatalf("expired nonce: %d %q, want 401 stale=TRUE", status, st.raw)
			}
			status, h2, _ := c.do("GET", devInfo, digestAuthorization(ch, "GET", devInfo, "admin", "hik12345", 2))
			if st := parseChallenge(t, h2.Get("WWW-Authenticate")); status != 401 || st.params["stale"] != "TRUE" {
				t.Fatalf("expired nonce, second answer: %d %q, want 401 stale=TRUE", status, st.raw)
			}
			ch = parseChallenge(t, h.Get("WWW-Authenticate"))
			if status, _, _ := c.do("GET", devInfo, digestAuthorization(ch, "GET", devInfo, "admin", "hik12345", 1)); status != 200 {
				t.Fatalf("answer to the stale challenge: status %d", status)
			}

			if err := d.Reboot(0); err != nil {
				t.Fatal(err)
			}
			select {
			case <-d.Up():
			case <-time.After(10 * time.Second):
				t.Fatal("device did not come back")
			}
			c.tr.CloseIdleConnections()
			status, h, body := c.do("GET", devInfo, digestAuthorization(ch, "GET", devInfo, "admin", "hik12345", 2))
			st := parseChallenge(t, h.Get("WWW-Authenticate"))
			if status != 401 || st.params["stale"] != tc.stale || st.params["nonce"] == ch.params["nonce"] {
				t.Fatalf("forgotten nonce: %d %q, want 401 stale=%s with a new nonce", status, st.raw, tc.stale)
			}
			wantLock(t, body, "unlock", 0, tc.retries)
			cs := d.Client("127.0.0.1")
			if cs.FailedLogins != tc.failed || cs.UnknownNonces != tc.unknw {
				t.Fatalf("failed %d unknown %d, want %d %d", cs.FailedLogins, cs.UnknownNonces, tc.failed, tc.unknw)
			}
			if status, _, _ := c.do("GET", devInfo, digestAuthorization(st, "GET", devInfo, "admin", "hik12345", 1)); status != 200 {
				t.Fatalf("answer to the new challenge: status %d", status)
			}
		})
	}
	if _, err := sim.Start(sim.Config{UnknownNonce: "sometimes"}); err == nil {
		t.Fatal("an unknown UnknownNonce mode was accepted")
	}
}
