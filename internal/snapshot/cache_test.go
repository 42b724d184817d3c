package snapshot_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/snapshot"
)

// scripted is a fetcher answering from a queue of steps set by the test.
type scripted struct {
	mu    sync.Mutex
	steps []func(ctx context.Context) ([]byte, error)
	calls atomic.Int64
	sizes [][2]int
}

func (s *scripted) push(f ...func(ctx context.Context) ([]byte, error)) {
	s.mu.Lock()
	s.steps = append(s.steps, f...)
	s.mu.Unlock()
}

func (s *scripted) fetch(ctx context.Context, w, h int) ([]byte, error) {
	s.calls.Add(1)
	s.mu.Lock()
	s.sizes = append(s.sizes, [2]int{w, h})
	if len(s.steps) == 0 {
		s.mu.Unlock()
		return nil, errors.New("test: unexpected device request")
	}
	f := s.steps[0]
	s.steps = s.steps[1:]
	s.mu.Unlock()
	return f(ctx)
}

func body(b []byte) func(context.Context) ([]byte, error) {
	return func(context.Context) ([]byte, error) { return b, nil }
}

func fail(err error) func(context.Context) ([]byte, error) {
	return func(context.Context) ([]byte, error) { return nil, err }
}

func TestFreshThenMinInterval(t *testing.T) {
	clk := newClock()
	s := &scripted{}
	img1, img2 := makeJPEG(t, 1), makeJPEG(t, 2)
	s.push(body(img1), body(img2))
	c := snapshot.New(s.fetch, snapshot.Options{MinInterval: time.Second, Now: clk.Now})
	defer c.Close()
	ctx := context.Background()

	res, err := c.Get(ctx, 0, 0)
	if err != nil || res.Stale || !bytes.Equal(res.JPEG, img1) || res.Age != 0 || !res.Taken.Equal(clk.Now()) {
		t.Fatalf("first Get: %+v, %v", res, err)
	}
	clk.Add(999 * time.Millisecond)
	res, err = c.Get(ctx, 0, 0)
	if err != nil || res.Stale || !bytes.Equal(res.JPEG, img1) || res.Age != 999*time.Millisecond {
		t.Fatalf("Get within MinInterval: %+v, %v", res, err)
	}
	if n := s.calls.Load(); n != 1 {
		t.Fatalf("device requests within MinInterval: %d, want 1", n)
	}
	clk.Add(time.Millisecond)
	res, err = c.Get(ctx, 0, 0)
	if err != nil || !bytes.Equal(res.JPEG, img2) {
		t.Fatalf("Get after MinInterval: %+v, %v", res, err)
	}
	st := c.Stats()
	if st.DeviceRequests != 2 || s.calls.Load() != 2 || st.ServedCached != 1 || st.ServedFresh != 3 {
		t.Fatalf("stats %+v, fetcher calls %d", st, s.calls.Load())
	}
	if !st.LastGood.Equal(clk.Now()) {
		t.Fatalf("LastGood %v, want %v", st.LastGood, clk.Now())
	}
}

// After a failure, MinInterval still holds: the stale image is served without a
// device request.
func TestMinIntervalAfterFailure(t *testing.T) {
	clk := newClock()
	s := &scripted{}
	img := makeJPEG(t, 1)
	s.push(body(img), body([]byte("<?xml version=\"1.0\"?><ResponseStatus/>")))
	c := snapshot.New(s.fetch, snapshot.Options{MinInterval: time.Second, Now: clk.Now})
	defer c.Close()
	if _, err := c.Get(context.Background(), 0, 0); err != nil {
		t.Fatal(err)
	}
	clk.Add(2 * time.Second)
	res, err := c.Get(context.Background(), 0, 0)
	if err != nil || !res.Stale || res.Age != 2*time.Second || reasonOf(t, res.Err) != snapshot.ReasonXML {
		t.Fatalf("after XML answer: %+v, %v", res, err)
	}
	clk.Add(500 * time.Millisecond)
	res, err = c.Get(context.Background(), 0, 0)
	if err != nil || !res.Stale || res.Age != 2500*time.Millisecond || !bytes.Equal(res.JPEG, img) {
		t.Fatalf("within MinInterval after failure: %+v, %v", res, err)
	}
	if n := s.calls.Load(); n != 2 {
		t.Fatalf("device requests: %d, want 2", n)
	}
}

func TestSizesAreSeparate(t *testing.T) {
	clk := newClock()
	s := &scripted{}
	small, big := makeJPEG(t, 1), makeJPEG(t, 2)
	s.push(body(small), body(big))
	c := snapshot.New(s.fetch, snapshot.Options{Now: clk.Now})
	defer c.Close()
	a, err := c.Get(context.Background(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Get(context.Background(), 1280, 720)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.JPEG, small) || !bytes.Equal(b.JPEG, big) {
		t.Fatal("sizes share an image")
	}
	if s.sizes[0] != [2]int{0, 0} || s.sizes[1] != [2]int{1280, 720} {
		t.Fatalf("fetcher got sizes %v", s.sizes)
	}
	if _, err := c.Get(context.Background(), -1, 5); !errors.Is(err, snapshot.ErrBadSize) {
		t.Fatalf("negative size: %v", err)
	}
	if _, err := c.Get(context.Background(), 100000, 5); !errors.Is(err, snapshot.ErrBadSize) {
		t.Fatalf("huge size: %v", err)
	}
}

func TestMaxSizesEvictsLeastRecentlyUsed(t *testing.T) {
	clk := newClock()
	var calls atomic.Int64
	img := makeJPEG(t, 1)
	c := snapshot.New(func(context.Context, int, int) ([]byte, error) {
		calls.Add(1)
		return img, nil
	}, snapshot.Options{Now: clk.Now, MaxSizes: 2, MinInterval: time.Hour})
	defer c.Close()
	get := func(w int) {
		if _, err := c.Get(context.Background(), w, w); err != nil {
			t.Fatal(err)
		}
		clk.Add(time.Second)
	}
	get(10)
	get(20)
	get(10) // cached; 20 is now least recently used
	get(30) // evicts 20
	if calls.Load() != 3 || c.Stats().Sizes != 2 {
		t.Fatalf("calls %d sizes %d", calls.Load(), c.Stats().Sizes)
	}
	get(10) // still cached
	if calls.Load() != 3 {
		t.Fatalf("size 10 was evicted: calls %d", calls.Load())
	}
	get(20) // fetched again
	if calls.Load() != 4 {
		t.Fatalf("size 20 not evicted: calls %d", calls.Load())
	}
}

func TestMaxStaleAndNeverGood(t *testing.T) {
	clk := newClock()
	s := &scripted{}
	c := snapshot.New(s.fetch, snapshot.Options{MinInterval: -1, MaxStale: 10 * time.Second, Now: clk.Now})
	defer c.Close()
	ctx := context.Background()

	// Never a good image: an explained error.
	s.push(fail(errors.New("connection reset by peer")))
	_, err := c.Get(ctx, 0, 0)
	var se *snapshot.Error
	if !errors.As(err, &se) || se.Reason != snapshot.ReasonDevice || !se.LastGood.IsZero() ||
		!strings.Contains(err.Error(), "no good image yet") || !strings.Contains(err.Error(), "connection reset") {
		t.Fatalf("never good: %v", err)
	}

	img := makeJPEG(t, 1)
	s.push(body(img))
	good, err := c.Get(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	taken := good.Taken

	clk.Add(10 * time.Second) // exactly MaxStale: still served
	s.push(body(frame(t)[:500]))
	res, err := c.Get(ctx, 0, 0)
	if err != nil || !res.Stale || res.Age != 10*time.Second || !bytes.Equal(res.JPEG, img) {
		t.Fatalf("at MaxStale: %+v, %v", res, err)
	}
	clk.Add(time.Second)
	s.push(body(frame(t)[:500]))
	_, err = c.Get(ctx, 0, 0)
	if !errors.As(err, &se) {
		t.Fatalf("past MaxStale: %v", err)
	}
	if se.Reason != snapshot.ReasonTruncated || !se.LastGood.Equal(taken) || se.Age != 11*time.Second ||
		!strings.Contains(err.Error(), "over the 10s staleness limit") {
		t.Fatalf("past MaxStale: %+v: %v", se, err)
	}
	st := c.Stats()
	if st.Failures[snapshot.ReasonTruncated] != 2 || st.Failures[snapshot.ReasonDevice] != 1 ||
		st.ServedStale != 1 || st.ServedErrors != 2 || st.ServedFresh != 1 || st.LastReason != snapshot.ReasonTruncated {
		t.Fatalf("stats %+v", st)
	}

	// Good again: fresh, and the error is gone.
	img2 := makeJPEG(t, 2)
	s.push(body(img2))
	res, err = c.Get(ctx, 0, 0)
	if err != nil || res.Stale || !bytes.Equal(res.JPEG, img2) || res.Err != nil {
		t.Fatalf("recovered: %+v, %v", res, err)
	}
}

func TestNoLastGood(t *testing.T) {
	clk := newClock()
	s := &scripted{}
	s.push(body(makeJPEG(t, 1)), fail(context.DeadlineExceeded))
	c := snapshot.New(s.fetch, snapshot.Options{MinInterval: -1, NoLastGood: true, Now: clk.Now})
	defer c.Close()
	if _, err := c.Get(context.Background(), 0, 0); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Second)
	_, err := c.Get(context.Background(), 0, 0)
	var se *snapshot.Error
	if !errors.As(err, &se) || !se.Disabled || se.Reason != snapshot.ReasonTimeout || se.Age != time.Second ||
		!strings.Contains(err.Error(), "fallback is off") {
		t.Fatalf("got %v", err)
	}
}

func TestClassify(t *testing.T) {
	opErr := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	for _, tc := range []struct {
		err  error
		want snapshot.Reason
	}{
		{&isapi.AuthError{Method: "GET", Path: "/p", Locked: true, UnlockTime: time.Minute}, snapshot.ReasonLocked},
		{&isapi.AuthError{Method: "GET", Path: "/p", RetryLoginTime: 3}, snapshot.ReasonUnauthorized},
		{&isapi.StatusError{Method: "GET", Path: "/p", HTTPStatus: 200, StatusCode: 3, SubStatusCode: "deviceError"}, snapshot.ReasonXML},
		{&isapi.StatusError{Method: "GET", Path: "/p", HTTPStatus: 403, StatusCode: 4, SubStatusCode: "notSupport"}, snapshot.ReasonNotSupported},
		{&isapi.StatusError{Method: "GET", Path: "/p", HTTPStatus: 503, StatusCode: 2, SubStatusCode: "deviceBusy"}, snapshot.ReasonBusy},
		{&isapi.StatusError{Method: "GET", Path: "/p", HTTPStatus: 500}, snapshot.ReasonDevice},
		{isapi.ErrTooLarge, snapshot.ReasonTooLarge},
		{isapi.ErrLowPrivilege, snapshot.ReasonLowPrivilege},
		{opErr, snapshot.ReasonUnreachable},
		{context.DeadlineExceeded, snapshot.ReasonTimeout},
		{errors.New("boom"), snapshot.ReasonDevice},
	} {
		c := snapshot.New(func(context.Context, int, int) ([]byte, error) { return nil, tc.err },
			snapshot.Options{MinInterval: -1})
		_, err := c.Get(context.Background(), 0, 0)
		c.Close()
		var se *snapshot.Error
		if !errors.As(err, &se) || se.Reason != tc.want {
			t.Errorf("fetch error %v: got %v, want reason %q", tc.err, err, tc.want)
			continue
		}
		if !errors.Is(err, tc.err) {
			t.Errorf("fetch error %v not reachable with errors.Is from %v", tc.err, err)
		}
	}
}

func TestFetchTimeout(t *testing.T) {
	base := runtime.NumGoroutine()
	c := snapshot.New(func(ctx context.Context, _, _ int) ([]byte, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}, snapshot.Options{MinInterval: -1, FetchTimeout: 20 * time.Millisecond})
	_, err := c.Get(context.Background(), 0, 0)
	var se *snapshot.Error
	if !errors.As(err, &se) || se.Reason != snapshot.ReasonTimeout {
		t.Fatalf("got %v", err)
	}
	c.Close()
	checkGoroutines(t, base)
}

func TestPanickingFetcher(t *testing.T) {
	c := snapshot.New(func(context.Context, int, int) ([]byte, error) { panic("oops") }, snapshot.Options{})
	defer c.Close()
	_, err := c.Get(context.Background(), 0, 0)
	var se *snapshot.Error
	if !errors.As(err, &se) || se.Reason != snapshot.ReasonDevice || !strings.Contains(err.Error(), "panicked") {
		t.Fatalf("got %v", err)
	}
}

// 50 concurrent callers share one device request.
func TestCoalescing(t *testing.T) {
	base := runtime.NumGoroutine()
	var calls atomic.Int64
	release := make(chan struct{})
	img := makeJPEG(t, 5)
	c := snapshot.New(func(ctx context.Context, _, _ int) ([]byte, error) {
		calls.Add(1)
		select {
		case <-release:
			return img, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}, snapshot.Options{})

	const n = 50
	type answer struct {
		res *snapshot.Result
		err error
	}
	answers := make(chan answer, n)
	for range n {
		go func() {
			res, err := c.Get(context.Background(), 0, 0)
			answers <- answer{res, err}
		}()
	}
	// Wait until all 50 are inside Get: one started the fetch, 49 joined it.
	deadline := time.Now().Add(5 * time.Second)
	for c.Stats().Coalesced != n-1 {
		if time.Now().After(deadline) {
			t.Fatalf("callers joined: %d of %d", c.Stats().Coalesced, n-1)
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	for range n {
		a := <-answers
		if a.err != nil || a.res.Stale || !bytes.Equal(a.res.JPEG, img) {
			t.Fatalf("answer %+v, %v", a.res, a.err)
		}
	}
	if calls.Load() != 1 || c.Stats().DeviceRequests != 1 {
		t.Fatalf("device requests: %d (stats %d), want 1", calls.Load(), c.Stats().DeviceRequests)
	}
	c.Close()
	checkGoroutines(t, base)
}

// A caller that gives up while a fetch is in flight gets the last good image
// (stale) or an error; the fetch carries on and its image is kept.
func TestCallerGivesUp(t *testing.T) {
	base := runtime.NumGoroutine()
	clk := newClock()
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	img1, img2 := makeJPEG(t, 1), makeJPEG(t, 2)
	var n atomic.Int64
	c := snapshot.New(func(ctx context.Context, _, _ int) ([]byte, error) {
		if n.Add(1) == 1 {
			return img1, nil
		}
		started <- struct{}{}
		select {
		case <-release:
			return img2, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}, snapshot.Options{MinInterval: -1, Now: clk.Now})
	if _, err := c.Get(context.Background(), 0, 0); err != nil {
		t.Fatal(err)
	}
	clk.Add(3 * time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var res *snapshot.Result
	var err error
	go func() {
		res, err = c.Get(ctx, 0, 0)
		close(done)
	}()
	<-started
	cancel()
	<-done
	if err != nil || !res.Stale || res.Age != 3*time.Second || !bytes.Equal(res.JPEG, img1) ||
		reasonOf(t, res.Err) != snapshot.ReasonCanceled {
		t.Fatalf("gave up: %+v, %v", res, err)
	}
	close(release)
	// The fetch still completes and its image is served next.
	deadline := time.Now().Add(5 * time.Second)
	for c.Stats().LastGood.Equal(res.Taken) {
		if time.Now().After(deadline) {
			t.Fatal("fetch did not finish")
		}
		time.Sleep(time.Millisecond)
	}
	c.Close()
	checkGoroutines(t, base)
}

// Close stops an in-flight fetch, its waiter gets an answer, and Get after
// Close says closed.
func TestClose(t *testing.T) {
	base := runtime.NumGoroutine()
	started := make(chan struct{})
	c := snapshot.New(func(ctx context.Context, _, _ int) ([]byte, error) {
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	}, snapshot.Options{FetchTimeout: time.Hour})
	errc := make(chan error, 1)
	go func() {
		_, err := c.Get(context.Background(), 0, 0)
		errc <- err
	}()
	<-started
	c.Close()
	var se *snapshot.Error
	if err := <-errc; !errors.As(err, &se) || se.Reason != snapshot.ReasonClosed {
		t.Fatalf("waiter got %v", err)
	}
	if _, err := c.Get(context.Background(), 0, 0); !errors.Is(err, snapshot.ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
	c.Close() // idempotent
	checkGoroutines(t, base)
}
