package hikvision

import (
	"encoding/json"
	"sync/atomic"
	"time"

	"github.com/AlexxIT/go2rtc/pkg/core"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/guard"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/redact"
)

// State is what a Producer is doing, as /api/streams shows it.
type State int

const (
	// StateConnecting: Dial done, Start not yet streaming.
	StateConnecting State = iota
	// StateStreaming: RTP is arriving.
	StateStreaming
	// StateReconnecting: the link dropped; the device's RTSP port is probed
	// (TCP connect, no credentials) until it answers.
	StateReconnecting
	// StateBackoff: an attempt failed with the device answering; the next
	// authenticated attempt waits until Until.
	StateBackoff
	// StateAuthFailed: the device refused the credentials (Start ended).
	StateAuthFailed
	// StateLocked: the device locked this client; no login until Until.
	StateLocked
	// StateFailed: Start ended with another error.
	StateFailed
	// StateStopped: Stop was called.
	StateStopped
	// StateIdle: a source known (in a stream's config) but never dialled.
	StateIdle
	// StateUnreachable: the last Dial failed without the device answering.
	StateUnreachable
)

var stateNames = [...]string{
	StateConnecting:   "connecting",
	StateStreaming:    "streaming",
	StateReconnecting: "reconnecting",
	StateBackoff:      "backoff",
	StateAuthFailed:   "auth failed",
	StateLocked:       "locked",
	StateFailed:       "failed",
	StateStopped:      "stopped",
	StateIdle:         "idle",
	StateUnreachable:  "unreachable",
}

// states lists every State, for the metrics.
var states = [...]State{StateIdle, StateConnecting, StateStreaming, StateReconnecting, StateBackoff,
	StateUnreachable, StateAuthFailed, StateLocked, StateFailed, StateStopped}

// stateOfKind is the state a failure of kind leaves a source in when it ends
// a Dial or a Start: the one map from failure kinds to state words.
func stateOfKind(k guard.Kind) State {
	switch k {
	case guard.KindWrongCredentials, guard.KindNoCredentials, guard.KindNotActivated, guard.KindLowPrivilege:
		return StateAuthFailed
	case guard.KindLocked:
		return StateLocked
	case guard.KindLoginPending:
		return StateBackoff
	case guard.KindUnreachable, guard.KindTimeout:
		return StateUnreachable
	}
	return StateFailed
}

func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "unknown"
}

// Status is a snapshot of a Producer's connection handling.
type Status struct {
	State State
	// Until is when a backoff or lock ends (zero otherwise).
	Until time.Time
	// Since is when State was entered.
	Since time.Time
	// Attempts is how many authenticated RTSP attempts the producer made
	// (DESCRIBE at Dial included); Reconnects how many of its sessions were
	// restored after the link dropped; Stalls how many sessions were torn down
	// for carrying no media.
	Attempts   int
	Reconnects int
	Stalls     int
	// LastError is the last failure's message, redacted (empty if none).
	LastError   string
	LastErrorAt time.Time
	// LastPacket is when the last RTP packet arrived (zero if none yet).
	LastPacket time.Time
	// PacketsLost is the sum of RTP sequence gaps over all tracks and sessions.
	PacketsLost uint64
	// Guard is the device's login guard (shared by every session of the device).
	Guard GuardStatus
}

// GuardStatus is the device login guard's state.
type GuardStatus struct {
	State        string    `json:"state"`  // idle, ok, failing, holding, locked
	Reason       string    `json:"reason"` // hold reason or last failure kind
	FailedLogins int       `json:"failed_logins"`
	Budget       int       `json:"budget"` // failed logins allowed per window
	Window       string    `json:"window"`
	HoldUntil    time.Time `json:"hold_until,omitzero"`
	LockedUntil  time.Time `json:"locked_until,omitzero"`
	// RetryLoginTime is the tries left the device last reported; -1 unknown.
	RetryLoginTime int `json:"retry_login_time"`
}

func guardStatus(s guard.Snapshot) GuardStatus {
	return GuardStatus{
		State: string(s.State), Reason: s.Reason.String(), FailedLogins: s.FailedLogins, Budget: s.Budget,
		Window: s.Window.String(), HoldUntil: s.HoldUntil, LockedUntil: s.LockedUntil, RetryLoginTime: s.RetryLoginTime,
	}
}

// stateText is the state as a phrase: "backoff until 15:04:05".
func stateText(s State, until time.Time) string {
	if (s == StateBackoff || s == StateLocked) && !until.IsZero() {
		return s.String() + " until " + until.Format("15:04:05")
	}
	return s.String()
}

// statusBox is the producer's mutable status; every field is guarded by mu
// except the per-packet counters, which are atomic.
type statusBox struct {
	state       State
	until       time.Time
	since       time.Time
	attempts    int
	reconnects  int
	stalls      int
	lastErr     string
	lastErrAt   time.Time
	lostLogged  uint64
	lastPacket  atomic.Int64 // monotonic ns (mono) of the last RTP packet; 0 none
	packetsLost atomic.Uint64
}

// monoEpoch anchors mono(): a monotonic clock that is cheap to read per packet.
var monoEpoch = time.Now()

func mono() int64 { return int64(time.Since(monoEpoch)) }

func monoTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return monoEpoch.Add(time.Duration(ns))
}

// setState records a state and logs one line when it changed (a new
// backoff deadline alone is not a change). err may be nil.
func (p *Producer) setState(s State, until time.Time, err error) {
	var msg string
	if err != nil {
		msg = redactErr(err, p.cfg)
	}
	p.mu.Lock()
	st := &p.status
	changed := st.state != s
	if changed {
		st.since = time.Now()
	}
	st.state, st.until = s, until
	if msg != "" {
		st.lastErr, st.lastErrAt = msg, time.Now()
	}
	p.mu.Unlock()
	if !changed {
		return
	}
	ev := p.log.Info()
	switch s {
	case StateReconnecting, StateBackoff, StateUnreachable:
		ev = p.log.Warn()
	case StateAuthFailed, StateLocked, StateFailed:
		ev = p.log.Error()
	case StateStopped:
		ev = p.log.Debug()
	}
	ev = ev.Str("device", p.cfg.HTTPAddr()).Int("channel", p.cfg.Channel).Str("stream", p.cfg.Stream.String()).
		Str("state", stateText(s, until))
	if msg != "" {
		ev = ev.Str("err", msg)
	}
	ev.Msg("[hikvision] " + s.String())
}

// noteError records a failure without changing the state (no log line).
func (p *Producer) noteError(err error) {
	msg := redactErr(err, p.cfg)
	p.mu.Lock()
	p.status.lastErr, p.status.lastErrAt = msg, time.Now()
	p.mu.Unlock()
}

// logLoss writes one line if RTP packets were lost since the last call.
func (p *Producer) logLoss() {
	total := p.status.packetsLost.Load()
	p.mu.Lock()
	delta := total - p.status.lostLogged
	p.status.lostLogged = total
	p.mu.Unlock()
	if delta > 0 {
		p.log.Warn().Str("device", p.cfg.HTTPAddr()).Int("channel", p.cfg.Channel).Str("stream", p.cfg.Stream.String()).
			Uint64("lost", delta).Uint64("lost_total", total).Msg("[hikvision] RTP packets lost")
	}
}

// Status returns a snapshot of the producer's connection handling.
func (p *Producer) Status() Status {
	p.mu.Lock()
	st := &p.status
	s := Status{
		State: st.state, Until: st.until, Since: st.since, Attempts: st.attempts, Reconnects: st.reconnects,
		Stalls: st.stalls, LastError: st.lastErr, LastErrorAt: st.lastErrAt,
	}
	p.mu.Unlock()
	s.LastPacket = monoTime(p.status.lastPacket.Load())
	s.PacketsLost = p.status.packetsLost.Load()
	if p.dev != nil {
		s.Guard = guardStatus(p.dev.guard.Snapshot())
	}
	return s
}

// MarshalJSON is core.Connection plus device, channel, stream and the
// connection status (state, counts, redacted last error, login guard, last
// packet, packets lost) and, when the source has a talk media, the voice-talk
// status (Talk: state open/busy/..., counters, redacted error). It never includes the inner RTSP connection (whose
// URL holds the password).
func (p *Producer) MarshalJSON() ([]byte, error) {
	p.mu.Lock()
	conn := p.Connection
	conn.Receivers = append([]*core.Receiver(nil), p.Receivers...)
	p.mu.Unlock()
	conn.Source = redact.URL(conn.Source)
	conn.URL = redact.URL(conn.URL)
	st := p.Status()
	v := struct {
		core.Connection
		Device      DeviceInfo  `json:"device"`
		Channel     int         `json:"channel"`
		Stream      string      `json:"stream"`
		StreamID    int         `json:"stream_id"`
		State       string      `json:"state"`
		Until       time.Time   `json:"until,omitzero"`
		Since       time.Time   `json:"state_since,omitzero"`
		Attempts    int         `json:"attempts"`
		Reconnects  int         `json:"reconnects"`
		Stalls      int         `json:"stalls,omitempty"`
		LastError   string      `json:"last_error,omitempty"`
		LastErrorAt time.Time   `json:"last_error_at,omitzero"`
		LastPacket  time.Time   `json:"last_packet,omitzero"`
		PacketsLost uint64      `json:"packets_lost"`
		Guard       GuardStatus `json:"guard"`
		Talk        *TalkStatus `json:"talk,omitempty"` // nil without a talk media
	}{
		Connection: conn, Device: p.Device(), Channel: p.cfg.Channel, Stream: p.cfg.Stream.String(),
		StreamID: p.cfg.StreamID(), State: stateText(st.State, st.Until), Until: st.Until, Since: st.Since,
		Attempts: st.Attempts, Reconnects: st.Reconnects, Stalls: st.Stalls, LastError: st.LastError,
		LastErrorAt: st.LastErrorAt, LastPacket: st.LastPacket, PacketsLost: st.PacketsLost, Guard: st.Guard,
		Talk: p.Talk(),
	}
	return json.Marshal(v)
}
