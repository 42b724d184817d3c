package e2e_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/e2e"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

// e2ePassword is the simulators' admin password in the real-play and error
// tests. It has '/', '@' and ':' so that its plain, percent-encoded and
// base64 forms all differ (a leak in any form is found).
const e2ePassword = "Hik/12@45:e2e"

// requireFFmpeg skips the test when ffprobe/ffmpeg are missing, or fails it
// when CI=true (CI must run these tests).
func requireFFmpeg(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"ffprobe", "ffmpeg"} {
		if _, err := exec.LookPath(tool); err != nil {
			msg := fmt.Sprintf("%s not found on PATH (install ffmpeg, e.g. apt-get install ffmpeg): %v", tool, err)
			if os.Getenv("CI") == "true" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
}

// startSim starts a simulated device closed at the end of the test.
func startSim(t testing.TB, cfg sim.Config) *sim.Device {
	t.Helper()
	d, err := sim.Start(cfg)
	if err != nil {
		t.Fatalf("sim.Start: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("sim Close: %v", err)
		}
	})
	return d
}

// hikURL is a hikvision:// source for dev with percent-encoded credentials.
func hikURL(user, pass string, dev *sim.Device, query string) string {
	return "hikvision://" + url.UserPassword(user, pass).String() + "@" + dev.HTTPAddr() + "/" + query
}

// go2rtcConfig is a go2rtc YAML config with the given streams (name ->
// source, written in name order) and log levels.
func go2rtcConfig(streams map[string]string, logLevels string) string {
	names := make([]string, 0, len(streams))
	for n := range streams {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("log:\n  level: info\n")
	for _, l := range strings.Fields(logLevels) {
		k, v, _ := strings.Cut(l, "=")
		fmt.Fprintf(&b, "  %s: %s\n", k, v)
	}
	b.WriteString("streams:\n")
	for _, n := range names {
		fmt.Fprintf(&b, "  %s: %s\n", n, strconv.Quote(streams[n]))
	}
	return b.String()
}

// secretForms are the ways a password can show up in text: plain,
// percent-encoded (query, path and userinfo style) and base64 (alone and as
// the Basic "user:pass").
func secretForms(user, pass string) []string {
	userinfo := url.UserPassword(user, pass).String()
	forms := []string{
		pass,
		url.QueryEscape(pass),
		url.PathEscape(pass),
		strings.TrimPrefix(userinfo, url.User(user).String()+":"),
		base64.StdEncoding.EncodeToString([]byte(pass)),
		base64.StdEncoding.EncodeToString([]byte(user + ":" + pass)),
		base64.RawURLEncoding.EncodeToString([]byte(pass)),
	}
	seen := map[string]bool{}
	var out []string
	for _, f := range forms {
		if f != "" && !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	return out
}

// containsSecret returns the first secret form found in s, or "".
func containsSecret(s string, forms []string) string {
	for _, f := range forms {
		if strings.Contains(s, f) {
			return f
		}
	}
	return ""
}

// go2rtcOwnLeaks are places where go2rtc v1.9.14 itself prints a source URL
// as configured (with an inline password). They are go2rtc's, not this
// module's: the tests record them (t.Log) but assert only on our output.
var go2rtcOwnLeaks = []*regexp.Regexp{
	regexp.MustCompile(`url=\S+`),                               // [streams] start/stop producer url=..., retry=N to url=..., warn url=...
	regexp.MustCompile(`"url":\s*"[^"]*"`),                      // /api/streams: a producer without connection is {"url": "<source>"}
	regexp.MustCompile(`\[streams\] producer=.*`),               // the reconnect loop's dial error line quotes nothing of ours but keep it apart
	regexp.MustCompile(`streams: unsupported scheme: \S+`),      // GetProducer of an unknown scheme
	regexp.MustCompile(`\[streams\] (skip|check|dial|match).*`), // trace lines
}

// leakReport splits the secret hits of text (go2rtc output or an API body)
// into lines that leak through our module (after go2rtc's own URL fields are
// cut out) and lines where only go2rtc's own fields leak.
func leakReport(text string, forms []string) (ours, go2rtcs []string) {
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if containsSecret(line, forms) == "" {
			continue
		}
		cut := line
		for _, re := range go2rtcOwnLeaks {
			cut = re.ReplaceAllString(cut, "<go2rtc>")
		}
		if containsSecret(cut, forms) != "" {
			ours = append(ours, line)
		} else {
			go2rtcs = append(go2rtcs, line)
		}
	}
	return ours, go2rtcs
}

// logGo2rtcLeaks logs, once per kind (timestamp and URL left out), where
// go2rtc itself showed the password.
func logGo2rtcLeaks(t testing.TB, where string, lines []string) {
	t.Helper()
	kinds := map[string]int{}
	var order []string
	for _, l := range lines {
		k := l
		if f := strings.Fields(l); len(f) > 1 && strings.Count(f[0], ":") == 2 {
			k = strings.Join(f[1:], " ") // drop the time
		}
		k = go2rtcOwnLeaks[0].ReplaceAllString(k, "url=<source with password>")
		k = go2rtcOwnLeaks[1].ReplaceAllString(k, `"url":"<source with password>"`)
		if kinds[k] == 0 {
			order = append(order, k)
		}
		kinds[k]++
	}
	for _, k := range order {
		if len(k) > 300 {
			k = k[:300] + "..."
		}
		t.Logf("go2rtc itself shows the password (%s, %d times, not our module): %s", where, kinds[k], k)
	}
}

// probedStream is one stream of ffprobe -show_streams.
type probedStream struct {
	CodecType  string `json:"codec_type"`
	CodecName  string `json:"codec_name"`
	Width      int    `json:"width"`
	Height     int    `json:"height"`
	SampleRate string `json:"sample_rate"`
}

// ffprobeStreams runs ffprobe over RTSP/TCP on rtspURL.
func ffprobeStreams(ctx context.Context, rtspURL string) ([]probedStream, string, error) {
	cmd := exec.CommandContext(ctx, "ffprobe", "-hide_banner", "-v", "error",
		"-rtsp_transport", "tcp", "-timeout", "10000000",
		"-show_streams", "-of", "json", rtspURL)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, stderr.String(), fmt.Errorf("ffprobe %s: %w: %s", rtspURL, err, stderr.String())
	}
	var v struct {
		Streams []probedStream `json:"streams"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return nil, stderr.String(), fmt.Errorf("ffprobe %s: %w: %s", rtspURL, err, out)
	}
	return v.Streams, stderr.String(), nil
}

// decodeFrames decodes seconds of rtspURL with ffmpeg (first video and first
// audio stream, to framecrc: one line per decoded frame) and returns how many
// video frames and audio frames were decoded.
func decodeFrames(ctx context.Context, rtspURL string, seconds int) (video, audio int, err error) {
	cmd := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-nostdin", "-v", "error",
		"-rtsp_transport", "tcp", "-timeout", "10000000", "-i", rtspURL,
		"-t", strconv.Itoa(seconds), "-map", "0:v:0", "-map", "0:a:0", "-f", "framecrc", "-")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return 0, 0, fmt.Errorf("ffmpeg %s: %w: %s", rtspURL, err, stderr.String())
	}
	for _, line := range strings.Split(string(out), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		idx, _, _ := strings.Cut(line, ",")
		switch strings.TrimSpace(idx) {
		case "0":
			video++
		case "1":
			audio++
		}
	}
	return video, audio, nil
}

// apiProducer is the part of a producer's JSON in /api/streams the tests read.
type apiProducer struct {
	FormatName string `json:"format_name"`
	Protocol   string `json:"protocol"`
	URL        string `json:"url"`
	Source     string `json:"source"`
	Error      string `json:"error"`
	Device     struct {
		Model    string `json:"model"`
		Firmware string `json:"firmware"`
		NVR      bool   `json:"nvr"`
	} `json:"device"`
	Channel  int    `json:"channel"`
	Stream   string `json:"stream"`
	StreamID int    `json:"stream_id"`
}

// probeStream asks go2rtc for stream name with a probe consumer of every
// video and audio codec (GET /api/streams?src=NAME&video&audio): this dials
// the source and answers the stream's JSON with the connected producer, or
// the dial error with status 500.
func probeStream(ctx context.Context, g *e2e.Go2rtc, name string) (status int, body []byte, err error) {
	return g.Get(ctx, "/api/streams?src="+url.QueryEscape(name)+"&video&audio")
}

func parseProducers(body []byte) ([]apiProducer, error) {
	var s struct {
		Producers []apiProducer `json:"producers"`
	}
	if err := json.Unmarshal(body, &s); err != nil {
		return nil, fmt.Errorf("stream JSON: %w: %s", err, body)
	}
	return s.Producers, nil
}

type realPlayCase struct {
	name       string
	dev        *sim.Device
	query      string
	video      string // ffprobe codec_name
	width      int
	height     int
	audio      string
	sampleRate int
}

// TestRealPlay plays every simulator personality's streams through the
// patched go2rtc: hikvision:// sources, read back by ffprobe and ffmpeg from
// go2rtc's RTSP server.
func TestRealPlay(t *testing.T) {
	requireFFmpeg(t)
	bin := binary(t)

	users := map[string]string{"admin": e2ePassword}
	camH264 := startSim(t, sim.Config{Users: users}) // H.264 + PCMU
	camH265 := startSim(t, sim.Config{Users: users, Video: "H.265", Audio: "AAC",
		Model: "DS-2CD2387G2-LU", Firmware: "V5.7.15"})
	camPCMA := startSim(t, sim.Config{Users: users, Audio: "PCMA",
		Model: "DS-2CD1043G2-I", Firmware: "V5.5.800"})
	nvr := startSim(t, sim.Config{Users: users, Personality: sim.PersonalityNVR}) // ch1 H.264+PCMA, ch2 H.265+AAC

	cases := []realPlayCase{
		{"cam_h264_pcmu", camH264, "?channel=1&stream=main", "h264", 640, 360, "pcm_mulaw", 8000},
		{"cam_h264_pcmu_sub", camH264, "?channel=1&stream=sub", "h264", 320, 180, "pcm_mulaw", 8000},
		{"cam_h265_aac", camH265, "?channel=1&stream=main", "hevc", 640, 360, "aac", 16000},
		{"cam_h264_pcma", camPCMA, "?channel=1", "h264", 640, 360, "pcm_alaw", 8000},
		{"nvr_ch1", nvr, "?channel=1&stream=main", "h264", 640, 360, "pcm_alaw", 8000},
		{"nvr_ch1_sub", nvr, "?channel=1&stream=sub", "h264", 320, 180, "pcm_alaw", 8000},
		{"nvr_ch2_h265_aac", nvr, "?channel=2&stream=main", "hevc", 640, 360, "aac", 16000},
	}
	streams := map[string]string{}
	for _, c := range cases {
		streams[c.name] = hikURL("admin", e2ePassword, c.dev, c.query)
	}
	g := e2e.StartGo2rtc(t, bin, go2rtcConfig(streams, "hikvision=trace streams=debug rtsp=debug"))

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	schemes, err := g.Schemes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !contains(schemes, "hikvision") {
		t.Fatalf("/api/schemes = %v: the build has no hikvision scheme", schemes)
	}

	forms := secretForms("admin", e2ePassword)
	// All at once, on purpose: players open several streams of one NVR (and
	// of several devices) together, as Frigate does at start-up, so the first
	// dials of one device run concurrently. (t.Parallel would also run only
	// GOMAXPROCS of them together; these mostly wait on the 25 fps stream.)
	var wg sync.WaitGroup
	for _, c := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(c.name, func(t *testing.T) { checkRealPlay(ctx, t, g, c, forms) })
		}()
	}
	wg.Wait()

	// /api/streams after the consumers left.
	_, all, err := g.Get(ctx, "/api/streams")
	if err != nil {
		t.Fatal(err)
	}
	ours, theirs := leakReport(string(all), forms)
	if len(ours) != 0 {
		t.Errorf("/api/streams shows the password through the hikvision producer:\n%s", strings.Join(ours, "\n"))
	}
	logGo2rtcLeaks(t, "/api/streams", theirs)

	out := g.Output()
	ours, theirs = leakReport(out, forms)
	if len(ours) != 0 {
		t.Errorf("go2rtc's log shows the password through our module:\n%s", strings.Join(ours, "\n"))
	}
	logGo2rtcLeaks(t, "log", theirs)
	if !strings.Contains(out, "[hikvision]") {
		t.Errorf("no [hikvision] log line at trace level; output:\n%s", out)
	}
	if t.Failed() {
		t.Logf("go2rtc output:\n%s", out)
	}
}

func checkRealPlay(ctx context.Context, t *testing.T, g *e2e.Go2rtc, c realPlayCase, forms []string) {
	rtspURL := "rtsp://" + g.RTSPAddr + "/" + c.name

	got, _, err := ffprobeStreams(ctx, rtspURL)
	if err != nil {
		t.Fatal(err)
	}
	var v, a *probedStream
	for i := range got {
		switch got[i].CodecType {
		case "video":
			if v == nil {
				v = &got[i]
			}
		case "audio":
			if a == nil {
				a = &got[i]
			}
		}
	}
	if v == nil || v.CodecName != c.video || v.Width != c.width || v.Height != c.height {
		t.Errorf("ffprobe video = %+v, want %s %dx%d (all streams %+v)", v, c.video, c.width, c.height, got)
	}
	if a == nil || a.CodecName != c.audio || a.SampleRate != strconv.Itoa(c.sampleRate) {
		t.Errorf("ffprobe audio = %+v, want %s %d Hz (all streams %+v)", a, c.audio, c.sampleRate, got)
	}

	// Decode 3 s: video and audio frames arrive (25 fps).
	var wg sync.WaitGroup
	var prods []apiProducer
	var body []byte
	var perr error
	wg.Add(1)
	go func() { // /api/streams while ffmpeg plays (a second consumer: no new dial)
		defer wg.Done()
		var status int
		status, body, perr = probeStream(ctx, g, c.name)
		if perr == nil && status != http.StatusOK {
			perr = fmt.Errorf("GET /api/streams?src=%s: status %d: %s", c.name, status, body)
		}
		if perr == nil {
			prods, perr = parseProducers(body)
		}
	}()
	video, audio, err := decodeFrames(ctx, rtspURL, 3)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if video <= 40 {
		t.Errorf("ffmpeg decoded %d video frames in 3 s, want > 40 (25 fps)", video)
	}
	if audio == 0 {
		t.Errorf("ffmpeg decoded no audio frame in 3 s")
	}
	t.Logf("%s: %d video frames, %d audio frames in 3 s", c.name, video, audio)

	if perr != nil {
		t.Fatal(perr)
	}
	if len(prods) != 1 {
		t.Fatalf("stream has %d producers, want 1: %s", len(prods), body)
	}
	p := prods[0]
	cfg := c.dev.Config()
	if p.FormatName != "hikvision" || p.Device.Model != cfg.Model || p.Device.Firmware != cfg.Firmware {
		t.Errorf("producer: format_name %q model %q firmware %q, want hikvision %q %q: %s",
			p.FormatName, p.Device.Model, p.Device.Firmware, cfg.Model, cfg.Firmware, body)
	}
	if p.Device.NVR != (cfg.Personality == sim.PersonalityNVR) {
		t.Errorf("producer device.nvr = %v for a %s: %s", p.Device.NVR, cfg.Personality, body)
	}
	if s := containsSecret(string(body), forms); s != "" {
		t.Errorf("/api/streams?src=%s shows the password (as %q): %s", c.name, s, body)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
