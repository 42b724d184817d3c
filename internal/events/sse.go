package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// DefaultKeepAlive is the SSE comment interval that keeps proxies from closing an idle stream.
const DefaultKeepAlive = 15 * time.Second

// SSEOptions configure ServeSSE.
type SSEOptions struct {
	Filter    Filter
	Initial   []Event       // sent first (e.g. State.Snapshot filtered), before live events
	Queue     int           // subscriber queue length (0 = DefaultQueue)
	KeepAlive time.Duration // comment line interval (0 = DefaultKeepAlive)
	Pictures  bool          // include pictures (base64 in "picture"); default: only "picture_size"
}

// sseEvent is the JSON of one message.
type sseEvent struct {
	Device      string    `json:"device"`
	Channel     int       `json:"channel"`
	Type        string    `json:"type"`
	Active      bool      `json:"active"`
	Time        time.Time `json:"time"`
	Raw         string    `json:"raw,omitempty"`
	Picture     []byte    `json:"picture,omitempty"`
	PictureSize int       `json:"picture_size,omitempty"`
}

// ErrNoFlush: the ResponseWriter cannot flush, so events would sit in a buffer.
var ErrNoFlush = errors.New("events: SSE needs a flushable http.ResponseWriter")

// ServeSSE streams events from hub to w as Server-Sent Events: one JSON object per message
// ("event: hikvision"), a keep-alive comment every KeepAlive, until the client goes away (r's context)
// or the hub closes. It returns nil on client disconnect.
func ServeSSE(w http.ResponseWriter, r *http.Request, hub *Hub, opt SSEOptions) error {
	rc := http.NewResponseController(w)
	if opt.KeepAlive <= 0 {
		opt.KeepAlive = DefaultKeepAlive
	}
	sub := hub.Subscribe(opt.Filter, opt.Queue)
	defer sub.Close()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprint(w, ": hikvision events\nretry: 3000\n\n"); err != nil {
		return nil
	}
	if err := rc.Flush(); err != nil {
		return fmt.Errorf("%w: %v", ErrNoFlush, err)
	}
	send := func(e Event) error {
		m := sseEvent{Device: e.Device, Channel: e.Channel, Type: e.Type, Active: e.Active, Time: e.Time, Raw: e.Raw}
		if opt.Pictures {
			m.Picture = e.Picture
		} else {
			m.PictureSize = len(e.Picture)
		}
		b, err := json.Marshal(m)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "event: hikvision\ndata: %s\n\n", b); err != nil {
			return err
		}
		return rc.Flush()
	}
	for _, e := range opt.Initial {
		if opt.Filter.Match(e) {
			if send(e) != nil {
				return nil
			}
		}
	}
	tick := time.NewTicker(opt.KeepAlive)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return nil
		case e, ok := <-sub.C():
			if !ok {
				return nil
			}
			if send(e) != nil {
				return nil
			}
		case <-tick.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return nil
			}
			if rc.Flush() != nil {
				return nil
			}
		}
	}
}
