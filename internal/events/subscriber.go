package events

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Opener performs the authenticated GET /ISAPI/Event/notification/alertStream (through the device's login
// guard) and returns the response with its body unread. ctx lives as long as the stream: cancelling it
// must abort the request and the body. The Subscriber closes the body. The Subscriber retries failed opens
// for as long as it runs (with backoff, at most one a minute): after a wrong password or a lock the
// Opener must fail without touching the device until its login guard allows a new login.
type Opener func(ctx context.Context) (*http.Response, error)

// AlertStreamPath is the ISAPI path of the event stream.
const AlertStreamPath = "/ISAPI/Event/notification/alertStream"

// Defaults of SubscriberConfig.
const (
	DefaultIdleTimeout     = 10 * time.Minute
	DefaultMinWatchdog     = 5 * time.Second
	DefaultHeartbeatFactor = 3
	DefaultOpenTimeout     = 20 * time.Second
	DefaultBackoffMin      = time.Second
	DefaultBackoffMax      = time.Minute
)

// ErrStalled: the watchdog ended a stream that went quiet.
var ErrStalled = errors.New("events: alert stream stalled")

// StatusError is an alert-stream answer other than 200.
type StatusError struct {
	Code        int
	ContentType string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("events: alert stream answered HTTP %d (%s)", e.Code, e.ContentType)
}

// ConnState is the state of a Subscriber's stream.
type ConnState int

// Connection states reported to SubscriberConfig.OnConnState.
const (
	StateConnecting ConnState = iota
	StateConnected
	StateDisconnected // err says why; a reconnect follows after the backoff
	StateClosed
)

func (s ConnState) String() string {
	switch s {
	case StateConnecting:
		return "connecting"
	case StateConnected:
		return "connected"
	case StateDisconnected:
		return "disconnected"
	case StateClosed:
		return "closed"
	}
	return fmt.Sprintf("ConnState(%d)", int(s))
}

// SubscriberConfig configures a Subscriber. Device and Open are required.
type SubscriberConfig struct {
	Device   string        // host:port, put on every event
	Open     Opener        // the authenticated GET
	Channels ChannelMapper // nil = DefaultChannels
	State    *State        // alerts are applied here (nil = none)
	OnAlert  func(Alert)   // every decoded alert, heartbeats included (optional)
	// OnConnState is told about each state change (optional; for health and logging).
	OnConnState func(st ConnState, err error)

	// Watchdog. A stream that has shown heartbeats is reconnected when nothing arrives for
	// HeartbeatFactor × the longest heartbeat interval seen (at least MinWatchdog). A stream that never
	// showed one is only reconnected after IdleTimeout of silence: some devices send nothing between
	// events, and a reconnect every few seconds would be pointless load (a dead peer is usually noticed
	// sooner by TCP keep-alive).
	IdleTimeout     time.Duration // default 10 min
	MinWatchdog     time.Duration // default 5 s
	HeartbeatFactor int           // default 3
	OpenTimeout     time.Duration // Open must return headers within this; default 20 s

	// Backoff gives the wait before reconnect attempt n (1, 2, ...). Default: 1 s doubling to 1 min,
	// ±20 % jitter. It restarts at 1 after a stream that delivered data.
	Backoff func(attempt int) time.Duration
	Clock   Clock // default RealClock
}

// DefaultBackoff is 1 s, 2 s, 4 s, ... up to 1 min, with ±20 % jitter.
func DefaultBackoff(attempt int) time.Duration {
	d := DefaultBackoffMin
	for i := 1; i < attempt && d < DefaultBackoffMax; i++ {
		d *= 2
	}
	d = min(d, DefaultBackoffMax)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// SubscriberStats are counters of a Subscriber.
type SubscriberStats struct {
	Connects          int // streams opened (200)
	Failures          int // failed opens and lost streams
	WatchdogFires     int // streams ended by the watchdog
	Alerts            int // event reports
	Heartbeats        int
	BadParts          int           // parts that did not decode
	Pictures          int           // pictures attached to events
	Connected         bool          // a stream is open now
	HeartbeatInterval time.Duration // longest heartbeat interval seen, 0 = none seen
	LastError         string
}

// Subscriber holds one alert stream of a device open: it reconnects with backoff, runs the watchdog and
// feeds State. Close stops it and waits for its goroutine.
type Subscriber struct {
	cfg    SubscriberConfig
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	start  sync.Once

	mu    sync.Mutex
	stats SubscriberStats
	hbMax time.Duration // learned heartbeat interval (kept across streams)
}

// NewSubscriber checks cfg and fills defaults; Start begins the subscription.
func NewSubscriber(cfg SubscriberConfig) (*Subscriber, error) {
	if cfg.Device == "" {
		return nil, errors.New("events: subscriber: Device (host:port) is empty")
	}
	if cfg.Open == nil {
		return nil, fmt.Errorf("events: subscriber %s: Open is nil", cfg.Device)
	}
	if cfg.Channels == nil {
		cfg.Channels = DefaultChannels
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MinWatchdog <= 0 {
		cfg.MinWatchdog = DefaultMinWatchdog
	}
	if cfg.HeartbeatFactor <= 0 {
		cfg.HeartbeatFactor = DefaultHeartbeatFactor
	}
	if cfg.OpenTimeout <= 0 {
		cfg.OpenTimeout = DefaultOpenTimeout
	}
	if cfg.Backoff == nil {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.Clock == nil {
		cfg.Clock = RealClock
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Subscriber{cfg: cfg, ctx: ctx, cancel: cancel, done: make(chan struct{})}, nil
}

// Start runs the subscription in a goroutine (once).
func (s *Subscriber) Start() {
	s.start.Do(func() { go s.run() })
}

// Close stops the subscription, waits for its goroutine and ends the device's active events in State.
func (s *Subscriber) Close() error {
	s.cancel()
	started := true
	s.start.Do(func() { started = false; close(s.done) })
	if started {
		<-s.done
	}
	if s.cfg.State != nil {
		s.cfg.State.Forget(s.cfg.Device)
	}
	return nil
}

// Stats returns a copy of the counters.
func (s *Subscriber) Stats() SubscriberStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.HeartbeatInterval = s.hbMax
	return st
}

func (s *Subscriber) report(st ConnState, err error) {
	if s.cfg.OnConnState != nil {
		s.cfg.OnConnState(st, err)
	}
}

func (s *Subscriber) run() {
	defer close(s.done)
	defer s.report(StateClosed, nil)
	attempt := 0
	for {
		s.report(StateConnecting, nil)
		gotData, err := s.stream()
		if s.ctx.Err() != nil {
			return
		}
		s.mu.Lock()
		s.stats.Failures++
		s.stats.Connected = false
		s.stats.LastError = err.Error()
		s.mu.Unlock()
		if s.cfg.State != nil {
			s.cfg.State.Disconnected(s.cfg.Device)
		}
		s.report(StateDisconnected, err)
		if gotData {
			attempt = 0
		}
		attempt++
		if !s.sleep(s.cfg.Backoff(attempt)) {
			return
		}
	}
}

// sleep waits d on the Clock; false when the subscriber closed meanwhile.
func (s *Subscriber) sleep(d time.Duration) bool {
	if d <= 0 {
		return s.ctx.Err() == nil
	}
	ch := make(chan struct{})
	t := s.cfg.Clock.AfterFunc(d, func() { close(ch) })
	select {
	case <-ch:
		return true
	case <-s.ctx.Done():
		t.Stop()
		return false
	}
}

// activityReader records when bytes last arrived.
type activityReader struct {
	r     io.Reader
	clock Clock
	last  atomic.Int64 // UnixNano
}

func (a *activityReader) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if n > 0 {
		a.last.Store(a.clock.Now().UnixNano())
	}
	return n, err
}

// stream opens and reads one stream until it fails. gotData: at least one part decoded.
func (s *Subscriber) stream() (gotData bool, err error) {
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	var stalled atomic.Bool

	openTimer := s.cfg.Clock.AfterFunc(s.cfg.OpenTimeout, func() { stalled.Store(true); cancel() })
	resp, err := s.cfg.Open(ctx)
	openTimer.Stop()
	if err != nil {
		if stalled.Load() {
			return false, fmt.Errorf("%w: no answer to the alert stream request within %v", ErrStalled, s.cfg.OpenTimeout)
		}
		return false, fmt.Errorf("events: open alert stream: %w", err)
	}
	defer resp.Body.Close()
	stopClose := context.AfterFunc(ctx, func() { _ = resp.Body.Close() })
	defer stopClose()
	if resp.StatusCode != http.StatusOK {
		return false, &StatusError{Code: resp.StatusCode, ContentType: resp.Header.Get("Content-Type")}
	}
	s.mu.Lock()
	s.stats.Connects++
	s.stats.Connected = true
	s.mu.Unlock()
	s.report(StateConnected, nil)

	ar := &activityReader{r: resp.Body, clock: s.cfg.Clock}
	ar.last.Store(s.cfg.Clock.Now().UnixNano())
	heartbeats := 0
	var lastHB time.Time

	// watchdog: fires when nothing arrived for watchdogLimit; re-armed when the limit changes
	var wmu sync.Mutex
	var wtimer Timer
	var arm func()
	arm = func() { // caller holds wmu
		if wtimer != nil {
			wtimer.Stop()
		}
		limit := s.watchdogLimit()
		idle := s.cfg.Clock.Now().Sub(time.Unix(0, ar.last.Load()))
		if idle >= limit {
			stalled.Store(true)
			cancel()
			return
		}
		wtimer = s.cfg.Clock.AfterFunc(limit-idle, func() {
			wmu.Lock()
			defer wmu.Unlock()
			if ctx.Err() == nil {
				arm()
			}
		})
	}
	wmu.Lock()
	arm()
	wmu.Unlock()
	defer func() {
		wmu.Lock()
		if wtimer != nil {
			wtimer.Stop()
		}
		wmu.Unlock()
	}()
	limit := s.watchdogLimit()

	dec := NewDecoder(ar, resp.Header.Get("Content-Type"), s.cfg.Channels)
	prevBad := 0
	for {
		a, err := dec.Next()
		st := dec.Stats()
		if err != nil {
			if stalled.Load() {
				was := s.watchdogLimit()
				s.mu.Lock()
				s.stats.WatchdogFires++
				if heartbeats == 0 {
					s.hbMax = 0 // the heartbeats stopped for good: fall back to IdleTimeout
				}
				s.mu.Unlock()
				return gotData, fmt.Errorf("%w: nothing received for %v", ErrStalled, was)
			}
			if errors.Is(err, io.EOF) {
				err = errors.New("events: device ended the alert stream")
			}
			return gotData, err
		}
		gotData = true
		now := s.cfg.Clock.Now()
		s.mu.Lock()
		if a.Heartbeat {
			s.stats.Heartbeats++
			heartbeats++
			if !lastHB.IsZero() {
				if iv := now.Sub(lastHB); iv > s.hbMax {
					s.hbMax = min(iv, s.cfg.IdleTimeout)
				}
			}
			lastHB = now
		} else {
			s.stats.Alerts++
		}
		if a.Picture != nil {
			s.stats.Pictures++
		}
		s.stats.BadParts += st.BadParts - prevBad
		prevBad = st.BadParts
		s.mu.Unlock()
		if l := s.watchdogLimit(); l != limit { // heartbeat cadence learned or changed
			limit = l
			wmu.Lock()
			arm()
			wmu.Unlock()
		}
		if s.cfg.State != nil {
			s.cfg.State.Apply(s.cfg.Device, a)
		}
		if s.cfg.OnAlert != nil {
			s.cfg.OnAlert(a)
		}
	}
}

func (s *Subscriber) watchdogLimit() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hbMax <= 0 {
		return s.cfg.IdleTimeout
	}
	return min(max(time.Duration(s.cfg.HeartbeatFactor)*s.hbMax, s.cfg.MinWatchdog), s.cfg.IdleTimeout)
}
