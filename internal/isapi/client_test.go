package isapi_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// start serves d over plain HTTP and returns a client for it.
func start(t *testing.T, d *fakeDevice, mod func(*isapi.Config)) (*isapi.Client, *httptest.Server) {
	t.Helper()
	srv := httptest.NewServer(d)
	t.Cleanup(srv.Close)
	cfg := isapi.Config{Host: strings.TrimPrefix(srv.URL, "http://"), Username: d.user, Password: d.pass}
	if mod != nil {
		mod(&cfg)
	}
	c, err := isapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, srv
}

// noSecret fails if the error text carries any password the tests use.
func noSecret(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, p := range []string{"Secret#Pa55", "wrong-Pa55word"} {
		if strings.Contains(err.Error(), p) {
			t.Fatalf("error text carries the password: %q", err)
		}
	}
}

func TestOneChallengeForManyRequests(t *testing.T) {
	for _, hexTS := range []bool{false, true} {
		t.Run(fmt.Sprintf("hexTSNonce=%v", hexTS), func(t *testing.T) {
			d := newFakeDevice(t)
			d.hexTSNonce = hexTS
			d.handle("/ISAPI/System/deviceInfo", serveFile(t, 200, "deviceInfo_camera.xml"))
			c, _ := start(t, d, nil)
			const n = 5
			for i := 0; i < n; i++ {
				di, err := c.DeviceInfo(ctxT(t))
				if err != nil {
					t.Fatal(err)
				}
				if di.Model != "DS-2CD2143G2-I" {
					t.Fatalf("model %q", di.Model)
				}
			}
			ch, wrong, stale, reqs := d.counts()
			if ch != 1 || wrong != 0 || stale != 0 || reqs != n+1 {
				t.Fatalf("challenges %d wrong %d stale %d requests %d; want 1 0 0 %d", ch, wrong, stale, reqs, n+1)
			}
			d.mu.Lock()
			defer d.mu.Unlock()
			if len(d.ncs) != 1 {
				t.Fatalf("nonces used: %d", len(d.ncs))
			}
			for _, ncs := range d.ncs {
				for i, nc := range ncs {
					if nc != i+1 {
						t.Fatalf("nc sequence %v, want 1..%d", ncs, n)
					}
				}
			}
		})
	}
}

func TestConcurrentRequestsShareOneChallenge(t *testing.T) {
	d := newFakeDevice(t)
	d.handle("/ISAPI/System/deviceInfo", serveFile(t, 200, "deviceInfo_camera.xml"))
	c, _ := start(t, d, nil)
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.DeviceInfo(ctxT(t))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	ch, wrong, _, _ := d.counts()
	if ch != 1 || wrong != 0 {
		t.Fatalf("challenges %d wrong %d; want 1 0", ch, wrong)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, ncs := range d.ncs {
		if len(ncs) != n {
			t.Fatalf("nc values %v, want %d distinct", ncs, n)
		}
	}
}

func TestSHA256PreferredOverMD5(t *testing.T) {
	cases := map[string][]string{
		"two headers MD5 first": {
			`Digest qop="auth", realm="IP Camera(K2195)", nonce="%s", stale="FALSE", opaque="", algorithm="MD5"`,
			`Digest qop="auth", realm="IP Camera(K2195)", nonce="%s", stale="FALSE", opaque="", algorithm="SHA-256"`,
		},
		"one header, unquoted params": {
			`Digest realm="IP Camera(K2195)", qop=auth, nonce="%s", opaque="", algorithm=MD5, Digest realm="IP Camera(K2195)", qop="auth", nonce="%s", opaque="", algorithm=SHA-256`,
		},
		"SHA-256 first then MD5": {
			`Digest qop="auth", realm="IP Camera(K2195)", nonce="%s", opaque="", algorithm="SHA-256"`,
			`Digest qop="auth", realm="IP Camera(K2195)", nonce="%s", opaque="", algorithm="MD5"`,
		},
	}
	for name, offers := range cases {
		t.Run(name, func(t *testing.T) {
			d := newFakeDevice(t)
			d.offers = offers
			d.handle("/ISAPI/System/deviceInfo", serveFile(t, 200, "deviceInfo_camera.xml"))
			c, _ := start(t, d, nil)
			for i := 0; i < 2; i++ {
				if _, err := c.DeviceInfo(ctxT(t)); err != nil {
					t.Fatal(err)
				}
			}
			d.mu.Lock()
			defer d.mu.Unlock()
			if len(d.algorithms) != 2 || d.algorithms[0] != "SHA-256" || d.algorithms[1] != "SHA-256" {
				t.Fatalf("algorithms answered %v, want SHA-256 twice", d.algorithms)
			}
		})
	}
}

func TestMD5SessTolerated(t *testing.T) {
	d := newFakeDevice(t)
	d.offers = []string{`Digest realm="IP Camera(K2195)", nonce="%s", qop="auth", opaque="", algorithm=MD5-sess`}
	d.handle("/ISAPI/System/deviceInfo", serveFile(t, 200, "deviceInfo_camera.xml"))
	c, _ := start(t, d, nil)
	if _, err := c.DeviceInfo(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if _, wrong, _, _ := d.counts(); wrong != 0 {
		t.Fatalf("wrong answers %d", wrong)
	}
}

func TestStaleRechallengesOnce(t *testing.T) {
	d := newFakeDevice(t)
	d.handle("/ISAPI/System/deviceInfo", serveFile(t, 200, "deviceInfo_camera.xml"))
	c, _ := start(t, d, nil)
	if _, err := c.DeviceInfo(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	d.staleNext = true
	d.mu.Unlock()
	if _, err := c.DeviceInfo(ctxT(t)); err != nil {
		t.Fatalf("after stale: %v", err)
	}
	ch, wrong, stale, reqs := d.counts()
	// 1 challenge + 1 answer, then cached answer → 401 stale → answer new nonce
	if ch != 1 || wrong != 0 || stale != 1 || reqs != 4 {
		t.Fatalf("challenges %d wrong %d stale %d requests %d; want 1 0 1 4", ch, wrong, stale, reqs)
	}
	// the new nonce is then reused with a growing count
	if _, err := c.DeviceInfo(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if got := d.ncs[d.nonce]; len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Fatalf("nc on the new nonce %v, want [1 2]", got)
	}
}

func TestInvalidOperationRechallengesOnce(t *testing.T) {
	d := newFakeDevice(t)
	d.handle("/ISAPI/System/deviceInfo", serveFile(t, 200, "deviceInfo_camera.xml"))
	c, _ := start(t, d, nil)
	if _, err := c.DeviceInfo(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	d.invalidOpNext = true
	d.mu.Unlock()
	if _, err := c.DeviceInfo(ctxT(t)); err != nil {
		t.Fatalf("after invalidOperation: %v", err)
	}
	ch, wrong, _, reqs := d.counts()
	if ch != 2 || wrong != 0 || reqs != 5 {
		t.Fatalf("challenges %d wrong %d requests %d; want 2 0 5", ch, wrong, reqs)
	}
	// a device that keeps answering invalidOperation gets exactly one retry
	d.handle("/ISAPI/System/TwoWayAudio/channels/1/open", serveFile(t, 200, "responseStatus_invalidOperation.xml"))
	_, err := c.TalkOpen(ctxT(t), "1")
	var se *isapi.StatusError
	if !errors.As(err, &se) || se.SubStatusCode != "invalidOperation" || se.StatusCode != 4 {
		t.Fatalf("TalkOpen error %v, want StatusError invalidOperation", err)
	}
	_, _, _, reqs2 := d.counts()
	if reqs2-reqs != 3 { // cached answer, challenge, fresh answer
		t.Fatalf("requests for one call: %d, want 3", reqs2-reqs)
	}
}

func TestWrongPasswordIsOneFailedLogin(t *testing.T) {
	d := newFakeDevice(t)
	d.handle("/ISAPI/System/deviceInfo", serveFile(t, 200, "deviceInfo_camera.xml"))
	c, _ := start(t, d, func(cfg *isapi.Config) { cfg.Password = "wrong-Pa55word" })
	_, err := c.DeviceInfo(ctxT(t))
	noSecret(t, err)
	var ae *isapi.AuthError
	if !errors.As(err, &ae) {
		t.Fatalf("error %v (%T), want *AuthError", err, err)
	}
	if !errors.Is(err, isapi.ErrUnauthorized) || errors.Is(err, isapi.ErrLocked) {
		t.Fatalf("errors.Is mismatch: %v", err)
	}
	if ae.RetryLoginTime != 4 || ae.Locked || ae.Method != "GET" || ae.Path != "/ISAPI/System/deviceInfo" {
		t.Fatalf("AuthError %+v, want RetryLoginTime 4 unlocked GET deviceInfo", *ae)
	}
	ch, wrong, _, reqs := d.counts()
	if ch != 1 || wrong != 1 || reqs != 2 {
		t.Fatalf("challenges %d wrong %d requests %d; want 1 1 2 (no retry)", ch, wrong, reqs)
	}
}

func TestRefusedLoginBodies(t *testing.T) {
	cases := []struct {
		fixture  string
		locked   bool
		unlock   time.Duration
		retry    int
		sentinel error
	}{
		{"userCheck_lock.xml", true, 1796 * time.Second, 0, isapi.ErrLocked},
		{"userCheck_locked.xml", true, 598 * time.Second, -1, isapi.ErrLocked},
		{"userCheck_unlock.xml", false, 0, 4, isapi.ErrUnauthorized},
		{"userCheck_bare.xml", false, 0, -1, isapi.ErrUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.fixture, func(t *testing.T) {
			d := newFakeDevice(t)
			d.wrongBody = string(fixture(t, tc.fixture))
			c, _ := start(t, d, func(cfg *isapi.Config) { cfg.Password = "wrong-Pa55word" })
			err := c.UserCheck(ctxT(t))
			noSecret(t, err)
			var ae *isapi.AuthError
			if !errors.As(err, &ae) || !errors.Is(err, tc.sentinel) {
				t.Fatalf("error %v, want AuthError matching %v", err, tc.sentinel)
			}
			if ae.Locked != tc.locked || ae.UnlockTime != tc.unlock || ae.RetryLoginTime != tc.retry {
				t.Fatalf("AuthError %+v, want locked %v unlock %v retry %d", *ae, tc.locked, tc.unlock, tc.retry)
			}
		})
	}
}

func TestBasicOnlyWhenOnlyOffered(t *testing.T) {
	t.Run("basic only", func(t *testing.T) {
		d := newFakeDevice(t)
		d.offers = []string{`Basic realm="DS-2CD2132"`}
		d.handle("/ISAPI/System/deviceInfo", serveFile(t, 200, "deviceInfo_camera.xml"))
		c, _ := start(t, d, nil)
		if s := c.AuthScheme(); s != "" {
			t.Fatalf("AuthScheme before a login: %q", s)
		}
		for i := 0; i < 3; i++ {
			if _, err := c.DeviceInfo(ctxT(t)); err != nil {
				t.Fatal(err)
			}
		}
		if s := c.AuthScheme(); s != "Basic" {
			t.Fatalf("AuthScheme %q, want Basic", s)
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.basicOK != 3 || d.challenges != 1 || d.wrongAnswers != 0 {
			t.Fatalf("basic answers %d challenges %d wrong %d; want 3 1 0", d.basicOK, d.challenges, d.wrongAnswers)
		}
	})
	t.Run("basic and digest offered", func(t *testing.T) {
		d := newFakeDevice(t)
		d.offers = []string{`Basic realm="IP Camera(K2195)"`,
			`Digest qop="auth", realm="IP Camera(K2195)", nonce="%s", opaque="", algorithm="MD5"`}
		d.handle("/ISAPI/System/deviceInfo", serveFile(t, 200, "deviceInfo_camera.xml"))
		c, _ := start(t, d, nil)
		if _, err := c.DeviceInfo(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		if s := c.AuthScheme(); s != "Digest" {
			t.Fatalf("AuthScheme %q, want Digest", s)
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.basicOK != 0 || len(d.algorithms) != 1 {
			t.Fatalf("basic answers %d digest answers %d; want 0 1", d.basicOK, len(d.algorithms))
		}
	})
	t.Run("wrong basic password", func(t *testing.T) {
		d := newFakeDevice(t)
		d.offers = []string{`Basic realm="DS-2CD2132"`}
		c, _ := start(t, d, func(cfg *isapi.Config) { cfg.Password = "wrong-Pa55word" })
		_, err := c.DeviceInfo(ctxT(t))
		noSecret(t, err)
		if !errors.Is(err, isapi.ErrUnauthorized) {
			t.Fatalf("error %v, want ErrUnauthorized", err)
		}
		if s := c.AuthScheme(); s != "" {
			t.Fatalf("AuthScheme after a refused login: %q, want none", s)
		}
		if _, wrong, _, _ := d.counts(); wrong != 1 {
			t.Fatalf("wrong answers %d, want 1", wrong)
		}
	})
}

func TestStatusErrors(t *testing.T) {
	cases := []struct {
		status   int
		fixture  string
		code     int
		sub      string
		sentinel error
	}{
		{200, "responseStatus_deviceBusy.xml", 2, "deviceBusy", isapi.ErrDeviceBusy},
		{403, "responseStatus_notSupport.xml", 4, "notSupport", isapi.ErrNotSupported},
		{200, "responseStatus_invalidOperation.xml", 4, "invalidOperation", nil},
		{400, "responseStatus_badXmlContent.xml", 6, "badXmlContent", nil},
		{200, "deviceInfo_notActivated.xml", 4, "notActivated", isapi.ErrNotActivated},
	}
	for _, tc := range cases {
		t.Run(tc.fixture, func(t *testing.T) {
			d := newFakeDevice(t)
			d.handle("/ISAPI/Streaming/channels/101", serveFile(t, tc.status, tc.fixture))
			c, _ := start(t, d, nil)
			_, err := c.StreamingChannel(ctxT(t), 101)
			noSecret(t, err)
			var se *isapi.StatusError
			if !errors.As(err, &se) {
				t.Fatalf("error %v (%T), want *StatusError", err, err)
			}
			if se.HTTPStatus != tc.status || se.StatusCode != tc.code || se.SubStatusCode != tc.sub {
				t.Fatalf("StatusError %+v, want HTTP %d code %d sub %s", *se, tc.status, tc.code, tc.sub)
			}
			if tc.sentinel != nil && !errors.Is(err, tc.sentinel) {
				t.Fatalf("error %v does not match %v", err, tc.sentinel)
			}
			if !strings.HasPrefix(err.Error(), "isapi GET /ISAPI/Streaming/channels/101: ") {
				t.Fatalf("error text %q lacks method and path", err)
			}
		})
	}
	t.Run("plain 404", func(t *testing.T) {
		d := newFakeDevice(t)
		c, _ := start(t, d, nil)
		status, _, err := c.Do(ctxT(t), "GET", "/ISAPI/Nothing", nil)
		var se *isapi.StatusError
		if !errors.As(err, &se) || se.HTTPStatus != 404 || status != 404 {
			t.Fatalf("Do: status %d err %v, want StatusError 404", status, err)
		}
	})
}

func TestBodyCap(t *testing.T) {
	const max = 1024
	d := newFakeDevice(t)
	d.handle("/exact", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(make([]byte, max)) })
	d.handle("/over", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(make([]byte, max+1)) })
	d.handle("/ISAPI/Security/userCheck", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(make([]byte, 10*max))
	})
	c, _ := start(t, d, func(cfg *isapi.Config) { cfg.MaxBodyBytes = max })
	if _, b, err := c.Do(ctxT(t), "GET", "/exact", nil); err != nil || len(b) != max {
		t.Fatalf("at the cap: %d bytes, %v", len(b), err)
	}
	_, _, err := c.Do(ctxT(t), "GET", "/over", nil)
	if !errors.Is(err, isapi.ErrTooLarge) || !strings.HasPrefix(err.Error(), "isapi GET /over: ") {
		t.Fatalf("over the cap: %v, want ErrTooLarge wrapped with method and path", err)
	}
	if err := c.UserCheck(ctxT(t)); !errors.Is(err, isapi.ErrTooLarge) {
		t.Fatalf("UserCheck: %v, want ErrTooLarge", err)
	}
}

func TestRequestTimeout(t *testing.T) {
	d := newFakeDevice(t)
	release := make(chan struct{})
	d.handle("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	c, _ := start(t, d, func(cfg *isapi.Config) { cfg.Timeout = 200 * time.Millisecond })
	defer close(release)
	_, _, err := c.Do(ctxT(t), "GET", "/slow", nil)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("slow device: %v, want a timeout", err)
	}
}

func TestRedirectToOtherHostNotFollowed(t *testing.T) {
	var otherHits int
	var mu sync.Mutex
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		otherHits++
		mu.Unlock()
	}))
	defer other.Close()
	d := newFakeDevice(t)
	d.handle("/ISAPI/System/deviceInfo", func(w http.ResponseWriter, r *http.Request) {
		u := strings.Replace(other.URL, "http://", "http://admin:hunter2@", 1)
		http.Redirect(w, r, u+"/ISAPI/System/deviceInfo", http.StatusFound)
	})
	c, _ := start(t, d, nil)
	_, err := c.DeviceInfo(ctxT(t))
	noSecret(t, err)
	if err != nil && strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("redirect credentials in error: %q", err)
	}
	var se *isapi.StatusError
	if !errors.As(err, &se) || se.HTTPStatus != http.StatusFound {
		t.Fatalf("error %v, want StatusError 302", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if otherHits != 0 {
		t.Fatalf("redirect followed to the other host (%d hits)", otherHits)
	}
}

func TestTLS(t *testing.T) {
	d := newFakeDevice(t)
	d.handle("/ISAPI/System/deviceInfo", serveFile(t, 200, "deviceInfo_camera.xml"))
	srv := httptest.NewTLSServer(d)
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "https://")
	sum := sha256.Sum256(srv.Certificate().Raw)
	right := hex.EncodeToString(sum[:])
	var colons []string
	for i := 0; i < len(right); i += 2 {
		colons = append(colons, strings.ToUpper(right[i:i+2]))
	}
	wrongSum := sha256.Sum256([]byte("another certificate"))
	wrong := hex.EncodeToString(wrongSum[:])

	try := func(cfg isapi.Config) error {
		cfg.Host, cfg.HTTPS, cfg.Username, cfg.Password = host, true, d.user, d.pass
		c, err := isapi.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, err = c.DeviceInfo(ctxT(t))
		noSecret(t, err)
		return err
	}
	if err := try(isapi.Config{}); err == nil {
		t.Fatal("self-signed certificate accepted without skip-verify or pin")
	}
	if err := try(isapi.Config{InsecureSkipVerify: true}); err != nil {
		t.Fatalf("skip-verify: %v", err)
	}
	if err := try(isapi.Config{CertSHA256: right}); err != nil {
		t.Fatalf("right pin: %v", err)
	}
	if err := try(isapi.Config{CertSHA256: strings.Join(colons, ":")}); err != nil {
		t.Fatalf("right pin with colons: %v", err)
	}
	_, _, _, before := d.counts()
	err := try(isapi.Config{CertSHA256: wrong})
	var pe *isapi.CertPinError
	if !errors.As(err, &pe) || pe.Got != right {
		t.Fatalf("wrong pin: %v, want CertPinError naming the presented certificate", err)
	}
	if _, _, _, after := d.counts(); after != before {
		t.Fatalf("a request reached the device through a refused certificate")
	}
	if _, err := isapi.New(isapi.Config{Host: host, Username: "admin", CertSHA256: "abcd"}); err == nil {
		t.Fatal("short pin accepted")
	}
}

func TestNewValidates(t *testing.T) {
	for _, cfg := range []isapi.Config{
		{Host: "", Username: "admin"},
		{Host: "192.0.2.1", Username: ""},
		{Host: "admin:Secret#Pa55@192.0.2.1", Username: "admin"},
		{Host: "192.0.2.1:99999", Username: "admin"},
		{Host: "http://192.0.2.1", Username: "admin"},
	} {
		_, err := isapi.New(cfg)
		if err == nil {
			t.Fatalf("config %+v accepted", cfg)
		}
		noSecret(t, err)
	}
	for host, want := range map[string]string{
		"192.0.2.1": "192.0.2.1:80", "192.0.2.1:8080": "192.0.2.1:8080", "[2001:db8::1]": "[2001:db8::1]:80",
		"cam.local": "cam.local:80",
	} {
		c, err := isapi.New(isapi.Config{Host: host, Username: "admin"})
		if err != nil || c.Host() != want {
			t.Fatalf("host %q: %v %v, want %s", host, c, err, want)
		}
	}
	c, err := isapi.New(isapi.Config{Host: "192.0.2.1", HTTPS: true, Username: "admin"})
	if err != nil || c.Host() != "192.0.2.1:443" {
		t.Fatalf("https default port: %v", err)
	}
}

// waitGoroutines polls until the goroutine count is back to base.
func waitGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			n := runtime.Stack(buf, true)
			t.Fatalf("goroutines %d > baseline %d:\n%s", runtime.NumGoroutine(), base, buf[:n])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestConcurrentStaleIsNotAFailedLogin(t *testing.T) {
	d := newFakeDevice(t)
	d.handle("/ISAPI/System/deviceInfo", serveFile(t, 200, "deviceInfo_camera.xml"))
	c, _ := start(t, d, nil)
	if _, err := c.DeviceInfo(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	d.staleNext = true
	d.mu.Unlock()
	const n = 8
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.DeviceInfo(ctxT(t))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("after stale: %v", err)
		}
	}
	ch, wrong, stale, _ := d.counts()
	if ch != 1 || wrong != 0 || stale == 0 {
		t.Fatalf("challenges %d wrong %d stale %d; want 1 0 >0", ch, wrong, stale)
	}
}
