package hikvision

import (
	"sort"
	"time"
)

// Health is the JSON of GET /api/hikvision.
type Health struct {
	Devices []DeviceHealth `json:"devices"`
	Sources []SourceHealth `json:"sources"`
	Events  *EventsHealth  `json:"events,omitempty"` // null while events are off (events_api.go)
}

// DeviceHealth is one device in Health.
type DeviceHealth struct {
	Device    string `json:"device"` // host[:port]
	User      string `json:"user"`
	Model     string `json:"model,omitempty"`
	Reachable *bool  `json:"reachable"` // null: not known yet
	// GuardStatus: the device's login guard (shared by producers, snapshots,
	// talk), inline: the same fields as "guard" in /api/streams.
	GuardStatus
	LastError   string     `json:"last_error,omitempty"` // redacted
	LastErrorAt *time.Time `json:"last_error_at,omitempty"`
	Sources     []string   `json:"sources"` // redacted URLs
}

// SourceHealth is one source (of one stream) in Health.
type SourceHealth struct {
	Stream     string          `json:"stream"` // go2rtc stream name; "" if dialled outside any stream
	URL        string          `json:"url"`    // redacted
	Device     string          `json:"device"`
	Channel    int             `json:"channel"`
	StreamID   int             `json:"stream_id"`
	State      string          `json:"state"`
	Since      *time.Time      `json:"since"`
	Until      *time.Time      `json:"until,omitempty"` // end of a backoff or lock
	LastFrame  *time.Time      `json:"last_frame"`      // last RTP packet; null if none (yet)
	Attempts   int             `json:"attempts"`        // the producer's authenticated RTSP attempts
	Reconnects int             `json:"reconnects"`      // sessions the producer restored
	Dials      int             `json:"dials"`
	DialFails  int             `json:"dial_failures"`
	LastDial   *time.Time      `json:"last_dial"`
	LastError  string          `json:"last_error,omitempty"` // redacted
	LastErrAt  *time.Time      `json:"last_error_at,omitempty"`
	Snapshot   *SnapshotHealth `json:"snapshot"`       // null until the first snapshot request
	Talk       *TalkStatus     `json:"talk,omitempty"` // voice talk (backchannel) of the producer, if any
}

// SnapshotHealth is the snapshot cache of a source.
type SnapshotHealth struct {
	LastGood       *time.Time        `json:"last_good"`
	DeviceRequests uint64            `json:"device_requests"`
	ServedFresh    uint64            `json:"served_fresh"`
	ServedStale    uint64            `json:"served_stale"`
	ServedErrors   uint64            `json:"served_errors"`
	ServedCached   uint64            `json:"served_cached"`
	Coalesced      uint64            `json:"coalesced"`
	Failures       map[string]uint64 `json:"failures"`
	LastFailure    *time.Time        `json:"last_failure,omitempty"`
	LastReason     string            `json:"last_reason,omitempty"`
	LastError      string            `json:"last_error,omitempty"` // redacted
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// health builds the health view, sorted by device and stream.
// It only reads: sources of deleted streams that nothing plays are left out
// here and dropped by prune when a lifetime ends.
func (r *registry) health() Health {
	listed := r.listed()
	r.mu.Lock()
	srcs := r.entriesLocked()
	r.mu.Unlock()

	h := Health{Devices: []DeviceHealth{}, Sources: []SourceHealth{}}
	bySource := map[*Device][]string{}
	var devs []*Device
	for _, s := range srcs {
		s.mu.Lock()
		var names []string
		if listed != nil {
			for n := range listed[s] {
				names = append(names, n)
			}
		} else {
			for n := range s.streams {
				names = append(names, n)
			}
		}
		gone := listed != nil && len(names) == 0 && !s.busyLocked()
		s.mu.Unlock()
		if gone {
			continue
		}
		h.Sources = append(h.Sources, s.health(names)...)
		if bySource[s.dev] == nil {
			devs = append(devs, s.dev)
		}
		bySource[s.dev] = append(bySource[s.dev], s.url)
	}
	for _, d := range devs {
		g := d.guard.Snapshot()
		d.mu.Lock()
		dh := DeviceHealth{
			Device: d.host, User: d.user, Model: d.model, GuardStatus: guardStatus(g),
			LastError: d.redact(g.LastError), LastErrorAt: timePtr(g.LastErrorAt),
		}
		if dh.LastError == "" && d.lastError != "" {
			dh.LastError, dh.LastErrorAt = d.lastError, timePtr(d.lastErrAt)
		}
		d.mu.Unlock()
		dh.Reachable = d.reachable()
		dh.Sources = bySource[d]
		sort.Strings(dh.Sources)
		h.Devices = append(h.Devices, dh)
	}
	sort.Slice(h.Devices, func(i, j int) bool {
		a, b := h.Devices[i], h.Devices[j]
		return a.Device+"\x00"+a.User < b.Device+"\x00"+b.User
	})
	sort.Slice(h.Sources, func(i, j int) bool {
		a, b := h.Sources[i], h.Sources[j]
		return a.Stream+"\x00"+a.URL < b.Stream+"\x00"+b.URL
	})
	h.Events = r.m.eventsHealth()
	return h
}

// health returns one SourceHealth per stream the source is in (one with
// Stream "" if none).
func (s *sourceEntry) health(names []string) []SourceHealth {
	s.mu.Lock()
	sh := SourceHealth{
		URL: s.url, Device: s.dev.host, Channel: s.cfg.Channel, StreamID: s.cfg.StreamID(),
		State: s.state, Since: timePtr(s.since), Dials: s.dials, DialFails: s.dialFails,
		LastDial: timePtr(s.lastDial), LastError: s.lastError, LastErrAt: timePtr(s.lastErrAt),
	}
	prod, cache := s.prod, s.cache
	s.mu.Unlock()

	if prod != nil {
		st := prod.Status()
		sh.State, sh.Since = st.State.String(), timePtr(st.Since)
		if st.State == StateBackoff || st.State == StateLocked {
			sh.Until = timePtr(st.Until)
		}
		sh.LastFrame = timePtr(st.LastPacket)
		sh.Attempts, sh.Reconnects = st.Attempts, st.Reconnects
		if ts := prod.Talk(); ts != nil {
			ts.Error = s.dev.redact(ts.Error)
			sh.Talk = ts
		}
		if st.LastError != "" {
			sh.LastError, sh.LastErrAt = s.dev.redact(st.LastError), timePtr(st.LastErrorAt)
		}
	}
	if cache != nil {
		st := cache.Stats()
		sh.Snapshot = &SnapshotHealth{
			LastGood: timePtr(st.LastGood), DeviceRequests: st.DeviceRequests, ServedFresh: st.ServedFresh,
			ServedStale: st.ServedStale, ServedErrors: st.ServedErrors, ServedCached: st.ServedCached,
			Coalesced: st.Coalesced, Failures: map[string]uint64{}, LastFailure: timePtr(st.LastFailure),
			LastReason: string(st.LastReason), LastError: s.dev.redact(st.LastError),
		}
		for k, v := range st.Failures {
			sh.Snapshot.Failures[string(k)] = v
		}
	}
	if len(names) == 0 {
		return []SourceHealth{sh}
	}
	sort.Strings(names)
	out := make([]SourceHealth, 0, len(names))
	for _, n := range names {
		c := sh
		c.Stream = n
		out = append(out, c)
	}
	return out
}
