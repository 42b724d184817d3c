package hikvision

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/guard"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

// #timeout=N (shorter than 5 s) bounds the wait for the RTSP DESCRIBE answer too (go2rtc's
// pkg/rtsp waits at least 5 s for any answer).
func TestRTSPTimeoutFromURL(t *testing.T) {
	resetModule(t, Options{}, guard.Config{})
	const pass = "hik/12@45"
	dev := apiStartSim(t, sim.Config{Users: map[string]string{"admin": pass}})
	// an RTSP port that accepts and reads, and never answers
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c) }()
			accepted <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		for c := range accepted {
			c.Close()
		}
	})
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	src := strings.Replace(apiSimURL(dev, "admin", pass, "#backchannel=0#timeout=1"), "stream=main", "stream=main&rtsp_port="+port, 1)
	base := runtime.NumGoroutine()
	t0 := time.Now()
	_, err = mod(t).Dial(src)
	elapsed := time.Since(t0)
	if err == nil {
		t.Fatal("Dial of a silent RTSP port succeeded")
	}
	t.Logf("%v after %v", err, elapsed.Round(10*time.Millisecond))
	if elapsed > 2500*time.Millisecond {
		t.Fatalf("Dial took %v with #timeout=1", elapsed)
	}
	if !strings.Contains(err.Error(), "rtsp describe") || !strings.Contains(err.Error(), "no answer within 1s") {
		t.Errorf("error %q, want the DESCRIBE step and 'no answer within 1s'", err)
	}
	if k := guard.Classify(err); k != guard.KindTimeout || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("classified %s, want timeout", k)
	}
	waitGoroutines(t, base)
}
