package e2e_test

// No secret is ever printed: a broad end-to-end run through
// the real patched go2rtc with a distinctive password, then every log line,
// API body and error string is searched for it in every form.

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/e2e"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

// secretPassword needs percent-encoding in a URL ('!', '@', '/', '#').
const secretPassword = "Zq7!x@Hik/9#Pw"

// allSecretForms is every form in which the password could leak: plain,
// percent-encoded (query, path and userinfo style), base64 (standard and URL
// alphabets, padded and raw, of the password and of "user:password") and the
// Digest HA1 (MD5 of user:realm:password, lower and upper hex) for each realm.
// (For secretPassword the standard and URL base64 alphabets coincide and a
// raw form is a prefix of the padded one: duplicates are dropped.)
func allSecretForms(user, pass string, realms ...string) []string {
	forms := secretForms(user, pass)
	for _, s := range []string{pass, user + ":" + pass} {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			forms = append(forms, enc.EncodeToString([]byte(s)))
		}
	}
	for _, realm := range realms {
		sum := md5.Sum([]byte(user + ":" + realm + ":" + pass))
		h := hex.EncodeToString(sum[:])
		forms = append(forms, h, strings.ToUpper(h))
	}
	seen := map[string]bool{}
	var out []string
	for _, f := range forms {
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	return out
}

// authProxy forwards HTTP to a simulator and counts the Authorization
// schemes the client sent ("Digest", "Basic", "none").
type authProxy struct {
	addr string
	srv  *http.Server

	mu      sync.Mutex
	schemes map[string]int
}

func startAuthProxy(t *testing.T, target string) *authProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &authProxy{addr: ln.Addr().String(), schemes: map[string]int{}}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: target})
	rp.ErrorLog = nil
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme := "none"
		if f := strings.Fields(r.Header.Get("Authorization")); len(f) > 0 {
			scheme = f[0]
		}
		p.mu.Lock()
		p.schemes[scheme]++
		p.mu.Unlock()
		rp.ServeHTTP(w, r)
	})}
	done := make(chan struct{})
	go func() { defer close(done); _ = p.srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = p.srv.Close()
		<-done
		if tr, ok := rp.Transport.(*http.Transport); ok {
			tr.CloseIdleConnections()
		} else {
			http.DefaultTransport.(*http.Transport).CloseIdleConnections()
		}
	})
	return p
}

func (p *authProxy) counts() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int, len(p.schemes))
	for k, v := range p.schemes {
		out[k] = v
	}
	return out
}

// leakCheck collects texts (log, API bodies, error strings) by where they
// came from and reports every password hit.
type leakCheck struct {
	forms []string
	texts []struct{ where, text string }
}

func (l *leakCheck) add(where, text string) {
	l.texts = append(l.texts, struct{ where, text string }{where, text})
}

func (l *leakCheck) check(t *testing.T) {
	t.Helper()
	hits := 0
	for _, x := range l.texts {
		for _, line := range strings.Split(x.text, "\n") {
			if f := containsSecret(line, l.forms); f != "" {
				hits++
				if len(line) > 400 {
					line = line[:400] + "..."
				}
				t.Errorf("password (as %q) in %s: %s", f, x.where, line)
			}
		}
	}
	t.Logf("searched %d texts (%d bytes) for %d forms of the password: %d hits", len(l.texts), l.size(), len(l.forms), hits)
}

func (l *leakCheck) size() int {
	n := 0
	for _, x := range l.texts {
		n += len(x.text)
	}
	return n
}

func TestNoSecretPrinted(t *testing.T) {
	requireFFmpeg(t)
	bin := binary(t)
	http.DefaultClient.CloseIdleConnections()
	base := runtime.NumGoroutine()
	t.Cleanup(func() { // runs last: after go2rtc, the proxies and the simulators
		http.DefaultClient.CloseIdleConnections()
		waitGoroutines(t, base)
	})
	start := time.Now()
	pw := secretPassword
	users := map[string]string{"admin": pw}

	cam := startSim(t, sim.Config{Users: users})
	nvr := startSim(t, sim.Config{Users: users, Personality: sim.PersonalityNVR})
	door := startSim(t, sim.Config{Users: users})
	wrong := startSim(t, sim.Config{Users: map[string]string{"admin": "the-right-one"}})
	locked := startSim(t, sim.Config{Users: users})
	if err := locked.LockIP("127.0.0.1", 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	reboot := startSim(t, sim.Config{Users: users})
	dual := startSim(t, sim.Config{Users: users, Auth: sim.AuthDigestBasic})
	basic := startSim(t, sim.Config{Users: users, Auth: sim.AuthBasic})
	dualProxy := startAuthProxy(t, dual.HTTPAddr())
	basicProxy := startAuthProxy(t, basic.HTTPAddr())

	enc := func(addr, query string) string {
		return "hikvision://" + url.UserPassword("admin", pw).String() + "@" + addr + "/" + query
	}
	streams := map[string]string{
		"cam":       enc(cam.HTTPAddr(), "?channel=1&stream=main"),
		"nvr_ch1":   enc(nvr.HTTPAddr(), "?channel=1&stream=sub"),
		"nvr_ch2":   enc(nvr.HTTPAddr(), "?channel=2&stream=main"),
		"door":      enc(door.HTTPAddr(), "?channel=1&stream=sub"),
		"wrongpw":   enc(wrong.HTTPAddr(), "?channel=1"),
		"lockedcam": enc(locked.HTTPAddr(), "?channel=1"),
		"rebooting": enc(reboot.HTTPAddr(), "?channel=1&stream=sub"),
		"dual":      enc(dualProxy.addr, "?channel=1&stream=sub"),
		"basic":     enc(basicProxy.addr, "?channel=1&stream=sub"),
		"bad_chan":  enc(cam.HTTPAddr(), "?channel=0"),
		"raw_hash":  "hikvision://admin:" + pw + "@" + cam.HTTPAddr() + "/?channel=1",
	}
	cfg := go2rtcConfig(streams, "streams=trace rtsp=trace hikvision=trace api=trace exec=trace")
	cfg += "preload:\n  rebooting: \"\"\n"
	g := e2e.StartGo2rtc(t, bin, cfg)

	leaks := &leakCheck{forms: allSecretForms("admin", pw, cam.Config().Realm, nvr.Config().Realm)}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	get := func(path string) (int, string) {
		t.Helper()
		status, body, err := g.Get(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		leaks.add("GET "+path, string(body))
		return status, string(body)
	}

	// 1. Play: a camera, two NVR channels, the two devices behind the proxies.
	for _, name := range []string{"cam", "nvr_ch1", "nvr_ch2", "dual", "basic"} {
		got, stderr, err := ffprobeStreams(ctx, "rtsp://"+g.RTSPAddr+"/"+name)
		leaks.add("ffprobe "+name, stderr)
		if err != nil {
			leaks.add("error", err.Error())
			t.Errorf("play %s: %v", name, err)
			continue
		}
		if len(got) == 0 {
			t.Errorf("play %s: no streams", name)
		}
	}
	// /api/streams?src= while a consumer holds a stream (connected producer JSON)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, _, err := decodeFrames(ctx, "rtsp://"+g.RTSPAddr+"/cam", 2); err != nil {
			t.Errorf("decode cam: %v", err)
		}
	}()
	for name := range streams {
		if st, body, err := probeStream(ctx, g, name); err == nil {
			leaks.add("GET /api/streams?src="+name+"&video&audio", string(body))
			if name == "cam" && st != http.StatusOK {
				t.Errorf("cam probe: %d %s", st, body)
			}
		} else {
			leaks.add("error", err.Error())
		}
	}
	wg.Wait()

	// 2. Failing sources, each through a player and the API.
	for _, name := range []string{"wrongpw", "wrongpw", "wrongpw", "lockedcam", "bad_chan", "raw_hash"} {
		_, stderr, err := ffprobeStreams(ctx, "rtsp://"+g.RTSPAddr+"/"+name)
		leaks.add("ffprobe "+name, stderr)
		if err == nil {
			t.Errorf("play %s succeeded", name)
		} else {
			leaks.add("error", err.Error())
		}
		get("/api/frame.mp4?src=" + name)
	}

	// 3. Snapshots, good and failing.
	for _, name := range []string{"cam", "nvr_ch1", "dual", "basic", "wrongpw", "lockedcam", "bad_chan", "raw_hash", "nope"} {
		status, body := get("/api/hikvision/snapshot?src=" + name)
		if want := name == "cam" || name == "nvr_ch1" || name == "dual" || name == "basic"; want != (status == http.StatusOK) {
			t.Errorf("snapshot %s: %d %.200s", name, status, body)
		}
	}

	// 4. Talk: a tone played into the door station.
	tone := talkToneFile(t, 440, 1)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.URL(playURL(tone)), nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("POST talk: %d %v %s", res.StatusCode, err, answer)
	}
	leaks.add("POST /api/streams?dst=door", string(answer))
	talkWait(t, g, "the tone at the door station", 20*time.Second, func() bool { return door.TalkClient(talkClientIP).Bytes >= 8000 })
	talkWait(t, g, "the talk session closed", 10*time.Second, func() bool { _, open := door.TalkSession(); return !open })

	// 5. A device rebooting under a streaming source.
	pollHealth(t, g, "the rebooting camera streaming", 20*time.Second, func(h healthDoc) bool {
		for _, s := range h.Sources {
			if s.Stream == "rebooting" && s.State == "streaming" {
				return true
			}
		}
		return false
	})
	if err := reboot.Reboot(time.Minute); err != nil {
		t.Fatal(err)
	}
	pollHealth(t, g, "the rebooting camera's source reconnecting", 20*time.Second, func(h healthDoc) bool {
		for _, s := range h.Sources {
			if s.Stream == "rebooting" && s.State != "streaming" {
				return true
			}
		}
		return false
	})

	// 6. Everything the API shows.
	get("/api/streams")
	for name := range streams {
		get("/api/streams?src=" + url.QueryEscape(name))
	}
	get("/api/hikvision")
	get("/api/hikvision/metrics")

	// 7. Digest never falls back to Basic when the device offers Digest; a
	// Basic-only device is answered with Basic (plain HTTP).
	t.Run("digest_preferred", func(t *testing.T) {
		c := dualProxy.counts()
		t.Logf("digest/basic device: Authorization schemes %v", c)
		if c["Basic"] != 0 || c["Digest"] == 0 {
			t.Errorf("a device offering Digest and Basic got %v: want Digest only", c)
		}
		c = basicProxy.counts()
		t.Logf("basic-only device: Authorization schemes %v", c)
		if c["Basic"] == 0 || c["Digest"] != 0 {
			t.Errorf("a Basic-only device got %v: want Basic", c)
		}
	})

	settle(g, 300*time.Millisecond)
	out := g.Output()
	leaks.add("go2rtc log", out)
	leaks.check(t)

	// 8. go2rtc's config echo is the user's own file: an inline password is
	// there (documented limit, go2rtc only masks ${VAR} secrets).
	status, conf, err := g.Get(ctx, "/api/config")
	if err != nil || status != http.StatusOK {
		t.Fatalf("/api/config: %d %v", status, err)
	}
	if f := containsSecret(string(conf), leaks.forms); f == "" {
		t.Errorf("/api/config does not echo the inline password: the documented limit is stale (%.300s)", conf)
	} else {
		t.Logf("documented limit: GET /api/config echoes the config file as written, inline password included (as %q); use ${VAR}", f)
	}

	t.Run("basic_warning_once", func(t *testing.T) {
		lines := basicWarnings(out, basicProxy.addr)
		for _, l := range lines {
			t.Logf("warning: %s", l)
		}
		if others := basicWarnings(out, dualProxy.addr); len(others) != 0 {
			t.Errorf("a Basic warning for the digest/basic device, which was answered with Digest: %q", others)
		}
		if len(lines) != 1 {
			t.Fatalf("%d Basic warnings for the Basic-only device, want exactly 1 (one WRN per device naming it and 'Basic')", len(lines))
		}
		for _, w := range []string{"WRN", "base64", "https=1"} {
			if !strings.Contains(lines[0], w) {
				t.Errorf("Basic warning %q lacks %q", lines[0], w)
			}
		}
	})
	t.Logf("secrets scenario: %.1fs", time.Since(start).Seconds())
}

// basicWarnings returns the [hikvision] log lines about Basic authentication
// for the device at addr.
func basicWarnings(out, addr string) []string {
	var r []string
	for _, l := range linesWith(out, "[hikvision]", addr) {
		if strings.Contains(strings.ToLower(l), "basic") {
			r = append(r, l)
		}
	}
	return r
}

// TestNoSecretEnvConfig: the password given as ${VAR} (the percent-encoded
// password in the environment) plays, and neither go2rtc's config echo nor
// its log or API show it.
func TestNoSecretEnvConfig(t *testing.T) {
	requireFFmpeg(t)
	bin := binary(t)
	pw := secretPassword
	cam := startSim(t, sim.Config{Users: map[string]string{"admin": pw}})
	encoded := strings.TrimPrefix(url.UserPassword("admin", pw).String(), "admin:")
	cfg := go2rtcConfig(map[string]string{
		"cam": "hikvision://admin:${HIK_PASS}@" + cam.HTTPAddr() + "/?channel=1&stream=sub",
	}, "streams=trace hikvision=trace api=trace rtsp=trace")
	g, err := e2e.Start(context.Background(), e2e.Options{Bin: bin, Config: cfg, Env: []string{"HIK_PASS=" + encoded}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := g.Stop(); err != nil {
			t.Errorf("%v\n%s", err, g.Output())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if got, stderr, err := ffprobeStreams(ctx, "rtsp://"+g.RTSPAddr+"/cam"); err != nil || len(got) == 0 {
		t.Fatalf("play the ${VAR} stream: %v %s\n%s", err, stderr, g.Output())
	}
	leaks := &leakCheck{forms: allSecretForms("admin", pw, cam.Config().Realm)}
	for _, path := range []string{"/api/config", "/api/streams", "/api/streams?src=cam", "/api/hikvision", "/api/hikvision/metrics"} {
		status, body, err := g.Get(ctx, path)
		if err != nil || status != http.StatusOK {
			t.Fatalf("%s: %d %v", path, status, err)
		}
		if path == "/api/config" && !strings.Contains(string(body), "${HIK_PASS}") {
			t.Errorf("/api/config does not show ${HIK_PASS}: %s", body)
		}
		leaks.add("GET "+path, string(body))
	}
	leaks.add("go2rtc log", g.Output())
	leaks.check(t)
}
