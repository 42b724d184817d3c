package events

import (
	"sort"
	"sync"
	"time"
)

// Defaults of StateConfig.
const (
	DefaultInactiveTimeout = 10 * time.Second
	DefaultExplicitTimeout = 2 * time.Minute
)

// StateConfig configures a State.
type StateConfig struct {
	// InactiveTimeout switches an event off this long after its last "active" report, for devices that
	// repeat "active" (about once a second) and never send "inactive". Default 10 s.
	InactiveTimeout time.Duration
	// ExplicitTimeout replaces InactiveTimeout for an event type once the device has sent an explicit
	// "inactive" for it (such devices may stay silent between "active" and "inactive"). It is a safety
	// net against a lost "inactive". Default 2 min; it never goes below InactiveTimeout.
	ExplicitTimeout time.Duration
	// Emit receives every change (usually Hub.Publish). It is called without State's lock held, in order
	// per key, possibly from a timer goroutine.
	Emit  func(Event)
	Clock Clock // default RealClock
}

type stateKey struct {
	device  string
	channel int
	typ     string
}

type entry struct {
	ev       Event // last emitted state (Picture dropped after emit)
	lastSeen time.Time
	deadline time.Time
	timer    Timer
	gen      uint64
}

// State folds alerts into active/inactive periods per (device, channel, type): the first "active"
// starts a period and is emitted, repeats only extend it, "inactive" or the timeout ends it.
type State struct {
	cfg StateConfig

	emitMu     sync.Mutex // serialises Emit so changes leave in order
	emitClosed bool       // under emitMu: Close happened, emit nothing
	mu         sync.Mutex
	m          map[stateKey]*entry
	// explicit[device+"\x00"+type]: the device sends "inactive" for this type
	explicit map[string]bool
	closed   bool
}

// NewState returns an empty State.
func NewState(cfg StateConfig) *State {
	if cfg.InactiveTimeout <= 0 {
		cfg.InactiveTimeout = DefaultInactiveTimeout
	}
	if cfg.ExplicitTimeout <= 0 {
		cfg.ExplicitTimeout = DefaultExplicitTimeout
	}
	if cfg.ExplicitTimeout < cfg.InactiveTimeout {
		cfg.ExplicitTimeout = cfg.InactiveTimeout
	}
	if cfg.Clock == nil {
		cfg.Clock = RealClock
	}
	if cfg.Emit == nil {
		cfg.Emit = func(Event) {}
	}
	return &State{cfg: cfg, m: map[stateKey]*entry{}, explicit: map[string]bool{}}
}

// Apply feeds one alert of device. Heartbeats change nothing, except a videoloss heartbeat ("videoloss
// inactive") that ends an active videoloss of its channel.
func (s *State) Apply(device string, a Alert) {
	if a.Type == "" {
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	now := s.cfg.Clock.Now()
	k := stateKey{device, a.Channel, a.Type}
	e := s.m[k]
	var out *Event
	switch {
	case a.Active:
		if e == nil {
			e = &entry{}
			s.m[k] = e
		}
		e.lastSeen = now
		if !e.ev.Active {
			e.ev = Event{Device: device, Channel: a.Channel, Type: a.Type, Active: true, Time: now, Raw: raw(a)}
			ev := e.ev
			ev.Picture = a.Picture
			out = &ev
		}
		s.armLocked(k, e, now.Add(s.timeoutLocked(device, a.Type)))
	case e != nil && e.ev.Active:
		if !a.Heartbeat {
			s.explicit[device+"\x00"+a.Type] = true
		}
		out = s.endLocked(e, now, raw(a))
	case !a.Heartbeat:
		s.explicit[device+"\x00"+a.Type] = true
	}
	s.emitMu.Lock() // taken before mu is released: emits leave in the order of the changes
	s.mu.Unlock()
	if out != nil && !s.emitClosed {
		s.cfg.Emit(*out)
	}
	s.emitMu.Unlock()
}

func raw(a Alert) string {
	if a.Description != "" && a.Description != a.Raw {
		return a.Raw + ": " + a.Description
	}
	return a.Raw
}

func (s *State) timeoutLocked(device, typ string) time.Duration {
	if s.explicit[device+"\x00"+typ] {
		return s.cfg.ExplicitTimeout
	}
	return s.cfg.InactiveTimeout
}

// endLocked switches e off and returns the event to emit.
func (s *State) endLocked(e *entry, now time.Time, why string) *Event {
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	e.gen++
	e.ev = Event{Device: e.ev.Device, Channel: e.ev.Channel, Type: e.ev.Type, Active: false, Time: now, Raw: why}
	ev := e.ev
	return &ev
}

// armLocked (re)sets the inactive deadline of an active entry.
func (s *State) armLocked(k stateKey, e *entry, deadline time.Time) {
	e.deadline = deadline
	if e.timer != nil {
		e.timer.Stop()
	}
	e.gen++
	gen := e.gen
	e.timer = s.cfg.Clock.AfterFunc(deadline.Sub(s.cfg.Clock.Now()), func() { s.expire(k, gen) })
}

func (s *State) expire(k stateKey, gen uint64) {
	s.mu.Lock()
	e := s.m[k]
	if s.closed || e == nil || e.gen != gen || !e.ev.Active {
		s.mu.Unlock()
		return
	}
	now := s.cfg.Clock.Now()
	if now.Before(e.deadline) { // a fake clock may fire early: re-arm
		s.armLocked(k, e, e.deadline)
		s.mu.Unlock()
		return
	}
	out := s.endLocked(e, now, "timeout")
	s.emitMu.Lock()
	s.mu.Unlock()
	if !s.emitClosed {
		s.cfg.Emit(*out)
	}
	s.emitMu.Unlock()
}

// Disconnected tells State that device's stream was lost: what is active now ends at most
// InactiveTimeout from now unless the device re-confirms it (a repeat after the reconnect), and the
// longer ExplicitTimeout no longer applies to it (its "inactive" may have been lost with the stream).
// Nothing is switched off at once, so a quick reconnect does not flap.
func (s *State) Disconnected(device string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Clock.Now()
	limit := now.Add(s.cfg.InactiveTimeout)
	for k, e := range s.m {
		if k.device == device && e.ev.Active && e.deadline.After(limit) {
			s.armLocked(k, e, limit)
		}
	}
	for key := range s.explicit {
		if len(key) > len(device) && key[:len(device)+1] == device+"\x00" {
			delete(s.explicit, key)
		}
	}
}

// Forget ends everything active of device at once (the subscription stopped) and drops its state.
func (s *State) Forget(device string) {
	s.mu.Lock()
	now := s.cfg.Clock.Now()
	var outs []Event
	for k, e := range s.m {
		if k.device != device {
			continue
		}
		if e.ev.Active {
			outs = append(outs, *s.endLocked(e, now, "stopped"))
		}
		delete(s.m, k)
	}
	s.emitMu.Lock()
	s.mu.Unlock()
	sortEvents(outs)
	for _, ev := range outs {
		if !s.emitClosed {
			s.cfg.Emit(ev)
		}
	}
	s.emitMu.Unlock()
}

// Snapshot returns the latest state of every (channel, type) seen on device ("" = all devices), sorted
// by device, channel, type. Pictures are not kept.
func (s *State) Snapshot(device string) []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Event
	for k, e := range s.m {
		if device == "" || k.device == device {
			out = append(out, e.ev)
		}
	}
	sortEvents(out)
	return out
}

// Close stops every timer and waits for an Emit in progress; no Emit happens afterwards.
func (s *State) Close() {
	s.mu.Lock()
	s.closed = true
	for _, e := range s.m {
		if e.timer != nil {
			e.timer.Stop()
			e.timer = nil
		}
	}
	s.mu.Unlock()
	s.emitMu.Lock() // waits for an Emit in progress
	s.emitClosed = true
	s.emitMu.Unlock()
}

func sortEvents(evs []Event) {
	sort.Slice(evs, func(i, j int) bool {
		a, b := evs[i], evs[j]
		if a.Device != b.Device {
			return a.Device < b.Device
		}
		if a.Channel != b.Channel {
			return a.Channel < b.Channel
		}
		return a.Type < b.Type
	})
}
