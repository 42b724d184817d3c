package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/e2e"
	"github.com/rs/zerolog"
)

func TestDemoNeeds(t *testing.T) {
	for _, c := range []struct {
		config      string
		camera, nvr bool
	}{
		{"streams:\n  a: hikvision://admin:x@127.0.0.1:18080/?channel=1\n", true, false},
		{"streams:\n  a: hikvision://admin:x@localhost:18090/?channel=2#backchannel=0\n", false, true},
		{"streams:\n  a: rtsp://127.0.0.1:18554/Streaming/Channels/101\n  b: rtsp://127.0.0.1:18564/x\n", true, true},
		{"streams:\n  # a: hikvision://admin:x@127.0.0.1:18080/\n  b: hikvision://a:b@cam/ # 127.0.0.1:18090\n", false, false},
		{"streams:\n  a: hikvision://admin:x@192.0.2.1:18080/\n", false, false},
		{"", false, false},
	} {
		camera, nvr := demoNeeds(c.config)
		if camera != c.camera || nvr != c.nvr {
			t.Errorf("demoNeeds(%q) = %v, %v; want %v, %v", c.config, camera, nvr, c.camera, c.nvr)
		}
	}
}

// The example config runs as is: it points at the simulator the runner starts.
func TestExampleConfigUsesDemoDevices(t *testing.T) {
	data, err := os.ReadFile("../../go2rtc.yaml.example")
	if err != nil {
		t.Fatal(err)
	}
	camera, nvr := demoNeeds(string(data))
	if !camera || !nvr {
		t.Errorf("go2rtc.yaml.example: camera=%v nvr=%v, want both demo devices", camera, nvr)
	}
	for _, want := range []string{"hikvision://admin:hik12345@127.0.0.1:18080/?channel=1&stream=main",
		"stream=sub", "127.0.0.1:18090", "#backchannel=0", "https=1", `listen: ":1984"`, `listen: ":8554"`,
		`listen: ":8555"`, "hikvision: debug"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("go2rtc.yaml.example lacks %q", want)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	log := zerolog.Nop()
	if code := Main([]string{"nosuchcommand"}, log); code != 2 {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
	if code := Main([]string{"build"}, log); code != 2 {
		t.Errorf("build without -o: exit %d, want 2", code)
	}
	if code := Main([]string{"run", "extra"}, log); code != 2 {
		t.Errorf("run with an argument: exit %d, want 2", code)
	}
}

func go2rtcBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds go2rtc")
	}
	return e2e.Go2rtcBinary(t)
}

func TestBuildSubcommandCopiesBinary(t *testing.T) {
	bin := go2rtcBinary(t)
	out := filepath.Join(t.TempDir(), "sub", "go2rtc")
	if code := Main([]string{"build", "-o", out}, zerolog.Nop()); code != 0 {
		t.Fatalf("build -o: exit %d", code)
	}
	want, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("build -o wrote %d bytes, differ from the cached binary (%d bytes)", len(got), len(want))
	}
	if info, err := os.Stat(out); err != nil || info.Mode()&0o111 == 0 {
		t.Errorf("build -o: %s not executable (%v)", out, err)
	}
}

// go2rtcConfig is an inline config on free ports with nothing else listening.
func go2rtcConfig(t *testing.T) (args []string, api string) {
	t.Helper()
	api, err := e2e.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	rtsp, err := e2e.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return []string{"-config", fmt.Sprintf(`{"api":{"listen":%q},"rtsp":{"listen":%q},"webrtc":{"listen":""},"srtp":{"listen":""}}`, api, rtsp)}, api
}

// waitAPI polls go2rtc's API until go2rtc has started every module or the
// deadline passes. It asks /api/stack, which go2rtc's debug module, one of
// the last to start, registers: the API itself answers from the first
// module on, long before go2rtc handles SIGTERM.
func waitAPI(t *testing.T, api string, exited <-chan int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		res, err := http.Get("http://" + api + "/api/stack")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case code := <-exited:
			t.Fatalf("go2rtc exited (%d) before its API answered", code)
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("go2rtc API on %s did not answer", api)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// The runner exits with go2rtc's own status.
func TestRunPassesExitStatus(t *testing.T) {
	bin := go2rtcBinary(t)
	args, api := go2rtcConfig(t)
	var out lockedBuffer
	exited := make(chan int, 1)
	go func() { exited <- runGo2rtc(bin, args, &out, &out, zerolog.Nop()) }()
	waitAPI(t, api, exited)

	res, err := http.Post("http://"+api+"/api/exit?code=3", "text/plain", nil)
	if err == nil {
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
	} // go2rtc may exit before it answers

	select {
	case code := <-exited:
		if code != 3 {
			t.Fatalf("runGo2rtc = %d, want go2rtc's 3; output:\n%s", code, out.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("go2rtc did not exit after /api/exit; output:\n%s", out.String())
	}
}

func TestReadConfigs(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "a.yaml")
	if err := os.WriteFile(file, []byte("streams:\n  a: hikvision://u:p@127.0.0.1:18080/\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	texts, err := readConfigs([]string{file, `{"log":{"level":"debug"}}`, "log.level=trace"})
	if err != nil {
		t.Fatal(err)
	}
	if len(texts) != 3 || !strings.Contains(texts[0], "127.0.0.1:18080") || texts[1] != `{"log":{"level":"debug"}}` || texts[2] != "log.level=trace" {
		t.Errorf("readConfigs = %q", texts)
	}
	if _, err := readConfigs([]string{filepath.Join(dir, "missing.yaml")}); err == nil {
		t.Error("readConfigs of a missing file: no error")
	}
}

func TestAPIURL(t *testing.T) {
	for _, c := range []struct {
		texts []string
		want  string
	}{
		{nil, "http://127.0.0.1:1984/"},
		{[]string{"api:\n  listen: \":1985\"\n"}, "http://127.0.0.1:1985/"},
		{[]string{"api:\n  listen: 192.0.2.7:2000\n", `{"api":{"listen":"127.0.0.2:3000"}}`}, "http://127.0.0.2:3000/"},
		{[]string{"api:\n  listen: \"\"\n"}, ""},
		{[]string{"streams: {}\n"}, "http://127.0.0.1:1984/"},
	} {
		if got := apiURL(c.texts); got != c.want {
			t.Errorf("apiURL(%q) = %q, want %q", c.texts, got, c.want)
		}
	}
}
