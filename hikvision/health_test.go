package hikvision

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/guard"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/redact"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/snapshot"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/testclock"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

var metricLine = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? -?[0-9.eE+]+$`)

// checkMetrics checks every line of the text format and returns samples by "name{labels}".
func checkMetrics(t *testing.T, text string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if strings.HasPrefix(l, "# HELP ") || strings.HasPrefix(l, "# TYPE ") {
			continue
		}
		if !metricLine.MatchString(l) {
			t.Errorf("bad metrics line %q", l)
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		out[l[:i]] = l[i+1:]
	}
	return out
}

// A camera with a wrong password and a locked one: health and metrics say
// so, the guard holds further logins, and nothing shows the password.
func TestHealthWrongPasswordAndLocked(t *testing.T) {
	t.Parallel()
	good := apiStartSim(t, sim.Config{Users: map[string]string{"admin": apiPass}})
	wrong := apiStartSim(t, sim.Config{Users: map[string]string{"viewer": "other-password"}})
	locked := apiStartSim(t, sim.Config{Users: map[string]string{"op": apiPass}})
	if err := locked.LockIP("127.0.0.1", time.Minute); err != nil {
		t.Fatal(err)
	}
	e := newAPIEnv(t, -1)
	e.stream("good", apiSimURL(good, "admin", apiPass, ""))
	e.stream("wrong", apiSimURL(wrong, "viewer", apiPass, ""))
	e.stream("locked", apiSimURL(locked, "op", apiPass, ""))
	e.stream("idle", "hikvision://admin:"+apiPass+"@192.0.2.1/?channel=1&stream=sub")

	res, body := e.get("/api/hikvision/snapshot?src=good")
	apiJPEG(t, res, body)
	for range 4 {
		res, body = e.get("/api/hikvision/snapshot?src=wrong")
		if res.StatusCode != 502 || !strings.Contains(string(body), `"reason":"unauthorized"`) {
			t.Errorf("wrong password: %d %s", res.StatusCode, body)
		}
	}
	if n := wrong.Client("127.0.0.1").FailedLogins; n != 2 {
		t.Errorf("the device saw %d failed logins from 4 snapshot requests, want the guard's budget of 2", n)
	}
	res, body = e.get("/api/hikvision/snapshot?src=locked")
	if res.StatusCode != 503 || !strings.Contains(string(body), `"reason":"locked"`) {
		t.Errorf("locked: %d %s", res.StatusCode, body)
	}

	var h Health
	_, body = e.get("/api/hikvision")
	if err := json.Unmarshal(body, &h); err != nil {
		t.Fatal(err)
	}
	byUser := map[string]DeviceHealth{}
	for _, d := range h.Devices {
		if d.Device != "192.0.2.1" {
			byUser[d.User] = d
		}
	}
	if d := byUser["admin"]; d.State != "ok" || d.Reachable == nil || !*d.Reachable || d.FailedLogins != 0 || d.Model == "" {
		t.Errorf("good device: %+v", d)
	}
	if d := byUser["viewer"]; d.State != "holding" || d.Reason != "wrong credentials" || d.FailedLogins != 2 ||
		d.LoginBudget != 2 || d.HoldUntil == nil || d.Reachable == nil || !*d.Reachable || d.LastError == "" {
		t.Errorf("wrong-password device: %+v", d)
	}
	if d := byUser["op"]; d.State != "locked" || d.LockedUntil == nil || d.LockedUntil.Before(time.Now().Add(50*time.Second)) {
		t.Errorf("locked device: %+v", d)
	}
	if len(h.Sources) != 4 {
		t.Errorf("sources: %+v, want the 4 configured streams", h.Sources)
	}
	for _, s := range h.Sources {
		if s.Stream == "idle" && (s.State != "idle" || s.Snapshot != nil || s.Dials != 0) {
			t.Errorf("never used source: %+v", s)
		}
		if !strings.Contains(s.URL, redact.Mask) {
			t.Errorf("source URL %q is not masked", s.URL)
		}
	}

	res, body = e.get("/api/hikvision/metrics")
	if !strings.HasPrefix(res.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Errorf("metrics content type %q", res.Header.Get("Content-Type"))
	}
	m := checkMetrics(t, string(body))
	for k, want := range map[string]string{
		`hikvision_device_state{device="` + wrong.HTTPAddr() + `",user="viewer",state="holding"}`:                      "1",
		`hikvision_device_state{device="` + good.HTTPAddr() + `",user="admin",state="ok"}`:                             "1",
		`hikvision_device_state{device="` + locked.HTTPAddr() + `",user="op",state="locked"}`:                          "1",
		`hikvision_device_failed_logins{device="` + wrong.HTTPAddr() + `",user="viewer"}`:                              "2",
		`hikvision_device_reachable{device="` + good.HTTPAddr() + `",user="admin"}`:                                    "1",
		`hikvision_snapshot_served_total{device="` + good.HTTPAddr() + `",stream="good",stream_id="101",kind="fresh"}`: "1",
		`hikvision_source_state{device="192.0.2.1",stream="idle",stream_id="102",state="idle"}`:                        "1",
	} {
		if m[k] != want {
			t.Errorf("metric %s = %q, want %s", k, m[k], want)
		}
	}
}

// The registry's caches and clients end with close: no goroutine outlives it.
func TestRegistryCloseLeavesNoGoroutine(t *testing.T) {
	dev := apiStartSim(t, sim.Config{Users: map[string]string{"admin": apiPass}})
	http.DefaultClient.CloseIdleConnections()
	base := runtime.NumGoroutine()
	func() {
		e := &apiEnv{t: t, reg: resetModule(t, Options{}, guard.Config{}).reg, clock: testclock.New(time.Now()), strm: map[string][]string{}}
		e.reg.resolve = func(string) []string { return []string{apiSimURL(dev, "admin", apiPass, "#timeout=5")} }
		if err := dev.FailNextSnapshots(1, sim.SnapshotTimeout); err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/api/hikvision/snapshot?src=cam", nil)
		done := make(chan struct{})
		go func() { e.reg.serveSnapshot(rec, req); close(done) }()
		deadline := time.Now().Add(5 * time.Second)
		for dev.SnapshotStats().Faults[sim.SnapshotTimeout] == 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond) // polling with a deadline
		}
		e.reg.close() // cancels the hanging fetch
		<-done
		if rec.Code != 503 {
			t.Errorf("snapshot cut by close: %d %s, want 503", rec.Code, rec.Body)
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("goroutines %d > %d\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A stream deleted from go2rtc leaves the health view once nothing plays or
// dials its source: the source, its snapshot cache and a device left without
// sources are forgotten; a source whose producer still runs stays until it
// stops.
func TestHealthForgetsDeletedStreams(t *testing.T) {
	t.Parallel()
	dev := apiStartSim(t, sim.Config{Users: map[string]string{"admin": apiPass}})
	e := newAPIEnv(t, -1)
	e.stream("cam", apiSimURL(dev, "admin", apiPass, ""))
	e.stream("other", "hikvision://admin:"+apiPass+"@192.0.2.1/?channel=1&stream=sub")
	res, body := e.get("/api/hikvision/snapshot?src=cam")
	apiJPEG(t, res, body)

	health := func() Health {
		t.Helper()
		_, body := e.get("/api/hikvision")
		var h Health
		if err := json.Unmarshal(body, &h); err != nil {
			t.Fatal(err)
		}
		return h
	}
	hosts := func(h Health) (devs, srcs []string) {
		for _, d := range h.Devices {
			devs = append(devs, d.Device)
		}
		for _, s := range h.Sources {
			srcs = append(srcs, s.Stream+"@"+s.Device)
		}
		slices.Sort(devs)
		slices.Sort(srcs)
		return devs, srcs
	}
	if devs, srcs := hosts(health()); len(devs) != 2 || len(srcs) != 2 {
		t.Fatalf("before the delete: devices %v, sources %v; want 2 and 2", devs, srcs)
	}

	// "cam" is playing when it is deleted: it stays while its producer runs
	e.reg.mu.Lock()
	var camSrc *sourceEntry
	for _, s := range e.reg.sources {
		if s.dev.host == dev.HTTPAddr() {
			camSrc = s
		}
	}
	e.reg.mu.Unlock()
	if camSrc == nil {
		t.Fatal("no registry entry for the cam source")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	camSrc.mu.Lock()
	camSrc.prod = &Producer{ctx: ctx}
	cache := camSrc.cache
	camSrc.mu.Unlock()
	if cache == nil {
		t.Fatal("the snapshot made no cache")
	}

	e.mu.Lock()
	delete(e.strm, "cam")
	delete(e.strm, "other")
	e.mu.Unlock()
	devs, srcs := hosts(health())
	if len(srcs) != 1 || srcs[0] != "@"+dev.HTTPAddr() || len(devs) != 1 || devs[0] != dev.HTTPAddr() {
		t.Errorf("after deleting both streams, cam still playing: devices %v, sources %v; want only cam's device and its source with no stream name", devs, srcs)
	}

	cancel()      // its producer stopped,
	e.reg.prune() // which Stop follows with a prune (the end of its lifetime)
	if devs, srcs := hosts(health()); len(devs) != 0 || len(srcs) != 0 {
		t.Errorf("after the producer stopped: devices %v, sources %v; want none", devs, srcs)
	}
	if st := cache.Stats(); st.DeviceRequests != 1 {
		t.Errorf("cache stats %+v", st)
	}
	if _, err := cache.Get(context.Background(), 0, 0); !errors.Is(err, snapshot.ErrClosed) {
		t.Errorf("the forgotten source's snapshot cache answers %v, want it closed", err)
	}
}
