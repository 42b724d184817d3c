package hikvision

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/guard"
)

// Device and source states listed in the metrics (one series each, 1 for the
// current state).
var (
	deviceStates = []guard.State{guard.StateIdle, guard.StateOK, guard.StateFailing, guard.StateHolding, guard.StateLocked}
	sourceStates = func() []string {
		out := make([]string, len(states))
		for i, s := range states {
			out[i] = s.String()
		}
		return out
	}()
)

// metricsWriter writes the Prometheus text format, one HELP/TYPE per family.
type metricsWriter struct {
	b    strings.Builder
	seen map[string]bool
}

func (m *metricsWriter) family(name, typ, help string) {
	if m.seen[name] {
		return
	}
	m.seen[name] = true
	fmt.Fprintf(&m.b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

func (m *metricsWriter) sample(name string, labels [][2]string, v float64) {
	m.b.WriteString(name)
	if len(labels) > 0 {
		m.b.WriteByte('{')
		for i, l := range labels {
			if i > 0 {
				m.b.WriteByte(',')
			}
			m.b.WriteString(l[0])
			m.b.WriteString(`="`)
			m.b.WriteString(escapeLabel(l[1]))
			m.b.WriteByte('"')
		}
		m.b.WriteByte('}')
	}
	m.b.WriteByte(' ')
	m.b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
	m.b.WriteByte('\n')
}

func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

func unixSeconds(t *time.Time) float64 {
	if t == nil {
		return 0
	}
	return float64(t.UnixMilli()) / 1000
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (r *registry) serveMetrics(w http.ResponseWriter, req *http.Request) {
	h := r.health()
	m := &metricsWriter{seen: map[string]bool{}}

	// Families are written together (all samples of a family in a row), as
	// the text format requires.
	type devFam struct {
		name, typ, help string
		value           func(d DeviceHealth) (float64, bool)
	}
	devFams := []devFam{
		{"hikvision_device_reachable", "gauge", "1 if the device answered its last request, 0 if it did not (absent: not known yet).",
			func(d DeviceHealth) (float64, bool) {
				if d.Reachable == nil {
					return 0, false
				}
				return b2f(*d.Reachable), true
			}},
		{"hikvision_device_failed_logins", "gauge", "Failed logins in the guard's window.",
			func(d DeviceHealth) (float64, bool) { return float64(d.FailedLogins), true }},
		{"hikvision_device_login_budget", "gauge", "Failed logins the guard allows per window.",
			func(d DeviceHealth) (float64, bool) { return float64(d.LoginBudget), true }},
		{"hikvision_device_locked_until_timestamp_seconds", "gauge", "When the device's login lock of this client ends (0: not locked).",
			func(d DeviceHealth) (float64, bool) { return unixSeconds(d.LockedUntil), true }},
		{"hikvision_device_hold_until_timestamp_seconds", "gauge", "When the login guard allows the next login (0: not holding).",
			func(d DeviceHealth) (float64, bool) { return unixSeconds(d.HoldUntil), true }},
	}
	for _, f := range devFams {
		m.family(f.name, f.typ, f.help)
		for _, d := range h.Devices {
			if v, ok := f.value(d); ok {
				m.sample(f.name, [][2]string{{"device", d.Device}, {"user", d.User}}, v)
			}
		}
	}
	m.family("hikvision_device_state", "gauge", "Login guard state of the device (1 for the current state).")
	for _, d := range h.Devices {
		for _, st := range deviceStates {
			m.sample("hikvision_device_state", [][2]string{{"device", d.Device}, {"user", d.User}, {"state", string(st)}},
				b2f(d.State == st))
		}
	}

	srcLabels := func(s SourceHealth) [][2]string {
		return [][2]string{{"device", s.Device}, {"stream", s.Stream}, {"stream_id", strconv.Itoa(s.StreamID)}}
	}
	m.family("hikvision_source_state", "gauge", "State of the source (1 for the current state).")
	for _, s := range h.Sources {
		known := false
		for _, st := range sourceStates {
			known = known || st == s.State
			m.sample("hikvision_source_state", append(srcLabels(s), [2]string{"state", st}), b2f(s.State == st))
		}
		if !known {
			m.sample("hikvision_source_state", append(srcLabels(s), [2]string{"state", s.State}), 1)
		}
	}
	type srcFam struct {
		name, typ, help string
		value           func(s SourceHealth) (float64, bool)
	}
	srcFams := []srcFam{
		{"hikvision_source_streaming", "gauge", "1 while the source is streaming.",
			func(s SourceHealth) (float64, bool) { return b2f(s.State == StateStreaming.String()), true }},
		{"hikvision_source_talk_open", "gauge", "1 while a voice-talk session to the device is open (absent: no talk media).",
			func(s SourceHealth) (float64, bool) {
				return b2f(s.Talk != nil && s.Talk.State == "open"), s.Talk != nil
			}},
		{"hikvision_source_last_frame_timestamp_seconds", "gauge", "When the source's last RTP packet arrived.",
			func(s SourceHealth) (float64, bool) { return unixSeconds(s.LastFrame), s.LastFrame != nil }},
		{"hikvision_source_dials_total", "counter", "Dials of the source by go2rtc.",
			func(s SourceHealth) (float64, bool) { return float64(s.Dials), true }},
		{"hikvision_source_dial_failures_total", "counter", "Failed dials of the source.",
			func(s SourceHealth) (float64, bool) { return float64(s.DialFails), true }},
		{"hikvision_snapshot_last_good_timestamp_seconds", "gauge", "When the last good snapshot was taken.",
			func(s SourceHealth) (float64, bool) {
				return unixSeconds(lastGood(s)), s.Snapshot != nil && s.Snapshot.LastGood != nil
			}},
		{"hikvision_snapshot_device_requests_total", "counter", "Snapshot requests sent to the device.",
			func(s SourceHealth) (float64, bool) {
				if s.Snapshot == nil {
					return 0, false
				}
				return float64(s.Snapshot.DeviceRequests), true
			}},
	}
	for _, f := range srcFams {
		m.family(f.name, f.typ, f.help)
		for _, s := range h.Sources {
			if v, ok := f.value(s); ok {
				m.sample(f.name, srcLabels(s), v)
			}
		}
	}
	m.family("hikvision_snapshot_served_total", "counter", "Snapshot answers by kind (fresh, stale, error, cached).")
	for _, s := range h.Sources {
		if s.Snapshot == nil {
			continue
		}
		for _, k := range []struct {
			kind string
			n    uint64
		}{{"fresh", s.Snapshot.ServedFresh}, {"stale", s.Snapshot.ServedStale}, {"error", s.Snapshot.ServedErrors},
			{"cached", s.Snapshot.ServedCached}} {
			m.sample("hikvision_snapshot_served_total", append(srcLabels(s), [2]string{"kind", k.kind}), float64(k.n))
		}
	}
	m.family("hikvision_snapshot_failures_total", "counter", "Failed snapshot fetches by reason.")
	for _, s := range h.Sources {
		if s.Snapshot == nil {
			continue
		}
		reasons := make([]string, 0, len(s.Snapshot.Failures))
		for k := range s.Snapshot.Failures {
			reasons = append(reasons, k)
		}
		sort.Strings(reasons)
		for _, k := range reasons {
			m.sample("hikvision_snapshot_failures_total", append(srcLabels(s), [2]string{"reason", k}),
				float64(s.Snapshot.Failures[k]))
		}
	}

	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write([]byte(m.b.String()))
}

func lastGood(s SourceHealth) *time.Time {
	if s.Snapshot == nil {
		return nil
	}
	return s.Snapshot.LastGood
}
