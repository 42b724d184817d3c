package e2e_test

import (
	"context"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/e2e"
)

func binary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds go2rtc")
	}
	return e2e.Go2rtcBinary(t)
}

// waitGoroutines polls until the goroutine count is back to at most base.
func waitGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("goroutines: %d, want <= %d\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond) // polling with a deadline, not synchronisation
	}
}

func TestStartStopClean(t *testing.T) {
	bin := binary(t)
	http.DefaultClient.CloseIdleConnections()
	base := runtime.NumGoroutine()

	g, err := e2e.Start(context.Background(), e2e.Options{Bin: bin, Config: "streams:\n  x: exec:true\n"})
	if err != nil {
		t.Fatal(err)
	}
	streams, err := g.GetStreams(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := streams["x"]; !ok {
		t.Errorf("/api/streams = %+v, want stream x from the config", streams)
	}
	if err := g.Stop(); err != nil {
		t.Fatalf("Stop: %v\n%s", err, g.Output())
	}
	select {
	case <-g.Done():
	default:
		t.Fatal("Stop returned before go2rtc exited")
	}
	if !strings.Contains(g.Output(), "exit with signal: terminated") {
		t.Errorf("go2rtc did not get SIGTERM; output:\n%s", g.Output())
	}
	if err := g.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	http.DefaultClient.CloseIdleConnections()
	waitGoroutines(t, base)
}

// Stop reports a go2rtc that exited on its own (here with status 5).
func TestStopReportsEarlyExit(t *testing.T) {
	bin := binary(t)
	g, err := e2e.Start(context.Background(), e2e.Options{Bin: bin})
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.Post(g.URL("/api/exit?code=5"), "text/plain", nil)
	if err == nil {
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	select {
	case <-g.Done():
	case <-time.After(10 * time.Second):
		_ = g.Stop()
		t.Fatal("go2rtc did not exit after /api/exit")
	}
	err = g.Stop()
	if err == nil || !strings.Contains(err.Error(), "exit status 5") {
		t.Fatalf("Stop after go2rtc exited with 5: %v", err)
	}
}

// Start fails, naming the cause, when go2rtc cannot come up.
func TestStartFailsWhenGo2rtcExits(t *testing.T) {
	_, err := e2e.Start(context.Background(), e2e.Options{Bin: "/bin/false"})
	if err == nil || !strings.Contains(err.Error(), "exited before its API answered") {
		t.Fatalf("Start(/bin/false) = %v, want an early-exit error", err)
	}
	if _, err := e2e.Start(context.Background(), e2e.Options{}); err == nil {
		t.Fatal("Start without Bin: no error")
	}
}
