package e2e_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/e2e"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

// wrongPassword is the password the wrong-password stream uses (the device
// has e2ePassword). It is checked for leaks like the right one.
const wrongPassword = "Wr0ng/P@ss:e2e"

// countLines counts the lines of text that contain every one of parts.
func countLines(text string, parts ...string) int {
	n := 0
	for _, line := range strings.Split(text, "\n") {
		all := true
		for _, p := range parts {
			if !strings.Contains(line, p) {
				all = false
				break
			}
		}
		if all && line != "" {
			n++
		}
	}
	return n
}

// linesWith returns the lines of text that contain every one of parts.
func linesWith(text string, parts ...string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		ok := line != ""
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

// waitLines polls go2rtc's output until at least want lines contain every
// one of parts (go2rtc's output reaches the test through a pipe), then returns
// the count. It returns the count seen at the deadline otherwise.
func waitLines(g *e2e.Go2rtc, want int, parts ...string) int {
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := countLines(g.Output(), parts...)
		if n >= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(20 * time.Millisecond) // polling with a deadline
	}
}

// settle waits until go2rtc's output has not grown for quiet, so that a
// second log line for the same attempt would have shown up.
func settle(g *e2e.Go2rtc, quiet time.Duration) {
	deadline := time.Now().Add(5 * time.Second)
	last, since := len(g.Output()), time.Now()
	for time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // polling with a deadline
		if n := len(g.Output()); n != last {
			last, since = n, time.Now()
		} else if time.Since(since) >= quiet {
			return
		}
	}
}

// totalISAPI is every ISAPI request the device got, from any client.
func totalISAPI(d *sim.Device) int {
	n := 0
	for _, c := range d.Stats().Clients {
		for _, v := range c.Requests {
			n += v
		}
	}
	return n
}

// TestDialErrors: a bad hikvision:// URL and a wrong password each give one
// clear error line in go2rtc's log per attempt and the error in the HTTP
// answer of the request that dialled, never with a password; a bad URL sends
// nothing to the device; repeated attempts with a wrong password cost the
// device at most 2 failed logins (it locks after 5).
func TestDialErrors(t *testing.T) {
	requireFFmpeg(t)
	bin := binary(t)

	dev := startSim(t, sim.Config{Users: map[string]string{"admin": e2ePassword}})
	streams := map[string]string{
		"bad_channel":  hikURL("admin", e2ePassword, dev, "?channel=0"),
		"bad_param":    hikURL("admin", e2ePassword, dev, "?channel=1&colour=red"),
		"wrong_passwd": hikURL("admin", wrongPassword, dev, "?channel=1"),
	}
	g := e2e.StartGo2rtc(t, bin, go2rtcConfig(streams, ""))
	forms := append(secretForms("admin", e2ePassword), secretForms("admin", wrongPassword)...)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	badURL := []struct {
		stream string
		marker []string // what the one error line must say
	}{
		{"bad_channel", []string{"hikvision: bad URL: channel=", "want a channel number"}},
		{"bad_param", []string{"hikvision: bad URL: colour=", "unknown parameter"}},
	}
	for _, c := range badURL {
		t.Run(c.stream, func(t *testing.T) {
			// 1. A player (ffprobe on go2rtc's RTSP): it fails, go2rtc logs one line.
			before := countLines(g.Output(), c.marker...)
			if _, stderr, err := ffprobeStreams(ctx, "rtsp://"+g.RTSPAddr+"/"+c.stream); err == nil {
				t.Fatalf("ffprobe of %s succeeded; stderr: %s", c.stream, stderr)
			}
			if n := waitLines(g, before+1, c.marker...); n != before+1 {
				t.Fatalf("%d log lines with %q after one ffprobe, want 1; output:\n%s", n-before, c.marker, g.Output())
			}
			settle(g, 300*time.Millisecond)
			if n := countLines(g.Output(), c.marker...); n != before+1 {
				t.Errorf("%d log lines with %q after one ffprobe, want 1; output:\n%s", n-before, c.marker, g.Output())
			}
			lines := linesWith(g.Output(), c.marker...)
			t.Logf("go2rtc log line: %s", lines[len(lines)-1])

			// 2. An API request that dials: the error is in its answer.
			before = countLines(g.Output(), c.marker...)
			status, body, err := g.Get(ctx, "/api/frame.mp4?src="+url.QueryEscape(c.stream))
			if err != nil {
				t.Fatal(err)
			}
			if status != http.StatusInternalServerError || countLines(string(body), c.marker...) != 1 {
				t.Errorf("GET /api/frame.mp4?src=%s = %d %q, want 500 with %q", c.stream, status, body, c.marker)
			}
			if n := waitLines(g, before+1, c.marker...); n != before+1 {
				t.Errorf("%d log lines with %q after one frame.mp4, want 1", n-before, c.marker)
			}
			if s := containsSecret(string(body), forms); s != "" {
				t.Errorf("frame.mp4 error shows the password (as %q): %s", s, body)
			}
			checkStreamJSON(ctx, t, g, c.stream, c.marker[0], forms)
		})
	}
	// A bad URL is refused before any network traffic.
	if n := totalISAPI(dev); n != 0 || len(dev.Stats().Clients) != 0 {
		t.Errorf("bad URLs reached the device: %d ISAPI requests, stats %+v", n, dev.Stats())
	}

	t.Run("wrong_passwd", func(t *testing.T) {
		// one go2rtc line per player attempt: the RTSP server's failed DESCRIBE
		marker := []string{"[rtsp]", "stream=wrong_passwd"}
		const attempts = 5
		for i := 1; i <= attempts; i++ {
			before := countLines(g.Output(), marker...)
			if _, stderr, err := ffprobeStreams(ctx, "rtsp://"+g.RTSPAddr+"/wrong_passwd"); err == nil {
				t.Fatalf("attempt %d: ffprobe with a wrong password succeeded; stderr: %s", i, stderr)
			}
			if n := waitLines(g, before+1, marker...); n != before+1 {
				t.Errorf("attempt %d: %d log lines with %q, want 1; output:\n%s", i, n-before, marker, g.Output())
			}
		}
		settle(g, 300*time.Millisecond)
		lines := linesWith(g.Output(), marker...)
		if len(lines) != attempts {
			t.Errorf("%d log lines with %q after %d attempts, want %d", len(lines), marker, attempts, attempts)
		}
		for i, line := range lines {
			t.Logf("attempt %d: go2rtc log line: %s", i+1, line)
			// clear: says it is this source and that the credentials are wrong
			if !strings.Contains(line, "hikvision: ") || !strings.Contains(line, "wrong credentials") ||
				!strings.Contains(line, "127.0.0.1") {
				t.Errorf("attempt %d: the line does not say that the hikvision source on 127.0.0.1 has wrong credentials: %s", i+1, line)
			}
		}

		status, body, err := g.Get(ctx, "/api/frame.mp4?src=wrong_passwd")
		if err != nil {
			t.Fatal(err)
		}
		if status != http.StatusInternalServerError || !strings.Contains(string(body), "hikvision: ") ||
			!strings.Contains(string(body), "credentials") {
			t.Errorf("GET /api/frame.mp4?src=wrong_passwd = %d %q, want 500 with the hikvision credentials error", status, body)
		}
		if s := containsSecret(string(body), forms); s != "" {
			t.Errorf("frame.mp4 error shows the password (as %q): %s", s, body)
		}
		checkStreamJSON(ctx, t, g, "wrong_passwd", "credentials", forms)

		cs := dev.Client("127.0.0.1")
		t.Logf("device after %d ffprobes + 1 frame.mp4: %d failed ISAPI logins, %d failed RTSP logins, %d challenges, %d ISAPI requests, lock events %d",
			attempts, cs.FailedLogins, cs.RTSPFailedLogins, cs.Challenges, totalISAPI(dev), cs.LockEvents)
		if failed := cs.FailedLogins + cs.RTSPFailedLogins; failed > 2 || cs.LockEvents != 0 {
			t.Errorf("the device counted %d failed logins (%d ISAPI + %d RTSP) and %d lock events for %d player attempts; want <= 2 and no lock",
				failed, cs.FailedLogins, cs.RTSPFailedLogins, cs.LockEvents, attempts+1)
		}
		if cs.FailedLogins+cs.RTSPFailedLogins == 0 {
			t.Errorf("the device saw no failed login at all: the wrong password never reached it (%+v)", cs)
		}
	})

	out := g.Output()
	ours, theirs := leakReport(out, forms)
	if len(ours) != 0 {
		t.Errorf("go2rtc's log shows a password through our module:\n%s", strings.Join(ours, "\n"))
	}
	logGo2rtcLeaks(t, "log", theirs)
	if t.Failed() {
		t.Logf("go2rtc output:\n%s", out)
	}
}

// checkStreamJSON reads GET /api/streams?src=NAME (no consumer, no dial):
// our producer must not show a password; an "error" field, when go2rtc has
// one, must be the dial error. Without one it logs that go2rtc only returns
// a first dial's error to the request that dialled.
func checkStreamJSON(ctx context.Context, t *testing.T, g *e2e.Go2rtc, name, marker string, forms []string) {
	t.Helper()
	status, body, err := g.Get(ctx, "/api/streams?src="+url.QueryEscape(name))
	if err != nil || status != http.StatusOK {
		t.Fatalf("GET /api/streams?src=%s = %d %s %v", name, status, body, err)
	}
	prods, err := parseProducers(body)
	if err != nil {
		t.Fatal(err)
	}
	ours, theirs := leakReport(string(body), forms)
	if len(ours) != 0 {
		t.Errorf("/api/streams?src=%s shows a password outside go2rtc's url field: %s", name, body)
	}
	logGo2rtcLeaks(t, "/api/streams?src="+name, theirs)
	for _, p := range prods {
		switch {
		case p.Error != "" && !strings.Contains(p.Error, marker):
			t.Errorf("/api/streams?src=%s error %q, want one with %q", name, p.Error, marker)
		case p.Error != "":
			t.Logf("/api/streams?src=%s error: %s", name, p.Error)
		default:
			t.Logf("/api/streams?src=%s has no error field (go2rtc gives a first dial's error only to the request that dialled): %s",
				name, strings.Join(strings.Fields(string(body)), " "))
		}
	}
}
