package hikvision

import (
	"encoding/json"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/events"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/mqtt"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/mqtt/mqtttest"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

// The triggers map to the (channel, type) an alert with the same channel
// fields maps to; a (channel, type) with one trigger notifying center is
// sent.
func TestMapTriggers(t *testing.T) {
	t.Parallel()
	list := []isapi.EventTrigger{
		{EventType: "VMD", VideoChannel: 33, DynVideoChannel: 1, Methods: []string{"center", "beep"}},
		{EventType: "VMD", VideoChannel: 34, Methods: []string{"record"}}, // IP channel 2 counted from 33
		{EventType: "linedetection", DynVideoChannel: 2},
		{EventType: "linecrossing", DynVideoChannel: 2, Methods: []string{"Center"}}, // same entity, sends
		{EventType: "IO", IOPort: 3, Methods: []string{"center", "IO"}},
		{EventType: "IO", DynIOPort: 4},
		{EventType: "diskfull", Methods: []string{"beep"}},
		{EventType: "!!"}, // no usable type
		{EventType: "tamperdetection", VideoChannel: 2},
	}
	sent, notSent := mapTriggers(list, events.DefaultChannels)
	wantSent := []TriggerInfo{
		{Channel: 1, Type: "motion", Methods: []string{"center", "beep"}},
		{Channel: 2, Type: "linedetection", Methods: []string{"Center"}},
		{Channel: 3, Type: "io", Methods: []string{"center", "IO"}},
	}
	wantNot := []TriggerInfo{
		{Channel: 0, Type: "diskfull", Methods: []string{"beep"}},
		{Channel: 2, Type: "motion", Methods: []string{"record"}},
		{Channel: 2, Type: "tamper", Methods: []string{}},
		{Channel: 4, Type: "io", Methods: []string{}},
	}
	if !reflect.DeepEqual(sent, wantSent) || !reflect.DeepEqual(notSent, wantNot) {
		t.Fatalf("sent %+v\nwant %+v\nnot sent %+v\nwant %+v", sent, wantSent, notSent, wantNot)
	}
	// every entity is where the alert stream puts an alert with the same fields
	for _, tr := range list[:6] {
		a := events.DefaultChannels(events.ChannelIDs{Channel: tr.VideoChannel, DynChannel: tr.DynVideoChannel, IOPort: tr.IOPort + tr.DynIOPort})
		found := false
		for _, ti := range append(append([]TriggerInfo{}, sent...), notSent...) {
			found = found || ti.Channel == a && ti.Type == events.NormaliseType(tr.EventType)
		}
		if !found {
			t.Errorf("trigger %+v: no entity on channel %d", tr, a)
		}
	}
}

// mqttTopicID is how MQTT topics name a device address.
func mqttTopicID(addr string) string { return strings.NewReplacer(".", "_", ":", "_").Replace(addr) }

// health reads GET /api/hikvision.
func readHealth(t *testing.T, m *Module) (Health, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	m.HealthHandler(rec, httptest.NewRequest("GET", "/api/hikvision", nil))
	var h Health
	if err := json.Unmarshal(rec.Body.Bytes(), &h); err != nil {
		t.Fatal(err)
	}
	return h, rec.Body.String()
}

func subscriptionOf(h Health, addr string) *SubscriptionHealth {
	if h.Events == nil {
		return nil
	}
	for i, s := range h.Events.Subscriptions {
		if s.Device == addr {
			return &h.Events.Subscriptions[i]
		}
	}
	return nil
}

// The entities of the events a device sends exist in Home Assistant
// (discovery config, state OFF) before the first event; an event that
// follows updates that very entity (no second one); the events the device
// has but does not send get no entity, one log line and a place in the
// health view.
func TestEventsTriggersDeclare(t *testing.T) {
	t.Parallel()
	b := mqtttest.StartBroker(t, "")
	rec := mqtttest.Subscribe(t, b.URL(), "#")
	cam := evSim(t, sim.Config{Events: sim.EventsConfig{Heartbeat: sim.HeartbeatNone},
		Triggers: sim.TriggersConfig{List: []sim.Trigger{
			{Type: "VMD", Channel: 1, Methods: []string{"email", "center"}},
			{Type: "IO", Channel: 2, Methods: []string{"center"}},
			{Type: "linedetection", Channel: 1, Methods: []string{"record"}},
			{Type: "tamperdetection", Channel: 1},
		}}})
	nvr := evSim(t, sim.Config{Personality: sim.PersonalityNVR, Events: sim.EventsConfig{Heartbeat: sim.HeartbeatNone}})
	logs := &syncBuf{}
	e := newEvModuleLog(t, Options{MQTT: &mqtt.Config{Broker: b.URL(), ClientID: "triggers-declare"}},
		map[string][]string{"porch": {evURL(cam, evPass, 1)}, "yard": {evURL(nvr, evPass, 2)}}, logs)
	camID, nvrID := mqttTopicID(cam.HTTPAddr()), mqttTopicID(nvr.HTTPAddr())
	config := func(id, obj string) string {
		return "homeassistant/binary_sensor/hikvision_" + id + "/" + obj + "/config"
	}
	state := func(id, ch, typ string) string { return "hikvision/" + id + "/" + ch + "/" + typ + "/state" }

	// before any event: configs and OFF states of what the devices send
	declared := [][2]string{
		{config(camID, "ch1_motion"), state(camID, "1", "motion")},
		{config(camID, "ch2_io"), state(camID, "2", "io")},
		{config(nvrID, "ch2_motion"), state(nvrID, "2", "motion")},
		{config(nvrID, "ch4_motion"), state(nvrID, "4", "motion")},
		{config(nvrID, "ch1_io"), state(nvrID, "1", "io")},
	}
	for _, d := range declared {
		rec.WaitLast(d[1], "OFF", 20*time.Second)
		ms := rec.WaitFor("the config "+d[0], 10*time.Second, func(ms []mqtttest.Msg) bool { _, ok := mqtttest.Last(ms, d[0]); return ok })
		c := mqtttest.Decode(t, mustLast(t, ms, d[0]))
		if c["state_topic"] != d[1] {
			t.Fatalf("%s: state_topic %v, want %s", d[0], c["state_topic"], d[1])
		}
	}
	if n := cam.EventStats().Parts + nvr.EventStats().Parts; n != 0 {
		t.Fatalf("the devices sent %d events before the check", n)
	}
	c := mqtttest.Decode(t, mustLast(t, rec.Messages(), config(camID, "ch1_motion")))
	if !strings.HasPrefix(c["name"].(string), "porch") {
		t.Errorf("the declared motion entity is not named by its stream: %v", c["name"])
	}

	// the health view: what is sent, what is not
	h, body := readHealth(t, e.m)
	camSub := subscriptionOf(h, cam.HTTPAddr())
	if camSub == nil || camSub.Triggers == nil || camSub.Triggers.State != TriggersRead {
		t.Fatalf("camera subscription: %s", body)
	}
	got := func(ts []TriggerInfo) []string {
		var out []string
		for _, tr := range ts {
			out = append(out, tr.String()+" "+tr.Stream+" "+strings.Join(tr.Methods, ","))
		}
		return out
	}
	if s, n := got(camSub.Triggers.Sent), got(camSub.Triggers.NotSent); !reflect.DeepEqual(s, []string{"motion ch1 porch email,center", "io ch2  center"}) ||
		!reflect.DeepEqual(n, []string{"linedetection ch1 porch record", "tamper ch1 porch "}) {
		t.Fatalf("camera triggers: sent %q, not sent %q", s, n)
	}
	if strings.Contains(body, evPass) {
		t.Fatal("the health view shows the password")
	}
	lines := logs.lines(`"device":"`+cam.HTTPAddr()+`"`, "does not send these events to the alert stream")
	if len(lines) != 1 || !strings.Contains(lines[0], `linedetection ch1, tamper ch1 (tick \"Notify Surveillance Center\"`) ||
		!strings.Contains(lines[0], `"level":"info"`) {
		t.Fatalf("log lines about the camera's events not sent: %q", lines)
	}
	if n := len(logs.lines(`"device":"`+nvr.HTTPAddr()+`"`, "does not send these events", "linedetection ch1, io ch2, linedetection ch2")); n != 1 {
		t.Fatalf("%d log lines about the NVR's line crossing", n)
	}

	// the events: the declared entities turn ON, no other entity appears
	evWait(t, "both alert streams", func() bool { return cam.OpenAlertStreams() == 1 && nvr.OpenAlertStreams() == 1 })
	cam.TriggerEvents(sim.EventStep{Type: "VMD", Channel: 1}, sim.EventStep{Type: "IO", Channel: 2})
	nvr.TriggerEvents(sim.EventStep{Type: "VMD", Channel: 2}, sim.EventStep{Type: "IO", Channel: 1})
	for _, d := range []string{state(camID, "1", "motion"), state(camID, "2", "io"), state(nvrID, "2", "motion"), state(nvrID, "1", "io")} {
		rec.WaitLast(d, "ON", 15*time.Second)
	}
	ms := rec.Messages()
	for _, d := range declared {
		// the config came before the entity's first ON
		cfgAt, onAt := -1, -1
		for i, m := range ms {
			if m.Topic == d[0] && cfgAt < 0 {
				cfgAt = i
			}
			if m.Topic == d[1] && m.Payload == "ON" && onAt < 0 {
				onAt = i
			}
		}
		if cfgAt < 0 || onAt >= 0 && onAt < cfgAt {
			t.Errorf("%s: config at %d, first ON at %d", d[0], cfgAt, onAt)
		}
	}
	configs := map[string]bool{}
	for _, m := range ms {
		if strings.HasPrefix(m.Topic, "homeassistant/") && strings.HasSuffix(m.Topic, "/config") {
			configs[m.Topic] = true
		}
	}
	for _, id := range []string{camID, nvrID} {
		var mine []string
		for topic := range configs {
			if strings.Contains(topic, "hikvision_"+id+"/") {
				mine = append(mine, topic)
			}
		}
		want := 2 // the camera's motion ch1 and io ch2
		if id == nvrID {
			want = 5 // motion of its 4 channels, io 1
		}
		if len(mine) != want {
			t.Errorf("device %s has %d entities, want %d: %q", id, len(mine), want, mine)
		}
	}
	if configs[config(camID, "ch1_linedetection")] || configs[config(camID, "ch1_tamper")] {
		t.Error("an event the camera does not send got an entity")
	}
}

func mustLast(t *testing.T, ms []mqtttest.Msg, topic string) mqtttest.Msg {
	t.Helper()
	m, ok := mqtttest.Last(ms, topic)
	if !ok {
		t.Fatalf("no message on %s", topic)
	}
	return m
}

// A device without the resource, or whose answer is not a trigger list: no
// entity, no error state, no log line above debug, and no second read.
func TestEventsTriggersNotRead(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		cfg   sim.Config
		bad   bool
		state string
	}{
		{"door station", sim.Config{Personality: sim.PersonalityDoorStation}, false, TriggersNotSupported},
		{"404", sim.Config{Triggers: sim.TriggersConfig{NotSupported: true}}, false, TriggersNotSupported},
		{"garbage", sim.Config{}, true, TriggersUnreadable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dev := evSim(t, tc.cfg)
			if tc.bad {
				// the first authenticated answers are cut XML, the
				// triggers' among them (deviceInfo, a login check and
				// the alert stream, served whole, take some)
				dev.SetBadXML(10)
			}
			logs := &syncBuf{}
			e := newEvModuleLog(t, Options{Events: EventOptions{CallStatusInterval: -1}},
				map[string][]string{"cam": {evURL(dev, evPass, 1)}}, logs)
			var sub *SubscriptionHealth
			evWait(t, "the triggers to be tried", func() bool {
				h, _ := readHealth(t, e.m)
				sub = subscriptionOf(h, dev.HTTPAddr())
				return sub != nil && sub.Triggers != nil && sub.Triggers.State != TriggersReading
			})
			if sub.Triggers.State != tc.state || len(sub.Triggers.Sent) != 0 || len(sub.Triggers.NotSent) != 0 {
				t.Fatalf("triggers %+v, want state %s and nothing listed", sub.Triggers, tc.state)
			}
			// a 404 invalidOperation is asked twice (the client takes it
			// for an expired nonce once): count requests, then no more
			asked := dev.Client("127.0.0.1").Requests["/ISAPI/Event/triggers"]
			evWait(t, "the alert stream", func() bool { return dev.OpenAlertStreams() == 1 })
			<-time.After(2500 * time.Millisecond) // past the first retry a pending read would make
			if n := dev.Client("127.0.0.1").Requests["/ISAPI/Event/triggers"]; n != asked || n == 0 {
				t.Fatalf("the triggers were asked %d times, then %d: read again", asked, n)
			}
			if l := logs.lines("triggers"); len(l) != 1 || !strings.Contains(l[0], `"level":"debug"`) || !strings.Contains(l[0], tc.state) {
				t.Fatalf("log lines about the triggers: %q, want one at debug", l)
			}
			if l := logs.lines("alert stream:"); len(l) != 0 {
				t.Fatalf("log lines about events not sent: %q", l)
			}
			h, _ := readHealth(t, e.m)
			if s := subscriptionOf(h, dev.HTTPAddr()); s.LastError != "" || s.State != "connected" {
				t.Fatalf("subscription after the triggers failed: %+v", s)
			}
		})
	}
}

// A busy answer is read again, after a wait; the second read declares.
func TestEventsTriggersReadAgain(t *testing.T) {
	t.Parallel()
	dev := evSim(t, sim.Config{Triggers: sim.TriggersConfig{Busy: 1}})
	e := newEvModule(t, Options{}, map[string][]string{"cam": {evURL(dev, evPass, 1)}})
	var sub *SubscriptionHealth
	evWait(t, "the triggers to be read", func() bool {
		h, _ := readHealth(t, e.m)
		sub = subscriptionOf(h, dev.HTTPAddr())
		return sub != nil && sub.Triggers != nil && sub.Triggers.State == TriggersRead
	})
	if n := dev.Client("127.0.0.1").Requests["/ISAPI/Event/triggers"]; n != 2 {
		t.Fatalf("the triggers were asked %d times, want twice (busy, then read)", n)
	}
	if len(sub.Triggers.Sent) != 3 || sub.Triggers.LastError != "" {
		t.Fatalf("triggers after the second read: %+v", sub.Triggers)
	}
}
