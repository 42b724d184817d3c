package events_test

import (
	"context"
	"net/http"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/events"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
)

// Example wires one device: its alert stream into a shared State, the State into a Hub, and the Hub
// to an SSE endpoint. The device object would pass its login guard's streaming GET as Open.
func Example() {
	hub := events.NewHub()
	state := events.NewState(events.StateConfig{Emit: hub.Publish})

	client, _ := isapi.New(isapi.Config{Host: "192.0.2.10", Username: "admin", Password: "secret"})
	sub, err := events.NewSubscriber(events.SubscriberConfig{
		Device: client.Host(),
		Open: func(ctx context.Context) (*http.Response, error) {
			return client.OpenStream(ctx, events.AlertStreamPath)
		},
		Channels: events.NVRChannels(33), // from the device probe: the first IP channel of a recorder
		State:    state,
	})
	if err != nil {
		return
	}
	sub.Start()

	http.HandleFunc("/api/hikvision/events", func(w http.ResponseWriter, r *http.Request) {
		f := events.Filter{}
		if d := r.URL.Query().Get("device"); d != "" {
			f.Devices = []string{d}
		}
		_ = events.ServeSSE(w, r, hub, events.SSEOptions{Filter: f, Initial: state.Snapshot("")})
	})

	// on stop: the subscription first (its active events end), then the state and the hub
	_ = sub.Close()
	state.Close()
	hub.Close()
	client.Close()
}
