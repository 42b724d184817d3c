package events_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/events"
)

func TestServeSSE(t *testing.T) {
	hub := events.NewHub()
	defer hub.Close()
	returned := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f := events.Filter{}
		if d := r.URL.Query().Get("device"); d != "" {
			f.Devices = []string{d}
		}
		returned <- events.ServeSSE(w, r, hub, events.SSEOptions{
			Filter:    f,
			KeepAlive: 50 * time.Millisecond,
			Initial:   []events.Event{{Device: "a:80", Channel: 1, Type: "motion", Active: true}, {Device: "b:80", Channel: 1, Type: "motion"}},
		})
	}))
	defer srv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/hikvision/events?device=a:80", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	waitFor(t, "subscribed", 5*time.Second, func() bool { return hub.Subscribers() == 1 })
	hub.Publish(events.Event{Device: "b:80", Channel: 2, Type: "ring", Active: true}) // filtered out
	hub.Publish(events.Event{Device: "a:80", Channel: 3, Type: "linedetection", Active: true, Picture: []byte{0xFF, 0xD8, 1, 0xFF, 0xD9}, Raw: "linedetection"})

	rd := bufio.NewReader(resp.Body)
	var datas []string
	keepAlives := 0
	deadline := time.Now().Add(10 * time.Second)
	for (len(datas) < 2 || keepAlives < 2) && time.Now().Before(deadline) {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.HasPrefix(line, "data: "):
			datas = append(datas, strings.TrimSpace(strings.TrimPrefix(line, "data: ")))
		case line == ": keep-alive\n":
			keepAlives++
		}
	}
	if len(datas) != 2 {
		t.Fatalf("messages %v", datas)
	}
	var first, second struct {
		Device      string `json:"device"`
		Channel     int    `json:"channel"`
		Type        string `json:"type"`
		Active      bool   `json:"active"`
		PictureSize int    `json:"picture_size"`
		Picture     []byte `json:"picture"`
	}
	if err := json.Unmarshal([]byte(datas[0]), &first); err != nil || first.Device != "a:80" || first.Type != "motion" || !first.Active {
		t.Errorf("initial message %s (%v)", datas[0], err)
	}
	if err := json.Unmarshal([]byte(datas[1]), &second); err != nil || second.Channel != 3 || second.Type != "linedetection" || second.PictureSize != 5 || second.Picture != nil {
		t.Errorf("live message %s (%v)", datas[1], err)
	}
	cancel() // the client goes away
	select {
	case err := <-returned:
		if err != nil {
			t.Errorf("ServeSSE: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ServeSSE did not return after the client left")
	}
	waitFor(t, "unsubscribed", 5*time.Second, func() bool { return hub.Subscribers() == 0 })
}
