package e2e_test

// The Home Assistant / Frigate path in a real browser: Debian's
// Chromium, headless, plays a hikvision:// stream of the simulator through the
// patched go2rtc over WebRTC and over MSE, and talks back with its (fake)
// microphone; the simulator checks the talk audio is the tone Chromium read.

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/e2e"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

// player.html is a page of another origin that loads go2rtc's own player
// (video-rtc.js) from go2rtc, as the Home Assistant and Frigate cards do. It
// is used for talk: go2rtc v1.9.14's stream.html cannot ask for the
// microphone.
//
//go:embed testdata/player.html
var playerHTML []byte

// screenshotPath is the committed screenshot README.md shows; regenerate it
// with UPDATE_SCREENSHOT=1 go test -run TestBrowser ./internal/e2e/.
const screenshotPath = "testdata/screenshots/webrtc.png"

const (
	browserUser   = "admin"
	browserPass   = "hik12345"
	browserToneHz = 1000.0
)

// chromiumPath finds Debian's Chromium. Missing: the test fails under CI
// (.ci/run installs it) and is skipped elsewhere.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "chromium not found in PATH: install Debian's chromium package (apt-get install chromium), as .ci/run does"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// toneWAV writes a 1 kHz sine (48 kHz mono 16-bit WAV) for Chromium's fake microphone.
func toneWAV(t *testing.T) string {
	t.Helper()
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatalf("ffmpeg (makes the microphone tone): %v", err)
	}
	path := filepath.Join(t.TempDir(), "tone-1khz.wav")
	out, err := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error", "-f", "lavfi",
		"-i", fmt.Sprintf("sine=frequency=%g:sample_rate=48000:duration=10", browserToneHz),
		"-ac", "1", "-c:a", "pcm_s16le", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg tone: %v\n%s", err, out)
	}
	return path
}

// browserFlags are the flags the test starts Chromium with (as root, in a
// machine with no network: background networking off).
func browserFlags(exe, userDir, tone string) []chromedp.ExecAllocatorOption {
	return []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(userDir),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("use-file-for-fake-audio-capture", tone),
		// ICE over loopback: go2rtc and Chromium are on 127.0.0.1.
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Flag("disable-features", "WebRtcHideLocalIpsWithMdns"),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.Flag("mute-audio", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.WindowSize(640, 360),
	}
}

// startBrowser starts Chromium; t.Cleanup ends it.
func startBrowser(t *testing.T, exe, tone string) context.Context {
	t.Helper()
	out := &browserLog{}
	opts := append(browserFlags(exe, t.TempDir(), tone), chromedp.CombinedOutput(out))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v\n%s", exe, err, out.String())
	}
	return ctx
}

// probeJS runs in every page before its scripts: it records when the first
// video frame came (ms since navigation start) and the MSE source buffer types.
const probeJS = `(() => {
  const st = window.__e2e = {firstFrame: 0, mse: []};
  const seen = new WeakSet();
  const mark = t => { if (!st.firstFrame) st.firstFrame = t; };
  setInterval(() => {
    for (const v of document.querySelectorAll('video')) {
      if (!seen.has(v) && v.requestVideoFrameCallback) {
        seen.add(v);
        v.requestVideoFrameCallback(now => mark(now));
      }
      if (v.getVideoPlaybackQuality().totalVideoFrames > 0) mark(performance.now());
    }
  }, 5);
  for (const MS of [window.MediaSource, window.ManagedMediaSource]) {
    if (!MS) continue;
    const add = MS.prototype.addSourceBuffer;
    MS.prototype.addSourceBuffer = function (type) { st.mse.push(type); return add.call(this, type); };
  }
})()`

// stateJS reads the player: the video element, go2rtc's player state and, for
// WebRTC, the RTP statistics of the peer connection.
const stateJS = `(async () => {
  const el = document.querySelector('video-stream, video-player');
  const v = document.querySelector('video');
  const r = {found: !!v, firstFrame: window.__e2e ? window.__e2e.firstFrame : 0,
    mse: window.__e2e ? window.__e2e.mse : [], rtp: []};
  if (!v) return r;
  const q = v.getVideoPlaybackQuality();
  Object.assign(r, {frames: q.totalVideoFrames, dropped: q.droppedVideoFrames,
    width: v.videoWidth, height: v.videoHeight, currentTime: v.currentTime, paused: v.paused,
    audioBytes: v.webkitAudioDecodedByteCount || 0, videoBytes: v.webkitVideoDecodedByteCount || 0,
    audioTracks: v.srcObject && v.srcObject.getAudioTracks ? v.srcObject.getAudioTracks().length : 0});
  const pc = el && el.pc;
  if (pc) {
    r.pc = pc.connectionState;
    const stats = await pc.getStats();
    const codecs = {};
    stats.forEach(s => { if (s.type === 'codec') codecs[s.id] = s.mimeType; });
    stats.forEach(s => {
      if (s.type !== 'inbound-rtp' && s.type !== 'outbound-rtp') return;
      r.rtp.push({type: s.type, kind: s.kind, codec: codecs[s.codecId] || '',
        packets: s.packetsReceived || s.packetsSent || 0, frames: s.framesDecoded || 0});
    });
  }
  return r;
})()`

type rtpStat struct {
	Type    string `json:"type"` // inbound-rtp, outbound-rtp
	Kind    string `json:"kind"`
	Codec   string `json:"codec"` // video/H264, audio/PCMU, ...
	Packets int    `json:"packets"`
	Frames  int    `json:"frames"`
}

type playerState struct {
	Found       bool      `json:"found"`
	FirstFrame  float64   `json:"firstFrame"` // ms since navigation start, 0 = none yet
	MSE         []string  `json:"mse"`        // SourceBuffer types
	Frames      int       `json:"frames"`     // decoded video frames
	Dropped     int       `json:"dropped"`
	Width       int       `json:"width"`
	Height      int       `json:"height"`
	CurrentTime float64   `json:"currentTime"`
	Paused      bool      `json:"paused"`
	AudioBytes  int       `json:"audioBytes"` // decoded audio bytes (MSE)
	VideoBytes  int       `json:"videoBytes"`
	AudioTracks int       `json:"audioTracks"` // of the WebRTC MediaStream
	PC          string    `json:"pc"`          // RTCPeerConnection.connectionState
	RTP         []rtpStat `json:"rtp"`
}

func (s playerState) rtp(typ, kind string) rtpStat {
	for _, r := range s.RTP {
		if r.Type == typ && r.Kind == kind {
			return r
		}
	}
	return rtpStat{}
}

// browserTab is one browser tab with a page open.
type browserTab struct {
	t       *testing.T
	ctx     context.Context
	cancel  context.CancelFunc
	console *browserLog
	done    chan struct{} // console reader ended
	opened  time.Time
}

func openBrowserTab(t *testing.T, browser context.Context, pageURL string) *browserTab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	tb := &browserTab{t: t, ctx: ctx, cancel: cancel, console: &browserLog{}, done: make(chan struct{})}
	t.Cleanup(tb.close)
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument,
		page.AddScriptToEvaluateOnNewDocumentParams{Source: probeJS}); err != nil {
		close(tb.done)
		t.Fatalf("add probe script: %v", err)
	}
	messages := chromedp.Console(ctx)
	go func() {
		defer close(tb.done)
		for m, err := range messages {
			if err != nil {
				return
			}
			fmt.Fprintf(tb.console, "%s\n", m)
		}
	}()
	tb.opened = time.Now()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(640, 360), chromedp.Navigate(pageURL)); err != nil {
		t.Fatalf("open %s: %v", pageURL, err)
	}
	return tb
}

// close closes the tab (as a user closing the page) and waits for the console reader.
func (tb *browserTab) close() {
	tb.cancel()
	<-tb.done
}

// stopPlayer disconnects go2rtc's player on the page (closes its peer connection and WebSocket).
func (tb *browserTab) stopPlayer() {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](
		`document.querySelector('video-stream, video-player').ondisconnect()`)); err != nil {
		tb.t.Fatalf("stop player: %v", err)
	}
}

func (tb *browserTab) state() (playerState, error) {
	ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[playerState](stateJS, chromedp.EvalAwaitPromise))
}

// waitFor polls the player state until ok or timeout.
func (tb *browserTab) waitFor(what string, timeout time.Duration, ok func(playerState) bool) playerState {
	tb.t.Helper()
	deadline := time.Now().Add(timeout)
	var last playerState
	var err error
	for {
		last, err = tb.state()
		if err == nil && ok(last) {
			return last
		}
		if time.Now().After(deadline) {
			tb.t.Fatalf("%s: not within %v; last state %+v (err %v)\nconsole:\n%s", what, timeout, last, err, tb.console)
		}
		time.Sleep(100 * time.Millisecond) // polling with a deadline
	}
}

// checkFramesRising samples the decoded frame count for d and checks it rises
// at a video frame rate; it returns the last state.
func (tb *browserTab) checkFramesRising(d time.Duration) playerState {
	tb.t.Helper()
	first := tb.waitFor("first decoded video frame", 20*time.Second, func(s playerState) bool { return s.Frames > 0 })
	start := time.Now()
	prev, last := first, first
	for time.Since(start) < d {
		time.Sleep(500 * time.Millisecond) // sampling interval
		s, err := tb.state()
		if err != nil {
			tb.t.Fatalf("player state: %v", err)
		}
		if s.Frames < prev.Frames {
			tb.t.Fatalf("decoded frames went back from %d to %d", prev.Frames, s.Frames)
		}
		prev, last = s, s
	}
	fps := float64(last.Frames-first.Frames) / time.Since(start).Seconds()
	tb.t.Logf("decoded frames %d -> %d in %v: %.1f fps (dropped %d), %dx%d, currentTime %.2f s",
		first.Frames, last.Frames, time.Since(start).Round(time.Millisecond), fps, last.Dropped,
		last.Width, last.Height, last.CurrentTime)
	if fps < 10 { // the simulator sends 25 fps
		tb.t.Errorf("decoded frame rate %.1f fps, want about 25\nconsole:\n%s", fps, tb.console)
	}
	if last.Paused {
		tb.t.Errorf("video is paused")
	}
	if last.Width != 640 || last.Height != 360 {
		tb.t.Errorf("video size %dx%d, want the simulator's 640x360", last.Width, last.Height)
	}
	return last
}

// browserConsumers is the number of consumers go2rtc has on a stream.
func browserConsumers(t *testing.T, g *e2e.Go2rtc, name string) int {
	t.Helper()
	s, ok := g.Streams(t)[name]
	if !ok {
		t.Fatalf("go2rtc has no stream %q", name)
	}
	return len(s.Consumers)
}

// waitBrowserConsumers waits until the stream has want consumers and returns how long that took.
func waitBrowserConsumers(t *testing.T, g *e2e.Go2rtc, name string, want int, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		n := browserConsumers(t, g, name)
		if n == want {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream %s: %d consumers after %v, want %d", name, n, timeout, want)
		}
		time.Sleep(50 * time.Millisecond) // polling with a deadline
	}
}

// browserProducerMedias returns the medias go2rtc lists for the running producers of a stream.
func browserProducerMedias(t *testing.T, g *e2e.Go2rtc, name string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	status, body, err := g.Get(ctx, "/api/streams?src="+url.QueryEscape(name))
	if err != nil || status != http.StatusOK {
		t.Fatalf("GET /api/streams?src=%s: %d %v %s", name, status, err, body)
	}
	var info struct {
		Producers []struct {
			Medias []string `json:"medias"`
		} `json:"producers"`
	}
	if err := json.Unmarshal(body, &info); err != nil {
		t.Fatalf("GET /api/streams?src=%s: %v: %s", name, err, body)
	}
	var medias []string
	for _, p := range info.Producers {
		medias = append(medias, p.Medias...)
	}
	return medias
}

func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts go2rtc and Chromium")
	}
	exe := chromiumPath(t)
	bin := e2e.Go2rtcBinary(t)
	http.DefaultClient.CloseIdleConnections()
	baseGoroutines := runtime.NumGoroutine()
	t.Cleanup(func() { // runs last: after Chromium, go2rtc and the simulator are stopped
		http.DefaultClient.CloseIdleConnections()
		waitGoroutines(t, baseGoroutines)
	})
	begin := time.Now()

	dev, err := sim.Start(sim.Config{Users: map[string]string{browserUser: browserPass}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := dev.Close(); err != nil {
			t.Errorf("sim close: %v", err)
		}
	})
	user := url.UserPassword(browserUser, browserPass).String()
	config := browserConfig(
		"hikvision://"+user+"@"+dev.HTTPAddr()+"/?channel=1&stream=main",
		"rtsp://"+user+"@"+dev.RTSPAddr()+"/Streaming/Channels/101")
	g := e2e.StartGo2rtc(t, bin, config)
	t.Logf("go2rtc %s, simulator ISAPI %s RTSP %s", g.APIAddr, dev.HTTPAddr(), dev.RTSPAddr())
	yamlPath := filepath.Join(browserArtifacts(t), "go2rtc.yaml")
	if err := os.WriteFile(yamlPath, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("go2rtc config (e2e.Start adds the listen addresses): %s", yamlPath)

	pages := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(playerHTML)
	}))
	t.Cleanup(pages.Close)

	browser := startBrowser(t, exe, toneWAV(t))
	streamPage := func(src, mode string) string {
		return g.URL("/stream.html?src=" + url.QueryEscape(src) + "&mode=" + mode)
	}

	t.Run("webrtc", func(t *testing.T) {
		tb := openBrowserTab(t, browser, streamPage("hik", "webrtc"))
		s := tb.checkFramesRising(4 * time.Second)
		if s.PC != "connected" {
			t.Errorf("RTCPeerConnection %q, want connected", s.PC)
		}
		video, audio := s.rtp("inbound-rtp", "video"), s.rtp("inbound-rtp", "audio")
		if video.Codec != "video/H264" || video.Frames == 0 {
			t.Errorf("inbound video %+v, want H264 with decoded frames", video)
		}
		if audio.Codec != "audio/PCMU" || audio.Packets == 0 || s.AudioTracks == 0 {
			t.Errorf("inbound audio %+v (%d audio tracks), want the camera's PCMU", audio, s.AudioTracks)
		}
		t.Logf("WebRTC: video %+v, audio %+v; first frame %.0f ms after navigation", video, audio, s.FirstFrame)
		browserScreenshot(t, tb)
		tb.close()
		gone := waitBrowserConsumers(t, g, "hik", 0, 15*time.Second)
		t.Logf("go2rtc dropped the WebRTC consumer %v after the page closed", gone.Round(time.Millisecond))
	})

	t.Run("mse", func(t *testing.T) {
		tb := openBrowserTab(t, browser, streamPage("hik", "mse"))
		first := tb.checkFramesRising(4 * time.Second)
		if len(first.MSE) == 0 || !strings.Contains(first.MSE[0], "avc1.") {
			t.Errorf("MSE source buffers %q, want H.264 (avc1)", first.MSE)
		}
		if len(first.MSE) > 0 && !strings.Contains(first.MSE[0], "flac") && !strings.Contains(first.MSE[0], "mp4a") &&
			!strings.Contains(first.MSE[0], "opus") {
			t.Errorf("MSE source buffer %q has no audio codec", first.MSE[0])
		}
		later := tb.waitFor("MSE audio decoding", 5*time.Second, func(s playerState) bool {
			return s.AudioBytes > first.AudioBytes
		})
		t.Logf("MSE: %q; decoded audio %d bytes, video %d bytes; first frame %.0f ms after navigation",
			first.MSE, later.AudioBytes, later.VideoBytes, first.FirstFrame)
		tb.close()
		waitBrowserConsumers(t, g, "hik", 0, 10*time.Second)
	})

	t.Run("talk", func(t *testing.T) {
		testBrowserTalk(t, g, dev, browser, pages.URL)
	})

	t.Run("first frame", func(t *testing.T) {
		const rounds = 11 // alternating, so both see the same machine load
		times := map[string][]float64{}
		isapiBefore, rtspBefore := browserISAPIRequests(dev), dev.Stats().RTSPSessions
		for i := 0; i < rounds; i++ {
			for _, src := range []string{"hik", "stock"} {
				tb := openBrowserTab(t, browser, streamPage(src, "webrtc"))
				s := tb.waitFor(src+": first frame", 20*time.Second, func(s playerState) bool { return s.FirstFrame > 0 })
				times[src] = append(times[src], s.FirstFrame)
				tb.stopPlayer() // as the player does when removed: go2rtc sees the peer connection close at once
				tb.close()
				waitBrowserConsumers(t, g, src, 0, 10*time.Second)
			}
		}
		hik, stock := browserMedian(times["hik"]), browserMedian(times["stock"])
		t.Logf("page load to first decoded frame, WebRTC, median (min) of %d: hikvision:// %.0f ms (%.0f) %v, "+
			"stock rtsp:// %.0f ms (%.0f) %v: median %+.1f%%", rounds, hik, slices.Min(times["hik"]), browserRoundMs(times["hik"]),
			stock, slices.Min(times["stock"]), browserRoundMs(times["stock"]), 100*(hik-stock)/stock)
		t.Logf("device round trips for the %d pages: %d ISAPI requests, %d RTSP sessions",
			2*rounds, browserISAPIRequests(dev)-isapiBefore, dev.Stats().RTSPSessions-rtspBefore)
	})

	t.Logf("browser test took %v (without the go2rtc build)", time.Since(begin).Round(time.Millisecond))
}

// browserConfig is the go2rtc.yaml of the test: e2e.Start adds the api/rtsp
// listen addresses and turns the shared WebRTC port off, so WebRTC uses
// ephemeral UDP ports, on loopback only, with no STUN.
func browserConfig(hik, stock string) string {
	return fmt.Sprintf(`api:
  origin: "*"   # the talk page is served from another origin, as HA's card is
webrtc:
  ice_servers: []
  filters:
    loopback: true
    interfaces: [lo]
    networks: [udp4]
streams:
  hik: %q
  stock: %q
`, hik, stock)
}

// browserArtifacts is where the test leaves its screenshot and go2rtc.yaml:
// $ARTIFACTS_DIR, or a fixed folder in the temp dir (overwritten each run).
func browserArtifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("ARTIFACTS_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "go2rtc-hikvision-browser-test")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browserScreenshot saves the page; with UPDATE_SCREENSHOT=1 also the committed
// README screenshot. It checks the picture shows the video, not a black page.
func browserScreenshot(t *testing.T, tb *browserTab) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	data, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if lit := browserLitFraction(img); lit < 0.2 {
		t.Errorf("screenshot: only %.0f%% of the pixels are not black: the video is not on the page", 100*lit)
	}
	out := filepath.Join(browserArtifacts(t), "webrtc.png")
	if err := os.WriteFile(out, data, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%dx%d)", out, img.Bounds().Dx(), img.Bounds().Dy())
	if os.Getenv("UPDATE_SCREENSHOT") == "1" {
		if err := os.MkdirAll(filepath.Dir(screenshotPath), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(screenshotPath, data, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("updated %s", screenshotPath)
	}
}

// browserLitFraction is the share of pixels brighter than near-black.
func browserLitFraction(img image.Image) float64 {
	b := img.Bounds()
	lit, all := 0, 0
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r+g+bl > 3*0x1800 {
				lit++
			}
			all++
		}
	}
	return float64(lit) / float64(all)
}

// testBrowserTalk: the page asks for the microphone (Chromium's fake one reading the
// 1 kHz tone); go2rtc sends it to the hikvision:// backchannel, which talks to
// the simulator over ISAPI in the device's codec (G.711 µ-law).
func testBrowserTalk(t *testing.T, g *e2e.Go2rtc, dev *sim.Device, browser context.Context, pagesURL string) {
	const client = "127.0.0.1"
	dev.ResetTalkAudio()
	before := dev.TalkClient(client)

	q := url.Values{"api": {g.URL("/")}, "src": {"hik"}, "mode": {"webrtc"}, "media": {"video,audio,microphone"}}
	// Registered before openBrowserTab's cleanup, so it runs after the tab closed, also on Skip/Fatal:
	// the next subtest must find the stream stopped.
	t.Cleanup(func() { waitBrowserConsumers(t, g, "hik", 0, 15*time.Second) })
	tb := openBrowserTab(t, browser, pagesURL+"/player.html?"+q.Encode())
	s := tb.waitFor("microphone sending", 20*time.Second, func(s playerState) bool {
		return s.PC == "connected" && s.rtp("outbound-rtp", "audio").Packets > 0
	})
	mic := s.rtp("outbound-rtp", "audio")
	medias := browserProducerMedias(t, g, "hik")
	t.Logf("browser microphone: %+v; go2rtc producer medias %q", mic, medias)
	if !slices.Contains(medias, "audio, sendonly, PCMU/8000") {
		t.Fatalf("go2rtc's hikvision:// producer medias %q: no PCMU backchannel (the simulator talks G.711ulaw)", medias)
	}
	if mic.Codec != "audio/PCMU" {
		t.Errorf("browser sends %q, want audio/PCMU (the device's G.711ulaw, no transcoding)", mic.Codec)
	}

	const want = 3 * 8000 // 3 s of G.711 at 8 kHz
	deadline := time.Now().Add(20 * time.Second)
	for len(dev.TalkAudio()) < want {
		if time.Now().After(deadline) {
			t.Fatalf("the simulator received %d bytes of talk audio in 20 s, want %d; talk %+v\nconsole:\n%s\ngo2rtc:\n%s",
				len(dev.TalkAudio()), want, dev.TalkClient(client), tb.console, g.Output())
		}
		time.Sleep(100 * time.Millisecond) // polling with a deadline
	}
	if info, open := dev.TalkSession(); !open || info.Client != client || !info.Streaming {
		t.Errorf("talk session %+v (open %v), want one of %s streaming audio", info, open, client)
	}
	audio := dev.TalkAudio()
	checkBrowserTone(t, audio)

	tb.close()
	pageClosed := time.Now()
	deadline = pageClosed.Add(15 * time.Second)
	for {
		if _, open := dev.TalkSession(); !open {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("talk session still open 15 s after the page closed: %+v", dev.TalkClient(client))
		}
		time.Sleep(50 * time.Millisecond) // polling with a deadline
	}
	closed := time.Now()
	t.Logf("the talk session ended %v after the page closed", closed.Sub(pageClosed).Round(time.Millisecond))
	after := dev.TalkClient(client)
	// Nothing opens again once the page is gone: watch for a while.
	for time.Since(closed) < 3*time.Second {
		if _, open := dev.TalkSession(); open {
			t.Fatalf("a talk session opened again after the page closed: %+v", dev.TalkClient(client))
		}
		time.Sleep(100 * time.Millisecond) // watching for an unwanted open
	}
	final := dev.TalkClient(client)
	t.Logf("talk counters before %+v, after close %+v", before, final)
	if n := final.Opens - before.Opens; n != 1 {
		t.Errorf("%d talk sessions opened for one page, want 1", n)
	}
	if final.Opens != after.Opens {
		t.Errorf("%d talk opens after the page closed, want 0", final.Opens-after.Opens)
	}
	if final.ClosedSessions-before.ClosedSessions != 1 {
		t.Errorf("the client closed %d sessions, want 1 (the device must not have to hang up)",
			final.ClosedSessions-before.ClosedSessions)
	}
	if final.Prompts != before.Prompts {
		t.Errorf("the device hung up %d times (\"call ended\" prompts)", final.Prompts-before.Prompts)
	}
}

// checkBrowserTone checks G.711 µ-law audio is the 1 kHz tone (browserToneProblems).
func checkBrowserTone(t *testing.T, ulaw []byte) {
	t.Helper()
	report, problems := browserToneProblems(ulaw)
	t.Logf("talk audio at the device: %d bytes G.711µ; %s", len(ulaw), report)
	for _, p := range problems {
		t.Error(p)
	}
}

// browserToneProblems analyses one second of G.711 µ-law audio (8 kHz), ending
// half a second before its end, and says how it is not the 1 kHz tone: most of
// its energy at 1 kHz (Goertzel, against other frequencies), a zero-crossing
// frequency of 1 kHz, and not silence.
func browserToneProblems(ulaw []byte) (report string, problems []string) {
	const fs = 8000
	if len(ulaw) < 2*fs {
		return "", []string{fmt.Sprintf("%d bytes of talk audio, want at least 2 s", len(ulaw))}
	}
	x := make([]float64, 0, fs)
	for _, b := range ulaw[len(ulaw)-fs-fs/2 : len(ulaw)-fs/2] {
		x = append(x, float64(e2e.MulawToLinear(b)))
	}
	var sum float64
	for _, v := range x {
		sum += v * v
	}
	rms := math.Sqrt(sum / float64(len(x)))
	tone := browserGoertzel(x, browserToneHz, fs)
	var others []string
	worst := 0.0
	for _, f := range []float64{300, 500, 700, 850, 1150, 1300, 1500, 2000, 2500, 3000, 3500} {
		p := browserGoertzel(x, f, fs)
		worst = max(worst, p)
		others = append(others, fmt.Sprintf("%g Hz %.1f dB", f, 10*math.Log10(p/tone)))
	}
	zc := browserZeroCrossHz(x, fs)
	// A Hann-windowed sine's Goertzel power is N/8 times its energy: share is
	// the part of all the energy that is the 1 kHz tone (1 for a pure tone).
	share := 0.0
	if sum > 0 {
		share = tone / (sum * float64(len(x)) / 8)
	}
	report = fmt.Sprintf("rms %.0f, 1 kHz share of the energy %.2f, zero-crossing frequency %.1f Hz; power vs 1 kHz: %s",
		rms, share, zc, strings.Join(others, ", "))
	if rms < 100 { // µ-law silence decodes to 0; the tone arrives at about 450 (Chromium's audio processing)
		problems = append(problems, fmt.Sprintf("talk audio rms %.0f: silence, want the tone", rms))
	}
	if share < 0.5 {
		problems = append(problems, fmt.Sprintf("only %.0f%% of the energy is at 1 kHz, want most of it", 100*share))
	}
	if ratio := 10 * math.Log10(tone/worst); !(ratio >= 20) {
		problems = append(problems, fmt.Sprintf("1 kHz is %.1f dB above the strongest other frequency, want >= 20 dB", ratio))
	}
	if math.Abs(zc-browserToneHz) > 20 {
		problems = append(problems, fmt.Sprintf("zero-crossing frequency %.1f Hz, want %g ± 20", zc, browserToneHz))
	}
	return report, problems
}

// browserGoertzel is the power of x at frequency f (sample rate fs), Hann-windowed.
func browserGoertzel(x []float64, f, fs float64) float64 {
	n := len(x)
	w := 2 * math.Pi * f / fs
	coeff := 2 * math.Cos(w)
	var s1, s2 float64
	for i, v := range x {
		win := 0.5 - 0.5*math.Cos(2*math.Pi*float64(i)/float64(n-1))
		s0 := v*win + coeff*s1 - s2
		s2, s1 = s1, s0
	}
	return s1*s1 + s2*s2 - coeff*s1*s2
}

// browserZeroCrossHz estimates the frequency of a tone from its sign changes.
func browserZeroCrossHz(x []float64, fs float64) float64 {
	n := 0
	for i := 1; i < len(x); i++ {
		if (x[i-1] < 0) != (x[i] < 0) {
			n++
		}
	}
	return float64(n) / 2 / (float64(len(x)) / fs)
}

// browserISAPIRequests counts the ISAPI requests the device got, all clients.
func browserISAPIRequests(d *sim.Device) int {
	n := 0
	for _, c := range d.Stats().Clients {
		for _, v := range c.Requests {
			n += v
		}
	}
	return n
}

func browserMedian(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func browserRoundMs(v []float64) []int {
	out := make([]int, len(v))
	for i, x := range v {
		out[i] = int(math.Round(x))
	}
	return out
}

type browserLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *browserLog) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *browserLog) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// The tone check accepts the 1 kHz tone (also quiet, as Chromium delivers it)
// and rejects silence, noise, other tones and a tone under a loud second one.
func TestBrowserToneCheck(t *testing.T) {
	const fs = 8000
	sine := func(f, amp float64) []float64 {
		x := make([]float64, 3*fs)
		for i := range x {
			x[i] = amp * math.Sin(2*math.Pi*f*float64(i)/fs)
		}
		return x
	}
	add := func(a, b []float64) []float64 {
		out := slices.Clone(a)
		for i := range out {
			out[i] += b[i]
		}
		return out
	}
	noise := make([]float64, 3*fs)
	seed := uint32(1)
	for i := range noise {
		seed = seed*1664525 + 1013904223
		noise[i] = float64(int32(seed)>>16) / 4 // uniform, rms about 2300
	}
	tests := []struct {
		name string
		x    []float64
		ok   bool
	}{
		{"1 kHz", sine(1000, 4000), true},
		{"1 kHz quiet", sine(1000, 600), true},
		{"1 kHz with a little noise", add(sine(1000, 4000), sine(3100, 100)), true},
		{"silence", make([]float64, 3*fs), false},
		{"noise", noise, false},
		{"1.2 kHz", sine(1200, 4000), false},
		{"440 Hz", sine(440, 4000), false},
		{"1 kHz under 2 kHz", add(sine(1000, 1000), sine(2000, 4000)), false},
	}
	for _, tt := range tests {
		ulaw := make([]byte, len(tt.x))
		for i, v := range tt.x {
			ulaw[i] = e2e.LinearToMulaw(int16(v))
		}
		report, problems := browserToneProblems(ulaw)
		if (len(problems) == 0) != tt.ok {
			t.Errorf("%s: problems %q, want ok=%v (%s)", tt.name, problems, tt.ok, report)
		}
	}
	if _, problems := browserToneProblems(make([]byte, 100)); len(problems) == 0 {
		t.Error("100 bytes of audio passed")
	}
	// The decoder inverts the encoder (to within µ-law's quantisation).
	for _, v := range []int16{0, 1, -1, 100, -100, 1000, -1000, 8000, -8000, 32000, -32000} {
		got := e2e.MulawToLinear(e2e.LinearToMulaw(v))
		if d := math.Abs(float64(got) - float64(v)); d > math.Max(8, math.Abs(float64(v))/16) {
			t.Errorf("µ-law %d -> %d", v, got)
		}
	}
}
