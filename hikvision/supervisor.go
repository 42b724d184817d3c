package hikvision

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"syscall"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/guard"
)

// ReconnectOptions tune how a Producer keeps its stream alive inside one
// Start. Zero fields take the defaults (DefaultReconnectOptions).
type ReconnectOptions struct {
	// PortProbeInterval: while the device is down, its RTSP port is probed
	// with a plain TCP connect (no credentials, never a login) this often.
	// Default 300 ms.
	PortProbeInterval time.Duration `yaml:"port_probe_interval"`
	// StallTimeout: a session that delivers no RTP on any track for this long
	// is torn down and reconnected, even if RTCP or keep-alives still flow.
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
	flaps := 0
	for {
		began := time.Now()
		err := p.play(sess)
		_ = sess.Close()
		if errors.Is(err, errStopped) || p.isStopped() {
			return nil
		}
		if time.Since(began) >= p.opts.StableAfter || errors.Is(err, errRestart) {
			flaps = 0
		} else {
			flaps++
		}
		if errors.Is(err, errRestart) {
			p.noteError(err)
		} else {
			p.setState(StateReconnecting, time.Time{}, err)
		}

		sess, err = p.reconnect(flaps, errors.Is(err, errRestart))
		if err != nil {
			if errors.Is(err, errStopped) {
				return nil
			}
			p.fail(err)
			return err
		}
		p.mu.Lock()
		p.status.reconnects++
		p.mu.Unlock()
	}
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

// play runs one session until it ends, stalls, is restarted, or Stop.
func (p *Producer) play(sess Session) error {
	p.mu.Lock()
	p.sess = sess
	p.RemoteAddr = sess.RemoteAddr()
	p.mu.Unlock()

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

	stop := func(reason error) error {
		_ = sess.Close() // Play returns
		<-errc
		return reason
	}
	for {
		select {
		case err := <-errc:
			return err
		case <-p.ctx.Done():
			return stop(errStopped)
		case <-p.restartCh:
			return stop(errRestart)
		case <-p.firstPacket:
			p.setState(StateStreaming, time.Time{}, nil)
		case <-heartbeat.C:
			now := mono()
			if time.Duration(now-lossAt) >= p.opts.LossLogInterval {
				lossAt = now
				p.logLoss()
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
			return stop(se)
		}
	}
}

// reconnect restores a session for every track. While the backend's port
// does not answer it is probed every PortProbeInterval without
// credentials; authenticated attempts (guard permitting) follow a jittered
// exponential backoff while they fail with the port answering. It ends with a
// playing-ready session, errStopped, a permanent error at once, or
// *ReconnectError after GiveUpAfter of failures.
func (p *Producer) reconnect(attempt int, now bool) (Session, error) {
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
		wasDown, err := p.waitPort()
		if err != nil {
			return nil, err
		}
		if wasDown {
			// the device was away: try as soon as it answers
			nextAuth, failingSince = time.Time{}, time.Time{}
		}
		if wait := time.Until(nextAuth); wait > 0 {
			p.setState(StateBackoff, nextAuth, nil)
			if !p.sleep(min(wait, p.opts.PortProbeInterval*4)) {
				return nil, errStopped
			}
			continue // probe again: a reboot in the meantime ends the backoff
		}

		sess, err := p.attempt()
		if err == nil {
			return sess, nil
		}
		if p.isStopped() {
			return nil, errStopped
		}
		var h *HoldError
		if errors.As(err, &h) {
			if h.Permanent() {
				return nil, err
			}
			// logins in flight elsewhere: wait, not a failure of ours
			nextAuth = h.Until
			continue
		}
		if permanentCause(err) || errors.Is(err, ErrStreamChanged) {
			return nil, err
		}
		attempts++
		lastErr = err
		t := time.Now()
		if failingSince.IsZero() {
			failingSince = t
		}
		if t.Sub(failingSince) >= p.opts.GiveUpAfter {
			return nil, &ReconnectError{Host: p.backend.Addr(), Since: failingSince, For: t.Sub(failingSince),
				Attempts: attempts, Err: lastErr}
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
// up (RTSP: DESCRIBE, SETUP; PLAY is sent by play).
func (p *Producer) attempt() (Session, error) {
	sess, err := p.open()
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	req := make([]Track, len(p.tracks))
	for i, t := range p.tracks {
		req[i] = Track{Media: t.media, Codec: t.codec, Out: p.forward(t)}
	}
	p.mu.Unlock()
	if err := sess.Setup(p.ctx, req); err != nil {
		_ = sess.Close()
		return nil, err
	}
	if p.isStopped() {
		_ = sess.Close()
		return nil, errStopped
	}
	p.setState(StateConnecting, time.Time{}, nil)
	return sess, nil
}

// waitPort returns once the backend's port accepts a TCP connection (closed at
// once: no request, no credentials). wasDown tells whether it had to wait.
func (p *Producer) waitPort() (wasDown bool, err error) {
	for {
		ctx, cancel := context.WithTimeout(p.ctx, max(p.opts.PortProbeInterval*3, time.Second))
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", p.backend.Addr())
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
		if p.isStopped() {
			return wasDown, errStopped
		}
		if !wasDown {
			wasDown = true
			p.setState(StateReconnecting, time.Time{}, nil)
		}
		if !p.sleep(p.opts.PortProbeInterval) {
			return wasDown, errStopped
		}
	}
}

// sleep waits d or until Stop; false after Stop.
func (p *Producer) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-p.ctx.Done():
		return false
	}
}

func (p *Producer) isStopped() bool { return p.ctx.Err() != nil }
