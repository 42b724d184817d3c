package main

import (
	"bytes"
	"net/http"
	"os"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRunServesAndStops(t *testing.T) {
	var out syncBuffer
	stop := make(chan os.Signal, 1)
	done := make(chan error, 1)
	go func() {
		done <- run([]string{"-http", "127.0.0.1:0", "-rtsp", "127.0.0.1:0", "-control", "127.0.0.1:0",
			"-nvr-http", "127.0.0.1:0", "-password", "s3cret-pw"}, &out, stop)
	}()
	re := regexp.MustCompile(`ISAPI   http://(127\.0\.0\.1:\d+)/ISAPI/System/deviceInfo`)
	deadline := time.Now().Add(10 * time.Second)
	var m [][]string
	for m = re.FindAllStringSubmatch(out.String(), -1); len(m) < 2; m = re.FindAllStringSubmatch(out.String(), -1) {
		select {
		case err := <-done:
			t.Fatalf("run returned early: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no ISAPI addresses printed:\n%s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, addr := range []string{m[0][1], m[1][1]} {
		res, err := http.Get("http://" + addr + "/ISAPI/System/deviceInfo")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 401 {
			t.Fatalf("%s: status %d, want 401", addr, res.StatusCode)
		}
	}
	if bytes.Contains([]byte(out.String()), []byte("s3cret-pw")) {
		t.Fatalf("password printed:\n%s", out.String())
	}
	if !regexp.MustCompile(`(?m)^nvr `).MatchString(out.String()) || !regexp.MustCompile(`control http://127\.0\.0\.1:\d+`).MatchString(out.String()) {
		t.Fatalf("output misses the NVR or the control API:\n%s", out.String())
	}
	stop <- syscall.SIGTERM
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not stop")
	}
	http.DefaultClient.CloseIdleConnections()
	if res, err := http.Get("http://" + m[0][1] + "/ISAPI/System/deviceInfo"); err == nil {
		res.Body.Close()
		t.Fatal("device still serving after stop")
	}
}

func TestRunBadFlags(t *testing.T) {
	var out syncBuffer
	if err := run([]string{"-personality", "toaster", "-http", "127.0.0.1:0", "-rtsp", "127.0.0.1:0"}, &out, nil); err == nil {
		t.Fatal("unknown personality: no error")
	}
	if err := run([]string{"-http", ""}, &out, nil); err == nil {
		t.Fatal("nothing to run: no error")
	}
}

func TestRunKbps(t *testing.T) {
	var out syncBuffer
	stop := make(chan os.Signal, 1)
	done := make(chan error, 1)
	go func() {
		done <- run([]string{"-http", "127.0.0.1:0", "-rtsp", "127.0.0.1:0", "-nvr-http", "127.0.0.1:0", "-kbps", "2000"}, &out, stop)
	}()
	// camera: 1 channel, NVR: 4 channels, each main stream at 2000 kbit/s
	re := regexp.MustCompile(`(?m)^  RTSP .* 2000 kbit/s \+ `)
	deadline := time.Now().Add(10 * time.Second)
	for len(re.FindAllString(out.String(), -1)) < 5 {
		select {
		case err := <-done:
			t.Fatalf("run returned early: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("want 5 RTSP lines at 2000 kbit/s:\n%s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop <- syscall.SIGTERM
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if err := run([]string{"-http", "127.0.0.1:0", "-rtsp", "127.0.0.1:0", "-kbps", "-1"}, &out, nil); err == nil {
		t.Fatal("-kbps -1: no error")
	}
}

func TestRunPreset(t *testing.T) {
	var out syncBuffer
	stop := make(chan os.Signal, 1)
	done := make(chan error, 1)
	go func() {
		done <- run([]string{"-http", "127.0.0.1:0", "-rtsp", "127.0.0.1:0", "-preset", "analog-dvr", "-personality", "camera"}, &out, stop)
	}()
	// the preset wins over -personality: a DVR with 4 analog channels
	re := regexp.MustCompile(`(?m)^dvr Embedded Net DVR \(iDS-7204HUHI-M1/E, firmware V4\.75\.011\)$`)
	rtsp := regexp.MustCompile(`(?m)^  RTSP `)
	deadline := time.Now().Add(10 * time.Second)
	for !re.MatchString(out.String()) || len(rtsp.FindAllString(out.String(), -1)) < 4 {
		select {
		case err := <-done:
			t.Fatalf("run returned early: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("want the analog DVR and 4 RTSP lines:\n%s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop <- syscall.SIGTERM
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if err := run([]string{"-http", "127.0.0.1:0", "-rtsp", "127.0.0.1:0", "-preset", "toaster"}, &out, nil); err == nil {
		t.Fatal("unknown -preset: no error")
	}
}
