package hikvision

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/guard"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/snapshot"
)

// HTTP endpoints of the module. The glue inside go2rtc registers them with
// go2rtc's api.HandleFunc, so they sit behind go2rtc's own API listener,
// base path and authentication:
//
//	GET /api/hikvision/snapshot?src=STREAM[&width=W&height=H]   SnapshotHandler
//	GET /api/hikvision                                          HealthHandler
//	GET /api/hikvision/metrics                                  MetricsHandler

// SnapshotHandler answers the device's own JPEG of the stream's first
// hikvision:// source (SetStreamResolver resolves the name). Concurrent
// requests share one device request; a failed fetch answers the last good
// image marked stale (headers X-Hikvision-Stale: true,
// X-Hikvision-Stale-Age: SECONDS, X-Hikvision-Stale-Reason, Age,
// Last-Modified); with no usable image it answers a JSON error
// ({"error","reason","last_good","age_s"}): 400 bad request, 404 no such
// stream or no hikvision source, 502/503/504 device failures (see
// snapshot.Serve).
func (m *Module) SnapshotHandler(w http.ResponseWriter, r *http.Request) { m.reg.serveSnapshot(w, r) }

// HealthHandler answers the JSON Health of every device and source the module
// knows.
func (m *Module) HealthHandler(w http.ResponseWriter, r *http.Request) { m.reg.serveHealth(w, r) }

// MetricsHandler answers the same figures as HealthHandler in the Prometheus
// text format (labels device, user, stream, stream_id; never a password).
func (m *Module) MetricsHandler(w http.ResponseWriter, r *http.Request) { m.reg.serveMetrics(w, r) }

func writeJSONError(w http.ResponseWriter, status int, reason, msg string) {
	b, _ := json.Marshal(snapshot.ErrorBody{Error: msg, Reason: snapshot.Reason(reason)})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func (r *registry) serveSnapshot(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSONError(w, http.StatusMethodNotAllowed, "bad_request", "hikvision: snapshot: use GET")
		return
	}
	name := req.URL.Query().Get("src")
	if name == "" {
		writeJSONError(w, http.StatusBadRequest, "bad_request", "hikvision: snapshot: missing src (a stream name)")
		return
	}
	sources, ok := r.resolveStream(name)
	if !ok {
		writeJSONError(w, http.StatusServiceUnavailable, "no_resolver",
			"hikvision: snapshot: streams cannot be resolved (the go2rtc glue did not call SetStreamResolver)")
		return
	}
	if len(sources) == 0 {
		writeJSONError(w, http.StatusNotFound, "no_source",
			fmt.Sprintf("hikvision: snapshot: stream %q does not exist or has no hikvision:// source", name))
		return
	}
	r.prune()
	s, err := r.source(sources[0])
	if err != nil { // a *ConfigError: never holds the password
		writeJSONError(w, http.StatusBadRequest, "bad_source",
			fmt.Sprintf("hikvision: snapshot: stream %q: %v", name, err))
		return
	}
	s.mu.Lock()
	s.streams[name] = true
	s.mu.Unlock()
	cache, err := r.snapshots(s)
	if err != nil {
		snapshot.Serve(w, req, nil, &snapshot.Error{Reason: snapshot.ReasonClosed, LastErr: err})
		return
	}
	cache.ServeHTTP(w, req)
}

func (r *registry) serveHealth(w http.ResponseWriter, req *http.Request) {
	b, err := json.MarshalIndent(r.health(), "", "  ")
	if err != nil {
		writeJSONError(w, http.StatusInternalServerError, "internal", "hikvision: health: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(append(b, '\n'))
}

// Device and source states listed in the metrics (one series each, 1 for the
// current state).
var (
	deviceStates = []guard.Status{guard.StatusIdle, guard.StatusOK, guard.StatusFailing, guard.StatusHolding, guard.StatusLocked}
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
