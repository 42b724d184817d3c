package sim_test

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

const devInfo = "/ISAPI/System/deviceInfo"

func TestChallengeFormatAndUserCheckBody(t *testing.T) {
	d := start(t, sim.Config{})
	c := newClient(t, d)
	before := time.Now().Unix()
	status, h, body := c.do("GET", devInfo, "")
	if status != 401 {
		t.Fatalf("status %d, want 401", status)
	}
	www := h.Values("WWW-Authenticate")
	if len(www) != 1 {
		t.Fatalf("WWW-Authenticate headers: %q, want exactly one", www)
	}
	re := regexp.MustCompile(`^Digest realm="IP Camera\(K2195\)", domain="::", qop="auth", nonce="([0-9a-f]{32}):(\d+)", opaque="", algorithm="MD5", stale="FALSE"$`)
	m := re.FindStringSubmatch(www[0])
	if m == nil {
		t.Fatalf("challenge %q does not match %s", www[0], re)
	}
	ts, _ := strconv.ParseInt(m[2], 10, 64)
	if ts < before-1 || ts > time.Now().Unix()+1 {
		t.Fatalf("nonce timestamp %d not the current unix time (~%d)", ts, before)
	}
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "application/xml") {
		t.Fatalf("Content-Type %q, want application/xml", ct)
	}
	wantLock(t, body, "unlock", 0, 5)
	uc := decode[userCheck](t, body)
	if uc.XMLName.Space != sim.NamespaceHikvision {
		t.Fatalf("namespace %q, want %q", uc.XMLName.Space, sim.NamespaceHikvision)
	}
	// two challenges carry different nonces
	_, h2, _ := c.do("GET", devInfo, "")
	if h2.Get("WWW-Authenticate") == www[0] {
		t.Fatal("second challenge repeats the nonce")
	}
	cs := d.Client("127.0.0.1")
	if cs.Challenges != 2 || cs.FailedLogins != 0 || cs.Requests[devInfo] != 2 {
		t.Fatalf("stats: %+v, want 2 challenges, 0 failed logins, 2 requests", cs)
	}
}

func TestPlainNonceAndOmitLockFields(t *testing.T) {
	d := start(t, sim.Config{PlainNonce: true, OmitLockFields: true})
	c := newClient(t, d)
	ch := c.challengeFor(devInfo, "MD5")
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(ch.params["nonce"]) {
		t.Fatalf("nonce %q, want plain hex", ch.params["nonce"])
	}
	_, _, body := c.do("GET", devInfo, "")
	uc := decode[userCheck](t, body)
	if uc.LockStatus != "" || uc.UnlockTime != nil || uc.RetryLoginTime != nil {
		t.Fatalf("lock fields present: %s", body)
	}
	if status, _, _ := c.do("GET", devInfo, digestAuthorization(ch, "GET", devInfo, "admin", "hik12345", 1)); status != 200 {
		t.Fatalf("login with plain nonce: status %d", status)
	}
}

func TestDigestAlgorithms(t *testing.T) {
	for _, tc := range []struct {
		name    string
		offered []string
		use     string
	}{
		{"MD5 default", nil, "MD5"},
		{"SHA-256 only", []string{"SHA-256"}, "SHA-256"},
		{"both, answer MD5", []string{"MD5", "SHA-256"}, "MD5"},
		{"both, answer SHA-256", []string{"MD5", "SHA-256"}, "SHA-256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := start(t, sim.Config{DigestAlgorithms: tc.offered})
			c := newClient(t, d)
			_, h, _ := c.do("GET", devInfo, "")
			want := tc.offered
			if want == nil {
				want = []string{"MD5"}
			}
			www := h.Values("WWW-Authenticate")
			if len(www) != len(want) {
				t.Fatalf("WWW-Authenticate %q: want one header per algorithm %v", www, want)
			}
			for i, v := range www {
				if ch := parseChallenge(t, v); ch.scheme != "Digest" || ch.params["algorithm"] != want[i] || ch.params["qop"] != "auth" {
					t.Fatalf("header %d %q: want Digest algorithm=%s qop=auth", i, v, want[i])
				}
			}
			ch := c.challengeFor(devInfo, tc.use)
			status, _, body := c.do("GET", devInfo, digestAuthorization(ch, "GET", devInfo, "admin", "hik12345", 1))
			if status != 200 || !strings.Contains(string(body), "<DeviceInfo") {
				t.Fatalf("login: status %d body %s", status, body)
			}
			// the nonce is reused with a growing nc
			if status, _, _ := c.do("GET", "/ISAPI/Streaming/channels", digestAuthorization(ch, "GET", "/ISAPI/Streaming/channels", "admin", "hik12345", 2)); status != 200 {
				t.Fatalf("nc=2 on the same nonce: status %d", status)
			}
			// a wrong password with the right algorithm fails and counts
			status, _, body = c.do("GET", devInfo, digestAuthorization(ch, "GET", devInfo, "admin", "wrong", 3))
			if status != 401 {
				t.Fatalf("wrong password: status %d", status)
			}
			wantLock(t, body, "unlock", 0, 4)
			cs := d.Client("127.0.0.1")
			if cs.GoodLogins != 2 || cs.FailedLogins != 1 {
				t.Fatalf("stats %+v: want 2 good, 1 failed", cs)
			}
		})
	}
}

func TestAlgorithmNotOfferedIsRejectedWithoutCounting(t *testing.T) {
	d := start(t, sim.Config{})
	c := newClient(t, d)
	ch := c.challengeFor(devInfo, "MD5")
	ch.params["algorithm"] = "SHA-256"
	status, _, body := c.do("GET", devInfo, digestAuthorization(ch, "GET", devInfo, "admin", "hik12345", 1))
	if status != 401 {
		t.Fatalf("status %d, want 401", status)
	}
	wantLock(t, body, "unlock", 0, 5)
	if cs := d.Client("127.0.0.1"); cs.RejectedAuth != 1 || cs.FailedLogins != 0 {
		t.Fatalf("stats %+v: want 1 rejected, 0 failed", cs)
	}
}

func TestNCReplayRejected(t *testing.T) {
	for _, strict := range []bool{false, true} {
		t.Run("strict="+strconv.FormatBool(strict), func(t *testing.T) {
			d := start(t, sim.Config{StrictNC: strict})
			c := newClient(t, d)
			ch := c.challengeFor(devInfo, "MD5")
			for _, nc := range []int{1, 2, 5} {
				if status, _, _ := c.do("GET", devInfo, digestAuthorization(ch, "GET", devInfo, "admin", "hik12345", nc)); status != 200 {
					t.Fatalf("nc=%d: status %d, want 200", nc, status)
				}
			}
			// replay of a used nc
			if status, _, _ := c.do("GET", devInfo, digestAuthorization(ch, "GET", devInfo, "admin", "hik12345", 2)); status != 401 {
				t.Fatalf("replayed nc=2: status %d, want 401", status)
			}
			// an unused nc below the highest: accepted unless strict
			status, _, _ := c.do("GET", devInfo, digestAuthorization(ch, "GET", devInfo, "admin", "hik12345", 4))
			if want := map[bool]int{false: 200, true: 401}[strict]; status != want {
				t.Fatalf("out-of-order nc=4: status %d, want %d", status, want)
			}
			cs := d.Client("127.0.0.1")
			if cs.FailedLogins != 0 || cs.RejectedAuth == 0 {
				t.Fatalf("stats %+v: replays must be rejected without counting as failed logins", cs)
			}
			if _, _, retries := d.LockStatus("127.0.0.1"); retries != 5 {
				t.Fatalf("retries left %d after replays, want 5", retries)
			}
		})
	}
}

func TestBasicOnlyAndDigestBasic(t *testing.T) {
	t.Run("basic", func(t *testing.T) {
		d := start(t, sim.Config{Auth: sim.AuthBasic})
		c := newClient(t, d)
		_, h, _ := c.do("GET", devInfo, "")
		if www := h.Values("WWW-Authenticate"); len(www) != 1 || www[0] != `Basic realm="IP Camera(K2195)"` {
			t.Fatalf("challenge %q, want only Basic", www)
		}
		if status, _, _ := c.do("GET", devInfo, basicAuthorization("admin", "hik12345")); status != 200 {
			t.Fatalf("basic login: status %d", status)
		}
		status, _, body := c.do("GET", devInfo, basicAuthorization("admin", "nope"))
		if status != 401 {
			t.Fatalf("wrong basic: status %d", status)
		}
		wantLock(t, body, "unlock", 0, 4)
		// a digest answer to a Basic-only device is just challenged again, not counted
		fake := challenge{scheme: "Digest", params: map[string]string{"realm": "IP Camera(K2195)", "nonce": "00", "algorithm": "MD5"}}
		status, _, body = c.do("GET", devInfo, digestAuthorization(fake, "GET", devInfo, "admin", "nope", 1))
		if status != 401 {
			t.Fatalf("digest to basic-only: status %d", status)
		}
		wantLock(t, body, "unlock", 0, 4)
	})
	t.Run("digest ignores basic", func(t *testing.T) {
		d := start(t, sim.Config{})
		c := newClient(t, d)
		status, _, body := c.do("GET", devInfo, basicAuthorization("admin", "hik12345"))
		if status != 401 {
			t.Fatalf("Basic-first on a digest device: status %d, want 401", status)
		}
		wantLock(t, body, "unlock", 0, 5)
	})
	t.Run("digest/basic", func(t *testing.T) {
		d := start(t, sim.Config{Auth: sim.AuthDigestBasic})
		c := newClient(t, d)
		_, h, _ := c.do("GET", devInfo, "")
		www := h.Values("WWW-Authenticate")
		if len(www) != 2 || !strings.HasPrefix(www[0], "Digest ") || !strings.HasPrefix(www[1], "Basic ") {
			t.Fatalf("challenge %q, want Digest then Basic", www)
		}
		if status, _, _ := c.do("GET", devInfo, basicAuthorization("admin", "hik12345")); status != 200 {
			t.Fatalf("basic login: status %d", status)
		}
		if status, _ := c.login(devInfo, "admin", "hik12345"); status != 200 {
			t.Fatalf("digest login: status %d", status)
		}
	})
}

func TestStaleNonce(t *testing.T) {
	clock := newFakeClock()
	d := start(t, sim.Config{NonceLifetime: time.Minute, Now: clock.Now})
	c := newClient(t, d)
	ch := c.challengeFor(devInfo, "MD5")
	if status, _, _ := c.do("GET", devInfo, digestAuthorization(ch, "GET", devInfo, "admin", "hik12345", 1)); status != 200 {
		t.Fatalf("fresh nonce: status %d", status)
	}
	clock.Add(61 * time.Second)
	status, h, body := c.do("GET", devInfo, digestAuthorization(ch, "GET", devInfo, "admin", "hik12345", 2))
	if status != 401 {
		t.Fatalf("expired nonce: status %d, want 401", status)
	}
	st := parseChallenge(t, h.Get("WWW-Authenticate"))
	if st.params["stale"] != "TRUE" || st.params["nonce"] == ch.params["nonce"] {
		t.Fatalf("stale challenge %q: want stale=TRUE and a new nonce", st.raw)
	}
	wantLock(t, body, "unlock", 0, 5) // not a failed login
	if status, _, _ := c.do("GET", devInfo, digestAuthorization(st, "GET", devInfo, "admin", "hik12345", 1)); status != 200 {
		t.Fatalf("answer to the stale challenge: status %d", status)
	}
	// a wrong password on an expired nonce is a failed login, not stale
	clock.Add(61 * time.Second)
	status, h, body = c.do("GET", devInfo, digestAuthorization(st, "GET", devInfo, "admin", "bad", 2))
	if status != 401 || parseChallenge(t, h.Get("WWW-Authenticate")).params["stale"] != "FALSE" {
		t.Fatalf("wrong password on expired nonce: status %d challenge %q", status, h.Get("WWW-Authenticate"))
	}
	wantLock(t, body, "unlock", 0, 4)
	cs := d.Client("127.0.0.1")
	if cs.StaleNonces != 1 || cs.FailedLogins != 1 || cs.GoodLogins != 2 {
		t.Fatalf("stats %+v: want 1 stale, 1 failed, 2 good", cs)
	}
}

func TestStaleAsInvalidOperation(t *testing.T) {
	clock := newFakeClock()
	d := start(t, sim.Config{NonceLifetime: time.Minute, Now: clock.Now, StaleResponse: sim.StaleInvalidOperation})
	c := newClient(t, d)
	ch := c.challengeFor(devInfo, "MD5")
	clock.Add(2 * time.Minute)
	status, h, body := c.do("GET", devInfo, digestAuthorization(ch, "GET", devInfo, "admin", "hik12345", 1))
	rs := decode[responseStatus](t, body)
	if status != 401 || rs.XMLName.Local != "ResponseStatus" || rs.StatusCode != 4 || rs.SubStatusCode != "invalidOperation" {
		t.Fatalf("status %d body %s: want 401 ResponseStatus 4 invalidOperation", status, body)
	}
	if parseChallenge(t, h.Get("WWW-Authenticate")).params["stale"] != "FALSE" {
		t.Fatalf("challenge %q: want stale=FALSE", h.Get("WWW-Authenticate"))
	}
	if _, _, retries := d.LockStatus("127.0.0.1"); retries != 5 {
		t.Fatalf("retries %d, want 5 (stale is not a failed login)", retries)
	}
}

func TestLoginLock(t *testing.T) {
	clock := newFakeClock()
	d := start(t, sim.Config{MaxFailures: 3, LockDuration: 10 * time.Minute, Now: clock.Now})
	c := newClient(t, d)

	// credential-less requests never count
	for i := 0; i < 10; i++ {
		_, _, body := c.do("GET", devInfo, "")
		wantLock(t, body, "unlock", 0, 3)
	}
	// a good login resets the count
	if status, _ := c.login(devInfo, "admin", "wrong"); status != 401 {
		t.Fatalf("wrong password: status %d", status)
	}
	if status, _ := c.login(devInfo, "admin", "hik12345"); status != 200 {
		t.Fatalf("good login: status %d", status)
	}
	if _, _, retries := d.LockStatus("127.0.0.1"); retries != 3 {
		t.Fatalf("retries after a good login: %d, want 3", retries)
	}
	// exact countdown
	for want := 2; want >= 1; want-- {
		status, body := c.login(devInfo, "admin", "wrong")
		if status != 401 {
			t.Fatalf("wrong password: status %d", status)
		}
		wantLock(t, body, "unlock", 0, want)
	}
	_, body := c.login(devInfo, "unknown-user", "x") // unknown users count too
	wantLock(t, body, "lock", 600, 0)

	// locked: even the right password gets 401 lock, and nothing counts further
	clock.Add(100 * time.Second)
	status, body := c.login(devInfo, "admin", "hik12345")
	if status != 401 {
		t.Fatalf("right password while locked: status %d", status)
	}
	wantLock(t, body, "lock", 500, 0)
	_, _, body = c.do("GET", devInfo, "")
	wantLock(t, body, "lock", 500, 0)
	clock.Add(499*time.Second + 500*time.Millisecond)
	_, _, body = c.do("GET", devInfo, "")
	wantLock(t, body, "lock", 1, 0) // seconds left round up
	clock.Add(time.Second)
	if status, _ := c.login(devInfo, "admin", "hik12345"); status != 200 {
		t.Fatalf("after the lock expired: status %d", status)
	}
	cs := d.Client("127.0.0.1")
	if cs.LockEvents != 1 || cs.FailedLogins != 4 || cs.LockedRejects != 4 || cs.GoodLogins != 2 {
		t.Fatalf("stats %+v: want 1 lock event, 4 failed, 4 locked rejects (login = 2 requests), 2 good", cs)
	}
}

func TestLockDisabled(t *testing.T) {
	d := start(t, sim.Config{LockDisabled: true, MaxFailures: 2})
	c := newClient(t, d)
	for i := 0; i < 4; i++ {
		c.login(devInfo, "admin", "wrong")
	}
	if status, _ := c.login(devInfo, "admin", "hik12345"); status != 200 {
		t.Fatalf("lock disabled but login refused: %d", status)
	}
}

func TestUsersAndSetPassword(t *testing.T) {
	d := start(t, sim.Config{Users: map[string]string{"admin": "a1", "viewer": "v1"}})
	c := newClient(t, d)
	if status, _ := c.login(devInfo, "viewer", "v1"); status != 200 {
		t.Fatalf("viewer: %d", status)
	}
	if err := d.SetPassword("admin", "n3w"); err != nil {
		t.Fatal(err)
	}
	if status, _ := c.login(devInfo, "admin", "a1"); status != 401 {
		t.Fatalf("old password after change: %d, want 401", status)
	}
	if status, _ := c.login(devInfo, "admin", "n3w"); status != 200 {
		t.Fatalf("new password: %d", status)
	}
	if err := d.SetPassword("viewer", ""); err != nil {
		t.Fatal(err)
	}
	if status, _ := c.login(devInfo, "viewer", "v1"); status != 401 {
		t.Fatalf("removed user: %d, want 401", status)
	}
	if err := d.SetPassword("", "x"); err == nil {
		t.Fatal("SetPassword with empty user: no error")
	}
}
