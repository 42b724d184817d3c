package hikvision

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/AlexxIT/go2rtc/pkg/core"
	"github.com/AlexxIT/go2rtc/pkg/rtsp"
	"github.com/AlexxIT/go2rtc/pkg/tcp"
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

// track is one receiver handed to go2rtc. It outlives RTSP sessions: each
// session's own receiver forwards into it, so consumers see a gap, not a
// disconnect. Sequence numbers and timestamps are rebased so that the output
// stays continuous across sessions (the timestamp gap equals the real gap).
type track struct {
	media *core.Media // the producer's media (from Dial's DESCRIBE)
	codec *core.Codec
	recv  *core.Receiver

	// Output state, touched only by the session read goroutine (sessions run
	// one after another, ordered by the supervisor).
	out     bool
	lastSeq uint16
	lastTS  uint32
	lastAt  int64 // mono ns
}

// forward returns the per-packet handler of one session's receiver for t:
// it stamps the heartbeat, counts sequence gaps and forwards into t.recv. It
// allocates nothing per packet, and everything it touches per packet is in
// one forwarder and the track (few cache lines: at 32 streams of 2 Mbit/s
// this runs ~9000 times a second).
func (p *Producer) forward(t *track) core.HandlerFunc {
	f := &forwarder{
		t: t, next: t.recv.Input, clock: int64(t.codec.ClockRate),
		lastPacket: &p.status.lastPacket, lost: &p.status.packetsLost, first: p.firstPacket,
	}
	return f.handle
}

// forwarder is the state of one session's track (see forward). Only the
// session's read goroutine touches it.
type forwarder struct {
	have   bool
	inLast uint16
	seqOff uint16
	tsOff  uint32
	clock  int64

	t          *track
	next       core.HandlerFunc // t.recv.Input: go2rtc's own fan-out to the consumers
	lastPacket *atomic.Int64
	lost       *atomic.Uint64
	first      chan struct{}
}

func (f *forwarder) handle(pkt *core.Packet) {
	now := mono()
	f.lastPacket.Store(now)
	t := f.t
	if !f.have {
		f.have = true
		select { // play sets the state to streaming
		case f.first <- struct{}{}:
		default:
		}
		if t.out && f.clock > 0 {
			ticks := (now - t.lastAt) / 1000 * f.clock / 1_000_000
			f.tsOff = t.lastTS + uint32(ticks) - pkt.Timestamp
			f.seqOff = t.lastSeq + 1 - pkt.SequenceNumber
		}
	} else if gap := pkt.SequenceNumber - f.inLast - 1; gap != 0 && gap < 0x8000 {
		f.lost.Add(uint64(gap))
	}
	f.inLast = pkt.SequenceNumber
	pkt.SequenceNumber += f.seqOff
	pkt.Timestamp += f.tsOff
	t.out, t.lastSeq, t.lastTS, t.lastAt = true, pkt.SequenceNumber, pkt.Timestamp, now
	f.next(pkt)
}

// setupTracks SETUPs every track on a fresh session (one authenticated
// attempt of the guard), matching each track to the session's media by kind,
// control and codec name.
func (p *Producer) setupTracks(conn *rtsp.Conn, tracks []*track) error {
	return p.dev.Do(p.ctx, func(context.Context) error {
		for _, t := range tracks {
			m, c := matchMedia(conn.Medias, t)
			if m == nil {
				// the login worked; the stream changed
				return newDialError("rtsp setup", p.rtspH, &causeError{sentinel: ErrStreamChanged,
					cause: errors.New(t.media.String() + " not in " + mediaList(conn.Medias))}, p.cfg)
			}
			var r *core.Receiver
			err := p.rtspStep(conn, func() (err error) {
				r, err = conn.GetTrack(m, c)
				return err
			})
			if err != nil {
				return newDialError("rtsp setup", p.rtspH, rtspCause(err), p.cfg)
			}
			r.Input = p.forward(t)
		}
		return nil
	})
}

func matchMedia(medias []*core.Media, t *track) (*core.Media, *core.Codec) {
	var fallback *core.Media
	var fallbackCodec *core.Codec
	for _, m := range medias {
		if m.Kind != t.media.Kind || m.Direction != core.DirectionRecvonly {
			continue
		}
		for _, c := range m.Codecs {
			if c.Name != t.codec.Name {
				continue
			}
			if m.ID == t.media.ID {
				return m, c
			}
			if fallback == nil {
				fallback, fallbackCodec = m, c
			}
		}
	}
	return fallback, fallbackCodec
}

// run is Start's supervisor: it plays conn, and when the link drops or
// stalls, reconnects into the same receivers. It returns nil after Stop, or
// the error that ended the stream.
func (p *Producer) run(conn *rtsp.Conn) error {
	flaps := 0
	for {
		began := time.Now()
		err := p.play(conn)
		p.endSession(conn)
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

		conn, err = p.reconnect(flaps, errors.Is(err, errRestart))
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
func (p *Producer) play(conn *rtsp.Conn) error {
	p.mu.Lock()
	p.rtsp = conn
	p.RemoteAddr = conn.Connection.RemoteAddr
	p.mu.Unlock()

	start := mono()
	// go2rtc's client writes PLAY from its read goroutine, unsynchronised:
	// a TEARDOWN from here may only follow once PLAY is out (its listener
	// fires after the request was prepared, before it is written).
	playSent := make(chan struct{})
	var once sync.Once
	conn.Listen(func(msg any) {
		if req, ok := msg.(*tcp.Request); ok && req.Method == rtsp.MethodPlay {
			once.Do(func() { close(playSent) })
		}
	})
	// the session's first packet flips the state to streaming (forward
	// signals it once per session); drop a signal left by the last one
	select {
	case <-p.firstPacket:
	default:
	}
	errc := make(chan error, 1)
	go func() { errc <- playSession(conn) }()

	// One timer per stream, not a ticker: it fires StallTimeout after the
	// last packet it knows of and re-arms itself from the newest packet's
	// time, so a flowing stream wakes this goroutine once per StallTimeout
	// (the loss log rides on the same wake-ups).
	heartbeat := time.NewTimer(p.opts.StallTimeout)
	defer heartbeat.Stop()
	lossAt := start

	stop := func(reason error) error {
		select {
		case <-playSent:
			_ = conn.Teardown() // best effort: the device frees the session at once
			_ = closeTransport(conn)
			<-errc
		case <-errc: // ended before PLAY was sent
			_ = closeTransport(conn)
		}
		return reason
	}
	for {
		select {
		case err := <-errc:
			if err == nil {
				err = errors.New("session ended")
			}
			return newDialError("rtsp play", p.rtspH, rtspCause(err), p.cfg)
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
			se := &StallError{Host: p.rtspH, For: idle}
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

// endSession releases a session whose read loop has ended.
func (p *Producer) endSession(conn *rtsp.Conn) {
	_ = conn.Stop() // closes the session's own receivers (not ours)
	_ = closeTransport(conn)
}

// reconnect restores a session for every track. While the device's RTSP
// port does not answer it is probed every PortProbeInterval without
// credentials; authenticated attempts (guard permitting) follow a jittered
// exponential backoff while they fail with the port answering. It ends with a
// playing-ready session, errStopped, a permanent error at once, or
// *ReconnectError after GiveUpAfter of failures.
func (p *Producer) reconnect(attempt int, now bool) (*rtsp.Conn, error) {
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

		conn, err := p.attempt()
		if err == nil {
			return conn, nil
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
			return nil, &ReconnectError{Host: p.rtspH, Since: failingSince, For: t.Sub(failingSince),
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

// attempt is one authenticated reconnect: DESCRIBE, SETUP of every track.
// PLAY is sent by play (go2rtc's client reads its answer in the read loop).
func (p *Producer) attempt() (*rtsp.Conn, error) {
	conn, err := p.openSession(p.rtspPort)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	tracks := append([]*track(nil), p.tracks...)
	p.mu.Unlock()
	if err := p.setupTracks(conn, tracks); err != nil {
		p.endSession(conn)
		p.unpend(conn)
		return nil, err
	}
	if !p.unpend(conn) {
		p.endSession(conn)
		return nil, errStopped
	}
	p.setState(StateConnecting, time.Time{}, nil)
	return conn, nil
}

// waitPort returns once the RTSP port accepts a TCP connection (closed at
// once: no request, no credentials). wasDown tells whether it had to wait.
func (p *Producer) waitPort() (wasDown bool, err error) {
	for {
		ctx, cancel := context.WithTimeout(p.ctx, max(p.opts.PortProbeInterval*3, time.Second))
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", p.rtspH)
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

// pend registers a session being opened so that Stop can close its socket;
// false if Stop came first (the caller closes it).
func (p *Producer) pend(conn *rtsp.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return false
	}
	p.pending = conn
	return true
}

// unpend ends the registration; false if Stop came meanwhile.
func (p *Producer) unpend(conn *rtsp.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pending == conn {
		p.pending = nil
	}
	return !p.stopped
}
