// Package events_test checks device events end to end: the simulator's
// alert stream and door-station call status, through the real patched
// go2rtc, to Server-Sent Events and to a real mosquitto with Home Assistant
// discovery; with the broker restarted, the device rebooted and a wrong
// password. It is its own package so `go test ./...` runs it beside the
// other end-to-end packages.
package events_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/e2e"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/mqtt/mqtttest"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

const pass = "Ev3nts/P@ss:e2e"

func startSim(t testing.TB, cfg sim.Config) *sim.Device {
	t.Helper()
	if cfg.Users == nil {
		cfg.Users = map[string]string{"admin": pass}
	}
	d, err := sim.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func src(d *sim.Device, password string, ch int) string {
	return fmt.Sprintf("hikvision://%s@%s/?channel=%d", url.UserPassword("admin", password).String(), d.HTTPAddr(), ch)
}

// topicID is how the MQTT topics name a device address.
func topicID(addr string) string {
	return strings.NewReplacer(".", "_", ":", "_").Replace(addr)
}

func mqttConfig(b *mqtttest.Broker, clientID string) string {
	return fmt.Sprintf("  mqtt:\n    broker: %s\n    client_id: %s\n", b.URL(), clientID)
}

// Scripted camera events and a door-station ring reach SSE and MQTT: the
// SSE payloads name the stream; MQTT has the discovery configs, ON then
// OFF, the device online, and the ring on the event entity's topic.
func TestEventsToSSEAndMQTT(t *testing.T) {
	t.Parallel()
	bin := e2e.Go2rtcBinary(t)
	b := mqtttest.StartBroker(t, "")
	cam := startSim(t, sim.Config{})
	door := startSim(t, sim.Config{Personality: sim.PersonalityDoorStation})
	rec := mqtttest.Subscribe(t, b.URL(), "#")

	config := fmt.Sprintf("log:\n  hikvision: debug\nstreams:\n  porch: %q\n  gate: %q\nhikvision:\n  events:\n    call_status_interval: 200ms\n%s",
		src(cam, pass, 1), src(door, pass, 1), mqttConfig(b, "e2e-events"))
	g := e2e.StartGo2rtc(t, bin, config)

	camID, doorID := topicID(cam.HTTPAddr()), topicID(door.HTTPAddr())
	rec.WaitLast("hikvision/bridge/availability", "online", 20*time.Second)
	waitUntil(t, "the camera's alert stream", 20*time.Second, func() bool { return cam.OpenAlertStreams() == 1 })

	// before any event: the entities of the events the camera's triggers
	// send to the alert stream exist, OFF (its default triggers: motion,
	// line crossing and intrusion notify the center; tamper, video loss
	// and its alarm input do not)
	for _, typ := range []string{"motion", "linedetection", "fielddetection"} {
		rec.WaitLast("hikvision/"+camID+"/1/"+typ+"/state", "OFF", 20*time.Second)
		rec.WaitFor("the declared "+typ+" config", 10*time.Second, func(ms []mqtttest.Msg) bool {
			_, ok := mqtttest.Last(ms, "homeassistant/binary_sensor/hikvision_"+camID+"/ch1_"+typ+"/config")
			return ok
		})
	}
	if n := cam.EventStats().Parts; n != 0 {
		t.Fatalf("the camera sent %d events before the entities were checked", n)
	}
	notSent := `events: the device does not send these events to the alert stream: io ch1, tamper ch1, videoloss ch1 (tick "Notify Surveillance Center"`
	waitUntil(t, "the log line naming the events the camera does not send", 10*time.Second, func() bool {
		return strings.Contains(g.Output(), notSent)
	})

	events := openSSE(t, g.URL("/api/hikvision/events?src=porch"))
	cam.TriggerEvents(sim.EventStep{Type: "linedetection", Channel: 1, Picture: true})
	m := events.waitFor("line crossing", 15*time.Second, func(m sseMsg) bool { return m.Type == "linedetection" })
	if m.event != "hikvision" || !m.Active || m.Stream != "porch" || m.Channel != 1 || m.Device != cam.HTTPAddr() || m.PictureSize == 0 {
		t.Fatalf("SSE line crossing: %+v (event %q), want active on porch channel 1 of %s with a picture", m, m.event, cam.HTTPAddr())
	}

	state := "hikvision/" + camID + "/1/linedetection/state"
	rec.WaitLast(state, "ON", 15*time.Second)
	ms := rec.WaitFor("the line-crossing discovery config with the device's model", 10*time.Second, func(ms []mqtttest.Msg) bool {
		m, ok := mqtttest.Last(ms, "homeassistant/binary_sensor/hikvision_"+camID+"/ch1_linedetection/config")
		return ok && strings.Contains(m.Payload, `"model"`)
	})
	cfgMsg, _ := mqtttest.Last(ms, "homeassistant/binary_sensor/hikvision_"+camID+"/ch1_linedetection/config")
	c := mqtttest.Decode(t, cfgMsg)
	if c["state_topic"] != state || c["device_class"] != "motion" || c["payload_on"] != "ON" ||
		!strings.HasPrefix(fmt.Sprint(c["name"]), "porch ") {
		t.Fatalf("discovery config: %s", cfgMsg.Payload)
	}
	// retained: a subscriber that comes later (Home Assistant starting) gets it
	late := mqtttest.Subscribe(t, b.URL(), "homeassistant/binary_sensor/hikvision_"+camID+"/ch1_linedetection/config")
	if m := late.WaitFor("the retained config", 10*time.Second, func(ms []mqtttest.Msg) bool { return len(ms) > 0 })[0]; !m.Retained {
		t.Fatal("the discovery config is not retained")
	}
	if dev, _ := c["device"].(map[string]any); dev == nil || dev["model"] == nil || dev["manufacturer"] != "Hikvision" {
		t.Errorf("discovery device block: %v", c["device"])
	}
	rec.WaitLast("hikvision/"+camID+"/availability", "online", 10*time.Second)
	rec.WaitFor("the picture", 10*time.Second, func(ms []mqtttest.Msg) bool {
		p, ok := mqtttest.Last(ms, "hikvision/"+camID+"/1/linedetection/picture")
		return ok && strings.HasPrefix(p.Payload, "\xff\xd8")
	})

	cam.TriggerEvents(sim.EventStep{Type: "linedetection", Channel: 1, Inactive: true})
	rec.WaitLast(state, "OFF", 15*time.Second)
	if m := events.waitFor("line crossing ends", 10*time.Second, func(m sseMsg) bool { return m.Type == "linedetection" }); m.Active {
		t.Fatalf("SSE: %+v, want inactive", m)
	}

	// the door station: a ring from its call status
	rings := openSSE(t, g.URL("/api/hikvision/events?src=gate&type=ring"))
	rec.WaitFor("the doorbell event entity", 20*time.Second, func(ms []mqtttest.Msg) bool {
		_, ok := mqtttest.Last(ms, "homeassistant/event/hikvision_"+doorID+"/ch0_ring/config")
		return ok
	})
	if err := door.Ring(); err != nil {
		t.Fatal(err)
	}
	ringTopic := "hikvision/" + doorID + "/0/ring/event"
	ms = rec.WaitFor("the ring event", 15*time.Second, func(ms []mqtttest.Msg) bool { _, ok := mqtttest.Last(ms, ringTopic); return ok })
	rm, _ := mqtttest.Last(ms, ringTopic)
	rv := mqtttest.Decode(t, rm)
	if rv["event_type"] != "ring" || rv["stream"] != "gate" || rm.Retained {
		t.Fatalf("ring event: %s (retained %v)", rm.Payload, rm.Retained)
	}
	if m := rings.waitFor("the ring", 10*time.Second, func(m sseMsg) bool { return m.Active }); m.Stream != "gate" || m.Type != "ring" {
		t.Fatalf("SSE ring: %+v", m)
	}
	ev, _ := mqtttest.Last(ms, "homeassistant/event/hikvision_"+doorID+"/ch0_ring/config")
	if c := mqtttest.Decode(t, ev); c["state_topic"] != ringTopic || c["device_class"] != "doorbell" {
		t.Fatalf("doorbell discovery: %s", ev.Payload)
	}

	// answer and unlock through go2rtc's API
	for _, q := range []string{"action=answer", "action=unlock&door=1"} {
		res, err := http.Post(g.URL("/api/hikvision/intercom?src=gate&"+q), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("intercom %s: %d", q, res.StatusCode)
		}
	}
	if st := door.DoorStats(); st.State != sim.CallOnCall || st.Unlocks[1] != 1 {
		t.Fatalf("door station after answer and unlock: %+v", st)
	}
	rec.WaitLast("hikvision/"+doorID+"/0/ring/state", "OFF", 10*time.Second)

	// the health view: the latest states and the MQTT connection
	var h struct {
		Events struct {
			Subscriptions []struct {
				Device      string `json:"device"`
				State       string `json:"state"`
				DoorStation bool   `json:"door_station"`
				Triggers    struct {
					State   string `json:"state"`
					NotSent []struct {
						Type   string `json:"type"`
						Stream string `json:"stream"`
					} `json:"not_sent"`
				} `json:"triggers"`
			} `json:"subscriptions"`
			States []sseMsg `json:"states"`
			MQTT   struct {
				Connected bool   `json:"connected"`
				Published uint64 `json:"published"`
			} `json:"mqtt"`
		} `json:"events"`
	}
	getJSON(t, g.URL("/api/hikvision"), &h)
	if len(h.Events.Subscriptions) != 2 || !h.Events.MQTT.Connected || h.Events.MQTT.Published == 0 {
		t.Fatalf("health events: %+v", h.Events)
	}
	for _, s := range h.Events.Subscriptions {
		want := "read"
		if s.DoorStation {
			want = "not_supported"
		}
		if s.Triggers.State != want || !s.DoorStation && (len(s.Triggers.NotSent) != 3 || s.Triggers.NotSent[1].Type != "tamper" || s.Triggers.NotSent[1].Stream != "porch") {
			t.Fatalf("health triggers of %s: %+v, want %s (camera: io, tamper, videoloss not sent)", s.Device, s.Triggers, want)
		}
	}
	found := false
	for _, s := range h.Events.States {
		if s.Stream == "porch" && s.Type == "linedetection" && !s.Active {
			found = true
		}
	}
	if !found {
		t.Fatalf("health states %+v: want porch linedetection inactive", h.Events.States)
	}
	if out := g.Output(); strings.Contains(out, pass) {
		t.Fatal("go2rtc's log shows the device password")
	}
}

// The broker restarts (losing its retained messages) while a motion is
// going on and another ends: after go2rtc reconnects, a new subscriber reads
// the right retained states.
func TestEventsBrokerRestart(t *testing.T) {
	t.Parallel()
	bin := e2e.Go2rtcBinary(t)
	b := mqtttest.StartBroker(t, "")
	cam := startSim(t, sim.Config{Personality: sim.PersonalityNVR})
	config := fmt.Sprintf("streams:\n  one: %q\n  two: %q\nhikvision:\n  events:\n    inactive_timeout: 10m\n%s",
		src(cam, pass, 1), src(cam, pass, 2), mqttConfig(b, "e2e-broker-restart"))
	e2e.StartGo2rtc(t, bin, config)
	id := topicID(cam.HTTPAddr())
	rec := mqtttest.Subscribe(t, b.URL(), "hikvision/#")
	waitUntil(t, "the alert stream", 20*time.Second, func() bool { return cam.OpenAlertStreams() == 1 })
	cam.TriggerEvents(sim.EventStep{Type: "VMD", Channel: 1}, sim.EventStep{Type: "VMD", Channel: 2})
	rec.WaitLast("hikvision/"+id+"/1/motion/state", "ON", 15*time.Second)
	rec.WaitLast("hikvision/"+id+"/2/motion/state", "ON", 15*time.Second)

	b.Kill()
	cam.TriggerEvents(sim.EventStep{Type: "VMD", Channel: 2, Inactive: true})
	b.Restart()

	fresh := mqtttest.Subscribe(t, b.URL(), "hikvision/#")
	fresh.WaitLast("hikvision/"+id+"/1/motion/state", "ON", 30*time.Second)
	m := fresh.WaitLast("hikvision/"+id+"/2/motion/state", "OFF", 30*time.Second)
	fresh.WaitLast("hikvision/bridge/availability", "online", 10*time.Second)
	if !m.Retained {
		// it may come live if the fresh subscriber connected first; the
		// retained copy must be there for the next one
		late := mqtttest.Subscribe(t, b.URL(), "hikvision/"+id+"/2/motion/state")
		if m := late.WaitLast("hikvision/"+id+"/2/motion/state", "OFF", 10*time.Second); !m.Retained {
			t.Fatal("channel 2's OFF is not retained after the broker restart")
		}
	}
}

// The device reboots while a motion is active: its availability goes
// offline and the motion OFF (no stale ON); once it is back, events resume.
func TestEventsDeviceReboot(t *testing.T) {
	t.Parallel()
	bin := e2e.Go2rtcBinary(t)
	b := mqtttest.StartBroker(t, "")
	cam := startSim(t, sim.Config{Events: sim.EventsConfig{Heartbeat: time.Second}})
	config := fmt.Sprintf("streams:\n  cam: %q\nhikvision:\n  events:\n    inactive_timeout: 10m\n%s",
		src(cam, pass, 1), mqttConfig(b, "e2e-reboot"))
	g := e2e.StartGo2rtc(t, bin, config)
	id := topicID(cam.HTTPAddr())
	rec := mqtttest.Subscribe(t, b.URL(), "hikvision/#")
	waitUntil(t, "the alert stream", 20*time.Second, func() bool { return cam.OpenAlertStreams() == 1 })
	cam.TriggerEvents(sim.EventStep{Type: "VMD", Channel: 1})
	state := "hikvision/" + id + "/1/motion/state"
	rec.WaitLast(state, "ON", 15*time.Second)

	if err := cam.Reboot(6 * time.Second); err != nil {
		t.Fatal(err)
	}
	rec.WaitLast("hikvision/"+id+"/availability", "offline", 20*time.Second)
	rec.WaitLast(state, "OFF", 5*time.Second)
	<-cam.Up()
	rec.WaitLast("hikvision/"+id+"/availability", "online", 90*time.Second)
	if m, _ := mqtttest.Last(rec.Messages(), state); m.Payload != "OFF" {
		t.Fatalf("after the reboot the motion is %s before any new event", m.Payload)
	}
	waitUntil(t, "the alert stream again", 10*time.Second, func() bool { return cam.OpenAlertStreams() == 1 })
	cam.TriggerEvents(sim.EventStep{Type: "VMD", Channel: 1})
	rec.WaitLast(state, "ON", 15*time.Second)

	var h struct {
		Events struct {
			Subscriptions []struct {
				Connects int `json:"connects"`
			} `json:"subscriptions"`
		} `json:"events"`
	}
	getJSON(t, g.URL("/api/hikvision"), &h)
	if len(h.Events.Subscriptions) != 1 || h.Events.Subscriptions[0].Connects < 2 {
		t.Fatalf("subscriptions after the reboot: %+v", h.Events.Subscriptions)
	}
}

// A wrong password, with events on and the video asked for: the event
// subscription, the door-station reading and the video share the login
// guard's budget; the device is never locked and counts no more failed
// logins than the guard allows.
func TestEventsWrongPasswordNeverLocks(t *testing.T) {
	t.Parallel()
	bin := e2e.Go2rtcBinary(t)
	const maxFailures = 5
	dev := startSim(t, sim.Config{Personality: sim.PersonalityDoorStation, MaxFailures: maxFailures, LockDuration: 30 * time.Minute})
	config := fmt.Sprintf("streams:\n  gate: %q\nhikvision:\n  events: true\n", src(dev, "wrong-password", 1))
	g := e2e.StartGo2rtc(t, bin, config)

	end := time.Now().Add(15 * time.Second)
	for time.Now().Before(end) {
		// the video, asked for again and again (each a dial of the source)
		res, err := (&http.Client{Timeout: 5 * time.Second}).Get(g.URL("/api/frame.jpeg?src=gate"))
		if err == nil {
			res.Body.Close()
		}
		<-time.After(time.Second)
	}
	locked, _, left := dev.LockStatus("127.0.0.1")
	cs := dev.Client("127.0.0.1")
	var h struct {
		Devices []struct {
			FailedLogins int `json:"failed_logins"`
			LoginBudget  int `json:"login_budget"`
		} `json:"devices"`
		Events struct {
			Subscriptions []struct {
				LastError string `json:"last_error"`
			} `json:"subscriptions"`
		} `json:"events"`
	}
	getJSON(t, g.URL("/api/hikvision"), &h)
	t.Logf("device: %d failed logins (ISAPI %d, RTSP %d), locked %v, %d tries left; health %+v",
		cs.FailedLogins+cs.RTSPFailedLogins, cs.FailedLogins, cs.RTSPFailedLogins, locked, left, h)
	if locked {
		t.Fatal("the device locked go2rtc out")
	}
	if len(h.Devices) != 1 || h.Devices[0].LoginBudget == 0 {
		t.Fatalf("health devices: %+v", h.Devices)
	}
	if n := cs.FailedLogins + cs.RTSPFailedLogins; n == 0 || n > h.Devices[0].LoginBudget {
		t.Fatalf("the device counted %d failed logins; the guard allows %d", n, h.Devices[0].LoginBudget)
	}
	if len(h.Events.Subscriptions) != 1 || h.Events.Subscriptions[0].LastError == "" {
		t.Fatalf("the subscription does not say why it is not connected: %+v", h.Events.Subscriptions)
	}
	if dev.EventStats().Streams != 0 {
		t.Fatal("an alert stream opened with a wrong password")
	}
	if strings.Contains(g.Output(), "wrong-password") {
		t.Fatal("go2rtc's log shows the password")
	}
}
