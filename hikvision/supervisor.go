package hikvision

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"syscall"
	"time"

	"github.com/AlexxIT/go2rtc/pkg/core"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/guard"
)

// ReconnectOptions tune how a Producer keeps its stream alive inside one
// Start. Zero fields take the defaults (DefaultReconnectOptions).
type ReconnectOptions struct {
	// PortProbeInterval: while the device is down, its RTSP port is probed
	// with a plain TCP connect (no credentials, never a login) this often.
	// Default 300 ms.
	PortProbeInterval time.Duration `yaml:"port_probe_interval"`
	// StallTimeout: once a session delivered no RTP on any track for this
	// long (even if RTCP or keep-alives still flow) a new session is tried
	// beside it; whichever delivers video first carries on, the other is
	// closed.
	// Default 3 s.
	StallTimeout time.Duration `yaml:"stall_timeout"`
	// GiveUpAfter: Start returns *ReconnectError after reconnect attempts
	// failed for this long with the device's RTSP port answering. Default 2 min.
	GiveUpAfter time.Duration `yaml:"give_up_after"`
	// BackoffBase and BackoffMax: after a failed authenticated attempt the
	// next one waits BackoffBase×1.6^n ±20%, at most BackoffMax. Defaults 1 s, 30 s.
	BackoffBase time.Duration `yaml:"backoff_base"`
	BackoffMax  time.Duration `yaml:"backoff_max"`
	// StableAfter: a session that lasted at least this long resets the
	// backoff; shorter ones (a device that drops every stream at once) keep
	// growing it. Default 30 s.
	StableAfter time.Duration `yaml:"stable_after"`
	// LossLogInterval: RTP packet loss is summed and logged at most once per
	// interval (and only when non-zero; checked when the stall timer fires,
	// so at least StallTimeout apart). Default 1 min.
	LossLogInterval time.Duration `yaml:"loss_log_interval"`
}

// DefaultReconnectOptions returns the defaults.
func DefaultReconnectOptions() ReconnectOptions {
	return ReconnectOptions{
		PortProbeInterval: 300 * time.Millisecond,
		StallTimeout:      3 * time.Second,
		GiveUpAfter:       2 * time.Minute,
		BackoffBase:       guard.DefaultBackoff().Base,
		BackoffMax:        guard.DefaultBackoff().Max,
		StableAfter:       30 * time.Second,
		LossLogInterval:   time.Minute,
	}
}

func (o ReconnectOptions) withDefaults() ReconnectOptions {
	d := DefaultReconnectOptions()
	set := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	set(&o.PortProbeInterval, d.PortProbeInterval)
	set(&o.StallTimeout, d.StallTimeout)
	set(&o.GiveUpAfter, d.GiveUpAfter)
	set(&o.BackoffBase, d.BackoffBase)
	set(&o.BackoffMax, d.BackoffMax)
	set(&o.StableAfter, d.StableAfter)
	set(&o.LossLogInterval, d.LossLogInterval)
	return o
}

// stoppedError ends what Stop interrupted. It matches context.Canceled, so
// the login guard forgets an attempt it interrupted (nothing counted).
type stoppedError struct{}

func (stoppedError) Error() string        { return "hikvision: producer stopped" }
func (stoppedError) Is(target error) bool { return target == context.Canceled }

var (
	errStopped error = stoppedError{}
	errRestart       = errors.New("hikvision: session restart for a new track")
)

// run is Start's supervisor: it plays sess, and when the session drops or
// stalls, reconnects into the same receivers. It returns nil after Stop, or
// the error that ended the stream. It talks to the session only through the
// Backend and Session interfaces.
func (p *Producer) run(sess Session) error {
	sv := &supervision{began: time.Now(), stable: p.opts.StableAfter}
	p.gate.mu.Lock()
	gen := p.gate.current // Dial's session
	p.gate.mu.Unlock()
	for {
		err, final := p.play(sess, gen, sv)
		if final {
			if errors.Is(err, errStopped) || p.isStopped() {
				return nil
			}
			p.fail(err)
			return err
		}
		if errors.Is(err, errStopped) || p.isStopped() {
			return nil
		}
		restart := errors.Is(err, errRestart)
		if restart {
			sv.flaps = 0
			p.noteError(err)
		} else {
			sv.flaps = sv.dropped()
			p.setState(StateReconnecting, time.Time{}, err)
		}

		sess, gen, err = p.reconnect(p.ctx, sv.flaps, restart, false)
		if err != nil {
			if errors.Is(err, errStopped) {
				return nil
			}
			p.fail(err)
			return err
		}
		sv.began = time.Now()
		p.mu.Lock()
		p.status.reconnects++
		p.mu.Unlock()
	}
}

// supervision is what run's loop remembers across sessions.
type supervision struct {
	began  time.Time // when the current session started
	flaps  int       // sessions in a row that ended before StableAfter
	stable time.Duration
}

// dropped is flaps once the current session is given up: a session that
// lasted StableAfter resets them, a shorter one (a device that drops every
// stream at once) adds one (the next reconnect backs off more).
func (sv *supervision) dropped() int {
	if time.Since(sv.began) >= sv.stable {
		return 0
	}
	return sv.flaps + 1
}

// fail records the error that ends Start.
func (p *Producer) fail(err error) {
	var h *HoldError
	until := time.Time{}
	if errors.As(err, &h) {
		until = h.Until
	}
	st := stateOfKind(guard.Classify(err))
	if st != StateLocked {
		until = time.Time{}
	}
	p.setState(st, until, err)
}

// adopt makes sess (of generation gen) the producer's current session: its
// packets, and only its, reach the consumers.
func (p *Producer) adopt(sess Session, gen uint64) {
	p.mu.Lock()
	p.sess = sess
	p.RemoteAddr = sess.RemoteAddr()
	p.mu.Unlock()
	p.gate.mu.Lock()
	p.gate.current, p.gate.owner = gen, gen
	p.gate.mu.Unlock()
}

// challenger is a new session tried beside a stalled one (make before
// break): reconnect runs in its own goroutine until it has a session set up,
// which the same goroutine then plays at once (the device just answered:
// no hop through the supervisor before PLAY); its packets pass the gate
// only if it delivers video before the stalled session does.
type challenger struct {
	cancel  context.CancelFunc
	res     chan challengeResult // reconnect's outcome; buffered 1
	attempt int                  // the flaps it counts as, should it take over

	sess   Session // once res delivered a session: playing
	gen    uint64
	errc   chan error // sess.Play's end
	playAt int64      // mono ns when sess began to play
}

// challengeResult is reconnect's outcome: err, or a session that is being
// played (Play's end on errc).
type challengeResult struct {
	sess   Session
	gen    uint64
	errc   chan error
	playAt int64
	err    error
}

func (p *Producer) challenge(attempt int) *challenger {
	ctx, cancel := context.WithCancel(p.ctx)
	ch := &challenger{cancel: cancel, res: make(chan challengeResult, 1), attempt: attempt}
	go func() {
		// at once: the stalled session is kept, so a first attempt costs the
		// viewers nothing and is the quickest way back
		sess, gen, err := p.reconnect(ctx, attempt, true, true)
		if err != nil {
			ch.res <- challengeResult{err: err}
			return
		}
		// the result goes out before Play starts: a packet of this session
		// (a claim of the gate) never precedes it
		r := challengeResult{sess: sess, gen: gen, errc: make(chan error, 1), playAt: mono()}
		ch.res <- r
		r.errc <- sess.Play()
	}()
	return ch
}

// take records the session reconnect delivered.
func (ch *challenger) take(r challengeResult) {
	ch.sess, ch.gen, ch.errc, ch.playAt = r.sess, r.gen, r.errc, r.playAt
}

// drop ends the challenger: its reconnect, or its session. It returns once
// nothing of it runs.
func (ch *challenger) drop() {
	ch.cancel()
	if ch.sess == nil {
		if r := <-ch.res; r.sess != nil {
			_ = r.sess.Close() // Play returns
			<-r.errc
		}
		return
	}
	_ = ch.sess.Close() // Play returns
	<-ch.errc
}

// play runs one session until it ends, is restarted, or Stop. When it
// stalls (no packet for StallTimeout) it is not torn down at once: a new
// session is tried beside it (reconnect's rules: port probe, backoff, give
// up), and whichever delivers a video packet first carries on while the
// other is closed (see gate: audio does not decide, unless no video is
// forwarded or the new session sent none for a StallTimeout). A device (or
// link) that only went silent resumes on the old session at once, without a
// reconnect or a step of backoff, or on the new one if its key frame comes
// before the old one's next frame; a session that is dead while the device
// answers is replaced as soon as the new one delivers. final tells that err ends Start (the challenger's reconnect
// failed for good, or Stop); otherwise the session ended and run reconnects.
func (p *Producer) play(sess Session, gen uint64, sv *supervision) (err error, final bool) {
	p.adopt(sess, gen)

	start := mono()
	// the session's first packet flips the state to streaming (forward
	// signals it once per session); drop a signal left by the last one
	select {
	case <-p.firstPacket:
	default:
	}
	errc := make(chan error, 1)
	go func() { errc <- sess.Play() }()

	// One timer per stream, not a ticker: it fires StallTimeout after the
	// last packet it knows of and re-arms itself from the newest packet's
	// time, so a flowing stream wakes this goroutine once per StallTimeout
	// (the loss log rides on the same wake-ups).
	heartbeat := time.NewTimer(p.opts.StallTimeout)
	defer heartbeat.Stop()
	lossAt := start

	var ch *challenger
	// closeSess ends the current session (Close is safe twice).
	closeSess := func() {
		_ = sess.Close() // Play returns
		if errc != nil {
			<-errc
			errc = nil
		}
	}
	// end closes what runs (the challenger first, then the session).
	end := func(reason error, final bool) (error, bool) {
		if ch != nil {
			ch.drop()
		}
		closeSess()
		return reason, final
	}
	reopen := func(stale uint64) {
		p.gate.mu.Lock()
		if p.gate.owner == stale {
			p.gate.owner = 0
		}
		p.gate.mu.Unlock()
	}
	for {
		var chRes <-chan challengeResult
		var chErr <-chan error
		if ch != nil {
			if ch.sess == nil {
				chRes = ch.res
			} else {
				chErr = ch.errc
			}
		}
		select {
		case err := <-errc:
			errc = nil
			if ch == nil {
				return end(err, false)
			}
			// the stalled session ended; the challenger carries on
			p.noteError(err)
		case <-p.ctx.Done():
			return end(errStopped, true)
		case <-p.restartCh:
			return end(errRestart, false)
		case <-p.firstPacket:
			p.setState(StateStreaming, time.Time{}, nil)
		case r := <-chRes:
			if r.err != nil {
				ch = nil // its goroutine is over
				return end(r.err, true)
			}
			ch.take(r)
			// from now on the heartbeat watches the new session's video
			heartbeat.Reset(p.opts.StallTimeout)
		case err := <-chErr:
			// the new session ended before it took over: try another
			_ = ch.sess.Close()
			ch.cancel()
			reopen(ch.gen)
			p.noteError(err)
			ch = p.challenge(ch.attempt + 1)
		case g := <-p.gate.claimed:
			if ch != nil && ch.sess == nil && g != gen {
				// the new session plays as soon as it is set up, so its
				// claim can come before its result was taken (which was
				// sent before it played: it is there)
				select {
				case r := <-ch.res:
					if r.err != nil {
						ch = nil // its goroutine is over
						return end(r.err, true)
					}
					ch.take(r)
					heartbeat.Reset(p.opts.StallTimeout)
				default:
				}
			}
			switch {
			case ch == nil:
			case g == gen && errc != nil:
				// the stalled session resumed: keep it, drop the new one
				ch.drop()
				ch = nil
				p.setState(StateStreaming, time.Time{}, nil)
				heartbeat.Reset(p.opts.StallTimeout)
			case ch.sess != nil && g == ch.gen:
				// the new session delivered first: it takes over
				closeSess()
				ch.cancel()
				sess, gen, errc = ch.sess, ch.gen, ch.errc
				sv.flaps, sv.began = ch.attempt, time.Now()
				ch = nil
				p.adopt(sess, gen)
				start = mono()
				p.mu.Lock()
				p.status.reconnects++
				p.mu.Unlock()
				p.setState(StateStreaming, time.Time{}, nil)
				heartbeat.Reset(p.opts.StallTimeout)
			default:
				reopen(g) // claimed by a session that has ended since
			}
		case <-heartbeat.C:
			now := mono()
			if time.Duration(now-lossAt) >= p.opts.LossLogInterval {
				lossAt = now
				p.logLoss()
			}
			if ch != nil {
				if ch.sess != nil && time.Duration(now-ch.playAt) >= p.opts.StallTimeout {
					// the device answers, yet the new session sent no
					// video for a StallTimeout (nor did the stalled
					// one): let any track's packet decide, so audio
					// alone still gets through
					p.gate.mu.Lock()
					p.gate.anyTrack = true
					p.gate.mu.Unlock()
				}
				heartbeat.Reset(p.opts.StallTimeout)
				continue
			}
			last := p.status.lastPacket.Load()
			if last < start {
				last = start
			}
			idle := time.Duration(now - last)
			if idle < p.opts.StallTimeout {
				heartbeat.Reset(p.opts.StallTimeout - idle)
				continue
			}
			se := &StallError{Host: p.backend.Addr(), For: idle}
			msg := redactErr(se, p.cfg)
			p.mu.Lock()
			// count and reason together: a status that shows the stall shows why
			p.status.stalls++
			p.status.lastErr, p.status.lastErrAt = msg, time.Now()
			p.mu.Unlock()
			p.setState(StateReconnecting, time.Time{}, nil)
			// the first of the two sessions to deliver video passes the
			// gate (any packet if no video is forwarded)
			anyTrack := !p.forwardsVideo()
			p.gate.mu.Lock()
			p.gate.owner, p.gate.anyTrack = 0, anyTrack
			select {
			case <-p.gate.claimed:
			default:
			}
			p.gate.mu.Unlock()
			ch = p.challenge(sv.dropped())
			heartbeat.Reset(p.opts.StallTimeout)
		}
	}
}

// forwardsVideo tells whether a video track is among the receivers handed
// to go2rtc.
func (p *Producer) forwardsVideo() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range p.tracks {
		if t.media.Kind == core.KindVideo {
			return true
		}
	}
	return false
}

// reconnect restores a session for every track. While the backend's port
// does not answer it is probed every PortProbeInterval without
// credentials; authenticated attempts (guard permitting) follow a jittered
// exponential backoff while they fail with the port answering. It ends with a
// playing-ready session and its generation, errStopped (ctx is done), a
// permanent error at once, or *ReconnectError after GiveUpAfter of failures.
// beside: a stalled session is still kept; an attempt the device did not
// answer at all (a timeout) is then made again at once, not after a
// backoff: the device is silent, not refusing, and an attempt waiting when
// it answers again is the fastest way back.
func (p *Producer) reconnect(ctx context.Context, attempt int, now, beside bool) (Session, uint64, error) {
	var (
		nextAuth     time.Time
		failingSince time.Time
		attempts     int
		lastErr      error
	)
	if !now && attempt > 1 {
		// sessions keep dropping soon after they start: slow down (the
		// first drop is retried at once)
		nextAuth = time.Now().Add(p.backoff(attempt - 2))
	}
	for {
		wasDown, err := p.waitPort(ctx)
		if err != nil {
			return nil, 0, err
		}
		if wasDown {
			// the device was away: try as soon as it answers
			nextAuth, failingSince = time.Time{}, time.Time{}
		}
		if wait := time.Until(nextAuth); wait > 0 {
			p.setState(StateBackoff, nextAuth, nil)
			if !sleep(ctx, min(wait, p.opts.PortProbeInterval*4)) {
				return nil, 0, errStopped
			}
			continue // probe again: a reboot in the meantime ends the backoff
		}

		sess, gen, err := p.attempt(ctx)
		if err == nil {
			return sess, gen, nil
		}
		if ctx.Err() != nil {
			return nil, 0, errStopped
		}
		var h *HoldError
		if errors.As(err, &h) {
			if h.Permanent() {
				return nil, 0, err
			}
			// logins in flight elsewhere: wait, not a failure of ours
			nextAuth = h.Until
			continue
		}
		if permanentCause(err) || errors.Is(err, ErrStreamChanged) {
			return nil, 0, err
		}
		attempts++
		lastErr = err
		t := time.Now()
		if failingSince.IsZero() {
			failingSince = t
		}
		if t.Sub(failingSince) >= p.opts.GiveUpAfter {
			return nil, 0, &ReconnectError{Host: p.backend.Addr(), Since: failingSince, For: t.Sub(failingSince),
				Attempts: attempts, Err: lastErr}
		}
		if beside && guard.Classify(err) == guard.KindTimeout {
			p.noteError(err)
			continue
		}
		nextAuth = t.Add(p.backoff(attempt))
		attempt++
		p.setState(StateBackoff, nextAuth, err)
	}
}

func (p *Producer) backoff(attempt int) time.Duration {
	b := guard.DefaultBackoff()
	b.Base, b.Max = p.opts.BackoffBase, p.opts.BackoffMax
	return b.Delay(attempt, rand.Float64())
}

// attempt is one authenticated reconnect: a session with every track set
// up (RTSP: DESCRIBE, SETUP; PLAY is sent by play), and the generation its
// packets carry through the gate.
func (p *Producer) attempt(ctx context.Context) (Session, uint64, error) {
	sess, err := p.open(ctx)
	if err != nil {
		return nil, 0, err
	}
	p.gate.mu.Lock()
	p.gate.next++
	gen := p.gate.next
	p.gate.mu.Unlock()
	p.mu.Lock()
	req := make([]Track, len(p.tracks))
	for i, t := range p.tracks {
		req[i] = Track{Media: t.media, Codec: t.codec, Out: p.forwardGen(t, gen)}
	}
	p.mu.Unlock()
	if err := sess.Setup(ctx, req); err != nil {
		_ = sess.Close()
		return nil, 0, err
	}
	if ctx.Err() != nil {
		_ = sess.Close()
		return nil, 0, errStopped
	}
	p.setState(StateConnecting, time.Time{}, nil)
	return sess, gen, nil
}

// waitPort returns once the backend's port accepts a TCP connection (closed at
// once: no request, no credentials). wasDown tells whether it had to wait.
func (p *Producer) waitPort(ctx context.Context) (wasDown bool, err error) {
	for {
		dctx, cancel := context.WithTimeout(ctx, max(p.opts.PortProbeInterval*3, time.Second))
		c, err := (&net.Dialer{}).DialContext(dctx, "tcp", p.backend.Addr())
		cancel()
		if err == nil {
			_ = c.Close()
			return wasDown, nil
		}
		if errors.Is(err, syscall.ECONNRESET) {
			// something accepted and reset the connection: the device is
			// there (refusing RTSP); an attempt will tell more
			return wasDown, nil
		}
		if ctx.Err() != nil {
			return wasDown, errStopped
		}
		if !wasDown {
			wasDown = true
			p.setState(StateReconnecting, time.Time{}, nil)
		}
		if !sleep(ctx, p.opts.PortProbeInterval) {
			return wasDown, errStopped
		}
	}
}

// sleep waits d or until ctx is done; false then.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (p *Producer) isStopped() bool { return p.ctx.Err() != nil }
