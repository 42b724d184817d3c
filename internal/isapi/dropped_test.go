package isapi_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
)

// waitStack polls (with a deadline) until a goroutine's stack holds all of
// names: a goroutine blocked where the test needs it, which no channel shows.
func waitStack(t *testing.T, what string, names ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		for _, g := range strings.Split(string(buf[:n]), "\n\n") {
			all := true
			for _, name := range names {
				all = all && strings.Contains(g, name)
			}
			if all {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no goroutine %s within 5 s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling with a deadline
	}
}

// The cached challenge can be dropped by another request (which met an
// expired nonce) between an alert stream's login and its own request. The
// stream must log in again rather than go out without credentials, whose 401
// would read as the device refusing the password.
func TestOpenStreamChallengeDroppedMeanwhile(t *testing.T) {
	const alert = "/ISAPI/Event/notification/alertStream"
	d := newFakeDevice(t)
	var (
		mu           sync.Mutex
		bareAlerts   int // alert stream requests without credentials
		bareR2       = make(chan struct{})
		bareR2Once   sync.Once
		alertSeen    = make(chan struct{})
		alertOnce    sync.Once
		r1In         = make(chan struct{})
		releaseR1    = make(chan struct{})
		userChecks   int
		r2Started    = make(chan struct{})
		c            *isapi.Client
		r1Err, r2Err error
		wg           sync.WaitGroup
	)
	wrap := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bare := r.Header.Get("Authorization") == ""
		switch {
		case r.URL.Path == alert:
			alertOnce.Do(func() { close(alertSeen) })
			if bare {
				mu.Lock()
				bareAlerts++
				mu.Unlock()
			}
		case r.URL.Path == "/r2" && bare: // r2 met invalidOperation and dropped the cached challenge
			bareR2Once.Do(func() { close(bareR2) })
		}
		d.ServeHTTP(w, r)
	})
	srv := httptest.NewServer(wrap)
	t.Cleanup(srv.Close)
	ok := func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }
	d.handle("/warm", ok)
	d.handle(alert, ok)
	d.handle("/r1", func(w http.ResponseWriter, r *http.Request) {
		close(r1In)
		<-releaseR1
		w.WriteHeader(http.StatusOK)
	})
	d.handle("/r2", func(w http.ResponseWriter, r *http.Request) {
		select { // held until the alert stream went out (before the fix) or for 1 s
		case <-alertSeen:
		case <-time.After(time.Second):
		}
		w.WriteHeader(http.StatusOK)
	})
	d.handle(isapi.PathUserCheck, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		userChecks++
		first := userChecks == 1
		mu.Unlock()
		if first {
			// another request drops the challenge this login just used
			d.mu.Lock()
			d.invalidOpNext = true
			d.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				close(r2Started)
				_, _, r2Err = c.Do(context.Background(), http.MethodGet, "/r2", nil)
			}()
			<-bareR2
		}
		serveFile(t, http.StatusOK, "userCheck_ok.xml")(w, r)
	})
	var err error
	c, err = isapi.New(isapi.Config{Host: strings.TrimPrefix(srv.URL, "http://"), Username: d.user, Password: d.pass, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	ctx := context.Background()
	if _, _, err := c.Do(ctx, http.MethodGet, "/warm", nil); err != nil {
		t.Fatal(err)
	}
	// r1 meets an expired nonce and logs in again, holding the login lock
	// with no challenge cached
	d.mu.Lock()
	d.invalidOpNext = true
	d.mu.Unlock()
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, _, r1Err = c.Do(ctx, http.MethodGet, "/r1", nil)
	}()
	<-r1In
	// the alert stream finds no challenge and waits for that login
	opened := make(chan error, 1)
	go func() {
		resp, err := c.OpenStream(ctx, alert)
		if err == nil {
			resp.Body.Close()
		}
		opened <- err
	}()
	waitStack(t, "waiting for the login lock in OpenStream", "(*Client).lockLogin", "(*Client).OpenStream")
	close(releaseR1)
	if err := <-opened; err != nil {
		t.Errorf("OpenStream: %v", err)
	}
	<-r2Started
	wg.Wait()
	if r1Err != nil || r2Err != nil {
		t.Errorf("other requests: %v, %v", r1Err, r2Err)
	}
	mu.Lock()
	defer mu.Unlock()
	if bareAlerts != 0 {
		t.Errorf("%d alert stream requests went out without credentials", bareAlerts)
	}
	if _, wrong, _, _ := d.counts(); wrong != 0 {
		t.Errorf("%d wrong answers at the device", wrong)
	}
}

// A request met an expired nonce and got a new challenge, then waited for
// the login lock while another request's login got no answer: the device
// rebooted meanwhile and forgot the new nonce too. On firmware that counts a
// right answer to a nonce it does not know, answering that challenge would
// cost a failed login; the request asks for a new challenge instead.
func TestChallengeFromBeforeANoAnswerIsNotAnswered(t *testing.T) {
	d := newFakeDevice(t)
	var (
		aOnce     sync.Once
		aArrived  = make(chan struct{})
		aGo       = make(chan struct{})
		bIn       = make(chan struct{})
		releaseB  = make(chan struct{})
		aErr      error
		aDone     = make(chan struct{})
		bDone     = make(chan struct{})
		firstHeld bool
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/a" && r.Header.Get("Authorization") != "" {
			hold := false
			aOnce.Do(func() { hold, firstHeld = true, true })
			if hold { // A's request with the cached nonce waits until B holds the login lock
				close(aArrived)
				<-aGo
			}
		}
		d.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	ok := func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }
	d.handle("/warm", ok)
	d.handle("/a", ok)
	d.handle("/b", func(w http.ResponseWriter, r *http.Request) {
		close(bIn)
		<-releaseB
		// the device reboots: it forgets every nonce, counts a right answer
		// to one it does not know, and B gets no answer
		d.mu.Lock()
		d.valid = map[string]bool{}
		d.unknownNonceWrong = true
		d.mu.Unlock()
		panic(http.ErrAbortHandler)
	})
	c, err := isapi.New(isapi.Config{Host: strings.TrimPrefix(srv.URL, "http://"), Username: d.user, Password: d.pass, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	ctx := ctxT(t)
	if _, _, err := c.Do(ctx, http.MethodGet, "/warm", nil); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(aDone)
		_, _, aErr = c.Do(ctx, http.MethodGet, "/a", nil)
	}()
	<-aArrived // A answered the cached nonce
	d.mu.Lock()
	d.staleNext = true // the cached nonce expires now
	d.mu.Unlock()
	go func() {
		defer close(bDone)
		// stale, then answers its new challenge holding the login lock (a
		// PUT: net/http sends a GET again by itself on a new connection
		// when a reused one breaks)
		_, _, _ = c.Do(ctx, http.MethodPut, "/b", nil)
	}()
	<-bIn
	close(aGo) // A's answer is stale too: A has a new challenge and waits for the login lock
	waitStack(t, "waiting for the login lock with a new challenge", "(*Client).lockLogin", "(*Client).answerFresh(")
	close(releaseB)
	<-bDone
	<-aDone
	if !firstHeld {
		t.Fatal("A's first request was not held")
	}
	if aErr != nil {
		t.Errorf("A: %v", aErr)
	}
	if _, wrong, _, _ := d.counts(); wrong != 0 {
		t.Errorf("%d wrong answers at the device: a challenge from before the reboot was answered", wrong)
	}
}
