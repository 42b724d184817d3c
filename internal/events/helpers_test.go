package events_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/events"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
)

// fakeClock is a manual events.Clock: Advance fires due timers in time order, synchronously.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c       *fakeClock
	at      time.Time
	f       func()
	stopped bool
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) events.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.stopped
	t.stopped = true
	return was
}

// Advance moves the clock by d, firing every timer that falls due on the way.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		sort.SliceStable(c.timers, func(i, j int) bool { return c.timers[i].at.Before(c.timers[j].at) })
		var next *fakeTimer
		for i, t := range c.timers {
			if t.stopped {
				continue
			}
			if !t.at.After(end) {
				next = t
				c.timers = append(c.timers[:i:i], c.timers[i+1:]...)
			}
			break
		}
		if next == nil {
			c.now = end
			c.timers = dropStopped(c.timers)
			c.mu.Unlock()
			return
		}
		next.stopped = true
		if next.at.After(c.now) {
			c.now = next.at
		}
		c.mu.Unlock()
		next.f()
	}
}

func dropStopped(ts []*fakeTimer) []*fakeTimer {
	out := ts[:0]
	for _, t := range ts {
		if !t.stopped {
			out = append(out, t)
		}
	}
	return out
}

// loadFixture reads testdata/events/NAME: the Content-Type line, a blank line, the body.
func loadFixture(t testing.TB, name string) (contentType string, body []byte) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "events", name))
	if err != nil {
		t.Fatal(err)
	}
	head, body, ok := bytes.Cut(b, []byte("\r\n\r\n"))
	if !ok || !bytes.HasPrefix(head, []byte("Content-Type: ")) {
		t.Fatalf("%s: want a Content-Type line and a blank line first", name)
	}
	return string(bytes.TrimPrefix(head, []byte("Content-Type: "))), body
}

// digestOpener opens the alert stream of a simulated device with HTTP Digest, using the product's
// digest code (isapi) to answer the device's challenge.
func digestOpener(base, user, pass string) events.Opener {
	var nc uint32
	var mu sync.Mutex
	return func(ctx context.Context) (*http.Response, error) {
		get := func(authz string) (*http.Response, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+events.AlertStreamPath, nil)
			if err != nil {
				return nil, err
			}
			if authz != "" {
				req.Header.Set("Authorization", authz)
			}
			return http.DefaultClient.Do(req)
		}
		resp, err := get("")
		if err != nil || resp.StatusCode != http.StatusUnauthorized {
			return resp, err
		}
		resp.Body.Close()
		ch, ok := isapi.ChooseChallenge(isapi.ParseChallenges(resp.Header.Values("WWW-Authenticate")))
		if !ok {
			return nil, fmt.Errorf("no usable challenge in %q", resp.Header.Values("WWW-Authenticate"))
		}
		mu.Lock()
		nc++
		n := nc
		mu.Unlock()
		return get(ch.Authorization(http.MethodGet, events.AlertStreamPath, user, pass, n, fmt.Sprintf("%08x", n)))
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkNoGoroutines fails if a goroutine running code of package events is still alive (after a grace
// period for goroutines that are on their way out).
func checkNoGoroutines(t testing.TB) {
	t.Helper()
	var dump string
	for range 200 {
		buf := make([]byte, 1<<20)
		dump = string(buf[:runtime.Stack(buf, true)])
		leaked := false
		for _, g := range strings.Split(dump, "\n\n") {
			if strings.Contains(g, "internal/events.") && !strings.Contains(g, "_test.go") {
				leaked = true
			}
			if strings.Contains(g, "internal/events.(*Subscriber)") {
				leaked = true
			}
		}
		if !leaked {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("goroutines of package events outlived Close:\n%s", dump)
}

// recorder collects emitted events.
type recorder struct {
	mu  sync.Mutex
	evs []events.Event
}

func (r *recorder) emit(e events.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, e)
}

func (r *recorder) all() []events.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]events.Event(nil), r.evs...)
}

func (r *recorder) summary() string {
	var parts []string
	for _, e := range r.all() {
		parts = append(parts, eventString(e))
	}
	return strings.Join(parts, " ")
}

func eventString(e events.Event) string {
	s := "off"
	if e.Active {
		s = "on"
	}
	return fmt.Sprintf("%d/%s:%s", e.Channel, e.Type, s)
}
