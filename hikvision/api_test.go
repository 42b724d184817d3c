package hikvision

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"image/jpeg"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/snapshot"
)

// A distinctive password: every body is searched for it (plain, URL-encoded, base64).
const apiPass = "Zq9-Secr3t!pw"

type apiClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *apiClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *apiClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type apiEnv struct {
	t     *testing.T
	reg   *registry
	clock *apiClock
	srv   *httptest.Server
	mu    sync.Mutex
	strm  map[string][]string
}

// newAPIEnv makes a registry with a fake clock (no MinInterval unless given)
// and an HTTP server with the three handlers. Streams are set with stream().
func newAPIEnv(t *testing.T, minInterval time.Duration) *apiEnv {
	t.Helper()
	probes.reset()
	e := &apiEnv{t: t, reg: newRegistry(), clock: &apiClock{now: time.Unix(1_800_000_000, 0)}, strm: map[string][]string{}}
	e.reg.now = e.clock.Now
	e.reg.cacheOptions = snapshot.Options{MinInterval: minInterval}
	e.reg.resolve = func(name string) []string {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.strm[name]
	}
	e.reg.list = func() map[string][]string {
		e.mu.Lock()
		defer e.mu.Unlock()
		m := map[string][]string{}
		for k, v := range e.strm {
			m[k] = v
		}
		return m
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/hikvision/snapshot", e.reg.serveSnapshot)
	mux.HandleFunc("/api/hikvision", e.reg.serveHealth)
	mux.HandleFunc("/api/hikvision/metrics", e.reg.serveMetrics)
	e.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		e.srv.Close()
		e.reg.close()
		probes.reset()
	})
	return e
}

func (e *apiEnv) stream(name string, sources ...string) {
	e.mu.Lock()
	e.strm[name] = sources
	e.mu.Unlock()
}

func apiSimURL(d *sim.Device, user, pass, extra string) string {
	return "hikvision://" + user + ":" + url.QueryEscape(pass) + "@" + d.HTTPAddr() + "/?channel=1&stream=main" + extra
}

func apiStartSim(t *testing.T, cfg sim.Config) *sim.Device {
	t.Helper()
	d, err := sim.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// get fetches path and checks that no form of the password is in the body.
func (e *apiEnv) get(path string) (*http.Response, []byte) {
	e.t.Helper()
	res, err := http.Get(e.srv.URL + path)
	if err != nil {
		e.t.Fatal(err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		e.t.Fatal(err)
	}
	noSecret(e.t, path, string(body))
	for k, v := range res.Header {
		noSecret(e.t, path+" header "+k, strings.Join(v, " "))
	}
	return res, body
}

func noSecret(t *testing.T, where, s string) {
	t.Helper()
	for _, f := range []string{apiPass, url.QueryEscape(apiPass), url.PathEscape(apiPass),
		base64.StdEncoding.EncodeToString([]byte(apiPass)), base64.StdEncoding.EncodeToString([]byte("admin:" + apiPass))} {
		if strings.Contains(s, f) {
			t.Fatalf("%s: the password (form %q) is in the answer:\n%s", where, f, s)
		}
	}
}

func apiJPEG(t *testing.T, res *http.Response, body []byte) string {
	t.Helper()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "image/jpeg" {
		t.Fatalf("status %d %q, want a JPEG: %s", res.StatusCode, res.Header.Get("Content-Type"), body)
	}
	if _, err := jpeg.Decode(bytes.NewReader(body)); err != nil {
		t.Fatalf("answer does not decode as JPEG: %v", err)
	}
	return sim.JPEGComment(body)
}

func TestSnapshotHandlerFreshAndSized(t *testing.T) {
	dev := apiStartSim(t, sim.Config{Users: map[string]string{"admin": apiPass}})
	e := newAPIEnv(t, -1)
	e.stream("cam", "ffmpeg:whatever", apiSimURL(dev, "admin", apiPass, ""))

	res, body := e.get("/api/hikvision/snapshot?src=cam")
	c1 := apiJPEG(t, res, body)
	if res.Header.Get(snapshot.HeaderStale) != "" || res.Header.Get("Last-Modified") == "" {
		t.Errorf("fresh answer headers: %v", res.Header)
	}
	cfg, _ := jpeg.DecodeConfig(bytes.NewReader(body))
	if cfg.Width != 640 || cfg.Height != 360 {
		t.Errorf("default size %dx%d, want the main stream's 640x360", cfg.Width, cfg.Height)
	}
	res, body = e.get("/api/hikvision/snapshot?src=cam&width=160&height=90")
	c2 := apiJPEG(t, res, body)
	if cfg, _ = jpeg.DecodeConfig(bytes.NewReader(body)); cfg.Width != 160 || cfg.Height != 90 || c1 == c2 {
		t.Errorf("sized answer %dx%d (%q after %q), want a new 160x90 image", cfg.Width, cfg.Height, c2, c1)
	}
	if st := dev.SnapshotStats(); st.Requests != 2 || st.Served != 2 {
		t.Errorf("device saw %+v, want 2 picture requests", st)
	}

	for _, tc := range []struct {
		path   string
		status int
		reason string
	}{
		{"/api/hikvision/snapshot", 400, "bad_request"},
		{"/api/hikvision/snapshot?src=nope", 404, "no_source"},
		{"/api/hikvision/snapshot?src=cam&width=10", 400, "bad_size"},
	} {
		res, body := e.get(tc.path)
		var eb snapshot.ErrorBody
		if err := json.Unmarshal(body, &eb); err != nil || res.StatusCode != tc.status || string(eb.Reason) != tc.reason || eb.Error == "" {
			t.Errorf("%s: %d %s, want %d with reason %s", tc.path, res.StatusCode, body, tc.status, tc.reason)
		}
	}
}

func TestSnapshotHandlerNVRChannel(t *testing.T) {
	dev := apiStartSim(t, sim.Config{Personality: sim.PersonalityNVR, Users: map[string]string{"admin": apiPass}})
	e := newAPIEnv(t, -1)
	e.stream("nvr2", "hikvision://admin:"+url.QueryEscape(apiPass)+"@"+dev.HTTPAddr()+"/?channel=2&stream=main")
	res, body := e.get("/api/hikvision/snapshot?src=nvr2")
	apiJPEG(t, res, body)
	st := dev.SnapshotStats()
	if st.Served != 1 || st.Rejected != 0 {
		t.Errorf("NVR snapshot stats %+v: want the StreamingProxy path served at once", st)
	}
}

// Every failure kind gives the last good image, marked stale with its age;
// past #snapshot_max_stale the answer is an explained error.
func TestSnapshotHandlerStale(t *testing.T) {
	dev := apiStartSim(t, sim.Config{Users: map[string]string{"admin": apiPass}})
	e := newAPIEnv(t, -1)
	e.stream("cam", apiSimURL(dev, "admin", apiPass, "#timeout=1#snapshot_max_stale=30"))

	res, body := e.get("/api/hikvision/snapshot?src=cam")
	good := apiJPEG(t, res, body)

	for i, tc := range []struct {
		fault  sim.SnapshotFault
		reason snapshot.Reason
	}{
		{sim.SnapshotXML, snapshot.ReasonXML},
		{sim.SnapshotTruncated, snapshot.ReasonTruncated},
		{sim.SnapshotHTML, snapshot.ReasonHTML},
		{sim.SnapshotTimeout, snapshot.ReasonTimeout},
	} {
		e.clock.Add(5 * time.Second)
		if err := dev.FailNextSnapshots(1, tc.fault); err != nil {
			t.Fatal(err)
		}
		res, body := e.get("/api/hikvision/snapshot?src=cam")
		if got := apiJPEG(t, res, body); got != good {
			t.Errorf("%s: served %q, want the last good image %q", tc.fault, got, good)
		}
		age := (i + 1) * 5
		if res.Header.Get(snapshot.HeaderStale) != "true" || res.Header.Get(snapshot.HeaderStaleAge) != itoa(age) ||
			res.Header.Get("Age") != itoa(age) || res.Header.Get(snapshot.HeaderStaleReason) != string(tc.reason) {
			t.Errorf("%s: headers %v, want stale, age %d, reason %s", tc.fault, res.Header, age, tc.reason)
		}
	}

	// a good fetch again: fresh, new image
	res, body = e.get("/api/hikvision/snapshot?src=cam")
	if got := apiJPEG(t, res, body); got == good || res.Header.Get(snapshot.HeaderStale) != "" {
		t.Fatalf("after the faults: %q stale=%q, want a fresh image", got, res.Header.Get(snapshot.HeaderStale))
	}

	// older than 30 s: an explained error
	e.clock.Add(31 * time.Second)
	if err := dev.FailNextSnapshots(1, sim.SnapshotXML); err != nil {
		t.Fatal(err)
	}
	res, body = e.get("/api/hikvision/snapshot?src=cam")
	var eb snapshot.ErrorBody
	if err := json.Unmarshal(body, &eb); err != nil || res.StatusCode != 502 || eb.Reason != snapshot.ReasonXML ||
		!strings.Contains(eb.Error, "staleness limit") || eb.AgeS == nil || *eb.AgeS != 31 || eb.LastGood == nil {
		t.Errorf("past max stale: %d %s, want 502 xml_body explaining the staleness limit, age 31", res.StatusCode, body)
	}

	// health and metrics show the snapshot figures
	var h Health
	_, body = e.get("/api/hikvision")
	if err := json.Unmarshal(body, &h); err != nil || len(h.Sources) != 1 || h.Sources[0].Snapshot == nil {
		t.Fatalf("health: %v %s", err, body)
	}
	sn := h.Sources[0].Snapshot
	if sn.DeviceRequests != 7 || sn.ServedStale != 4 || sn.ServedFresh != 2 || sn.ServedErrors != 1 ||
		sn.Failures["timeout"] != 1 || sn.Failures["xml_body"] != 2 || sn.LastGood == nil || h.Sources[0].Stream != "cam" {
		t.Errorf("health snapshot figures: %s", body)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestSnapshotHandlerLastGoodOff(t *testing.T) {
	dev := apiStartSim(t, sim.Config{Users: map[string]string{"admin": apiPass}})
	e := newAPIEnv(t, -1)
	e.stream("cam", apiSimURL(dev, "admin", apiPass, "#snapshot_last_good=0"))
	res, body := e.get("/api/hikvision/snapshot?src=cam")
	apiJPEG(t, res, body)
	if err := dev.FailNextSnapshots(1, sim.SnapshotTruncated); err != nil {
		t.Fatal(err)
	}
	res, body = e.get("/api/hikvision/snapshot?src=cam")
	if res.StatusCode != 502 || !strings.Contains(string(body), "fallback is off") {
		t.Errorf("last good off: %d %s, want 502 saying the fallback is off", res.StatusCode, body)
	}
}

// 50 clients at once cause one device request; all get the same image.
func TestSnapshotHandlerCoalesces(t *testing.T) {
	dev := apiStartSim(t, sim.Config{Users: map[string]string{"admin": apiPass}})
	e := newAPIEnv(t, time.Second)
	e.stream("cam", apiSimURL(dev, "admin", apiPass, ""))
	res, body := e.get("/api/hikvision/snapshot?src=cam") // warm: probe + first image
	first := apiJPEG(t, res, body)
	e.clock.Add(2 * time.Second) // past MinInterval: the next one asks the device
	before := dev.SnapshotStats().Requests

	var wg sync.WaitGroup
	got := make([]string, 50)
	errs := make(chan string, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := http.Get(e.srv.URL + "/api/hikvision/snapshot?src=cam")
			if err != nil {
				errs <- err.Error()
				return
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != 200 {
				errs <- string(b)
				return
			}
			got[i] = sim.JPEGComment(b)
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if n := dev.SnapshotStats().Requests - before; n != 1 {
		t.Errorf("50 concurrent requests made %d device requests, want 1", n)
	}
	for _, c := range got {
		if c != got[0] || c == first {
			t.Fatalf("answers differ or are the warm-up image: %q vs %q (first %q)", c, got[0], first)
		}
	}
}

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
		if !strings.Contains(s.URL, "***") {
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
		e := &apiEnv{t: t, reg: newRegistry(), clock: &apiClock{now: time.Now()}, strm: map[string][]string{}}
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

func TestSplitSnapshotOptions(t *testing.T) {
	base := "hikvision://admin:pw@cam/?channel=1"
	for _, tc := range []struct {
		in, rest string
		want     snapshotOptions
		bad      string
	}{
		{in: base, rest: base},
		{in: base + "#backchannel=0#snapshot_max_stale=30#timeout=5", rest: base + "#backchannel=0#timeout=5",
			want: snapshotOptions{MaxStale: 30 * time.Second}},
		{in: base + "#snapshot_last_good=0&snapshot_min_interval=0.25", rest: base,
			want: snapshotOptions{NoLastGood: true, MinInterval: 250 * time.Millisecond}},
		{in: base + "#snapshot_max_stale=0", bad: "#snapshot_max_stale"},
		{in: base + "#snapshot_last_good=maybe", bad: "#snapshot_last_good"},
		{in: base + "#snapshot_min_interval=x", bad: "#snapshot_min_interval"},
	} {
		rest, o, err := splitSnapshotOptions(tc.in)
		if tc.bad != "" {
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Param != tc.bad {
				t.Errorf("%s: err %v, want a ConfigError for %s", tc.in, err, tc.bad)
			}
			continue
		}
		if err != nil || rest != tc.rest || o != tc.want {
			t.Errorf("%s: %q %+v %v, want %q %+v", tc.in, rest, o, err, tc.rest, tc.want)
		}
	}
}

// A cached answer through the whole handler (resolve, registry, cache,
// headers, body): the issue asks for under 5 ms; it is microseconds.
func BenchmarkSnapshotHandlerCached(b *testing.B) {
	dev, err := sim.Start(sim.Config{Users: map[string]string{"admin": apiPass}})
	if err != nil {
		b.Fatal(err)
	}
	defer dev.Close()
	probes.reset()
	defer probes.reset()
	r := newRegistry()
	defer r.close()
	r.cacheOptions = snapshot.Options{MinInterval: time.Hour}
	src := apiSimURL(dev, "admin", apiPass, "")
	r.resolve = func(string) []string { return []string{src} }
	req := httptest.NewRequest("GET", "/api/hikvision/snapshot?src=cam", nil)
	warm := httptest.NewRecorder()
	r.serveSnapshot(warm, req)
	if warm.Code != 200 {
		b.Fatalf("warm-up: %d %s", warm.Code, warm.Body)
	}
	b.ResetTimer()
	var took []time.Duration
	began := time.Now()
	for b.Loop() {
		rec := httptest.NewRecorder()
		t0 := time.Now()
		r.serveSnapshot(rec, req)
		took = append(took, time.Since(t0))
		if rec.Code != 200 {
			b.Fatalf("%d", rec.Code)
		}
	}
	mean := time.Since(began) / time.Duration(len(took))
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(took[len(took)-1].Microseconds()), "max-µs")
	if st := dev.SnapshotStats(); st.Requests != 1 {
		b.Fatalf("%d device requests, want 1 (all cached)", st.Requests)
	}
	if mean > 5*time.Millisecond {
		b.Errorf("a cached answer took %v on average, want < 5 ms", mean)
	}
}

// A stream deleted from go2rtc leaves the health view once nothing plays or
// dials its source: the source, its snapshot cache and a device left without
// sources are forgotten; a source whose producer still runs stays until it
// stops.
func TestHealthForgetsDeletedStreams(t *testing.T) {
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

	cancel() // its producer stopped
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
