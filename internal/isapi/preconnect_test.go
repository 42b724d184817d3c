package isapi

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Preconnect's connections carry the next requests: a round of concurrent
// requests after the login opens no connection; the device sees no request
// on them before the client asks.
func TestPreconnect(t *testing.T) {
	var conns, requests atomic.Int32
	// the round's three requests are answered once all three arrived (or
	// after 5 s): they are in flight together, on three connections
	var inRound, roundSize atomic.Int32
	allIn := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if _, _, ok := r.BasicAuth(); !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.URL.Path == "/round" {
			if inRound.Add(1) == roundSize.Load() {
				close(allIn)
			}
			select {
			case <-allIn:
			case <-time.After(5 * time.Second):
			}
		}
		w.WriteHeader(http.StatusOK)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	base := runtime.NumGoroutine()

	c, err := New(Config{Host: strings.TrimPrefix(srv.URL, "http://"), Username: "admin", Password: "x"})
	if err != nil {
		t.Fatal(err)
	}
	c.Preconnect(2)
	ctx := context.Background()
	if _, _, err := c.Do(ctx, http.MethodGet, "/ISAPI/System/deviceInfo", nil); err != nil {
		t.Fatal(err)
	}
	// both connects are done (one of them may have carried the login)
	c.pre.mu.Lock()
	pre := c.pre.wg
	c.pre.mu.Unlock()
	if pre != nil {
		pre.Wait()
	}
	if n := requests.Load(); n != 2 {
		t.Fatalf("requests %d before the round, want 2 (challenge, login)", n)
	}
	// as many at once as there are connections (the login's and the parked
	// ones): none is dialled
	c0, p0 := conns.Load(), parked(c)
	if p0 < 1 {
		t.Fatalf("%d connections parked, want at least 1", p0)
	}
	roundSize.Store(int32(1 + p0))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 1 + p0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if _, _, err := c.Do(ctx, http.MethodGet, "/round", nil); err != nil {
				t.Error(err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if n := conns.Load(); n != c0 {
		t.Errorf("the round opened %d connections, want none", n-c0)
	}
	if parked(c) != 0 {
		t.Errorf("%d parked connections left unused", parked(c))
	}

	// Close ends connects under way and closes what is parked
	c.Preconnect(3)
	c.Close()
	if parked(c) != 0 {
		t.Errorf("%d parked after Close", parked(c))
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			t.Fatalf("goroutines %d, want <= %d after Close", runtime.NumGoroutine(), base)
		}
		time.Sleep(10 * time.Millisecond) // polling with a deadline
	}
}

func parked(c *Client) int {
	c.pre.mu.Lock()
	defer c.pre.mu.Unlock()
	return len(c.pre.parked)
}
