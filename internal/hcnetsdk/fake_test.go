//go:build hcnetsdk && linux && (amd64 || arm64)

package hcnetsdk

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/ebitengine/purego"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/hcnetsdk/hcfake"
)

// The fake library and the SDK are process-global: tests in this package
// run one after another and reset the fake between them.

var (
	fakePath string // the built libhcnetsdk.so
	fakeDir  string

	fakeConfig           func(kv string) int32
	fakeFault            func(name string) int32
	fakeCount            func(name string) int64
	fakeLayout           func(name string) int64
	fakeStorm            func(threads, perThread, bytes int32) int64
	fakeLateCallbacks    func(n int32) int64
	fakeTalkBytes        func(out *byte, cap int64) int64
	fakeErrorOnNewThread func() uint32
)

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	dir, err := os.MkdirTemp("", "hcnetsdk-fake-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	fakeDir = dir
	if fakePath, err = hcfake.Build(dir); err != nil {
		return 0, err
	}
	h, err := purego.Dlopen(fakePath, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		return 0, err
	}
	purego.RegisterLibFunc(&fakeConfig, h, "fake_config")
	purego.RegisterLibFunc(&fakeFault, h, "fake_fault")
	purego.RegisterLibFunc(&fakeCount, h, "fake_count")
	purego.RegisterLibFunc(&fakeLayout, h, "fake_layout")
	purego.RegisterLibFunc(&fakeStorm, h, "fake_storm")
	purego.RegisterLibFunc(&fakeLateCallbacks, h, "fake_late_callbacks")
	purego.RegisterLibFunc(&fakeTalkBytes, h, "fake_talk_bytes")
	purego.RegisterLibFunc(&fakeErrorOnNewThread, h, "fake_error_on_new_thread")
	return m.Run(), nil
}

// setup resets the fake, applies kv and opens the SDK; the SDK is closed
// and every handle checked released when the test ends.
func setup(t *testing.T, kv string) *SDK {
	t.Helper()
	if fakeFault("reset") != 0 {
		t.Fatal("fake reset failed")
	}
	if kv != "" && fakeConfig(kv) != 0 {
		t.Fatalf("fake_config(%q) rejected a key", kv)
	}
	s, err := Open(Config{Path: fakePath})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		assertNoHandles(t)
	})
	return s
}

func assertNoHandles(t *testing.T) {
	t.Helper()
	for _, n := range []string{"logins", "plays", "talks", "cleanup_with_open"} {
		if v := fakeCount(n); v != 0 {
			t.Errorf("fake %s = %d after Close, want 0", n, v)
		}
	}
}

func login(t *testing.T, s *SDK) *Session {
	t.Helper()
	ss, err := s.Login(context.Background(), LoginParams{Address: "127.0.0.1", Port: 8000, User: "admin", Password: "12345"})
	if err != nil {
		t.Fatalf("Login: %v", err)
	}
	return ss
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// psFile writes testdata/media/h264_main.h264 as MPEG-2 PS with ffmpeg (an
// independent writer, not this project's demuxer's twin).
func psFile(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed")
	}
	_, file, _, _ := runtime.Caller(0)
	src := filepath.Join(filepath.Dir(file), "..", "..", "testdata", "media", "h264_main.h264")
	out := filepath.Join(t.TempDir(), "main.ps")
	cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-r", "25", "-i", src,
		"-c", "copy", "-f", "vob", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	return out
}

func goroutinesBackTo(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			n := runtime.Stack(buf, true)
			t.Fatalf("goroutines: %d, baseline %d\n%s", runtime.NumGoroutine(), base, buf[:n])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
