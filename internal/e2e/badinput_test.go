package e2e_test

// The README's bad-input table: every kind of wrong
// configuration or device answer a user can hit, produced against the real
// patched go2rtc and the simulators, with the one line the user sees.
//
//	go test -run TestBadInputTable ./internal/e2e/                    compare with testdata/badinput.md
//	UPDATE_BADINPUT=1 go test -run TestBadInputTable ./internal/e2e/  rewrite testdata/badinput.md

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/e2e"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim/hostile"
)

// badPassword is the password of every bad-input stream: it needs
// percent-encoding ('!', '@', '/', '#') and is checked for in every line.
const badPassword = "Zq7!x@Hik/9#Pw"

const badInputFile = "testdata/badinput.md"

// How a case is produced, and so where its line comes from.
const (
	viaPlayer   = "player"   // ffprobe plays go2rtc's RTSP stream: go2rtc's WRN [rtsp] line
	viaAPI      = "api"      // GET /api/streams?src=NAME&video&audio: the HTTP answer
	viaSnapshot = "snapshot" // GET /api/hikvision/snapshot?...: the HTTP answer
	viaLog      = "log"      // a [hikvision] log line after the trigger (talk)
)

type badCase struct {
	situation string
	via       string
	stream    string   // go2rtc stream name (player, api, log)
	query     string   // snapshot: the query after /api/hikvision/snapshot?
	logMarker []string // viaLog: the line has all of these
	want      []string // key words the line must contain
	// gap: the module does not yet say what is wrong; the line is recorded
	// as it is and the key words are not asserted (the report says where the
	// fix belongs).
	gap    string
	before func(t *testing.T) // fault injection or a first attempt
	// variants: wordings that come by chance (a race between two timers)
	// and the one recorded in the table instead
	variants map[string]string
}

// badLine is one produced row.
type badLine struct {
	situation, where, line, gap string
}

func TestBadInputTable(t *testing.T) {
	requireFFmpeg(t)
	bin := binary(t)
	http.DefaultClient.CloseIdleConnections()
	base := runtime.NumGoroutine()
	t.Cleanup(func() { // runs last: after go2rtc and the simulators
		http.DefaultClient.CloseIdleConnections()
		waitGoroutines(t, base)
	})
	start := time.Now()
	users := map[string]string{"admin": badPassword}

	cam := startSim(t, sim.Config{Users: users})
	wrong := startSim(t, sim.Config{Users: map[string]string{"admin": "the-right-one"}})
	locked := startSim(t, sim.Config{Users: users})
	if err := locked.LockIP("127.0.0.1", 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	stalled := startSim(t, sim.Config{Users: users})
	stalled.SetStall(true)
	t.Cleanup(func() { stalled.SetStall(false) })
	nvr := startSim(t, sim.Config{Personality: sim.PersonalityNVR, Users: users,
		Channels: []sim.Channel{{ID: 1}, {ID: 2, Offline: true}}})
	door := startSim(t, sim.Config{Users: users})
	g726 := startSim(t, sim.Config{Users: users, TalkCodec: "G.726"})
	html := startHostile(t, hostile.ModeWrongContentType)
	silent := startHostile(t, hostile.ModeSilentRTSP)
	nobody, err := e2e.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	noRTSP, err := e2e.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}

	enc := func(addr, query string) string {
		return "hikvision://" + url.UserPassword("admin", badPassword).String() + "@" + addr + "/" + query
	}
	streams := map[string]string{
		"unknown_param": enc(cam.HTTPAddr(), "?channel=1&colour=red"),
		"channel_0":     enc(cam.HTTPAddr(), "?channel=0"),
		"channel_nan":   enc(cam.HTTPAddr(), "?channel=one"),
		"stream_fourth": enc(cam.HTTPAddr(), "?channel=1&stream=fourth"),
		"no_host":       "hikvision://admin:" + url.QueryEscape(badPassword) + "@/?channel=1",
		"no_user":       "hikvision://" + cam.HTTPAddr() + "/?channel=1",
		"bad_port":      "hikvision://admin:" + url.QueryEscape(badPassword) + "@127.0.0.1:99999/?channel=1",
		"raw_hash":      "hikvision://admin:" + badPassword + "@" + cam.HTTPAddr() + "/?channel=1",
		"wrong_pw":      enc(wrong.HTTPAddr(), "?channel=1"),
		"locked":        enc(locked.HTTPAddr(), "?channel=1"),
		"unreachable":   enc(nobody, "?channel=1"),
		"timeout":       enc(stalled.HTTPAddr(), "?channel=1#timeout=1"),
		"not_hik":       enc(html.HTTPAddr(), "?channel=1"),
		"silent_rtsp":   enc(silent.HTTPAddr(), "?channel=1"),
		"no_channel":    enc(cam.HTTPAddr(), "?channel=7"),
		"nvr_offline":   enc(nvr.HTTPAddr(), "?channel=2"),
		"rtsp_refused":  enc(cam.HTTPAddr(), "?channel=1&rtsp_port="+portOf(noRTSP)),
		"door":          enc(door.HTTPAddr(), "?channel=1&stream=sub"),
		"g726":          enc(g726.HTTPAddr(), "?channel=1&stream=sub"),
		"cam":           enc(cam.HTTPAddr(), "?channel=1&stream=sub"),
	}
	g := e2e.StartGo2rtc(t, bin, go2rtcConfig(streams, "hikvision=debug"))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	tone := ""
	cases := []badCase{
		{situation: "Unknown parameter in the URL (`colour=red`)", via: viaPlayer, stream: "unknown_param",
			want: []string{"bad URL", "colour", "unknown parameter", "known: channel"}},
		{situation: "Channel 0", via: viaPlayer, stream: "channel_0",
			want: []string{"bad URL", `channel=\"0\"`, "channel number 1-999"}},
		{situation: "Channel not a number (`channel=one`)", via: viaPlayer, stream: "channel_nan",
			want: []string{"bad URL", `channel=\"one\"`, "channel number"}},
		{situation: "Unknown stream (`stream=fourth`)", via: viaPlayer, stream: "stream_fourth",
			want: []string{"bad URL", `stream=\"fourth\"`, "main, sub or third"}},
		{situation: "No host (`hikvision://admin:PASS@/`)", via: viaPlayer, stream: "no_host",
			want: []string{"bad URL", "host", "missing"}},
		{situation: "No user (`hikvision://HOST/`)", via: viaPlayer, stream: "no_user",
			want: []string{"bad URL", "user", "missing", "USER:PASS@HOST"}},
		{situation: "Bad port (`:99999`)", via: viaPlayer, stream: "bad_port",
			want: []string{"bad URL", `port=\"99999\"`, "1-65535"}},
		{situation: "Unencoded `#` (or `/`, `?`) in the password", via: viaPlayer, stream: "raw_hash",
			want: []string{"bad URL", "password", "percent-encoded", "%23"}},
		{situation: "Wrong password (first attempt)", via: viaPlayer, stream: "wrong_pw",
			want: []string{"probe deviceInfo", "wrong credentials", "tries left before lock"}},
		{situation: "Wrong password again: the login guard holds after 2 failures (no request sent)", via: viaPlayer, stream: "wrong_pw",
			want: []string{"hikvision: " + wrong.HTTPAddr() + ": wrong credentials", "not trying again before", "twice"},
			before: func(t *testing.T) { // the second failed login
				if st, body, err := probeStream(ctx, g, "wrong_pw"); err != nil || st == http.StatusOK {
					t.Fatalf("second wrong-password attempt: %d %s %v", st, body, err)
				}
			}},
		{situation: "Device locked this client (illegal login lock)", via: viaPlayer, stream: "locked",
			want: []string{"probe deviceInfo", "locked", "unlocks in"}},
		{situation: "Device unreachable (nothing listens)", via: viaPlayer, stream: "unreachable",
			want: []string{"probe deviceInfo", "connection refused"}},
		{situation: "Device never answers (`#timeout=1`)", via: viaAPI, stream: "timeout",
			want: []string{"probe deviceInfo", "isapi GET /ISAPI/System/deviceInfo: no answer within 1s"}},
		{situation: "Not a Hikvision device (answers an HTML login page)", via: viaPlayer, stream: "not_hik",
			want: []string{"probe deviceInfo", "unexpected device answer", "<html>"}},
		{situation: "RTSP port accepts and never answers", via: viaPlayer, stream: "silent_rtsp",
			want: []string{"rtsp describe", "no answer within 5s"}},
		{situation: "Channel not found on the device (camera, `channel=7`)", via: viaPlayer, stream: "no_channel",
			want: []string{"probe streaming channel 701", "no such channel or stream", "badParameters"}},
		{situation: "NVR channel whose IP camera is offline", via: viaAPI, stream: "nvr_offline",
			want: []string{"NVR channel 2 is offline", "camera not connected to the NVR", nvr.HTTPAddr(), "netUnreachable"}},
		{situation: "RTSP port refused (RTSP off, or a wrong `rtsp_port`)", via: viaPlayer, stream: "rtsp_refused",
			want: []string{"rtsp connect", noRTSP, "connection refused"}},
		{situation: "Talk while another client (or the door station itself) is talking", via: viaLog, stream: "door",
			logMarker: []string{"[hikvision] talk busy", door.HTTPAddr()},
			want:      []string{"talk busy", "another client is talking", "/open"},
			before: func(t *testing.T) {
				if err := door.SetLocalTalk(true); err != nil {
					t.Fatal(err)
				}
				tone = talkToneFile(t, 440, 1)
				talkAPI(t, g, http.MethodPost, playURL(tone))
			}},
		{situation: "Talk codec the module cannot send (device set to G.726)", via: viaLog, stream: "g726",
			logMarker: []string{"[hikvision] talk codec", g726.HTTPAddr()},
			want:      []string{"G.726", "cannot be sent", "G.711ulaw", "no talk"},
			before: func(t *testing.T) {
				if st, body, err := probeStream(ctx, g, "g726"); err != nil || st != http.StatusOK {
					t.Fatalf("g726 stream: %d %s %v", st, body, err)
				}
			}},
		{situation: "Snapshot with only a width", via: viaSnapshot, query: "src=cam&width=abc",
			want: []string{"bad snapshot size", "width and height", "bad_size"}},
		{situation: "Snapshot size out of range", via: viaSnapshot, query: "src=cam&width=100000&height=10",
			want: []string{"bad snapshot size", "1..16384", "bad_size"}},
		{situation: "Snapshot of a stream that does not exist", via: viaSnapshot, query: "src=nope",
			want: []string{"nope", "does not exist", "no_source"}},
		{situation: "Snapshot of a stream with a bad URL", via: viaSnapshot, query: "src=channel_0",
			want: []string{"channel_0", "bad URL", "channel", "bad_source"}},
		{situation: "Snapshot, wrong password (guard holding)", via: viaSnapshot, query: "src=wrong_pw",
			want: []string{"unauthorized", "wrong credentials", "no good image yet"}},
		{situation: "Snapshot, device locked", via: viaSnapshot, query: "src=locked",
			want: []string{"locked", "no login tried"}},
	}
	// the wrong-password door station sim is also the talk one: make sure
	// a talk session is gone before the simulators close
	t.Cleanup(func() { _ = door.SetLocalTalk(false) })

	forms := append(secretForms("admin", badPassword), secretForms("admin", "the-right-one")...)
	norm := badNormalizer(map[string]string{
		cam.HTTPAddr(): "192.168.1.64:80", cam.RTSPAddr(): "192.168.1.64:554",
		wrong.HTTPAddr(): "192.168.1.65:80", locked.HTTPAddr(): "192.168.1.66:80",
		stalled.HTTPAddr(): "192.168.1.67:80",
		nvr.HTTPAddr():     "192.168.1.70:80", nvr.RTSPAddr(): "192.168.1.70:554",
		door.HTTPAddr(): "192.168.1.71:80", g726.HTTPAddr(): "192.168.1.72:80",
		html.HTTPAddr(): "192.168.1.73:80", silent.HTTPAddr(): "192.168.1.74:80", silent.RTSPAddr(): "192.168.1.74:554",
		nobody: "192.168.1.99:80", noRTSP: "192.168.1.64:8554",
	})

	var rows []badLine
	for _, c := range cases {
		t0 := time.Now()
		if c.before != nil {
			c.before(t)
		}
		where, line := produceBad(ctx, t, g, c)
		if where == "" {
			continue // t.Errorf already
		}
		for from, to := range c.variants {
			line = strings.ReplaceAll(line, from, to)
		}
		if s := containsSecret(line, forms); s != "" {
			t.Errorf("%s: the line shows the password (as %q): %s", c.situation, s, line)
		}
		if c.gap == "" {
			for _, w := range c.want {
				if !strings.Contains(line, w) {
					t.Errorf("%s: the line does not say %q: %s", c.situation, w, line)
				}
			}
		} else {
			missing := []string{}
			for _, w := range c.want {
				if !strings.Contains(line, w) {
					missing = append(missing, w)
				}
			}
			t.Logf("GAP %s: %s (missing %q): %s", c.situation, c.gap, missing, line)
		}
		t.Logf("%-70s %5.2fs  %s: %s", c.situation, time.Since(t0).Seconds(), where, line)
		rows = append(rows, badLine{situation: c.situation, where: where, line: norm(line), gap: c.gap})
	}

	// nothing anywhere in go2rtc's output shows a password
	for _, l := range strings.Split(g.Output(), "\n") {
		if s := containsSecret(l, forms); s != "" {
			t.Errorf("go2rtc's output shows the password (as %q): %s", s, l)
		}
	}

	table := badInputMarkdown(rows)
	path := filepath.Join(badInputFile)
	if os.Getenv("UPDATE_BADINPUT") != "" {
		if err := os.WriteFile(path, []byte(table), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d rows)", path, len(rows))
	} else {
		old, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with UPDATE_BADINPUT=1 to create it)", err)
		}
		if d := firstDiff(string(old), table); d != "" {
			t.Errorf("%s is not what the tests produce (a message changed? check it, then regenerate with UPDATE_BADINPUT=1):\n%s", path, d)
		}
	}
	checkReadmeBadInput(t, table)
	t.Logf("%d situations in %.1fs", len(rows), time.Since(start).Seconds())
	if t.Failed() {
		t.Logf("go2rtc output:\n%s", g.Output())
	}
}

func portOf(addr string) string {
	_, p, _ := strings.Cut(addr, ":")
	return p
}

func startHostile(t *testing.T, mode hostile.Mode) *hostile.Server {
	t.Helper()
	s, err := hostile.Start(hostile.Config{Mode: mode})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// produceBad produces a case and returns where the user sees its line, and
// the line.
func produceBad(ctx context.Context, t *testing.T, g *e2e.Go2rtc, c badCase) (where, line string) {
	t.Helper()
	switch c.via {
	case viaPlayer:
		marker := []string{"[rtsp]", "stream=" + c.stream}
		before := countLines(g.Output(), marker...)
		if _, stderr, err := ffprobeStreams(ctx, "rtsp://"+g.RTSPAddr+"/"+c.stream); err == nil {
			t.Errorf("%s: ffprobe of %s succeeded", c.situation, c.stream)
			return "", ""
		} else if s := containsSecret(stderr, secretForms("admin", badPassword)); s != "" {
			t.Errorf("%s: ffprobe's error shows the password: %s", c.situation, stderr)
		}
		if n := waitLines(g, before+1, marker...); n != before+1 {
			t.Errorf("%s: %d go2rtc log lines with %q after one player, want 1", c.situation, n-before, marker)
			return "", ""
		}
		lines := linesWith(g.Output(), marker...)
		return "go2rtc log, a player opens the stream", stripLogTime(lines[len(lines)-1])
	case viaAPI:
		status, body, err := probeStream(ctx, g, c.stream)
		if err != nil {
			t.Errorf("%s: %v", c.situation, err)
			return "", ""
		}
		if status == http.StatusOK {
			return "HTTP answer of `GET /api/streams?src=…&video&audio`", "HTTP 200: the stream opens"
		}
		return "HTTP answer of `GET /api/streams?src=…&video&audio`",
			fmt.Sprintf("HTTP %d: %s", status, strings.TrimSpace(string(body)))
	case viaSnapshot:
		status, body, err := g.Get(ctx, "/api/hikvision/snapshot?"+c.query)
		if err != nil {
			t.Errorf("%s: %v", c.situation, err)
			return "", ""
		}
		if status == http.StatusOK {
			t.Errorf("%s: snapshot answered 200", c.situation)
			return "", ""
		}
		return "HTTP answer of `GET /api/hikvision/snapshot?" + c.query + "`",
			fmt.Sprintf("HTTP %d: %s", status, strings.TrimSpace(string(body)))
	case viaLog:
		if n := waitLines(g, 1, c.logMarker...); n < 1 {
			t.Errorf("%s: no go2rtc log line with %q", c.situation, c.logMarker)
			return "", ""
		}
		lines := linesWith(g.Output(), c.logMarker...)
		return "go2rtc log", stripLogTime(lines[0])
	}
	t.Fatalf("unknown via %q", c.via)
	return "", ""
}

var logTime = regexp.MustCompile(`^\s*\d{2}:\d{2}:\d{2}\.\d{3} `)

func stripLogTime(l string) string { return logTime.ReplaceAllString(l, "") }

// badNormalizer makes a line independent of the run: the simulators' random
// loopback ports become fixed example addresses, clock times and time left
// placeholders.
func badNormalizer(addrs map[string]string) func(string) string {
	pairs := make([]string, 0, 2*len(addrs))
	for from, to := range addrs {
		pairs = append(pairs, from, to)
	}
	r := strings.NewReplacer(pairs...)
	local := regexp.MustCompile(`127\.0\.0\.1:\d+`)
	clock := regexp.MustCompile(`\b\d{2}:\d{2}:\d{2}\b`)
	left := regexp.MustCompile(`unlocks in [0-9hms.]+`)
	return func(s string) string {
		s = r.Replace(s)
		s = local.ReplaceAllString(s, "192.168.1.10:40000") // go2rtc's own end of a connection
		s = clock.ReplaceAllString(s, "HH:MM:SS")
		return left.ReplaceAllString(s, "unlocks in 10m0s")
	}
}

func badInputMarkdown(rows []badLine) string {
	var b strings.Builder
	b.WriteString("<!-- Generated by internal/e2e/badinput_test.go (UPDATE_BADINPUT=1 go test -run TestBadInputTable ./internal/e2e/). Do not edit. -->\n\n")
	b.WriteString("Every line below was produced by a test against the patched go2rtc and the device simulator " +
		"(addresses and clock times replaced by examples). The password is never shown.\n\n")
	b.WriteString("| Situation | Where | What the user sees |\n|---|---|---|\n")
	cell := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	var gaps []badLine
	for _, r := range rows {
		sit := r.situation
		if r.gap != "" {
			sit += " (known gap, see below)"
			gaps = append(gaps, r)
		}
		fmt.Fprintf(&b, "| %s | %s | `%s` |\n", cell(sit), cell(r.where), strings.ReplaceAll(cell(r.line), "`", "'"))
	}
	if len(gaps) > 0 {
		b.WriteString("\nKnown gaps (the line does not yet say what is wrong):\n\n")
		for _, r := range gaps {
			fmt.Fprintf(&b, "- %s: %s.\n", r.situation, r.gap)
		}
	}
	return b.String()
}

// firstDiff describes the first differing line of two texts, or "".
func firstDiff(a, b string) string {
	if a == b {
		return ""
	}
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return fmt.Sprintf("line %d\n  committed: %s\n  produced:  %s", i+1, x, y)
		}
	}
	return "they differ"
}

// README.md carries the same table between these markers: with
// UPDATE_BADINPUT=1 it is rewritten there too, else it must match.
const (
	readmeFile        = "../../README.md"
	readmeBadInputBeg = "<!-- badinput:begin (generated by internal/e2e/badinput_test.go) -->"
	readmeBadInputEnd = "<!-- badinput:end -->"
)

func checkReadmeBadInput(t *testing.T, table string) {
	t.Helper()
	var rows []string
	for _, l := range strings.Split(table, "\n") {
		if strings.HasPrefix(l, "|") {
			rows = append(rows, l)
		}
	}
	want := strings.Join(rows, "\n")
	b, err := os.ReadFile(readmeFile)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	i, j := strings.Index(readme, readmeBadInputBeg), strings.Index(readme, readmeBadInputEnd)
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the bad-input table markers %q ... %q", readmeBadInputBeg, readmeBadInputEnd)
	}
	got := strings.TrimSpace(readme[i+len(readmeBadInputBeg) : j])
	if os.Getenv("UPDATE_BADINPUT") != "" {
		readme = readme[:i+len(readmeBadInputBeg)] + "\n" + want + "\n" + readme[j:]
		if err := os.WriteFile(readmeFile, []byte(readme), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if d := firstDiff(got, want); d != "" {
		t.Errorf("README.md's bad-input table is not what the tests produce (regenerate with UPDATE_BADINPUT=1):\n%s", d)
	}
}
