package isapi_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/guard"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
)

// Requests started together on a new client: one of them logs in, the
// others wait for it and then run at the same time (they must not be sent
// one by one while the login lock is held).
func TestConcurrentFirstRequestsRunTogether(t *testing.T) {
	const n = 4
	d := newFakeDevice(t)
	var (
		mu       sync.Mutex
		arrived  int
		inflight int
		maxIn    int
		all      = make(chan struct{})
	)
	d.handle("/barrier", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrived++
		first := arrived == 1
		if !first {
			inflight++
			maxIn = max(maxIn, inflight)
			if arrived == n {
				close(all)
			}
		}
		mu.Unlock()
		if !first { // the first is the login: the others wait behind it
			select {
			case <-all:
			case <-time.After(2 * time.Second):
			}
			mu.Lock()
			inflight--
			mu.Unlock()
		}
		w.WriteHeader(http.StatusOK)
	})
	c, _ := start(t, d, nil)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := c.Do(ctxT(t), http.MethodGet, "/barrier", nil)
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
	mu.Lock()
	defer mu.Unlock()
	if maxIn != n-1 {
		t.Fatalf("at most %d requests in flight after the login, want %d (they ran one at a time)", maxIn, n-1)
	}
	if ch, wrong, _, _ := d.counts(); ch != 1 || wrong != 0 {
		t.Fatalf("challenges %d wrong %d; want 1 0", ch, wrong)
	}
}

// silentListener accepts TCP connections, counts them and never answers.
func silentListener(t *testing.T) (addr string, accepted *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted = &atomic.Int32{}
	var conns []net.Conn
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().String(), accepted
}

// The first login meets a device that never answers: the callers waiting
// behind it get that timeout at once instead of each trying in turn.
func TestFirstLoginTimeoutSharedWithWaiters(t *testing.T) {
	addr, accepted := silentListener(t)
	const timeout = 300 * time.Millisecond
	c, err := isapi.New(isapi.Config{Host: addr, Username: "admin", Password: "Secret#Pa55", Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 3
	var wg sync.WaitGroup
	errs := make(chan error, n)
	t0 := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.DeviceInfo(context.Background())
			errs <- err
		}()
	}
	wg.Wait()
	elapsed := time.Since(t0)
	close(errs)
	for err := range errs {
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("error %v, want a timeout matching context.DeadlineExceeded", err)
		}
		if err.Error() != "isapi GET /ISAPI/System/deviceInfo: no answer within 300ms" {
			t.Fatalf("error %q, want the one timeout wording", err)
		}
	}
	if got := accepted.Load(); got != 1 {
		t.Fatalf("device saw %d connections, want 1 (waiters must not try again)", got)
	}
	if elapsed > 2*timeout {
		t.Fatalf("three callers took %v, want about one timeout (%v)", elapsed, timeout)
	}
}

// A caller that cancels its own first login does not fail the callers
// waiting behind it: one of them logs in.
func TestFirstLoginCancelledByCallerNotShared(t *testing.T) {
	d := newFakeDevice(t)
	d.handle("/ISAPI/System/deviceInfo", serveFile(t, 200, "deviceInfo_camera.xml"))
	c, _ := start(t, d, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.DeviceInfo(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call: %v, want context.Canceled", err)
	}
	if _, err := c.DeviceInfo(ctxT(t)); err != nil {
		t.Fatalf("next call after a cancelled one: %v", err)
	}
}

// A device whose password changed after the login answers the cached
// challenge with a plain 401 (stale=FALSE): one failed login, no re-challenge.
func TestPasswordChangedIsOneFailedLogin(t *testing.T) {
	d := newFakeDevice(t)
	d.handle("/ISAPI/System/deviceInfo", serveFile(t, 200, "deviceInfo_camera.xml"))
	c, _ := start(t, d, nil)
	if _, err := c.DeviceInfo(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	d.pass = "changed-Pa55"
	d.mu.Unlock()
	_, err := c.DeviceInfo(ctxT(t))
	noSecret(t, err)
	var ae *isapi.AuthError
	if !errors.As(err, &ae) || !errors.Is(err, isapi.ErrUnauthorized) {
		t.Fatalf("error %v (%T), want *AuthError wrong credentials", err, err)
	}
	ch, wrong, stale, reqs := d.counts()
	if ch != 1 || wrong != 1 || stale != 0 || reqs != 3 {
		t.Fatalf("challenges %d wrong %d stale %d requests %d; want 1 1 0 3 (no re-challenge)", ch, wrong, stale, reqs)
	}
}

// A device that reboots forgets its nonces, and some firmware answers the old
// nonce with a plain 401 (stale=FALSE). The client saw the device drop off the
// network, so it forgets the cached challenge and starts with a fresh one:
// no failed login is spent on the reboot.
func TestRebootForgetsCachedChallenge(t *testing.T) {
	d := newFakeDevice(t)
	d.unknownNonceWrong = true
	d.handle("/ISAPI/System/deviceInfo", serveFile(t, 200, "deviceInfo_camera.xml"))
	c, _ := start(t, d, nil)
	if _, err := c.DeviceInfo(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	d.rebooting = true
	d.mu.Unlock()
	if _, err := c.DeviceInfo(ctxT(t)); err == nil {
		t.Fatal("a request to a rebooting device succeeded")
	}
	d.mu.Lock()
	d.rebooting = false
	d.mu.Unlock()
	if _, err := c.DeviceInfo(ctxT(t)); err != nil {
		t.Fatalf("first request after the reboot: %v", err)
	}
	if _, wrong, _, _ := d.counts(); wrong != 0 {
		t.Fatalf("%d failed logins spent on a reboot, want 0", wrong)
	}
}

// Timeouts read the same whichever timer fires first.
func TestTimeoutWording(t *testing.T) {
	d := newFakeDevice(t)
	release := make(chan struct{})
	d.handle("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	d.handle("/slowbody", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		_, _ = w.Write([]byte("<a>"))
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	d.handle("/ok", func(w http.ResponseWriter, r *http.Request) {})
	c, _ := start(t, d, func(cfg *isapi.Config) { cfg.Timeout = 200 * time.Millisecond })
	defer close(release)
	if _, _, err := c.Do(ctxT(t), "GET", "/ok", nil); err != nil { // log in first
		t.Fatal(err)
	}
	for _, path := range []string{"/slow", "/slowbody", "/slow"} {
		_, _, err := c.Do(ctxT(t), "GET", path, nil)
		want := "isapi GET " + path + ": no answer within 200ms"
		if err == nil || err.Error() != want {
			t.Fatalf("error %v, want %q", err, want)
		}
		var ne net.Error
		if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("%v: want errors.Is DeadlineExceeded and a net.Error timeout", err)
		}
		if k := guard.Classify(fmt.Errorf("probe: %w", err)); k != guard.KindTimeout {
			t.Fatalf("guard.Classify(%v) = %s, want timeout", err, k)
		}
	}
	// a caller's shorter deadline is named as such
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, _, err := c.Do(ctx, "GET", "/slow", nil)
	if err == nil || !strings.HasPrefix(err.Error(), "isapi GET /slow: no answer within ") || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("caller deadline: %v", err)
	}
}
