//go:build unix

package main

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// SIGTERM sent to the runner reaches go2rtc, which exits cleanly.
func TestRunForwardsSIGTERM(t *testing.T) {
	bin := go2rtcBinary(t)
	args, api := go2rtcConfig(t)
	var out lockedBuffer
	exited := make(chan int, 1)
	go func() { exited <- runGo2rtc(bin, args, &out, &out, zerolog.Nop()) }()
	// runGo2rtc has registered for SIGTERM before it started go2rtc, so once
	// the API answers this process will not die of the signal; go2rtc
	// handles it once all its modules have started (waitAPI waits for that).
	waitAPI(t, api, exited)

	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-exited:
		if code != 0 {
			t.Fatalf("runGo2rtc = %d after SIGTERM, want 0; output:\n%s", code, out.String())
		}
		if !strings.Contains(out.String(), "exit with signal: terminated") {
			t.Errorf("go2rtc did not report the forwarded SIGTERM; output:\n%s", out.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("go2rtc did not exit after SIGTERM; output:\n%s", out.String())
	}
}
