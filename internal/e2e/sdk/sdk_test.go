// Package sdk runs the patched go2rtc, built with the device network SDK
// loader (build tag hcnetsdk), against the project's fake SDK library
// (testdata/hcnetsdk-fake, compiled here with the system C compiler) with
// transport=sdk sources, and reads them with ffprobe.
package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/build"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/e2e"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/hcnetsdk/hcfake"
)

// env is what every test here needs: go2rtc built with the SDK loader, the
// fake library, and the test media as MPEG-PS.
type env struct {
	bin, lib, dir string
}

func setup(t *testing.T) *env {
	t.Helper()
	if runtime.GOOS != "linux" || (runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64") {
		t.Skip("the device network SDK exists for linux/amd64 and linux/arm64 only")
	}
	for _, tool := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), e2e.BuildTimeout)
	defer cancel()
	bin, err := build.Build(ctx, build.Options{Tags: []string{build.SDKTag}})
	if err != nil {
		t.Fatalf("build go2rtc -tags %s: %v", build.SDKTag, err)
	}
	dir := t.TempDir()
	lib, err := hcfake.Build(dir)
	if err != nil {
		t.Fatal(err)
	}
	return &env{bin: bin, lib: lib, dir: dir}
}

// psOf writes testdata/media/<name> as MPEG-2 PS with ffmpeg.
func (e *env) psOf(t *testing.T, name string) string {
	t.Helper()
	src := filepath.Join("..", "..", "..", "testdata", "media", name)
	out := filepath.Join(e.dir, name+".ps")
	b, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-r", "25", "-i", src,
		"-c", "copy", "-f", "vob", out).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg %s: %v\n%s", name, err, b)
	}
	return out
}

// port is the fake device's service port: the fake answers logins on it and
// this listener stands for the port itself (go2rtc's supervisor probes it
// with a TCP connect while the device is away).
type port struct {
	n  int
	mu sync.Mutex
	ln net.Listener
}

func (p *port) up(t *testing.T) {
	t.Helper()
	ln, err := hcfake.HoldPort(p.n)
	if err != nil {
		t.Fatal(err)
	}
	p.n = ln.Addr().(*net.TCPAddr).Port
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	t.Cleanup(p.down)
}

func (p *port) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
}

// device is one go2rtc process with transport=sdk streams on the fake.
type device struct {
	g       *e2e.Go2rtc
	control string // the fake's control file (faults for the other process)
	port    *port
}

func (e *env) start(t *testing.T, fake string, streams map[string]string) *device {
	t.Helper()
	p := &port{}
	p.up(t)
	d := &device{port: p, control: filepath.Join(t.TempDir(), "control")}
	if err := os.WriteFile(d.control, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "log:\n  level: info\n  hikvision: debug\nhikvision:\n  reconnect:\n    port_probe_interval: 200ms\n  sdk:\n    lib: %s\nstreams:\n", e.lib)
	for name, query := range streams {
		fmt.Fprintf(&cfg, "  %s: %s\n", name, query+"&sdk_port="+strconv.Itoa(p.n))
	}
	g, err := e2e.Start(context.Background(), e2e.Options{Bin: e.bin, Config: cfg.String(),
		Env: []string{"HCNETSDK_FAKE=port=" + strconv.Itoa(p.n) + ";control=" + d.control + ";" + fake}})
	if err != nil {
		t.Fatal(err)
	}
	d.g = g
	t.Cleanup(func() {
		if err := g.Stop(); err != nil {
			t.Errorf("%v\ngo2rtc output:\n%s", err, g.Output())
		}
		if out := g.Output(); strings.Contains(out, "12345") || strings.Contains(out, "badpass1") {
			t.Errorf("go2rtc printed a password:\n%s", out)
		}
	})
	return d
}

func (d *device) fault(t *testing.T, name string) {
	t.Helper()
	f, err := os.OpenFile(d.control, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(name + "\n"); err != nil {
		t.Fatal(err)
	}
}

func sdkURL(pass string) string {
	return "hikvision://" + url.UserPassword("admin", pass).String() + "@127.0.0.1/?transport=sdk"
}

// probe runs ffprobe on the go2rtc stream, decoding 3 s of it, and returns
// its streams' codec names; a stream of which no frame decoded fails.
func (d *device) probe(t *testing.T, stream string) ([]string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-rtsp_transport", "tcp",
		"-count_frames", "-read_intervals", "%+3",
		"-show_entries", "stream=codec_name,nb_read_frames", "-of", "json",
		"rtsp://"+d.g.RTSPAddr+"/"+stream).Output()
	if err != nil {
		return nil, fmt.Errorf("ffprobe %s: %w", stream, err)
	}
	var doc struct {
		Streams []struct {
			Codec  string `json:"codec_name"`
			Frames string `json:"nb_read_frames"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return nil, err
	}
	var names []string
	for _, s := range doc.Streams {
		if n, _ := strconv.Atoi(s.Frames); n == 0 {
			return nil, fmt.Errorf("ffprobe %s: no %s frame decoded in 3 s", stream, s.Codec)
		}
		names = append(names, s.Codec)
	}
	sort.Strings(names) // go2rtc's RTSP server may list audio first
	return names, nil
}

type health struct {
	Devices []struct {
		State        string `json:"state"`
		FailedLogins int    `json:"failed_logins"`
		LockedUntil  any    `json:"locked_until"`
		Sources      []string
	} `json:"devices"`
	Sources []struct {
		Stream     string `json:"stream"`
		State      string `json:"state"`
		Reconnects int    `json:"reconnects"`
	} `json:"sources"`
}

func (d *device) health(t *testing.T) (health, string) {
	t.Helper()
	status, body, err := d.g.Get(context.Background(), "/api/hikvision")
	if err != nil || status != 200 {
		t.Fatalf("/api/hikvision: %d %v %s", status, err, body)
	}
	var h health
	if err := json.Unmarshal(body, &h); err != nil {
		t.Fatalf("/api/hikvision: %v\n%s", err, body)
	}
	return h, string(body)
}

// writePS writes the fake's PS file with the project's PS writer (hcfake:
// H.264/H.265 with G.711/AAC and a program stream map).
func (e *env) writePS(t *testing.T, video string, h265 bool, audio string, codec hcfake.AudioCodec) string {
	t.Helper()
	media := filepath.Join("..", "..", "..", "testdata", "media")
	o := hcfake.PSOptions{Video: filepath.Join(media, video), H265: h265, AudioCodec: codec}
	if audio != "" {
		o.Audio = filepath.Join(media, audio)
	}
	out := filepath.Join(e.dir, video+"+"+audio+".ps")
	if err := hcfake.WritePS(out, o); err != nil {
		t.Fatal(err)
	}
	return out
}

// Real-play through the SDK of every codec the module passes on, read by
// ffprobe through go2rtc's RTSP server: H.264 as ffmpeg writes PS (an
// independent writer, no program stream map), and H.264/H.265 with G.711
// µ-law, A-law and AAC as the device lays it out (hcfake.WritePS).
func TestSDKCodecs(t *testing.T) {
	e := setup(t)
	for _, c := range []struct {
		name, ps, header, want string
	}{
		{"ffmpeg-h264", e.psOf(t, "h264_main.h264"), "video_format=0x0100", "h264"},
		{"h264-pcmu", e.writePS(t, "h264_main.h264", false, "tone_1khz_8k.ulaw", hcfake.G711U),
			"video_format=0x0100;audio_format=0x7110;audio_rate=8000", "h264,pcm_mulaw"},
		{"h265-pcma", e.writePS(t, "h265_main.h265", true, "tone_1khz_8k.alaw", hcfake.G711A),
			"video_format=5;audio_format=0x7111;audio_rate=8000", "hevc,pcm_alaw"},
		{"h264-aac", e.writePS(t, "h264_main.h264", false, "tone_1khz_16k.aac", hcfake.AAC),
			"video_format=0x0100;audio_format=0x2001;audio_rate=16000", "aac,h264"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := e.start(t, "media="+c.ps+";"+c.header, map[string]string{"cam": sdkURL("12345")})
			got, err := d.probe(t, "cam")
			if err != nil {
				t.Fatalf("%v\n%s", err, d.g.Output())
			}
			if strings.Join(got, ",") != c.want {
				t.Fatalf("ffprobe streams %v, want %s\n%s", got, c.want, d.g.Output())
			}
		})
	}
}

// The device reboots under a reading consumer (5 s away): go2rtc's source
// comes back by itself, and ffprobe reads the stream again.
func TestSDKRebootRecovery(t *testing.T) {
	e := setup(t)
	d := e.start(t, "media="+e.psOf(t, "h264_main.h264")+";video_format=0x0100",
		map[string]string{"cam": sdkURL("12345")})
	// a consumer that keeps the source running through the outage
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reader := exec.CommandContext(ctx, "ffmpeg", "-v", "error", "-rtsp_transport", "tcp",
		"-i", "rtsp://"+d.g.RTSPAddr+"/cam", "-c", "copy", "-f", "null", "-")
	if err := reader.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = reader.Wait() }()
	waitSource(t, d, "streaming", 0, 30*time.Second)

	d.port.down()
	d.fault(t, "reboot")
	waitSource(t, d, "reconnecting", 0, 10*time.Second)
	time.Sleep(5 * time.Second) // the outage
	d.port.up(t)
	d.fault(t, "back")
	waitSource(t, d, "streaming", 1, 30*time.Second)
	if got, err := d.probe(t, "cam"); err != nil || strings.Join(got, ",") != "h264" {
		t.Fatalf("after the reboot: %v %v", got, err)
	}
}

func waitSource(t *testing.T, d *device, state string, reconnects int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		h, body := d.health(t)
		for _, s := range h.Sources {
			if s.Stream == "cam" && s.State == state && s.Reconnects >= reconnects {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("source cam not %s (reconnects >= %d) within %s:\n%s\n%s", state, reconnects, within, body, d.g.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A stream with a wrong password is asked for again and again for 20 s: the
// fake device (which locks after 5 failed logins, counted for the device,
// not per user) sees only the guard's budget and never locks. The device's
// own count is read at the end through another user's login (a guard of its
// own): the device answers it "wrong password, 2 tries left" (5 - 2 - 1),
// not "locked".
func TestSDKWrongPasswordNeverLocks(t *testing.T) {
	e := setup(t)
	other := "hikvision://" + url.UserPassword("other", "badpass1").String() + "@127.0.0.1/?transport=sdk"
	d := e.start(t, "lock_after=5;media="+e.psOf(t, "h264_main.h264")+";video_format=0x0100",
		map[string]string{"bad": sdkURL("badpass1"), "other": other})
	deadline := time.Now().Add(20 * time.Second)
	tries := 0
	for time.Now().Before(deadline) {
		if _, err := d.probe(t, "bad"); err == nil {
			t.Fatal("the wrong password played")
		}
		tries++
		time.Sleep(500 * time.Millisecond)
	}
	h, body := d.health(t)
	for _, dev := range h.Devices {
		if dev.FailedLogins > 2 || dev.State == "locked" || dev.LockedUntil != nil {
			t.Errorf("device health after %d tries: %s", tries, body)
		}
	}
	if _, err := d.probe(t, "other"); err == nil {
		t.Fatal("user other played")
	}
	out := d.g.Output()
	if !strings.Contains(out, "2 tries left before lock") || strings.Contains(out, "user locked") {
		t.Fatalf("after %d wrong-password requests the device did not answer 2 tries left:\n%s", tries, out)
	}
	if n := strings.Count(out, "sdk login on"); n != 3 {
		t.Errorf("%d SDK login failures in the log, want 3 (2 bad, 1 other):\n%s", n, out)
	}
}

// Talk through go2rtc: a 3 s 440 Hz tone played into the stream
// (POST /api/streams?dst=...) reaches the fake device in its talk codec
// (µ-law) and decodes back to the tone; after DELETE no more audio comes.
func TestSDKTalkTone(t *testing.T) {
	e := setup(t)
	record := filepath.Join(t.TempDir(), "talk.ulaw")
	d := e.start(t, "talk_encoding=1;talk_record="+record+";media="+e.psOf(t, "h264_main.h264")+";video_format=0x0100",
		map[string]string{"cam": sdkURL("12345")})
	tone := filepath.Join(t.TempDir(), "tone.wav")
	if b, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
		"sine=frequency=440:duration=3", "-ar", "8000", "-ac", "1", tone).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg tone: %v\n%s", err, b)
	}
	api(t, d, http.MethodPost, "/api/streams?dst=cam&src="+url.QueryEscape("ffmpeg:"+tone+"#audio=pcmu#input=file"))
	const want = 3 * 8000
	recorded := func() []byte { b, _ := os.ReadFile(record); return b }
	deadline := time.Now().Add(30 * time.Second)
	for len(recorded()) < want {
		if time.Now().After(deadline) {
			t.Fatalf("the device heard %d bytes of %d\n%s", len(recorded()), want, d.g.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	audio := recorded()
	if hz := e2e.MulawHz(audio[:want]); math.Abs(hz-440) > 440*0.03 {
		t.Errorf("the device's audio is %.0f Hz, want 440", hz)
	}
	api(t, d, http.MethodDelete, "/api/streams?src=cam")
	at := len(recorded())
	<-time.After(2 * time.Second) // a window in which no more audio may come
	if extra := len(recorded()) - at; extra > 2048 {
		t.Errorf("%d bytes of talk after DELETE", extra)
	}
}

func api(t *testing.T, d *device, method, path string) {
	t.Helper()
	req, err := http.NewRequest(method, d.g.URL(path), nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %s %s", method, path, res.Status, body)
	}
}

// The default (static) build asked for transport=sdk: the stream fails at
// once with one line saying how to build with the SDK and what to install;
// go2rtc does not keep redialling it.
func TestSDKNotBuiltIn(t *testing.T) {
	setup(t)
	bin := e2e.Go2rtcBinary(t) // built without the hcnetsdk tag
	dev := &port{}
	dev.up(t)
	g := e2e.StartGo2rtc(t, bin, "log:\n  level: info\nstreams:\n  cam: "+sdkURL("12345")+"&sdk_port="+strconv.Itoa(dev.n)+"\n")
	d := &device{g: g, port: dev}
	for i := 0; i < 3; i++ {
		if _, err := d.probe(t, "cam"); err == nil {
			t.Fatal("a transport=sdk stream played in a build without the SDK loader")
		}
	}
	var lines []string
	for _, l := range strings.Split(g.Output(), "\n") {
		if strings.Contains(l, "transport=sdk") {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		t.Fatalf("no transport=sdk error in go2rtc's log:\n%s", g.Output())
	}
	for _, l := range lines {
		for _, want := range []string{"built without device network SDK support", "go run ./cmd/go2rtc-hikvision build -sdk",
			"from Hikvision under its licence", "libhcnetsdk.so"} {
			if !strings.Contains(l, want) {
				t.Errorf("log line lacks %q:\n%s", want, l)
			}
		}
	}
	if len(lines) > 3 {
		t.Errorf("%d error lines for 3 requests (redialled?):\n%s", len(lines), strings.Join(lines, "\n"))
	}
}
