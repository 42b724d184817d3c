package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"image/jpeg"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/e2e"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

// healthDoc is the part of GET /api/hikvision the test reads.
type healthDoc struct {
	Devices []struct {
		Device       string     `json:"device"`
		User         string     `json:"user"`
		Model        string     `json:"model"`
		Reachable    *bool      `json:"reachable"`
		State        string     `json:"state"`
		Reason       string     `json:"reason"`
		FailedLogins int        `json:"failed_logins"`
		LoginBudget  int        `json:"login_budget"`
		LockedUntil  *time.Time `json:"locked_until"`
		LastError    string     `json:"last_error"`
	} `json:"devices"`
	Sources []struct {
		Stream    string     `json:"stream"`
		Device    string     `json:"device"`
		State     string     `json:"state"`
		LastFrame *time.Time `json:"last_frame"`
		Talk      *struct {
			State string `json:"state"`
		} `json:"talk"`
		Snapshot *struct {
			LastGood       *time.Time `json:"last_good"`
			DeviceRequests int        `json:"device_requests"`
		} `json:"snapshot"`
	} `json:"sources"`
}

type snapAnswer struct {
	status int
	header http.Header
	body   []byte
}

func getSnapshot(t *testing.T, g *e2e.Go2rtc, stream string) snapAnswer {
	t.Helper()
	res, err := http.Get(g.URL("/api/hikvision/snapshot?src=" + stream))
	if err != nil {
		t.Fatalf("snapshot %s: %v", stream, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("snapshot %s: %v", stream, err)
	}
	return snapAnswer{res.StatusCode, res.Header, b}
}

// checkSnap returns "" when a is a whole JPEG (a stale one marked with its
// age) or an explained JSON error, else what is wrong.
func checkSnap(a snapAnswer) (kind, problem string) {
	if a.status != 200 {
		var e struct{ Error, Reason string }
		if a.header.Get("Content-Type") != "application/json" || json.Unmarshal(a.body, &e) != nil || e.Error == "" || e.Reason == "" {
			return "error", "status " + strconv.Itoa(a.status) + " without an explained JSON error: " + string(a.body)
		}
		return "error", ""
	}
	if a.header.Get("Content-Type") != "image/jpeg" || !bytes.HasPrefix(a.body, []byte{0xFF, 0xD8, 0xFF}) ||
		!bytes.HasSuffix(a.body, []byte{0xFF, 0xD9}) {
		return "broken", "a 200 answer that is not a whole JPEG: " + a.header.Get("Content-Type") + " " + strconv.Itoa(len(a.body)) + " bytes"
	}
	if _, err := jpeg.Decode(bytes.NewReader(a.body)); err != nil {
		return "broken", "a 200 answer that does not decode: " + err.Error()
	}
	if a.header.Get("X-Hikvision-Stale") == "true" {
		if _, err := strconv.Atoi(a.header.Get("X-Hikvision-Stale-Age")); err != nil || a.header.Get("Age") == "" ||
			a.header.Get("X-Hikvision-Stale-Reason") == "" {
			return "stale", "a stale answer without age/reason: " + a.header.Get("X-Hikvision-Stale-Age")
		}
		return "stale", ""
	}
	return "fresh", ""
}

func health(t *testing.T, g *e2e.Go2rtc) (healthDoc, string) {
	t.Helper()
	status, body, err := g.Get(context.Background(), "/api/hikvision")
	if err != nil || status != 200 {
		t.Fatalf("/api/hikvision: %d %v %s", status, err, body)
	}
	var h healthDoc
	if err := json.Unmarshal(body, &h); err != nil {
		t.Fatalf("/api/hikvision: %v\n%s", err, body)
	}
	return h, string(body)
}

// pollHealth polls /api/hikvision until ok holds (deadline), returning the last document.
func pollHealth(t *testing.T, g *e2e.Go2rtc, what string, timeout time.Duration, ok func(healthDoc) bool) healthDoc {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		h, body := health(t, g)
		if ok(h) {
			return h
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; /api/hikvision:\n%s\ngo2rtc output:\n%s", what, body, g.Output())
		}
		time.Sleep(100 * time.Millisecond) // polling with a deadline
	}
}

func TestHealthAndSnapshots(t *testing.T) {
	bin := binary(t)
	pw := e2ePassword

	live := startSim(t, sim.Config{Users: map[string]string{"live": pw}})
	reboot := startSim(t, sim.Config{Users: map[string]string{"reboot": pw}})
	wrong := startSim(t, sim.Config{Users: map[string]string{"wrong": "the-right-one"}})
	locked := startSim(t, sim.Config{Users: map[string]string{"locked": pw}})
	chaos := startSim(t, sim.Config{Users: map[string]string{"chaos": pw}})
	if err := locked.LockIP("127.0.0.1", 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	// The login guard is per host + user: every simulator is on 127.0.0.1,
	// so each has its own user, as separate devices would.
	cfg := go2rtcConfig(map[string]string{
		"live":      hikURL("live", pw, live, "?channel=1&stream=main"),
		"rebooting": hikURL("reboot", pw, reboot, "?channel=1&stream=sub"),
		"wrongpw":   hikURL("wrong", pw, wrong, "?channel=1&stream=main"),
		"lockedcam": hikURL("locked", pw, locked, "?channel=1&stream=main"),
		"chaos":     hikURL("chaos", pw, chaos, "?channel=1&stream=sub#timeout=1#snapshot_min_interval=0.005"),
		"stale":     hikURL("chaos", pw, chaos, "?channel=1&stream=main#snapshot_max_stale=1#snapshot_min_interval=0.02"),
	}, "hikvision=debug streams=debug")
	cfg += "preload:\n  live: \"\"\n  rebooting: \"\"\n"
	g := e2e.StartGo2rtc(t, bin, cfg)
	forms := secretForms("live", pw)
	var bodies []string

	// 1. The snapshot endpoint answers the device's JPEG.
	a := getSnapshot(t, g, "live")
	if kind, problem := checkSnap(a); kind != "fresh" || problem != "" {
		t.Fatalf("live snapshot: %s %s", kind, problem)
	}
	if c, _ := jpeg.DecodeConfig(bytes.NewReader(a.body)); c.Width != 640 || c.Height != 360 {
		t.Errorf("live snapshot is %dx%d, want 640x360", c.Width, c.Height)
	}

	// 2. 30% of the device's snapshots fail in every way: 500 requests never
	// get a broken or non-JPEG body, every stale answer carries its age.
	if a := getSnapshot(t, g, "chaos"); a.status != 200 {
		t.Fatalf("chaos warm-up: %d %s", a.status, a.body)
	}
	if err := chaos.SetSnapshotFaults(sim.SnapshotFaults{Rate: 0.3, Seed: 42}); err != nil {
		t.Fatal(err)
	}
	// Every way of failing happens at least once, whatever the random draw
	// (the queued faults come before the rate-based ones).
	for _, f := range sim.AllSnapshotFaults {
		if err := chaos.FailNextSnapshots(1, f); err != nil {
			t.Fatal(err)
		}
	}
	kinds := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pace := time.NewTicker(20 * time.Millisecond) // spread the load so that many device requests happen
			defer pace.Stop()
			for range 50 {
				<-pace.C
				res, err := http.Get(g.URL("/api/hikvision/snapshot?src=chaos"))
				if err != nil {
					t.Errorf("worker %d: %v", w, err)
					return
				}
				b, err := io.ReadAll(res.Body)
				res.Body.Close()
				if err != nil {
					t.Errorf("worker %d: %v", w, err)
					return
				}
				kind, problem := checkSnap(snapAnswer{res.StatusCode, res.Header, b})
				mu.Lock()
				kinds[kind]++
				if problem != "" {
					t.Errorf("chaos answer: %s", problem)
				}
				if kind == "error" {
					bodies = append(bodies, string(b))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	st := chaos.SnapshotStats()
	t.Logf("500 answers: %v; device: %d picture requests, faults %v", kinds, st.Requests, st.Faults)
	if kinds["fresh"]+kinds["stale"] != 500 || kinds["stale"] == 0 || kinds["fresh"] == 0 {
		t.Errorf("answers %v: want 500 images (the last good one exists), some fresh and some stale", kinds)
	}
	for _, f := range sim.AllSnapshotFaults {
		if st.Faults[f] == 0 {
			t.Errorf("the device never failed with %s (%v): the test did not cover it", f, st.Faults)
		}
	}

	// 3. Past #snapshot_max_stale the answer is an explained error.
	if err := chaos.SetSnapshotFaults(sim.SnapshotFaults{}); err != nil {
		t.Fatal(err)
	}
	if a := getSnapshot(t, g, "stale"); a.status != 200 {
		t.Fatalf("stale warm-up: %d %s", a.status, a.body)
	}
	if err := chaos.SetSnapshotFaults(sim.SnapshotFaults{Rate: 1, Modes: []sim.SnapshotFault{sim.SnapshotXML}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	sawStale := false
	for {
		a := getSnapshot(t, g, "stale")
		kind, problem := checkSnap(a)
		if problem != "" {
			t.Fatal(problem)
		}
		if kind == "stale" {
			sawStale = true
		}
		if kind == "error" {
			bodies = append(bodies, string(a.body))
			if a.status != 502 || !strings.Contains(string(a.body), "staleness limit") || !strings.Contains(string(a.body), `"reason":"xml_body"`) {
				t.Errorf("past max stale: %d %s", a.status, a.body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("still an image 10 s after the device started failing with #snapshot_max_stale=1")
		}
		time.Sleep(100 * time.Millisecond) // polling with a deadline
	}
	if !sawStale {
		t.Error("no stale answer before the staleness limit")
	}

	// 4. Wrong password and locked: explained errors, the guard protects the device.
	for range 4 {
		a := getSnapshot(t, g, "wrongpw")
		bodies = append(bodies, string(a.body))
		if a.status != 502 || !strings.Contains(string(a.body), `"reason":"unauthorized"`) {
			t.Errorf("wrong password snapshot: %d %s", a.status, a.body)
		}
	}
	if n := wrong.Client("127.0.0.1").FailedLogins; n == 0 || n > 2 {
		t.Errorf("the wrong-password device saw %d failed logins, want 1..2 (the guard's budget)", n)
	}
	a = getSnapshot(t, g, "lockedcam")
	bodies = append(bodies, string(a.body))
	if a.status != 503 || !strings.Contains(string(a.body), `"reason":"locked"`) {
		t.Errorf("locked device snapshot: %d %s", a.status, a.body)
	}

	// 5. Rebooting: streaming first, then the device goes away.
	pollHealth(t, g, "live and rebooting streaming", 20*time.Second, func(h healthDoc) bool {
		n := 0
		for _, s := range h.Sources {
			if (s.Stream == "live" || s.Stream == "rebooting") && s.State == "streaming" {
				n++
			}
		}
		return n == 2
	})
	if a := getSnapshot(t, g, "rebooting"); a.status != 200 {
		t.Fatalf("rebooting camera snapshot before the reboot: %d %s", a.status, a.body)
	}
	if err := reboot.Reboot(2 * time.Minute); err != nil {
		t.Fatal(err)
	}
	// a snapshot during the reboot: the last good image, marked stale
	deadline = time.Now().Add(10 * time.Second)
	for {
		a := getSnapshot(t, g, "rebooting")
		kind, problem := checkSnap(a)
		if problem != "" {
			t.Fatal(problem)
		}
		if kind == "stale" {
			if r := a.header.Get("X-Hikvision-Stale-Reason"); r != "unreachable" && r != "timeout" {
				t.Errorf("stale reason during the reboot %q, want unreachable or timeout", r)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no stale answer during the reboot: last %s", kind)
		}
		time.Sleep(1100 * time.Millisecond) // past the default 1 s min interval; polling with a deadline
	}

	now := time.Now()
	h := pollHealth(t, g, "every device's state", 20*time.Second, func(h healthDoc) bool {
		for _, s := range h.Sources {
			if s.Stream == "rebooting" && s.State == "streaming" {
				return false
			}
		}
		return true
	})
	_, hbody := health(t, g)
	bodies = append(bodies, hbody)
	dev := map[string]int{}
	for i, d := range h.Devices {
		dev[d.User] = i
	}
	src := map[string]int{}
	for i, s := range h.Sources {
		src[s.Stream] = i
	}
	if len(h.Devices) != 5 || len(src) != 6 {
		t.Errorf("health lists %d devices and %d streams, want 5 and 6:\n%s", len(h.Devices), len(src), hbody)
	}
	d := h.Devices[dev["live"]]
	if d.State != "ok" || d.Reachable == nil || !*d.Reachable || d.Model == "" || d.FailedLogins != 0 {
		t.Errorf("streaming camera device: %+v", d)
	}
	s := h.Sources[src["live"]]
	if s.State != "streaming" || s.LastFrame == nil || now.Sub(*s.LastFrame) > 5*time.Second || s.Snapshot == nil || s.Snapshot.LastGood == nil {
		t.Errorf("streaming camera source: %+v (last frame %v)", s, s.LastFrame)
	}
	if s.Talk == nil || s.Talk.State != "idle" {
		t.Errorf("streaming camera talk: %+v, want the backchannel's idle state", s.Talk)
	}
	d = h.Devices[dev["reboot"]]
	if d.Reachable == nil || *d.Reachable {
		t.Errorf("rebooting camera device: %+v, want reachable=false", d)
	}
	s = h.Sources[src["rebooting"]]
	if s.State == "streaming" || s.State == "" {
		t.Errorf("rebooting camera source state %q", s.State)
	}
	d = h.Devices[dev["wrong"]]
	if (d.State != "holding" && d.State != "failing") || d.Reason != "wrong credentials" || d.FailedLogins < 1 ||
		d.FailedLogins > d.LoginBudget || d.LoginBudget != 2 || d.Reachable == nil || !*d.Reachable || d.LastError == "" {
		t.Errorf("wrong-password device: %+v", d)
	}
	d = h.Devices[dev["locked"]]
	if d.State != "locked" || d.LockedUntil == nil || d.LockedUntil.Before(now.Add(5*time.Minute)) {
		t.Errorf("locked device: %+v", d)
	}

	// 6. Metrics: the same figures, in the text format.
	status, mbody, err := g.Get(context.Background(), "/api/hikvision/metrics")
	if err != nil || status != 200 {
		t.Fatalf("metrics: %d %v", status, err)
	}
	bodies = append(bodies, string(mbody))
	metrics := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(mbody)), "\n") {
		if strings.HasPrefix(l, "#") {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		if i < 0 || !strings.HasPrefix(l, "hikvision_") {
			t.Errorf("bad metrics line %q", l)
			continue
		}
		if _, err := strconv.ParseFloat(l[i+1:], 64); err != nil {
			t.Errorf("bad metrics value in %q", l)
		}
		metrics[l[:i]] = l[i+1:]
	}
	for k, want := range map[string]string{
		`hikvision_source_streaming{device="` + live.HTTPAddr() + `",stream="live",stream_id="101"}`:        "1",
		`hikvision_source_streaming{device="` + reboot.HTTPAddr() + `",stream="rebooting",stream_id="102"}`: "0",
		`hikvision_source_talk_open{device="` + live.HTTPAddr() + `",stream="live",stream_id="101"}`:        "0",
		`hikvision_device_reachable{device="` + reboot.HTTPAddr() + `",user="reboot"}`:                      "0",
		`hikvision_device_reachable{device="` + live.HTTPAddr() + `",user="live"}`:                          "1",
		`hikvision_device_state{device="` + locked.HTTPAddr() + `",user="locked",state="locked"}`:           "1",
		`hikvision_device_state{device="` + live.HTTPAddr() + `",user="live",state="ok"}`:                   "1",
		`hikvision_device_login_budget{device="` + wrong.HTTPAddr() + `",user="wrong"}`:                     "2",
		`hikvision_device_failed_logins{device="` + wrong.HTTPAddr() + `",user="wrong"}`:                    strconv.Itoa(h.Devices[dev["wrong"]].FailedLogins),
	} {
		if metrics[k] != want {
			t.Errorf("metric %s = %q, want %s", k, metrics[k], want)
		}
	}

	// 7. No password anywhere: API bodies, /api/streams, go2rtc's output.
	status, sbody, err := g.Get(context.Background(), "/api/streams")
	if err != nil || status != 200 {
		t.Fatalf("/api/streams: %d %v", status, err)
	}
	bodies = append(bodies, string(sbody))
	for _, b := range bodies {
		if f := containsSecret(b, forms); f != "" {
			t.Errorf("password (form %q) in an API body:\n%s", f, b)
		}
	}
	for _, l := range strings.Split(g.Output(), "\n") {
		if f := containsSecret(l, forms); f != "" {
			t.Errorf("password (form %q) in go2rtc's output: %s", f, l)
		}
	}
}
