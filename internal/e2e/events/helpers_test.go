package events_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// sseMsg is one Server-Sent Event of /api/hikvision/events.
type sseMsg struct {
	Device      string    `json:"device"`
	Channel     int       `json:"channel"`
	Stream      string    `json:"stream"`
	Streams     []string  `json:"streams"`
	Type        string    `json:"type"`
	Active      bool      `json:"active"`
	Time        time.Time `json:"time"`
	Raw         string    `json:"raw"`
	PictureSize int       `json:"picture_size"`
	event       string
}

// sse reads /api/hikvision/events.
type sse struct {
	t    testing.TB
	msgs chan sseMsg
}

func openSSE(t testing.TB, url string) *sse {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(res.Body)
		cancel()
		t.Fatalf("GET %s: %d %s: %s", url, res.StatusCode, res.Header.Get("Content-Type"), b)
	}
	s := &sse{t: t, msgs: make(chan sseMsg, 1000)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(res.Body)
		event := ""
		for sc.Scan() {
			line := sc.Text()
			if e, ok := strings.CutPrefix(line, "event: "); ok {
				event = e
			}
			if d, ok := strings.CutPrefix(line, "data: "); ok {
				var m sseMsg
				if err := json.Unmarshal([]byte(d), &m); err != nil {
					t.Errorf("SSE data %q: %v", d, err)
					continue
				}
				m.event = event
				s.msgs <- m
			}
		}
	}()
	t.Cleanup(func() { cancel(); res.Body.Close(); <-done })
	return s
}

// waitFor returns the first message that matches, failing after timeout.
func (s *sse) waitFor(what string, timeout time.Duration, pred func(sseMsg) bool) sseMsg {
	s.t.Helper()
	deadline := time.After(timeout)
	var seen []sseMsg
	for {
		select {
		case m := <-s.msgs:
			if pred(m) {
				return m
			}
			seen = append(seen, m)
		case <-deadline:
			s.t.Fatalf("SSE: no %s within %s; saw %+v", what, timeout, seen)
		}
	}
}

func getJSON(t testing.TB, url string, v any) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, res.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v: %s", url, err, b)
	}
}

func waitUntil(t testing.TB, what string, timeout time.Duration, pred func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !pred() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond) // a poll with a deadline
	}
}
