package hikvision

import (
	"encoding/json"
	"fmt"
	"net/http"

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
