package isapi_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/testclock"
)

// newSimClock is a settable clock for the simulator's nonce lifetimes.
func newSimClock() *testclock.Clock { return testclock.New(time.Unix(1_700_000_000, 0)) }

// Firmware that tells an expired nonce with a 401 whose body is a
// ResponseStatus invalidOperation (and whose new challenge says
// stale=FALSE): every kind of request answers the new challenge, and none
// reads the 401 as a refused password.
func TestExpiredNonceAsInvalidOperation401Sim(t *testing.T) {
	clock := newSimClock()
	d, c := startSim(t, sim.Config{NonceLifetime: time.Minute, Now: clock.Now, StaleResponse: sim.StaleInvalidOperation})
	if _, err := c.DeviceInfo(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	clock.Add(2 * time.Minute)
	if _, err := c.DeviceInfo(ctxT(t)); err != nil {
		t.Fatalf("Do after the nonce expired: %v", err)
	}
	clock.Add(2 * time.Minute)
	resp, err := c.OpenStream(ctxT(t), alertStreamPath)
	if err != nil {
		t.Fatalf("OpenStream after the nonce expired: %v", err)
	}
	resp.Body.Close()
	cs := d.Client("127.0.0.1")
	if cs.FailedLogins != 0 || cs.StaleNonces != 2 {
		t.Fatalf("failed %d stale %d; want 0 failed logins and 2 expired nonces", cs.FailedLogins, cs.StaleNonces)
	}
}

// A nonce that expires between the talk's login and its audioData request
// (which cannot be sent again: audio follows the headers) ends the talk
// with ErrNonceRefused, never as a refused password, in either expired-nonce
// style; the next request logs in afresh.
func TestTalkAudioExpiredNonceSim(t *testing.T) {
	for _, style := range []string{"", sim.StaleInvalidOperation} {
		t.Run("stale="+style, func(t *testing.T) {
			clock := newSimClock()
			d, c := startSim(t, sim.Config{NonceLifetime: time.Minute, Now: clock.Now, StaleResponse: style})
			sid, err := c.TalkOpen(ctxT(t), "1")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.TalkClose(ctxT(t), "1") })
			clock.Add(2 * time.Minute)
			w, err := c.TalkAudioData(ctxT(t), "1", sid)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			err = writeUntilAnswer(t, w)
			if !errors.Is(err, isapi.ErrNonceRefused) || !errors.Is(err, isapi.ErrTalkEnded) || isAuthRefusal(err) {
				t.Fatalf("audio write: %v; want ErrNonceRefused and ErrTalkEnded, not a refused password", err)
			}
			if _, err := c.DeviceInfo(ctxT(t)); err != nil {
				t.Fatalf("request after the refused talk: %v", err)
			}
			if cs := d.Client("127.0.0.1"); cs.FailedLogins != 0 || cs.StaleNonces != 1 || cs.Challenges != 2 {
				t.Fatalf("failed %d stale %d challenges %d; want 0, 1 and 2 (the next request logged in afresh)",
					cs.FailedLogins, cs.StaleNonces, cs.Challenges)
			}
		})
	}
}

// writeUntilAnswer writes silence until the writer reports the device's
// answer (polled with a deadline: the answer arrives on the writer's own
// reader goroutine).
func writeUntilAnswer(t *testing.T, w interface{ Write([]byte) (int, error) }) error {
	t.Helper()
	chunk := []byte(strings.Repeat("\xff", 160))
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := w.Write(chunk); err != nil {
			return err
		}
		time.Sleep(5 * time.Millisecond) // polling with a deadline
	}
	t.Fatal("the device's answer to audioData never showed within 10 s")
	return nil
}

// A device that calls the nonce outdated again after the client answered
// its new challenge (the fresh nonce expired on its way, as under a tiny
// lifetime and a slow client): the client stops after one more try, with
// ErrNonceRefused, never a refused password — for Do and for OpenStream.
func TestStaleAgainIsNotRefusedPassword(t *testing.T) {
	d := newFakeDevice(t)
	var mu sync.Mutex
	expireAll := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		on := expireAll
		mu.Unlock()
		if on && r.Header.Get("Authorization") != "" {
			d.mu.Lock()
			d.staleNext = true // every nonce issued so far is outdated
			d.mu.Unlock()
		}
		d.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	ok := func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }
	d.handle("/ISAPI/System/deviceInfo", ok)
	d.handle(isapi.PathUserCheck, ok)
	d.handle(alertStreamPath, ok)
	c, err := isapi.New(isapi.Config{Host: strings.TrimPrefix(srv.URL, "http://"), Username: d.user, Password: d.pass, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if _, _, err := c.Do(ctxT(t), http.MethodGet, "/ISAPI/System/deviceInfo", nil); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	expireAll = true
	mu.Unlock()
	_, _, err = c.Do(ctxT(t), http.MethodGet, "/ISAPI/System/deviceInfo", nil)
	if !errors.Is(err, isapi.ErrNonceRefused) || isAuthRefusal(err) {
		t.Fatalf("Do: %v; want ErrNonceRefused, not a refused password", err)
	}
	_, wrong, stale, _ := d.counts()
	if wrong != 0 || stale != 3 {
		t.Fatalf("Do: wrong %d stale %d; want 0 wrong answers, 3 stale ones (cached, new, newer)", wrong, stale)
	}
	_, err = c.OpenStream(ctxT(t), alertStreamPath)
	if !errors.Is(err, isapi.ErrNonceRefused) || isAuthRefusal(err) {
		t.Fatalf("OpenStream: %v; want ErrNonceRefused, not a refused password", err)
	}
	if _, wrong, _, _ := d.counts(); wrong != 0 {
		t.Fatalf("OpenStream: %d wrong answers", wrong)
	}
}

// A device that checks nonce counts refuses one that arrives after a higher
// one (requests share the cached nonce on parallel connections) with a
// plain 401 that it does not count: its userCheck shows the full tries. The
// alert stream, refused that way, answers the new challenge itself and
// opens; it never reports a refused password.
func TestStreamNonceCountRefusedUncounted(t *testing.T) {
	d := newFakeDevice(t)
	full := []byte(`<userCheck version="2.0" xmlns="http://www.hikvision.com/ver20/XMLSchema"><statusValue>401</statusValue>` +
		`<statusString>Unauthorized</statusString><lockStatus>unlock</lockStatus><unlockTime>0</unlockTime><retryLoginTime>5</retryLoginTime></userCheck>`)
	var mu sync.Mutex
	refused := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		authz := r.Header.Get("Authorization")
		mu.Lock()
		refuse := authz == "" || (r.URL.Path == alertStreamPath && refused == 0)
		if refuse && authz != "" {
			refused++
		}
		mu.Unlock()
		if refuse {
			// a challenge with the full tries, to a request without
			// credentials or to the stream's late nonce count
			d.mu.Lock()
			d.challengeLocked(w, false)
			d.mu.Unlock()
			d.unauthorized(w, full)
			return
		}
		d.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	ok := func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }
	d.handle("/warm", ok)
	d.handle(alertStreamPath, ok)
	c, err := isapi.New(isapi.Config{Host: strings.TrimPrefix(srv.URL, "http://"), Username: d.user, Password: d.pass, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if _, _, err := c.Do(ctxT(t), http.MethodGet, "/warm", nil); err != nil {
		t.Fatal(err)
	}
	resp, err := c.OpenStream(ctxT(t), alertStreamPath)
	if err != nil {
		t.Fatalf("OpenStream after an uncounted refusal: %v", err)
	}
	resp.Body.Close()
	if _, wrong, _, _ := d.counts(); wrong != 0 || refused != 1 {
		t.Fatalf("wrong answers %d, refusals %d; want 0 and 1", wrong, refused)
	}
}
