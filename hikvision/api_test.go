package hikvision

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/guard"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/snapshot"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/testclock"
	"image/jpeg"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// A distinctive password: every body is searched for it (plain, URL-encoded, base64).
const apiPass = "Zq9-Secr3t!pw"

type apiEnv struct {
	t     *testing.T
	reg   *registry
	clock *testclock.Clock
	srv   *httptest.Server
	mu    sync.Mutex
	strm  map[string][]string
}

// newAPIEnv makes a registry with a fake clock (no MinInterval unless given)
// and an HTTP server with the three handlers. Streams are set with stream().
func newAPIEnv(t *testing.T, minInterval time.Duration) *apiEnv {
	t.Helper()
	e := &apiEnv{t: t, reg: resetModule(t, Options{}, guard.Config{}).reg, clock: testclock.New(time.Unix(1_800_000_000, 0)), strm: map[string][]string{}}
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
	t.Parallel()
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
	t.Parallel()
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
	t.Parallel()
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
	t.Parallel()
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
	t.Parallel()
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

func TestSnapshotOptions(t *testing.T) {
	t.Parallel()
	base := "hikvision://admin:pw@cam/?channel=1"
	for _, tc := range []struct {
		in   string
		want SnapshotOptions
		bad  string
	}{
		{in: base},
		{in: base + "#backchannel=0#snapshot_max_stale=30#timeout=5",
			want: SnapshotOptions{MaxStale: 30 * time.Second}},
		{in: base + "#snapshot_last_good=0&snapshot_min_interval=0.25",
			want: SnapshotOptions{NoLastGood: true, MinInterval: 250 * time.Millisecond}},
		{in: base + "#snapshot_max_stale=0", bad: "#snapshot_max_stale"},
		{in: base + "#snapshot_last_good=maybe", bad: "#snapshot_last_good"},
		{in: base + "#snapshot_min_interval=x", bad: "#snapshot_min_interval"},
	} {
		cfg, err := ParseURL(tc.in)
		if tc.bad != "" {
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Param != tc.bad {
				t.Errorf("%s: err %v, want a ConfigError for %s", tc.in, err, tc.bad)
			}
			continue
		}
		if err != nil || cfg.Snapshot != tc.want {
			t.Errorf("%s: %+v %v, want %+v", tc.in, cfg, err, tc.want)
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
	resetModule(b, Options{}, guard.Config{})
	r := mod(b).reg
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

// Recorders' snapshots: an analog input takes the plain Streaming picture
// path, an IP channel the StreamingProxy path. The first request goes to the
// likely path (from the recorder's IP-channel list); a path that the device
// refuses (statusCode 6) is followed by the other one, and what worked is
// remembered for the channel.
func TestSnapshotRecorderPaths(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		preset  string
		channel int
		proxy   bool
	}{
		{sim.PresetAnalogDVR, 2, false},
		{sim.PresetHybrid, 3, false},
		{sim.PresetHybrid, 5, true},
		{sim.PresetNVRTwoTalk, 1, true},
	} {
		t.Run(fmt.Sprintf("%s_%d", tc.preset, tc.channel), func(t *testing.T) {
			t.Parallel()
			cfg, _ := sim.Preset(tc.preset)
			cfg.Users = map[string]string{"admin": apiPass}
			dev := apiStartSim(t, cfg)
			e := newAPIEnv(t, -1)
			src := "hikvision://admin:" + url.QueryEscape(apiPass) + "@" + dev.HTTPAddr() + "/?channel=" + itoa(tc.channel) + "&stream=main"
			e.stream("rec", src)
			res, body := e.get("/api/hikvision/snapshot?src=rec")
			apiJPEG(t, res, body)
			if st := dev.SnapshotStats(); st.Served != 1 || st.Rejected != 0 {
				t.Errorf("first snapshot: device saw %+v, want the right path at once", st)
			}
			d, err := e.reg.m.Device(src)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Release()
			id := tc.channel*100 + 1
			if proxy, known := d.pictureProxy(id); !known || proxy != tc.proxy {
				t.Fatalf("remembered path proxy=%v known=%v, want proxy=%v", proxy, known, tc.proxy)
			}
			// The device's answer decides when the remembered path is wrong
			// (as after a channel was re-assigned): one refusal, then the other path.
			d.setPictureProxy(id, !tc.proxy)
			res, body = e.get("/api/hikvision/snapshot?src=rec")
			apiJPEG(t, res, body)
			if st := dev.SnapshotStats(); st.Served != 2 || st.Rejected != 1 {
				t.Errorf("after a wrong path: device saw %+v, want one refusal and the picture", st)
			}
			if proxy, _ := d.pictureProxy(id); proxy != tc.proxy {
				t.Errorf("remembered path proxy=%v after the fallback, want %v", proxy, tc.proxy)
			}
			res, body = e.get("/api/hikvision/snapshot?src=rec")
			apiJPEG(t, res, body)
			if st := dev.SnapshotStats(); st.Served != 3 || st.Rejected != 1 {
				t.Errorf("third snapshot: device saw %+v, want the remembered path at once", st)
			}
		})
	}
}
