package hikvision

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"gopkg.in/yaml.v3"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/guard"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/mqtt"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

const evPass = "ev/Pa$$:1"

// evModule is a module with events on, streams from a settable list.
type evModule struct {
	m       *Module
	mu      sync.Mutex
	streams map[string][]string
}

func newEvModule(t *testing.T, opts Options, streams map[string][]string) *evModule {
	t.Helper()
	return newEvModuleLog(t, opts, streams, nil)
}

// newEvModuleLog is newEvModule with the module's log (debug) in buf.
func newEvModuleLog(t *testing.T, opts Options, streams map[string][]string, buf *syncBuf) *evModule {
	t.Helper()
	e := &evModule{streams: streams}
	opts.Events.Enabled = true
	if opts.Events.Rescan == 0 {
		opts.Events.Rescan = 50 * time.Millisecond
	}
	log := zerolog.Nop()
	if buf != nil {
		log = zerolog.New(buf).Level(zerolog.DebugLevel)
	}
	e.m = newModule(opts, log, guard.Config{})
	e.m.SetStreamLister(func() map[string][]string {
		e.mu.Lock()
		defer e.mu.Unlock()
		out := map[string][]string{}
		for k, v := range e.streams {
			out[k] = v
		}
		return out
	})
	e.m.SetStreamResolver(func(name string) []string {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.streams[name]
	})
	if err := e.m.StartEvents(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.m.Close() })
	return e
}

func (e *evModule) setStreams(s map[string][]string) {
	e.mu.Lock()
	e.streams = s
	e.mu.Unlock()
}

func evSim(t *testing.T, cfg sim.Config) *sim.Device {
	t.Helper()
	if cfg.Users == nil {
		cfg.Users = map[string]string{"admin": evPass}
	}
	d, err := sim.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func evURL(d *sim.Device, pass string, ch int) string {
	return "hikvision://" + url.UserPassword("admin", pass).String() + "@" + d.HTTPAddr() + "/?channel=" + strconv.Itoa(ch)
}

// sseClient reads EventMessages from the module's SSE handler.
type sseClient struct {
	t    *testing.T
	msgs chan EventMessage
}

func openSSE(t *testing.T, m *Module, query string) *sseClient {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(m.EventsHandler))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/?"+query, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("SSE answered %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	c := &sseClient{t: t, msgs: make(chan EventMessage, 100)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var m EventMessage
				if err := json.Unmarshal([]byte(d), &m); err != nil {
					t.Errorf("SSE data %q: %v", d, err)
					continue
				}
				c.msgs <- m
			}
		}
	}()
	t.Cleanup(func() { cancel(); res.Body.Close(); <-done })
	return c
}

// next returns the next message that is not a state the test does not
// look at (heartbeat-free simulator: every message counts).
func (c *sseClient) next(what string) EventMessage {
	c.t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(15 * time.Second):
		c.t.Fatalf("no SSE message (waiting for %s)", what)
	}
	return EventMessage{}
}

func evWait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond) // a poll with a deadline
	}
}

// One subscription per device shared by its channels' streams, events named
// by stream, released with the device's last stream.
func TestEventsOneSubscriptionPerDevice(t *testing.T) {
	t.Parallel()
	dev := evSim(t, sim.Config{Personality: sim.PersonalityNVR})
	e := newEvModule(t, Options{}, map[string][]string{
		"yard":     {evURL(dev, evPass, 1)},
		"yard_sub": {evURL(dev, evPass, 1) + "&stream=sub"},
		"garage":   {evURL(dev, evPass, 2)},
	})
	evWait(t, "the alert stream to open", func() bool { return dev.OpenAlertStreams() == 1 })

	sse := openSSE(t, e.m, "src=garage")
	dev.TriggerEvents(sim.EventStep{Type: "VMD", Channel: 1}, sim.EventStep{Type: "linedetection", Channel: 2})
	m := sse.next("line crossing on garage")
	if m.Stream != "garage" || m.Channel != 2 || m.Type != "linedetection" || !m.Active {
		t.Fatalf("SSE for src=garage: %+v, want garage channel 2 linedetection active (the motion of yard filtered out)", m)
	}
	dev.TriggerEvents(sim.EventStep{Type: "linedetection", Channel: 2, Inactive: true})
	if m := sse.next("line crossing ends"); m.Type != "linedetection" || m.Active {
		t.Fatalf("SSE: %+v, want linedetection inactive", m)
	}
	if st := dev.EventStats(); st.Streams != 1 {
		t.Fatalf("the device saw %d alert streams, want one for its three streams", st.Streams)
	}

	// the state in the health view, named by stream
	var h Health
	rec := httptest.NewRecorder()
	e.m.HealthHandler(rec, httptest.NewRequest("GET", "/api/hikvision", nil))
	if err := json.Unmarshal(rec.Body.Bytes(), &h); err != nil {
		t.Fatal(err)
	}
	if h.Events == nil || len(h.Events.Subscriptions) != 1 || h.Events.Subscriptions[0].State != "connected" {
		t.Fatalf("health events: %s", rec.Body.String())
	}
	var yard *EventMessage
	for i, s := range h.Events.States {
		if s.Channel == 1 && s.Type == "motion" {
			yard = &h.Events.States[i]
		}
	}
	if yard == nil || !yard.Active || yard.Stream != "yard" || len(yard.Streams) != 2 {
		t.Fatalf("health states %+v: want channel 1 motion active on yard and yard_sub", h.Events.States)
	}
	if strings.Contains(rec.Body.String(), evPass) {
		t.Fatal("the health view shows the password")
	}

	// the device's streams deleted: the subscription ends, its motion too
	e.setStreams(map[string][]string{})
	evWait(t, "the alert stream to close", func() bool { return dev.OpenAlertStreams() == 0 })
	evWait(t, "the subscription to be released", func() bool {
		h := e.m.eventsHealth()
		return len(h.Subscriptions) == 0
	})
	for _, s := range e.m.events().state.Snapshot("") {
		if s.Active {
			t.Fatalf("after the release %+v is still active", s)
		}
	}
}

// Events off: no subscription, and the SSE endpoint says how to turn them on.
func TestEventsOff(t *testing.T) {
	t.Parallel()
	dev := evSim(t, sim.Config{})
	m := newModule(Options{}, zerolog.Nop(), guard.Config{})
	m.SetStreamLister(func() map[string][]string { return map[string][]string{"cam": {evURL(dev, evPass, 1)}} })
	if err := m.StartEvents(); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	rec := httptest.NewRecorder()
	m.EventsHandler(rec, httptest.NewRequest("GET", "/api/hikvision/events", nil))
	if rec.Code != 404 || !strings.Contains(rec.Body.String(), "events: true") {
		t.Fatalf("events off: %d %s", rec.Code, rec.Body.String())
	}
	m.HealthHandler(rec, httptest.NewRequest("GET", "/api/hikvision", nil))
	if dev.EventStats().Streams != 0 {
		t.Fatal("events off, yet the device's alert stream was opened")
	}
}

// A wrong password: the subscription and the door-station reading log in
// only through the login guard: every failed login the device counted is
// one the guard recorded, and the guard's budget holds.
func TestEventsLoginsThroughGuard(t *testing.T) {
	t.Parallel()
	for _, personality := range []string{sim.PersonalityDoorStation, sim.PersonalityCamera} {
		t.Run(personality, func(t *testing.T) {
			t.Parallel()
			dev := evSim(t, sim.Config{Personality: personality, MaxFailures: 50})
			src := evURL(dev, "wrong", 1)
			e := newEvModule(t, Options{}, map[string][]string{"gate": {src}})
			g := e.m.guardOf(mustParse(t, src))
			evWait(t, "the guard to hold", func() bool { return g.Snapshot().State == guard.StateHolding })
			// the camera's triggers are tried (through the guard) and given up
			evWait(t, "the triggers to be given up", func() bool {
				h := e.m.eventsHealth()
				return len(h.Subscriptions) == 1 && h.Subscriptions[0].Triggers.State != TriggersReading
			})
			<-time.After(2 * time.Second) // a window in which no further login may happen
			cs := dev.Client("127.0.0.1")
			gs := g.Snapshot()
			t.Logf("device: %d failed logins; guard: %d recorded (a login refused to callers waiting on it counts for each), budget %d",
				cs.FailedLogins, gs.LoginFailures, gs.Budget)
			if cs.FailedLogins == 0 || cs.FailedLogins > gs.LoginFailures {
				t.Fatalf("the device counted %d failed logins, the guard recorded %d: a login went past the guard", cs.FailedLogins, gs.LoginFailures)
			}
			if cs.FailedLogins > gs.Budget {
				t.Fatalf("%d failed logins, over the budget of %d", cs.FailedLogins, gs.Budget)
			}
			if dev.EventStats().Streams != 0 {
				t.Fatal("an alert stream opened with a wrong password")
			}
			if st := e.m.eventsHealth().Subscriptions[0].Triggers.State; st != TriggersRefused {
				t.Fatalf("triggers %s after a refused login, want %s", st, TriggersRefused)
			}
		})
	}
}

// A door station: a ring read from the call status is a "ring" event on the
// station's channel; answer and unlock through the intercom API.
func TestEventsDoorStation(t *testing.T) {
	t.Parallel()
	dev := evSim(t, sim.Config{Personality: sim.PersonalityDoorStation})
	e := newEvModule(t, Options{Events: EventOptions{CallStatusInterval: 100 * time.Millisecond}},
		map[string][]string{"gate": {evURL(dev, evPass, 1)}})
	sse := openSSE(t, e.m, "src=gate&type=ring")
	evWait(t, "the call status to be read", func() bool { return dev.DoorStats().StatusPolls > 1 })
	if err := dev.Ring(); err != nil {
		t.Fatal(err)
	}
	m := sse.next("a ring")
	if m.Type != "ring" || !m.Active || m.Stream != "gate" || m.Channel != 0 {
		t.Fatalf("ring: %+v", m)
	}

	post := func(q string) (int, string) {
		rec := httptest.NewRecorder()
		e.m.IntercomHandler(rec, httptest.NewRequest("POST", "/api/hikvision/intercom?"+q, nil))
		return rec.Code, rec.Body.String()
	}
	if code, body := post("src=gate&action=answer"); code != 200 {
		t.Fatalf("answer: %d %s", code, body)
	}
	if st := dev.CallState(); st != sim.CallOnCall {
		t.Fatalf("after answer the station is %q", st)
	}
	if m := sse.next("the ring to end"); m.Type != "ring" || m.Active {
		t.Fatalf("after answer: %+v, want ring inactive", m)
	}
	if code, body := post("src=gate&action=unlock&door=1"); code != 200 {
		t.Fatalf("unlock: %d %s", code, body)
	}
	if n := dev.DoorStats().Unlocks[1]; n != 1 {
		t.Fatalf("door 1 opened %d times, want 1", n)
	}
	if code, body := post("src=gate&action=hangup"); code != 200 || dev.CallState() != sim.CallIdle {
		t.Fatalf("hangup: %d %s, station %q", code, body, dev.CallState())
	}
	for _, c := range []struct{ q, want string }{
		{"src=gate&action=dance", "action"},
		{"src=gate&action=unlock&door=0", "door"},
		{"src=nope&action=answer", "nope"},
		{"action=answer", "src"},
	} {
		code, body := post(c.q)
		if code/100 != 4 || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %s, want a 4xx naming %s", c.q, code, body, c.want)
		}
	}
	// hang up while idle: the device refuses, and the answer says so
	if code, body := post("src=gate&action=hangup"); code != http.StatusBadGateway || !strings.Contains(body, "callSignal") {
		t.Errorf("hangup while idle: %d %s", code, body)
	}
}

// A device's address in events always has its port.
func TestEventAddr(t *testing.T) {
	t.Parallel()
	for src, want := range map[string]string{
		"hikvision://a:b@10.0.0.7/":                   "10.0.0.7:80",
		"hikvision://a:b@10.0.0.7:8080/":              "10.0.0.7:8080",
		"hikvision://a:b@cam.lan/?https=1&insecure=1": "cam.lan:443",
		"hikvision://a:b@[fe80::1]/":                  "[fe80::1]:80",
	} {
		if got := eventAddr(mustParse(t, src)); got != want {
			t.Errorf("%s: %q, want %q", src, got, want)
		}
	}
}

// A ring reported on the door station's alert stream (not read from its
// call status) is the same device-wide ring.
func TestEventsRingFromAlertStream(t *testing.T) {
	t.Parallel()
	dev := evSim(t, sim.Config{Personality: sim.PersonalityDoorStation, Door: sim.DoorConfig{RingInStream: true}})
	e := newEvModule(t, Options{Events: EventOptions{CallStatusInterval: -1}},
		map[string][]string{"gate": {evURL(dev, evPass, 1)}})
	sse := openSSE(t, e.m, "src=gate&type=ring")
	evWait(t, "the alert stream", func() bool { return dev.OpenAlertStreams() == 1 })
	if err := dev.Ring(); err != nil {
		t.Fatal(err)
	}
	if m := sse.next("a ring"); m.Type != "ring" || !m.Active || m.Channel != 0 || m.Stream != "gate" {
		t.Fatalf("ring from the alert stream: %+v", m)
	}
	if n := dev.DoorStats().StatusPolls; n != 0 {
		t.Fatalf("call status read %d times with call_status_interval -1", n)
	}
}

// Close ends every goroutine events started: the subscriptions, the
// door-station reading and the module's scan (no MQTT publisher here:
// internal/mqtt tests its own Close). Not parallel: it counts goroutines.
func TestEventsCloseLeavesNoGoroutine(t *testing.T) {
	cam := evSim(t, sim.Config{})
	door := evSim(t, sim.Config{Personality: sim.PersonalityDoorStation})
	http.DefaultClient.CloseIdleConnections()
	base := runtime.NumGoroutine()
	func() {
		m := newModule(Options{Events: EventOptions{Enabled: true, Rescan: 20 * time.Millisecond}}, zerolog.Nop(), guard.Config{})
		m.SetStreamLister(func() map[string][]string {
			return map[string][]string{"cam": {evURL(cam, evPass, 1)}, "gate": {evURL(door, evPass, 1)}}
		})
		if err := m.StartEvents(); err != nil {
			t.Fatal(err)
		}
		evWait(t, "both alert streams", func() bool { return cam.OpenAlertStreams() == 1 && door.OpenAlertStreams() == 1 })
		evWait(t, "the call status", func() bool { return door.DoorStats().StatusPolls > 0 })
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
	}()
	http.DefaultClient.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("goroutines %d > %d after Close\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond) // a poll with a deadline
	}
	evWait(t, "the device to see its streams closed", func() bool { return cam.OpenAlertStreams() == 0 && door.OpenAlertStreams() == 0 })
}

// The events: and mqtt: keys of the hikvision: section, as go2rtc reads
// them (yaml.v3).
func TestEventOptionsYAML(t *testing.T) {
	t.Parallel()
	parse := func(doc string) (Options, error) {
		var cfg struct {
			Mod Options `yaml:"hikvision"`
		}
		err := yaml.Unmarshal([]byte(doc), &cfg)
		return cfg.Mod, err
	}
	o, err := parse("hikvision:\n  events: true\n")
	if err != nil || !o.Events.Enabled || !o.Events.wanted(false) {
		t.Fatalf("events: true: %+v %v", o.Events, err)
	}
	o, err = parse("hikvision:\n  events:\n    streams: [gate, porch]\n    inactive_timeout: 15s\n    call_status_interval: -1s\n" +
		"  mqtt:\n    broker: tcp://10.0.0.2:1883\n    password: s3cret\n")
	if err != nil || o.Events.Enabled || len(o.Events.Streams) != 2 || o.Events.InactiveTimeout != 15*time.Second ||
		o.Events.CallStatusInterval != -time.Second || o.MQTT == nil || o.MQTT.Broker != "tcp://10.0.0.2:1883" || o.MQTT.Password != "s3cret" {
		t.Fatalf("events mapping and mqtt: %+v %+v %v", o.Events, o.MQTT, err)
	}
	if !o.Events.wanted(false) {
		t.Fatal("events: streams: does not turn events on")
	}
	o, err = parse("hikvision:\n  mqtt:\n    broker: tcp://10.0.0.2:1883\n")
	if err != nil || !o.Events.wanted(o.MQTT != nil) {
		t.Fatalf("mqtt alone does not turn events on: %+v %v", o, err)
	}
	o, _ = parse("hikvision:\n  probe_ttl: 5m\n")
	if o.Events.wanted(o.MQTT != nil) {
		t.Fatal("events on without being asked for")
	}
	if _, err := parse("hikvision:\n  events: [1, 2]\n"); err == nil || !strings.Contains(err.Error(), "events") {
		t.Fatalf("events: [1, 2]: %v, want an error naming events", err)
	}
}

// A bad mqtt: section is refused by StartEvents with the field named, and
// events stay off.
func TestStartEventsBadMQTT(t *testing.T) {
	t.Parallel()
	m := newModule(Options{MQTT: &mqtt.Config{Broker: "http://10.0.0.2"}}, zerolog.Nop(), guard.Config{})
	defer m.Close()
	err := m.StartEvents()
	if err == nil || !strings.Contains(err.Error(), "broker") {
		t.Fatalf("StartEvents with broker http://: %v", err)
	}
	if m.events() != nil {
		t.Fatal("events started with a bad mqtt: section")
	}
}

// events: streams: subscribes only the devices of the named streams.
func TestEventsStreamsOption(t *testing.T) {
	t.Parallel()
	a, b := evSim(t, sim.Config{}), evSim(t, sim.Config{})
	e := newEvModule(t, Options{Events: EventOptions{Streams: []string{"wanted"}}},
		map[string][]string{"wanted": {evURL(a, evPass, 1)}, "other": {evURL(b, evPass, 1)}})
	evWait(t, "the wanted device's alert stream", func() bool { return a.OpenAlertStreams() == 1 })
	// one scan makes every attachment it wants: two more scans leave no doubt
	for i := 0; i < 2; i++ {
		<-time.After(e.m.events().opts.Rescan)
	}
	if n := b.EventStats().Streams; n != 0 {
		t.Fatalf("the device of a stream not named was subscribed (%d alert streams)", n)
	}
	if h := e.m.eventsHealth(); len(h.Subscriptions) != 1 || h.Subscriptions[0].Device != a.HTTPAddr() {
		t.Fatalf("subscriptions: %+v", h.Subscriptions)
	}
}

// The events part of the metrics: a valid text format with the stream's
// active event and the subscription's state.
func TestEventsMetrics(t *testing.T) {
	t.Parallel()
	dev := evSim(t, sim.Config{})
	e := newEvModule(t, Options{}, map[string][]string{"porch": {evURL(dev, evPass, 1)}})
	evWait(t, "the alert stream", func() bool { return dev.OpenAlertStreams() == 1 })
	sse := openSSE(t, e.m, "src=porch")
	dev.TriggerEvents(sim.EventStep{Type: "VMD", Channel: 1})
	sse.next("the motion")
	rec := httptest.NewRecorder()
	e.m.MetricsHandler(rec, httptest.NewRequest("GET", "/api/hikvision/metrics", nil))
	got := checkMetrics(t, rec.Body.String())
	addr := dev.HTTPAddr()
	for k, want := range map[string]string{
		`hikvision_event_active{device="` + addr + `",channel="1",stream="porch",type="motion"}`: "1",
		`hikvision_events_connected{device="` + addr + `"}`:                                      "1",
		`hikvision_events_connects_total{device="` + addr + `"}`:                                 "1",
		`hikvision_sse_clients`: "1",
	} {
		if got[k] != want {
			t.Errorf("%s = %q, want %s\n%s", k, got[k], want, rec.Body.String())
		}
	}
}
