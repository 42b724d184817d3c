package snapshot

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Defaults for the zero Options.
const (
	DefaultMinInterval  = time.Second
	DefaultFetchTimeout = 10 * time.Second
	DefaultMaxStale     = 10 * time.Minute
	DefaultMaxSizes     = 8
	// MaxDimension is the largest width or height Get accepts.
	MaxDimension = 16384
)

// Options tune a Cache. The zero value is usable.
type Options struct {
	// MinInterval is the least time between the end of one device request and
	// the start of the next for the same size; callers in between get the cached
	// answer without a device request. 0: DefaultMinInterval; <0: none.
	MinInterval time.Duration
	// FetchTimeout bounds one device request. 0: DefaultFetchTimeout.
	FetchTimeout time.Duration
	// MaxStale is the oldest a last good image may be and still be served when a
	// fetch fails. 0: DefaultMaxStale; <0: no limit.
	MaxStale time.Duration
	// NoLastGood turns off serving the last good image on error: a failed fetch
	// is then an *Error at once.
	NoLastGood bool
	// MaxSizes caps how many distinct sizes are cached; the least recently used
	// idle size is dropped beyond it. 0: DefaultMaxSizes.
	MaxSizes int
	// Now is the clock for ages, Last-Modified and MinInterval. nil: time.Now.
	// The fetch timeout uses real time.
	Now func() time.Time
}

// Result is one snapshot answer. JPEG is shared between callers: do not modify it.
type Result struct {
	JPEG  []byte        // a whole JPEG (checked by Validate)
	Taken time.Time     // when the device delivered this image
	Stale bool          // true when the latest device request failed and this is the last good image
	Age   time.Duration // how old the image was when Get answered
	Err   error         // why the answer is stale (a *FetchError); nil when fresh
}

// Stats are the cache's counters, for a health page or metrics.
type Stats struct {
	DeviceRequests uint64            // fetches started
	Failures       map[Reason]uint64 // failed fetches by reason
	ServedFresh    uint64            // answers with the latest image
	ServedStale    uint64            // answers with an older image after a failure
	ServedErrors   uint64            // *Error answers
	ServedCached   uint64            // answers (of any kind) given without a device request, within MinInterval
	Coalesced      uint64            // callers that waited on a fetch another caller started
	LastGood       time.Time         // when the last good image was taken; zero if never
	LastFailure    time.Time         // when the last fetch failed; zero if never
	LastReason     Reason            // reason of the last failure
	LastError      string            // text of the last failure, redacted
	Sizes          int               // sizes cached now
}

type sizeKey struct{ w, h int }

type flight struct{ done chan struct{} }

type entry struct {
	key         sizeKey
	good        []byte
	taken       time.Time
	attempted   bool
	lastAttempt time.Time   // end of the last device request
	lastErr     *FetchError // nil when the last request succeeded
	flight      *flight
	lastUsed    time.Time
}

// Cache holds the snapshots of one source (a device channel), one image per
// asked size. Its methods are safe for concurrent use.
type Cache struct {
	fetch Fetcher
	opt   Options

	ctx    context.Context // cancelled by Close; parent of every fetch
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	entries map[sizeKey]*entry
	st      Stats
}

// New makes a Cache that fetches through fetch. Close it to stop in-flight fetches.
func New(fetch Fetcher, opt Options) *Cache {
	if opt.MinInterval == 0 {
		opt.MinInterval = DefaultMinInterval
	}
	if opt.FetchTimeout <= 0 {
		opt.FetchTimeout = DefaultFetchTimeout
	}
	if opt.MaxStale == 0 {
		opt.MaxStale = DefaultMaxStale
	}
	if opt.MaxSizes <= 0 {
		opt.MaxSizes = DefaultMaxSizes
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Cache{
		fetch:   fetch,
		opt:     opt,
		ctx:     ctx,
		cancel:  cancel,
		entries: make(map[sizeKey]*entry),
		st:      Stats{Failures: make(map[Reason]uint64)},
	}
}

// Get answers a snapshot of the given size (0, 0: the device's default).
//
// A fresh device request is made unless one is in flight (then Get waits for
// it) or the last one ended less than MinInterval ago (then the cached answer is
// given). When the request fails, the last good image is given as a stale
// Result, unless NoLastGood is set, there never was one, or it is older than
// MaxStale: then the error is an *Error. If ctx ends while waiting, the last
// good image is given as stale (or an *Error) and the fetch carries on for others.
func (c *Cache) Get(ctx context.Context, width, height int) (*Result, error) {
	if width < 0 || height < 0 || width > MaxDimension || height > MaxDimension {
		return nil, fmt.Errorf("%w: %dx%d", ErrBadSize, width, height)
	}
	key := sizeKey{width, height}

	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, &Error{Reason: ReasonClosed, LastErr: ErrClosed, MaxStale: c.opt.MaxStale}
	}
	now := c.opt.Now()
	e := c.entry(key, now)
	e.lastUsed = now
	f := e.flight
	switch {
	case f != nil:
		c.st.Coalesced++
	case e.attempted && c.opt.MinInterval > 0 && now.Sub(e.lastAttempt) < c.opt.MinInterval:
		c.st.ServedCached++
		res, err := c.answer(e, now, nil)
		c.mu.Unlock()
		return res, err
	default:
		f = &flight{done: make(chan struct{})}
		e.flight = f
		c.st.DeviceRequests++
		c.wg.Add(1)
		go c.run(e, f)
	}
	c.mu.Unlock()

	var waitErr error
	select {
	case <-f.done:
	case <-ctx.Done():
		waitErr = ctx.Err()
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	now = c.opt.Now()
	if waitErr != nil {
		select {
		case <-f.done: // finished meanwhile: give its answer
			waitErr = nil
		default:
		}
	}
	if waitErr != nil {
		r := ReasonCanceled
		if errors.Is(waitErr, context.DeadlineExceeded) {
			r = ReasonTimeout
		}
		return c.answer(e, now, &FetchError{Reason: r, Err: waitErr, Detail: "gave up waiting for the device"})
	}
	return c.answer(e, now, nil)
}

// entry finds or makes the entry of key, dropping the least recently used idle
// entry when MaxSizes is reached. c.mu is held.
func (c *Cache) entry(key sizeKey, now time.Time) *entry {
	if e, ok := c.entries[key]; ok {
		return e
	}
	if len(c.entries) >= c.opt.MaxSizes {
		var old *entry
		for _, o := range c.entries {
			if o.flight == nil && (old == nil || o.lastUsed.Before(old.lastUsed)) {
				old = o
			}
		}
		if old != nil {
			delete(c.entries, old.key)
		}
	}
	e := &entry{key: key, lastUsed: now}
	c.entries[key] = e
	c.st.Sizes = len(c.entries)
	return e
}

// answer builds the answer from the entry's state. override, when set, is the
// failure to report instead of the entry's last one (the caller gave up
// waiting). c.mu is held.
func (c *Cache) answer(e *entry, now time.Time, override *FetchError) (*Result, error) {
	fail := e.lastErr
	if override != nil {
		fail = override
	}
	if fail == nil && e.good != nil {
		c.st.ServedFresh++
		return &Result{JPEG: e.good, Taken: e.taken, Age: nonNeg(now.Sub(e.taken))}, nil
	}
	age := time.Duration(0)
	if e.good != nil {
		age = nonNeg(now.Sub(e.taken))
	}
	if fail == nil { // no image and no failure: cannot happen after a fetch; be explicit anyway
		fail = &FetchError{Reason: ReasonDevice, Detail: "no image fetched"}
	}
	if e.good != nil && !c.opt.NoLastGood && (c.opt.MaxStale < 0 || age <= c.opt.MaxStale) {
		c.st.ServedStale++
		return &Result{JPEG: e.good, Taken: e.taken, Stale: true, Age: age, Err: fail}, nil
	}
	c.st.ServedErrors++
	return nil, &Error{
		Reason:   fail.Reason,
		LastErr:  fail,
		LastGood: e.taken,
		Age:      age,
		MaxStale: c.opt.MaxStale,
		Disabled: c.opt.NoLastGood,
	}
}

// run does one device request for e and publishes its outcome.
func (c *Cache) run(e *entry, f *flight) {
	defer c.wg.Done()
	jpeg, ferr := c.fetchOnce(e.key)

	c.mu.Lock()
	now := c.opt.Now()
	e.flight = nil
	e.attempted = true
	e.lastAttempt = now
	if ferr == nil {
		e.good, e.taken, e.lastErr = jpeg, now, nil
		c.st.LastGood = now
	} else {
		e.lastErr = ferr
		c.st.Failures[ferr.Reason]++
		c.st.LastFailure = now
		c.st.LastReason = ferr.Reason
		c.st.LastError = ferr.Error()
	}
	c.mu.Unlock()
	close(f.done)
}

func (c *Cache) fetchOnce(key sizeKey) (jpeg []byte, ferr *FetchError) {
	ctx, cancel := context.WithTimeout(c.ctx, c.opt.FetchTimeout)
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			jpeg, ferr = nil, &FetchError{Reason: ReasonDevice, Detail: fmt.Sprintf("fetcher panicked: %v", p)}
		}
	}()
	body, err := c.fetch(ctx, key.w, key.h)
	if err != nil {
		return nil, classify(err, ctx.Err(), c.ctx.Err() != nil)
	}
	jpeg, err = Validate(body)
	if err != nil {
		return nil, err.(*FetchError)
	}
	return jpeg, nil
}

// Stats returns a copy of the counters.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.st
	s.Failures = make(map[Reason]uint64, len(c.st.Failures))
	for r, n := range c.st.Failures {
		s.Failures[r] = n
	}
	return s
}

// Close cancels in-flight fetches and waits for them to end. Get afterwards
// answers an *Error with ReasonClosed. Close is idempotent.
func (c *Cache) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
}

func nonNeg(d time.Duration) time.Duration {
	if d < 0 {
		return 0
	}
	return d
}
