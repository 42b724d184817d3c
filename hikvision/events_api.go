package hikvision

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/events"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/mqtt"
)

// HTTP endpoints of device events (registered by the glue like the others):
//
//	GET  /api/hikvision/events[?src=STREAM|&device=HOST[:PORT]][&type=motion,ring]   EventsHandler (SSE)
//	POST /api/hikvision/intercom?src=STREAM&action=answer|hangup|reject|unlock[&door=N]   IntercomHandler

// EventMessage is the JSON of one Server-Sent Event (event name
// "hikvision") and of one state in the health view.
type EventMessage struct {
	Device      string    `json:"device"`  // host:port (the port always written)
	Channel     int       `json:"channel"` // 0: the device itself
	Stream      string    `json:"stream,omitempty"`
	Streams     []string  `json:"streams,omitempty"` // every go2rtc stream of the channel
	Type        string    `json:"type"`
	Active      bool      `json:"active"`
	Time        time.Time `json:"time"` // when go2rtc received it
	Raw         string    `json:"raw,omitempty"`
	PictureSize int       `json:"picture_size,omitempty"`
}

func (ev *moduleEvents) message(e events.Event) EventMessage {
	ns := ev.streamNames(e.Device, e.Channel)
	return EventMessage{Device: e.Device, Channel: e.Channel, Stream: firstName(ns), Streams: ns, Type: e.Type,
		Active: e.Active, Time: e.Time, Raw: e.Raw, PictureSize: len(e.Picture)}
}

// eventTarget is one (device, channel) a src filter selects.
type eventTarget struct {
	device  string
	channel int
}

// eventFilter is what an SSE client asked for.
type eventFilter struct {
	targets []eventTarget // empty: every device
	device  string
	types   []string
}

func (f eventFilter) match(e events.Event) bool {
	if f.device != "" && !strings.EqualFold(f.device, e.Device) {
		return false
	}
	if len(f.types) > 0 && !slices.Contains(f.types, e.Type) {
		return false
	}
	if len(f.targets) == 0 {
		return true
	}
	for _, t := range f.targets {
		// a stream's events: its channel's and its device's own (channel 0)
		if strings.EqualFold(t.device, e.Device) && (e.Channel == t.channel || e.Channel == 0) {
			return true
		}
	}
	return false
}

// parseEventFilter reads src, device and type. status is the HTTP status of
// an error.
func (m *Module) parseEventFilter(req *http.Request) (eventFilter, int, error) {
	q := req.URL.Query()
	var f eventFilter
	f.device = q.Get("device")
	for _, t := range strings.Split(q.Get("type"), ",") {
		if t = strings.TrimSpace(t); t != "" {
			f.types = append(f.types, events.NormaliseType(t))
		}
	}
	name := q.Get("src")
	if name == "" {
		return f, 0, nil
	}
	sources, ok := m.reg.resolveStream(name)
	if !ok {
		return f, http.StatusServiceUnavailable, fmt.Errorf("hikvision: events: streams cannot be resolved")
	}
	for _, src := range sources {
		cfg, err := ParseURL(src)
		if err != nil {
			continue
		}
		f.targets = append(f.targets, eventTarget{device: eventAddr(cfg), channel: cfg.Channel})
	}
	if len(f.targets) == 0 {
		return f, http.StatusNotFound, fmt.Errorf("hikvision: events: stream %q does not exist or has no hikvision:// source", name)
	}
	return f, 0, nil
}

// EventsHandler streams device events as Server-Sent Events: first the
// current state of every (channel, type) that matches, then every change,
// one JSON EventMessage per "hikvision" event, and a comment every 15 s.
// Filters: src=STREAM (the stream's channel and its device's own events),
// device=HOST[:PORT], type=motion,ring (comma-separated).
// The snapshot holds the states seen (each with its time); entities declared
// ahead from a device's event triggers appear with their first event, as
// before, and are listed in the health view.
func (m *Module) EventsHandler(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		writeJSONError(w, http.StatusMethodNotAllowed, "bad_request", "hikvision: events: use GET")
		return
	}
	ev := m.events()
	if ev == nil {
		writeJSONError(w, http.StatusNotFound, "events_off", ErrEventsOff.Error())
		return
	}
	f, status, err := m.parseEventFilter(req)
	if err != nil {
		writeJSONError(w, status, "bad_request", err.Error())
		return
	}
	sub := ev.hub.Subscribe(events.Filter{}, eventQueue)
	defer sub.Close()
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(e events.Event) error {
		b, _ := json.Marshal(ev.message(e))
		if _, err := fmt.Fprintf(w, "event: hikvision\ndata: %s\n\n", b); err != nil {
			return err
		}
		return rc.Flush()
	}
	if _, err := fmt.Fprint(w, ": hikvision events\nretry: 3000\n\n"); err != nil {
		return
	}
	if rc.Flush() != nil {
		return
	}
	// The subscription started before the snapshot was read: a change
	// made in between is in both. Each (device, channel, type) of the
	// snapshot skips the queued changes it already holds.
	type key struct {
		device  string
		channel int
		typ     string
	}
	sent := map[key]events.Event{}
	for _, e := range ev.state.Snapshot("") {
		if !f.match(e) {
			continue
		}
		if send(e) != nil {
			return
		}
		sent[key{e.Device, e.Channel, e.Type}] = e
	}
	tick := time.NewTicker(events.DefaultKeepAlive)
	defer tick.Stop()
	for {
		select {
		case <-req.Context().Done():
			return
		case e, ok := <-sub.C():
			if !ok {
				return
			}
			k := key{e.Device, e.Channel, e.Type}
			if old, seen := sent[k]; seen {
				if e.Time.Before(old.Time) || e.Time.Equal(old.Time) && e.Active == old.Active {
					continue // sent with the snapshot
				}
				delete(sent, k)
			}
			if f.match(e) && send(e) != nil {
				return
			}
		case <-tick.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		}
	}
}

// EventsHealth is the events part of GET /api/hikvision.
type EventsHealth struct {
	Subscriptions []SubscriptionHealth `json:"subscriptions"`
	// States is the latest state of every (device, channel, type) seen.
	States []EventMessage `json:"states"`
	SSE    int            `json:"sse_clients"`
	MQTT   *mqtt.Stats    `json:"mqtt,omitempty"`
}

// SubscriptionHealth is one device's event subscription.
type SubscriptionHealth struct {
	Device            string  `json:"device"`
	State             string  `json:"state"` // connecting, connected, disconnected, closed
	Online            *bool   `json:"online"`
	Connects          int     `json:"connects"`
	Failures          int     `json:"failures"`
	WatchdogFires     int     `json:"watchdog_fires"`
	Alerts            int     `json:"alerts"`
	Heartbeats        int     `json:"heartbeats"`
	BadParts          int     `json:"bad_parts"`
	HeartbeatInterval float64 `json:"heartbeat_interval_s"`
	DoorStation       bool    `json:"door_station"`
	CallStatus        string  `json:"call_status,omitempty"`
	LastError         string  `json:"last_error,omitempty"` // redacted
	// Triggers: which events the device sends to the alert stream and
	// which it has but never sends, from its event triggers (triggers.go).
	Triggers *TriggersHealth `json:"triggers"`
}

// eventsHealth is nil while events are off.
func (m *Module) eventsHealth() *EventsHealth {
	ev := m.events()
	if ev == nil {
		return nil
	}
	h := &EventsHealth{Subscriptions: []SubscriptionHealth{}, States: []EventMessage{}, SSE: ev.hub.Subscribers()}
	ev.mu.Lock()
	subs := make([]*deviceEvents, 0, len(ev.subs))
	for de := range ev.subs {
		subs = append(subs, de)
	}
	ev.mu.Unlock()
	for _, de := range subs {
		st := de.sub.Stats()
		de.mu.Lock()
		sh := SubscriptionHealth{
			Device: de.addr, State: de.conn.String(), Online: de.online, Connects: st.Connects,
			Failures: st.Failures, WatchdogFires: st.WatchdogFires, Alerts: st.Alerts, Heartbeats: st.Heartbeats,
			BadParts: st.BadParts, HeartbeatInterval: st.HeartbeatInterval.Seconds(), DoorStation: de.door,
			CallStatus: string(de.call), LastError: de.connErr,
		}
		de.mu.Unlock()
		sh.Triggers = de.triggersHealth()
		h.Subscriptions = append(h.Subscriptions, sh)
	}
	sort.Slice(h.Subscriptions, func(i, j int) bool { return h.Subscriptions[i].Device < h.Subscriptions[j].Device })
	for _, e := range ev.state.Snapshot("") {
		h.States = append(h.States, ev.message(e))
	}
	if ev.pub != nil {
		st := ev.pub.Stats()
		h.MQTT = &st
	}
	return h
}

// writeEventMetrics adds the events part of the health view to the metrics
// (nothing while events are off).
func writeEventMetrics(m *metricsWriter, h *EventsHealth) {
	if h == nil {
		return
	}
	m.family("hikvision_events_connected", "gauge", "1 while the device's event stream is open.")
	for _, s := range h.Subscriptions {
		m.sample("hikvision_events_connected", [][2]string{{"device", s.Device}}, b2f(s.State == "connected"))
	}
	for _, c := range []struct {
		name, help string
		v          func(SubscriptionHealth) int
	}{
		{"hikvision_events_connects_total", "Event streams opened.", func(s SubscriptionHealth) int { return s.Connects }},
		{"hikvision_events_failures_total", "Event stream opens that failed and streams lost.", func(s SubscriptionHealth) int { return s.Failures }},
		{"hikvision_events_watchdog_total", "Event streams reopened because they went quiet.", func(s SubscriptionHealth) int { return s.WatchdogFires }},
		{"hikvision_events_alerts_total", "Event reports received (heartbeats excluded).", func(s SubscriptionHealth) int { return s.Alerts }},
		{"hikvision_events_heartbeats_total", "Heartbeats received.", func(s SubscriptionHealth) int { return s.Heartbeats }},
	} {
		m.family(c.name, "counter", c.help)
		for _, s := range h.Subscriptions {
			m.sample(c.name, [][2]string{{"device", s.Device}}, float64(c.v(s)))
		}
	}
	m.family("hikvision_event_active", "gauge", "1 while the event is active, per device, channel and type.")
	for _, e := range h.States {
		m.sample("hikvision_event_active", [][2]string{{"device", e.Device}, {"channel", strconv.Itoa(e.Channel)},
			{"stream", e.Stream}, {"type", e.Type}}, b2f(e.Active))
	}
	m.family("hikvision_sse_clients", "gauge", "Clients of /api/hikvision/events.")
	m.sample("hikvision_sse_clients", nil, float64(h.SSE))
	if q := h.MQTT; q != nil {
		m.family("hikvision_mqtt_connected", "gauge", "1 while connected to the MQTT broker.")
		m.sample("hikvision_mqtt_connected", nil, b2f(q.Connected))
		m.family("hikvision_mqtt_published_total", "counter", "MQTT messages the broker took.")
		m.sample("hikvision_mqtt_published_total", nil, float64(q.Published))
		m.family("hikvision_mqtt_dropped_total", "counter", "MQTT event messages dropped (queue full) and pictures let go.")
		m.sample("hikvision_mqtt_dropped_total", nil, float64(q.Dropped))
		m.family("hikvision_mqtt_pending", "gauge", "MQTT messages waiting for the broker.")
		m.sample("hikvision_mqtt_pending", nil, float64(q.Pending))
	}
}
