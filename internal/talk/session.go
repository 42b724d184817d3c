package talk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// State of a talk Session.
type State int32

const (
	StateIdle    State = iota // no session; the next audio opens one
	StateOpening              // Open / AudioData in progress; audio is held
	StateOpen                 // streaming audio to the device
	StateBusy                 // the device refused: another client talks; audio dropped, retried in budget
	StateFailed               // talk is off: a permanent error or the failure budget ran out
	StateStopped              // Stop was called
)

func (s State) String() string {
	switch s {
	case StateIdle:
		return "idle"
	case StateOpening:
		return "opening"
	case StateOpen:
		return "open"
	case StateBusy:
		return "busy"
	case StateFailed:
		return "failed"
	case StateStopped:
		return "stopped"
	}
	return fmt.Sprintf("State(%d)", int32(s))
}

// Config of a Session. Zero durations and counts take the defaults.
type Config struct {
	Device Device // required
	Framer Framer // required; see NewFramer

	// IdleTimeout: with no audio for this long we close the session ourselves
	// (shorter than the device's own 3–10 s hang-up). Default 2 s.
	IdleTimeout time.Duration
	// HoldMax bounds the audio queued for the device, notably what arrives
	// while the session opens; newer audio beyond it is dropped. Default 2 s.
	HoldMax time.Duration
	// MaxWrite caps the bytes per write on the audioData connection. Default 1024.
	MaxWrite int
	// OpenTimeout bounds Open plus AudioData. Default 10 s.
	OpenTimeout time.Duration
	// CloseTimeout bounds each Close; Stop waits at most about this long for it. Default 3 s.
	CloseTimeout time.Duration
	// WriteTimeout bounds one write when the writer has SetWriteDeadline. Default 5 s.
	WriteTimeout time.Duration
	// BusyRetry and BusyTries: while the line is busy and audio keeps coming,
	// Open is tried again every BusyRetry, at most BusyTries times in all per
	// talk burst. Defaults 2 s and 5.
	BusyRetry time.Duration
	BusyTries int
	// FailDelay is the pause after a failed open (doubling per failure in a
	// row, at most 30 s); MaxFailures failures in a row turn talk off
	// (StateFailed). Defaults 1 s and 5.
	FailDelay   time.Duration
	MaxFailures int
	// TakeOver restores the old behaviour: close before every open, cutting
	// off whoever is talking.
	TakeOver bool
	// StaleSession says a session of ours may still be open on the device (a
	// previous run ended without closing it): a busy refusal is then answered
	// by close-and-reopen once.
	StaleSession bool
	// OnState is called from the session goroutine on every state change, with
	// the error that caused it (nil if none). It must not block or call Stop.
	OnState func(State, error)
}

const maxFailDelay = 30 * time.Second

func (c *Config) defaults() {
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 2 * time.Second
	}
	if c.HoldMax <= 0 {
		c.HoldMax = 2 * time.Second
	}
	if c.MaxWrite <= 0 {
		c.MaxWrite = 1024
	}
	if c.OpenTimeout <= 0 {
		c.OpenTimeout = 10 * time.Second
	}
	if c.CloseTimeout <= 0 {
		c.CloseTimeout = 3 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 5 * time.Second
	}
	if c.BusyRetry <= 0 {
		c.BusyRetry = 2 * time.Second
	}
	if c.BusyTries <= 0 {
		c.BusyTries = 5
	}
	if c.FailDelay <= 0 {
		c.FailDelay = time.Second
	}
	if c.MaxFailures <= 0 {
		c.MaxFailures = 5
	}
}

// Stats are cumulative counters of a Session.
type Stats struct {
	Opens        uint64 // sessions opened (Open succeeded)
	Closes       uint64 // Close calls sent
	BusyRefusals uint64 // Opens refused because the line was busy
	Failures     uint64 // failed Open / AudioData / audio writes
	Packets      uint64 // RTP payloads accepted by Write
	Bytes        uint64 // audio bytes written to the device
	Drops        uint64 // RTP payloads dropped (hold full, busy, failed, stopped, malformed)
	FrameErrors  uint64 // of Drops: payloads the Framer could not read
}

// op is the device call the session goroutine is in.
type op uint8

const (
	opNone op = iota
	opOpen
	opAudioData
	opWrite
	opClose
)

var errStopped = errors.New("talk: stopped")

type item struct {
	buf *[]byte
	dur time.Duration
}

// Session is the talk engine for one device talk channel. Create it with New,
// feed it with Write, end it with Stop. One goroutine owns the device state.
type Session struct {
	cfg    Config
	ctx    context.Context // cancelled by Stop
	cancel context.CancelFunc
	// callCtx parents Open and AudioData: cancelled CloseTimeout after Stop,
	// so an in-flight Open usually gets the device's answer (a busy refusal
	// then needs no close) yet Stop stays bounded.
	callCtx     context.Context
	cancelCalls context.CancelFunc
	in          chan item
	done        chan struct{}
	pool        sync.Pool
	queued      atomic.Int64 // duration of audio in `in`

	wmu      sync.Mutex // serialises Write (the Framer)
	stopFlag atomic.Bool
	stopOnce sync.Once

	mu        sync.Mutex
	stopped   bool
	inCall    op   // device call in progress
	owned     bool // a session we opened may be open on the device
	stopCall  op   // call in progress when Stop came
	stopOwned bool // owned when Stop came

	state  atomic.Int32
	errMu  sync.Mutex
	err    error
	closed bool // goroutine-only: final state reported

	st struct {
		opens, closes, busy, failures, packets, bytes, drops, frameErrs atomic.Uint64
	}

	// owned by the run goroutine
	w         *onceCloser
	wStop     func() bool
	deadliner interface{ SetWriteDeadline(time.Time) error }
	lastAudio time.Time
	sessBytes uint64
	busyTries int
	failures  int
	holdoff   time.Time
	timer     *time.Timer
}

// New validates cfg and starts the session goroutine. Nothing is sent to the
// device until the first Write. Stop must be called to end the goroutine.
func New(cfg Config) (*Session, error) {
	if cfg.Device == nil {
		return nil, errors.New("talk: Config.Device is nil")
	}
	if cfg.Framer == nil {
		return nil, errors.New("talk: Config.Framer is nil")
	}
	cfg.defaults()
	s := &Session{
		cfg:   cfg,
		in:    make(chan item, 1024),
		done:  make(chan struct{}),
		owned: cfg.StaleSession,
		timer: time.NewTimer(time.Hour),
	}
	s.timer.Stop()
	s.pool.New = func() any { b := make([]byte, 0, 2048); return &b }
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.callCtx, s.cancelCalls = context.WithCancel(context.Background())
	go s.run()
	return s, nil
}

// State is the current state.
func (s *Session) State() State { return State(s.state.Load()) }

// Err is the error reported with the current state (nil if none).
func (s *Session) Err() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.err
}

// Stats returns the counters.
func (s *Session) Stats() Stats {
	return Stats{
		Opens:        s.st.opens.Load(),
		Closes:       s.st.closes.Load(),
		BusyRefusals: s.st.busy.Load(),
		Failures:     s.st.failures.Load(),
		Packets:      s.st.packets.Load(),
		Bytes:        s.st.bytes.Load(),
		Drops:        s.st.drops.Load(),
		FrameErrors:  s.st.frameErrs.Load(),
	}
}

// Write frames one RTP payload and queues it for the device. It never blocks
// on the device: when the hold (HoldMax) is full, in busy or failed state, or
// after Stop, the payload is dropped and counted. payload is not kept.
func (s *Session) Write(payload []byte) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.stopFlag.Load() || s.State() == StateFailed {
		s.st.drops.Add(1)
		return
	}
	bp := s.pool.Get().(*[]byte)
	b, d, err := s.cfg.Framer.Append((*bp)[:0], payload)
	*bp = b
	if err != nil || len(b) == 0 {
		s.pool.Put(bp)
		s.st.drops.Add(1)
		if err != nil {
			s.st.frameErrs.Add(1)
		}
		return
	}
	if s.queued.Add(int64(d)) > int64(s.cfg.HoldMax) {
		s.queued.Add(-int64(d))
		s.pool.Put(bp)
		s.st.drops.Add(1)
		return
	}
	select {
	case s.in <- item{bp, d}:
		s.st.packets.Add(1)
	default:
		s.queued.Add(-int64(d))
		s.pool.Put(bp)
		s.st.drops.Add(1)
	}
}

// Stop ends talk: from now on nothing is sent to the device except one Close
// for a session that was open, or whose Open was in flight and did not end in
// the device's refusal. An audio write in progress is cut at once; an Open or
// AudioData in flight gets CloseTimeout to finish before it is cancelled. Stop
// waits for the session goroutine to end: at most about 2×CloseTimeout when
// the Device honours its contexts. Safe to call more than once and from
// several goroutines.
func (s *Session) Stop() {
	s.stopOnce.Do(func() {
		s.stopFlag.Store(true)
		s.mu.Lock()
		s.stopped = true
		s.stopCall = s.inCall
		s.stopOwned = s.owned
		s.mu.Unlock()
		s.cancel()
		grace := time.AfterFunc(s.cfg.CloseTimeout, s.cancelCalls)
		<-s.done
		grace.Stop()
		s.cancelCalls()
	})
	<-s.done
}

func (s *Session) run() {
	defer close(s.done)
	defer s.timer.Stop()
	for {
		select {
		case <-s.ctx.Done():
			s.shutdown()
			return
		case it := <-s.in:
			s.queued.Add(-int64(it.dur))
			s.handle(*it.buf)
			s.pool.Put(it.buf)
		case <-s.timer.C:
			s.onTimer()
		}
		if s.ctx.Err() != nil {
			s.shutdown()
			return
		}
	}
}

func (s *Session) setState(st State, err error) {
	if s.closed {
		return
	}
	s.errMu.Lock()
	s.err = err
	s.errMu.Unlock()
	old := State(s.state.Swap(int32(st)))
	if old != st && s.cfg.OnState != nil {
		s.cfg.OnState(st, err)
	}
}

func (s *Session) handle(b []byte) {
	now := time.Now()
	switch s.State() {
	case StateIdle:
		if now.Before(s.holdoff) {
			s.st.drops.Add(1)
			return
		}
		s.lastAudio = now
		s.busyTries = 0
		s.openSession()
		if s.State() != StateOpen {
			s.st.drops.Add(1)
			return
		}
		s.writeAudio(b)
	case StateOpen:
		s.lastAudio = now
		s.writeAudio(b)
	case StateBusy:
		s.lastAudio = now
		s.st.drops.Add(1)
	default:
		s.st.drops.Add(1)
	}
}

func (s *Session) onTimer() {
	now := time.Now()
	switch s.State() {
	case StateOpen:
		if left := s.cfg.IdleTimeout - now.Sub(s.lastAudio); left > 0 {
			s.timer.Reset(left)
			return
		}
		if len(s.in) > 0 {
			// Audio is waiting (a slow write held us up): not silence.
			s.timer.Reset(s.cfg.IdleTimeout)
			return
		}
		s.closeWriter()
		if _, err := s.devClose(); err != nil && !errors.Is(err, errStopped) {
			s.setState(StateIdle, fmt.Errorf("talk: close after %s of silence: %w", s.cfg.IdleTimeout, err))
			return
		}
		s.setState(StateIdle, nil)
	case StateBusy:
		if now.Sub(s.lastAudio) >= s.cfg.IdleTimeout {
			s.setState(StateIdle, nil) // the talker gave up; a new burst gets a new budget
			return
		}
		if s.busyTries >= s.cfg.BusyTries {
			s.timer.Reset(s.cfg.IdleTimeout - now.Sub(s.lastAudio))
			return
		}
		s.openSession()
	}
}

// begin registers a device call unless Stop came first.
func (s *Session) begin(o op) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return false
	}
	s.inCall = o
	return true
}

func (s *Session) end() (stopped bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inCall = opNone
	return s.stopped
}

func (s *Session) isOwned() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.owned
}

func (s *Session) setOwned(v bool) {
	s.mu.Lock()
	s.owned = v
	s.mu.Unlock()
}

func (s *Session) devOpen(ctx context.Context) (string, error) {
	if !s.begin(opOpen) {
		return "", errStopped
	}
	sid, err := s.cfg.Device.Open(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inCall = opNone
	if s.stopped {
		// An Open that was in flight when Stop came: unless the device
		// refused it, a session may be open and shutdown closes it.
		if err == nil || !isDeviceAnswer(err) {
			s.owned = true
		}
		return "", errStopped
	}
	if err == nil {
		s.owned = true
		s.st.opens.Add(1)
	} else if !isDeviceAnswer(err) {
		s.owned = true // a timeout or broken connection: the device may have opened
	}
	return sid, err
}

// devClose sends Close (not cancelled by Stop: bounded by CloseTimeout).
func (s *Session) devClose() (sent bool, err error) {
	if !s.begin(opClose) {
		return false, errStopped
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.CloseTimeout)
	err = s.cfg.Device.Close(ctx)
	cancel()
	s.st.closes.Add(1)
	s.mu.Lock()
	s.inCall = opNone
	if err == nil {
		s.owned = false
	}
	s.mu.Unlock()
	return true, err
}

func (s *Session) openSession() {
	if s.State() != StateBusy {
		s.setState(StateOpening, nil)
	}
	ctx, cancel := context.WithTimeout(s.callCtx, s.cfg.OpenTimeout)
	defer cancel()

	if s.cfg.TakeOver {
		if _, err := s.devClose(); errors.Is(err, errStopped) || s.stopFlag.Load() {
			return
		}
	}
	sid, err := s.devOpen(ctx)
	if errors.Is(err, errStopped) {
		return
	}
	if err != nil && isBusy(err) && !s.cfg.TakeOver && s.isOwned() {
		// The open session is ours (not closed after a failure or a crash):
		// close it and open again, once.
		s.st.busy.Add(1)
		if _, cerr := s.devClose(); errors.Is(cerr, errStopped) || s.stopFlag.Load() {
			return
		}
		if sid, err = s.devOpen(ctx); errors.Is(err, errStopped) {
			return
		}
	}
	if err != nil {
		if isBusy(err) {
			s.st.busy.Add(1)
			s.busyTries++
			s.setState(StateBusy, fmt.Errorf("%w: %w", ErrBusy, err))
			s.timer.Reset(s.cfg.BusyRetry)
			return
		}
		if s.isOwned() {
			// The open may have happened (timeout, broken connection).
			if _, cerr := s.devClose(); errors.Is(cerr, errStopped) {
				return
			}
		}
		s.fail(fmt.Errorf("talk: open: %w", err))
		return
	}

	if !s.begin(opAudioData) {
		return
	}
	w, err := s.cfg.Device.AudioData(ctx, sid)
	if err == nil && w == nil {
		err = errors.New("talk: device gave no audio writer")
	}
	if s.end() {
		if w != nil {
			_ = w.Close()
		}
		return
	}
	if err != nil {
		if _, cerr := s.devClose(); errors.Is(cerr, errStopped) {
			return
		}
		s.fail(fmt.Errorf("talk: audioData: %w", err))
		return
	}
	s.w = &onceCloser{WriteCloser: w}
	s.deadliner, _ = w.(interface{ SetWriteDeadline(time.Time) error })
	wc := s.w
	s.wStop = context.AfterFunc(s.ctx, func() { _ = wc.Close() }) // unblocks a stuck write on Stop
	s.sessBytes = 0
	s.busyTries = 0
	s.setState(StateOpen, nil)
	s.timer.Reset(s.cfg.IdleTimeout)
}

// fail counts a failure: permanent errors and a spent budget turn talk off,
// others pause before the next open.
func (s *Session) fail(err error) {
	s.st.failures.Add(1)
	s.failures++
	s.timer.Stop()
	if isPermanent(err) {
		s.setState(StateFailed, err)
		return
	}
	if s.failures >= s.cfg.MaxFailures {
		s.setState(StateFailed, fmt.Errorf("%w (%d in a row): %w", ErrGaveUp, s.failures, err))
		return
	}
	delay := s.cfg.FailDelay
	for i := 1; i < s.failures && delay < maxFailDelay; i++ {
		delay *= 2
	}
	delay = min(delay, maxFailDelay)
	s.holdoff = time.Now().Add(delay)
	s.setState(StateIdle, err)
}

func (s *Session) writeAudio(b []byte) {
	for len(b) > 0 {
		n := min(len(b), s.cfg.MaxWrite)
		if !s.begin(opWrite) {
			return
		}
		if s.deadliner != nil {
			_ = s.deadliner.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
		}
		k, err := s.w.Write(b[:n])
		stopped := s.end()
		if k > 0 {
			s.st.bytes.Add(uint64(k))
			s.sessBytes += uint64(k)
			s.failures = 0
		}
		if stopped {
			return
		}
		if err == nil && k < n {
			err = io.ErrShortWrite
		}
		if err != nil {
			s.onWriteError(err)
			return
		}
		b = b[n:]
	}
}

// onWriteError: the device hung up or the connection broke. Not a producer
// error: back to idle, the next audio reopens.
func (s *Session) onWriteError(err error) {
	delivered := s.sessBytes > 0
	s.closeWriter()
	if _, cerr := s.devClose(); errors.Is(cerr, errStopped) {
		return
	}
	err = fmt.Errorf("talk: audio write: %w", err)
	if delivered {
		s.st.failures.Add(1)
		s.timer.Stop()
		s.setState(StateIdle, err)
		return
	}
	s.fail(err)
}

func (s *Session) closeWriter() {
	if s.w == nil {
		return
	}
	s.wStop()
	_ = s.w.Close()
	s.w, s.wStop, s.deadliner = nil, nil, nil
}

func (s *Session) shutdown() {
	s.closeWriter()
	s.mu.Lock()
	need := s.owned && s.stopCall != opClose
	s.mu.Unlock()
	var err error
	if need {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.CloseTimeout)
		err = s.cfg.Device.Close(ctx)
		cancel()
		s.st.closes.Add(1)
		if err == nil {
			s.setOwned(false)
		} else {
			err = fmt.Errorf("talk: close on stop: %w", err)
		}
	}
	s.setState(StateStopped, err)
	s.closed = true
}

type onceCloser struct {
	io.WriteCloser
	once sync.Once
	err  error
}

func (c *onceCloser) Close() error {
	c.once.Do(func() { c.err = c.WriteCloser.Close() })
	return c.err
}
