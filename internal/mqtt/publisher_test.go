package mqtt_test

import (
	"errors"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/mqtt"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/mqtt/mqtttest"
)

const (
	wait   = 20 * time.Second
	camera = "127.0.0.1:8080" // device ids: 127_0_0_1_8080
	door   = "10.0.0.7:80"    // 10_0_0_7_80
)

func newPublisher(t *testing.T, cfg mqtt.Config) *mqtt.Publisher {
	t.Helper()
	p, err := mqtt.New(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// checkDiscovery asserts the fields Home Assistant needs in a discovery
// config and returns it. (Whether it is retained shows to later
// subscribers only: a broker clears the flag on live deliveries.)
func checkDiscovery(t *testing.T, ms []mqtttest.Msg, topic string) map[string]any {
	t.Helper()
	m, ok := mqtttest.Last(ms, topic)
	if !ok {
		t.Fatalf("no discovery config on %s; got:\n%s", topic, mqtttest.Dump(ms))
	}
	c := mqtttest.Decode(t, m)
	want := []string{"name", "unique_id", "object_id", "default_entity_id", "availability", "availability_mode", "device", "origin"}
	if strings.Contains(topic, "/image/") {
		want = append(want, "image_topic", "content_type")
	} else {
		want = append(want, "state_topic")
	}
	for _, k := range want {
		if _, ok := c[k]; !ok {
			t.Errorf("%s: no %q in %s", topic, k, m.Payload)
		}
	}
	if c["availability_mode"] != "all" {
		t.Errorf("%s: availability_mode = %v, want all", topic, c["availability_mode"])
	}
	av, _ := c["availability"].([]any)
	var avTopics []string
	for _, a := range av {
		am, _ := a.(map[string]any)
		avTopics = append(avTopics, am["topic"].(string))
		if am["payload_available"] != "online" || am["payload_not_available"] != "offline" {
			t.Errorf("%s: availability payloads %v", topic, am)
		}
	}
	if len(avTopics) != 2 || avTopics[0] != "hikvision/bridge/availability" || !strings.HasSuffix(avTopics[1], "/availability") {
		t.Errorf("%s: availability topics %v, want the bridge's and the device's", topic, avTopics)
	}
	dev, _ := c["device"].(map[string]any)
	if dev["manufacturer"] != "Hikvision" {
		t.Errorf("%s: device.manufacturer = %v", topic, dev["manufacturer"])
	}
	if ids, _ := dev["identifiers"].([]any); len(ids) == 0 {
		t.Errorf("%s: device.identifiers empty", topic)
	}
	comp := strings.Split(topic, "/")[1]
	if de, _ := c["default_entity_id"].(string); de != comp+"."+c["object_id"].(string) {
		t.Errorf("%s: default_entity_id %q is not %s.<object_id %v>", topic, de, comp, c["object_id"])
	}
	return c
}

func TestDiscoveryStatesAvailabilityRing(t *testing.T) {
	b := mqtttest.StartBroker(t, "")
	rec := mqtttest.Subscribe(t, b.URL(), "#")
	p := newPublisher(t, mqtt.Config{Broker: b.URL()})

	must(t, p.UpdateDevice(mqtt.DeviceHealth{Device: camera, Name: "Front camera", Model: "DS-2CD2143G2-I", Serial: "DS-2CD2143G2-I20210101AAWRF12345678", Firmware: "V5.7.3", Online: true}))
	must(t, p.UpdateDevice(mqtt.DeviceHealth{Device: door, Name: "Gate", Model: "DS-KV6113-WPE1", Serial: "Q12345678", Firmware: "V2.2.50", Online: true}))
	t0 := time.Date(2026, 12, 5, 6, 0, 0, 0, time.UTC)
	must(t, p.Publish(mqtt.Event{Device: camera, Stream: "front", Channel: 1, Type: "motion", Active: true, Time: t0}))
	must(t, p.Publish(mqtt.Event{Device: camera, Stream: "front", Channel: 1, Type: "linedetection", Active: true, Time: t0, Picture: []byte("\xff\xd8\xff jpeg")}))
	must(t, p.Publish(mqtt.Event{Device: door, Stream: "gate", Channel: 1, Type: "ring", Active: true, Time: t0}))

	const (
		motionState = "hikvision/127_0_0_1_8080/1/motion/state"
		lineState   = "hikvision/127_0_0_1_8080/1/linedetection/state"
		ringState   = "hikvision/10_0_0_7_80/1/ring/state"
		ringEvent   = "hikvision/10_0_0_7_80/1/ring/event"
	)
	rec.WaitLast("hikvision/bridge/availability", "online", wait)
	ms := rec.WaitFor("states, ring event and discovery", wait, func(ms []mqtttest.Msg) bool {
		m1, ok1 := mqtttest.Last(ms, motionState)
		_, ok2 := mqtttest.Last(ms, ringEvent)
		_, ok3 := mqtttest.Last(ms, "homeassistant/event/hikvision_10_0_0_7_80/ch1_ring/config")
		return ok1 && m1.Payload == "ON" && ok2 && ok3
	})

	c := checkDiscovery(t, ms, "homeassistant/binary_sensor/hikvision_127_0_0_1_8080/ch1_motion/config")
	if c["state_topic"] != motionState || c["payload_on"] != "ON" || c["payload_off"] != "OFF" || c["device_class"] != "motion" {
		t.Errorf("motion config: %v", c)
	}
	if c["json_attributes_topic"] != "hikvision/127_0_0_1_8080/1/motion/attributes" {
		t.Errorf("motion json_attributes_topic = %v", c["json_attributes_topic"])
	}
	if c["unique_id"] != "hikvision_127_0_0_1_8080_ch1_motion" || c["name"] != "front Motion" {
		t.Errorf("motion unique_id/name: %v / %v", c["unique_id"], c["name"])
	}
	dev := c["device"].(map[string]any)
	if dev["name"] != "Front camera" || dev["model"] != "DS-2CD2143G2-I" || dev["sw_version"] != "V5.7.3" || dev["serial_number"] != "DS-2CD2143G2-I20210101AAWRF12345678" {
		t.Errorf("device block: %v", dev)
	}
	if ids := dev["identifiers"].([]any); !slices.Contains(ids, any("hikvision_DS-2CD2143G2-I20210101AAWRF12345678")) {
		t.Errorf("device identifiers %v lack the serial", ids)
	}
	lc := checkDiscovery(t, ms, "homeassistant/binary_sensor/hikvision_127_0_0_1_8080/ch1_linedetection/config")
	if lc["state_topic"] != lineState || lc["device_class"] != "motion" {
		t.Errorf("line crossing config: %v", lc)
	}
	img := checkDiscovery(t, ms, "homeassistant/image/hikvision_127_0_0_1_8080/ch1_linedetection/config")
	if img["image_topic"] != "hikvision/127_0_0_1_8080/1/linedetection/picture" || img["content_type"] != "image/jpeg" ||
		img["unique_id"] != "hikvision_127_0_0_1_8080_ch1_linedetection_picture" || img["default_entity_id"] != "image.hikvision_127_0_0_1_8080_ch1_linedetection_picture" {
		t.Errorf("picture image config: %v", img)
	}
	if _, ok := mqtttest.Last(ms, "homeassistant/image/hikvision_127_0_0_1_8080/ch1_motion/config"); ok {
		t.Error("an image entity for motion, which came without a picture")
	}
	ev := checkDiscovery(t, ms, "homeassistant/event/hikvision_10_0_0_7_80/ch1_ring/config")
	if ev["state_topic"] != ringEvent || ev["device_class"] != "doorbell" {
		t.Errorf("ring event config: %v", ev)
	}
	if et, _ := ev["event_types"].([]any); len(et) != 1 || et[0] != "ring" {
		t.Errorf("ring event_types = %v, want [ring]", ev["event_types"])
	}
	if ev["unique_id"] == checkDiscovery(t, ms, "homeassistant/binary_sensor/hikvision_10_0_0_7_80/ch1_ring/config")["unique_id"] {
		t.Error("ring event entity and ring binary sensor share a unique_id")
	}

	for topic, want := range map[string]string{
		motionState: "ON", lineState: "ON", ringState: "ON",
		"hikvision/127_0_0_1_8080/availability": "online",
		"hikvision/10_0_0_7_80/availability":    "online",
	} {
		m, ok := mqtttest.Last(ms, topic)
		if !ok || m.Payload != want {
			t.Errorf("%s = %+v, want %q", topic, m, want)
		}
	}
	re, _ := mqtttest.Last(ms, ringEvent)
	if re.Retained {
		t.Error("ring event message is retained; Home Assistant ignores retained event messages")
	}
	if rv := mqtttest.Decode(t, re); rv["event_type"] != "ring" || rv["stream"] != "gate" || rv["channel"] != float64(1) || rv["time"] != "2026-12-05T06:00:00Z" {
		t.Errorf("ring event payload %v", rv)
	}
	pic, ok := mqtttest.Last(ms, "hikvision/127_0_0_1_8080/1/linedetection/picture")
	if !ok || pic.Payload != "\xff\xd8\xff jpeg" {
		t.Errorf("picture = %+v", pic)
	}
	at, _ := mqtttest.Last(ms, "hikvision/127_0_0_1_8080/1/motion/attributes")
	if a := mqtttest.Decode(t, at); a["stream"] != "front" || a["active"] != true || a["since"] != "2026-12-05T06:00:00Z" || a["device"] != camera {
		t.Errorf("motion attributes %v", a)
	}

	// A repeated active is no new ring; inactive turns states OFF.
	must(t, p.Publish(mqtt.Event{Device: door, Channel: 1, Type: "ring", Active: true}))
	must(t, p.Publish(mqtt.Event{Device: door, Channel: 1, Type: "ring", Active: false}))
	must(t, p.Publish(mqtt.Event{Device: camera, Channel: 1, Type: "motion", Active: false}))
	rec.WaitLast(ringState, "OFF", wait)
	rec.WaitLast(motionState, "OFF", wait)
	ms = rec.Messages()
	if n := count(ms, ringEvent); n != 1 {
		t.Errorf("%d ring event messages, want 1 (a repeated active is the same ring)", n)
	}

	// The device goes away: unavailable, and its active states OFF.
	must(t, p.UpdateDevice(mqtt.DeviceHealth{Device: camera, Name: "Front camera", Model: "DS-2CD2143G2-I", Serial: "DS-2CD2143G2-I20210101AAWRF12345678", Firmware: "V5.7.3", Online: false}))
	rec.WaitLast("hikvision/127_0_0_1_8080/availability", "offline", wait)
	rec.WaitLast(lineState, "OFF", wait)

	// A new subscriber (Home Assistant restarting) sees it all retained.
	late := mqtttest.Subscribe(t, b.URL(), "#")
	ms = late.WaitFor("retained discovery and states", wait, func(ms []mqtttest.Msg) bool {
		_, ok := mqtttest.Last(ms, "homeassistant/event/hikvision_10_0_0_7_80/ch1_ring/config")
		m, ok2 := mqtttest.Last(ms, lineState)
		return ok && ok2 && m.Payload == "OFF"
	})
	if _, ok := mqtttest.Last(ms, ringEvent); ok {
		t.Error("a late subscriber got a ring event: it was retained")
	}
	for topic, want := range map[string]string{
		"hikvision/127_0_0_1_8080/availability": "offline",
		"hikvision/10_0_0_7_80/availability":    "online",
		"hikvision/bridge/availability":         "online",
		motionState:                             "OFF",
		ringState:                               "OFF",
		"homeassistant/binary_sensor/hikvision_127_0_0_1_8080/ch1_motion/config": "",
		"homeassistant/event/hikvision_10_0_0_7_80/ch1_ring/config":              "",
		"hikvision/127_0_0_1_8080/1/linedetection/picture":                       "\xff\xd8\xff jpeg",
	} {
		m, ok := mqtttest.Last(ms, topic)
		if !ok || !m.Retained || (want != "" && m.Payload != want) {
			t.Errorf("late subscriber: %s = %+v, want %q retained", topic, m, want)
		}
	}

	st := p.Stats()
	if !st.Connected || st.Connects != 1 || st.Published == 0 || st.Dropped != 0 || st.Entities != 3 || st.Devices != 2 {
		t.Errorf("stats %+v", st)
	}

	// Close says the bridge is offline.
	must(t, p.Close())
	rec.WaitLast("hikvision/bridge/availability", "offline", wait)
	if err := p.Publish(mqtt.Event{Device: camera, Channel: 1, Type: "motion", Active: true}); !errors.Is(err, mqtt.ErrClosed) {
		t.Errorf("Publish after Close: %v, want ErrClosed", err)
	}
}

func count(ms []mqtttest.Msg, topic string) int {
	n := 0
	for _, m := range ms {
		if m.Topic == topic {
			n++
		}
	}
	return n
}

// A killed publisher (no Close) leaves the broker to publish its will.
func TestLastWill(t *testing.T) {
	b := mqtttest.StartBroker(t, "")
	g := newGate(t, b.Addr())
	rec := mqtttest.Subscribe(t, b.URL(), "hikvision/bridge/availability")
	p := newPublisher(t, mqtt.Config{Broker: g.url(), ClientID: "will-test"})
	rec.WaitLast("hikvision/bridge/availability", "online", wait)
	g.setOpen(false) // the connection breaks without a DISCONNECT
	m := rec.WaitLast("hikvision/bridge/availability", "offline", 60*time.Second)
	if !strings.Contains(m.Payload, "offline") {
		t.Fatal(m)
	}
	_ = p
}

// Retained states an earlier run left behind are turned OFF on connect.
func TestStaleRetainedCleared(t *testing.T) {
	b := mqtttest.StartBroker(t, "")
	old := paho.NewClient(paho.NewClientOptions().AddBroker(b.URL()).SetClientID("old-run"))
	if tok := old.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	for topic, payload := range map[string]string{
		"hikvision/gone_device/3/motion/state":    "ON",
		"hikvision/gone_device/availability":      "online",
		"hikvision/127_0_0_1_8080/1/motion/state": "ON",
		"hikvision/127_0_0_1_8080/availability":   "online",
	} {
		if tok := old.Publish(topic, 1, true, payload); !tok.WaitTimeout(wait) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	old.Disconnect(100)

	rec := mqtttest.Subscribe(t, b.URL(), "hikvision/#")
	p := newPublisher(t, mqtt.Config{Broker: b.URL()})
	must(t, p.Declare(camera, "front", 1, "motion", "fielddetection"))
	rec.WaitLast("hikvision/gone_device/3/motion/state", "OFF", wait)
	rec.WaitLast("hikvision/gone_device/availability", "offline", wait)
	rec.WaitLast("hikvision/127_0_0_1_8080/1/motion/state", "OFF", wait)
	rec.WaitLast("hikvision/127_0_0_1_8080/1/fielddetection/state", "OFF", wait)
	// Declared, but no health yet: not known to be online.
	rec.WaitLast("hikvision/127_0_0_1_8080/availability", "offline", wait)
	must(t, p.UpdateDevice(mqtt.DeviceHealth{Device: camera, Online: true}))
	rec.WaitLast("hikvision/127_0_0_1_8080/availability", "online", wait)
}

// The broker is killed, events meanwhile are coalesced, and after the
// broker comes back (empty: no persistence) discovery and states are all
// there and right.
func TestBrokerRestart(t *testing.T) {
	b := mqtttest.StartBroker(t, "")
	g := newGate(t, b.Addr())
	rec := mqtttest.Subscribe(t, b.URL(), "#")
	p := newPublisher(t, mqtt.Config{Broker: g.url(), Queue: 4})
	must(t, p.UpdateDevice(mqtt.DeviceHealth{Device: door, Name: "Gate", Serial: "Q1", Online: true}))
	must(t, p.Publish(mqtt.Event{Device: camera, Channel: 1, Type: "motion", Active: true}))
	rec.WaitLast("hikvision/127_0_0_1_8080/1/motion/state", "ON", wait)
	rec.Close()

	b.Kill()
	waitUntil(t, "publisher to see the broker gone", wait, func() bool { return !p.Stats().Connected })
	g.setOpen(false)

	// Meanwhile: motion flaps and ends OFF, line crossing starts, the door
	// rings (and stops) and many events overflow the event queue.
	start := time.Now()
	for i := 0; i < 1000; i++ {
		must(t, p.Publish(mqtt.Event{Device: camera, Channel: 1, Type: "motion", Active: i%2 == 0}))
	}
	must(t, p.Publish(mqtt.Event{Device: camera, Channel: 2, Type: "linedetection", Active: true}))
	must(t, p.Publish(mqtt.Event{Device: door, Channel: 1, Type: "ring", Active: true}))
	t.Logf("1002 events while the broker is down: %s", time.Since(start))
	st := p.Stats()
	if st.Connected || st.Dropped == 0 || st.Pending > 4+3*3+2 {
		t.Errorf("while down: %+v (want coalesced: the event queue of 4 full, states by topic)", st)
	}

	b.Restart()
	rec2 := mqtttest.Subscribe(t, b.URL(), "#")
	g.setOpen(true)
	ms := rec2.WaitFor("republished discovery and states", wait, func(ms []mqtttest.Msg) bool {
		m, ok := mqtttest.Last(ms, "hikvision/bridge/availability")
		return ok && m.Payload == "online"
	})
	// Everything comes before the bridge's online.
	for topic, want := range map[string]string{
		"hikvision/127_0_0_1_8080/1/motion/state":        "OFF",
		"hikvision/127_0_0_1_8080/2/linedetection/state": "ON",
		"hikvision/10_0_0_7_80/1/ring/state":             "ON",
		"hikvision/127_0_0_1_8080/availability":          "online",
		"hikvision/10_0_0_7_80/availability":             "online",
	} {
		if m, ok := mqtttest.Last(ms, topic); !ok || m.Payload != want {
			t.Errorf("%s = %q (%v), want %q", topic, m.Payload, ok, want)
		}
	}
	checkDiscovery(t, ms, "homeassistant/binary_sensor/hikvision_127_0_0_1_8080/ch1_motion/config")
	checkDiscovery(t, ms, "homeassistant/binary_sensor/hikvision_127_0_0_1_8080/ch2_linedetection/config")
	ev := checkDiscovery(t, ms, "homeassistant/event/hikvision_10_0_0_7_80/ch1_ring/config")
	if dev := ev["device"].(map[string]any); dev["name"] != "Gate" {
		t.Errorf("ring device block after restart: %v", dev)
	}
	// The ring survived in the queue: it was among the last 4 event messages.
	rec2.WaitFor("the queued ring event", wait, func(ms []mqtttest.Msg) bool {
		m, ok := mqtttest.Last(ms, "hikvision/10_0_0_7_80/1/ring/event")
		return ok && !m.Retained && strings.Contains(m.Payload, `"event_type":"ring"`)
	})
	if n := count(ms, "hikvision/127_0_0_1_8080/1/motion/state"); n != 1 {
		t.Errorf("motion state published %d times after the restart, want 1 (coalesced)", n)
	}
	st = p.Stats()
	if st.Connects != 2 || !st.Connected {
		t.Errorf("after restart: %+v", st)
	}
}

// goroutines counts the goroutines running paho or this package.
func goroutines() int { return countStacks("paho.mqtt.golang", "internal/mqtt.") }

// countStacks counts the goroutines whose stack holds any of the names.
func countStacks(names ...string) int {
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	c := 0
	for _, g := range strings.Split(string(buf[:n]), "\n\n") {
		for _, name := range names {
			if strings.Contains(g, name) {
				c++
				break
			}
		}
	}
	return c
}

// busyPublisherStacks lists the stacks of the publisher's goroutines that
// still do something. The goroutine of run closes done as its very last act
// and may not have returned yet when Close sees it closed: with nothing but
// run and the runtime on its stack it only has to return, and is left out.
func busyPublisherStacks() []string {
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	var busy []string
	for _, g := range strings.Split(string(buf[:n]), "\n\n") {
		if !strings.Contains(g, "internal/mqtt.(*Publisher)") {
			continue
		}
		exiting := true
		for _, line := range strings.Split(g, "\n")[1:] {
			if line == "" || strings.HasPrefix(line, "\t") || strings.HasPrefix(line, "created by ") {
				continue
			}
			if !strings.HasPrefix(line, "runtime.") && !strings.Contains(line, "internal/mqtt.(*Publisher).run(") {
				exiting = false
				break
			}
		}
		if !exiting {
			busy = append(busy, g)
		}
	}
	return busy
}

// A broker that is never there: publishing never blocks, memory stays
// bounded, Close is prompt and leaves no goroutine.
func TestBrokerNeverUp(t *testing.T) {
	for _, tc := range []struct {
		name   string
		broker func(t *testing.T) string
	}{
		{"refused", func(t *testing.T) string { return "tcp://127.0.0.1:" + itoa(mqtttest.FreePort(t)) }},
		{"silent", func(t *testing.T) string { // accepts and never answers CONNECT
			ln, err := netListen()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = ln.Close() })
			go func() {
				var held []net.Conn // never answered, closed with the listener
				defer func() {
					for _, c := range held {
						_ = c.Close()
					}
				}()
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					held = append(held, c)
				}
			}()
			return "tcp://" + ln.Addr().String()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := goroutines()
			p, err := mqtt.New(mqtt.Config{Broker: tc.broker(t), Queue: 16, ConnectTimeout: 30}, zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 20000; i++ {
				must(t, p.Publish(mqtt.Event{Device: camera, Channel: 1 + i%4, Type: "motion", Active: i%3 == 0, Picture: []byte("pic")}))
			}
			st := p.Stats()
			if st.Connected || st.Pending > 16+4*4+1 || st.Dropped == 0 { // queue + 4 topics per entity + availability
				t.Errorf("stats %+v: want not connected, pending within the bound, drops counted", st)
			}
			if tc.name == "refused" {
				waitUntil(t, "a failed attempt recorded", wait, func() bool { s := p.Stats(); return s.Attempts > 0 && s.LastError != "" })
			}
			start := time.Now()
			if err := p.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("Close took %s while connecting (connect timeout 30 s)", d)
			}
			if left := busyPublisherStacks(); len(left) != 0 {
				t.Errorf("%d publisher goroutines still running after Close returned:\n%s", len(left), strings.Join(left, "\n\n"))
			}
			waitUntil(t, "publisher goroutines gone", 5*time.Second, func() bool { return goroutines() <= base })
		})
	}
}

func TestPasswordBroker(t *testing.T) {
	mqtttest.MosquittoPath(t)
	dir := t.TempDir()
	pw := dir + "/passwd"
	if out, err := runCmd("mosquitto_passwd", "-b", "-c", pw, "ha", "s3cret-Pw"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mosquitto_passwd: %v %s", err, out)
		}
		t.Skipf("mosquitto_passwd: %v %s", err, out)
	}
	b := mqtttest.StartBroker(t, "allow_anonymous false\npassword_file "+pw)

	bad := newPublisher(t, mqtt.Config{Broker: b.URL(), Username: "ha", Password: "wrong-Pw", ClientID: "bad"})
	waitUntil(t, "the refused login recorded", wait, func() bool { return bad.Stats().LastError != "" })
	if st := bad.Stats(); st.Connected || strings.Contains(st.LastError, "wrong-Pw") {
		t.Errorf("wrong password: %+v", st)
	} else {
		t.Logf("wrong password: %s", st.LastError)
	}

	rec := mqtttest.Subscribe(t, b.URL(), "hikvision/#", func(o *paho.ClientOptions) { o.SetUsername("ha").SetPassword("s3cret-Pw") })
	good := newPublisher(t, mqtt.Config{Broker: b.URL(), Username: "ha", Password: "s3cret-Pw", ClientID: "good"})
	must(t, good.Publish(mqtt.Event{Device: camera, Channel: 1, Type: "motion", Active: true}))
	rec.WaitLast("hikvision/127_0_0_1_8080/1/motion/state", "ON", wait)
}

func TestPublishRejectsBadEvents(t *testing.T) {
	p := newPublisher(t, mqtt.Config{Broker: "tcp://127.0.0.1:" + itoa(mqtttest.FreePort(t))})
	for _, ev := range []mqtt.Event{
		{Device: "", Channel: 1, Type: "motion"},
		{Device: camera, Channel: -1, Type: "motion"},
		{Device: camera, Channel: 1, Type: ""},
		{Device: camera, Channel: 1, Type: "///"},
	} {
		err := p.Publish(ev)
		var ee *mqtt.EventError
		if !errors.Is(err, mqtt.ErrInvalidEvent) || !errors.As(err, &ee) || ee.Field == "" {
			t.Errorf("Publish(%+v) = %v, want an EventError naming the field", ev, err)
		}
	}
	if st := p.Stats(); st.Entities != 0 {
		t.Errorf("bad events made entities: %+v", st)
	}
}

// Home Assistant's birth message brings every discovery config and state
// again; with discovery off none is published.
func TestHomeAssistantBirthAndDiscoveryOff(t *testing.T) {
	b := mqtttest.StartBroker(t, "")
	rec := mqtttest.Subscribe(t, b.URL(), "#")
	p := newPublisher(t, mqtt.Config{Broker: b.URL(), ClientID: "with-discovery"})
	off := false
	q := newPublisher(t, mqtt.Config{Broker: b.URL(), ClientID: "no-discovery", TopicPrefix: "site2/hik", Discovery: &off})
	must(t, p.Publish(mqtt.Event{Device: camera, Channel: 1, Type: "fielddetection", Active: true}))
	must(t, q.Publish(mqtt.Event{Device: camera, Channel: 1, Type: "fielddetection", Active: true}))
	const cfg = "homeassistant/binary_sensor/hikvision_127_0_0_1_8080/ch1_fielddetection/config"
	rec.WaitLast("site2/hik/127_0_0_1_8080/1/fielddetection/state", "ON", wait)
	rec.WaitFor("discovery config", wait, func(ms []mqtttest.Msg) bool { return count(ms, cfg) == 1 })

	ha := paho.NewClient(paho.NewClientOptions().AddBroker(b.URL()).SetClientID("home-assistant"))
	if tok := ha.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer ha.Disconnect(100)
	if tok := ha.Publish("homeassistant/status", 1, false, "online"); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	ms := rec.WaitFor("discovery published again after the birth message", wait, func(ms []mqtttest.Msg) bool {
		return count(ms, cfg) == 2 && count(ms, "hikvision/127_0_0_1_8080/1/fielddetection/state") == 2
	})
	c := checkDiscovery(t, ms, cfg)
	if c["device_class"] != "motion" || c["name"] != "Channel 1 Intrusion" {
		t.Errorf("intrusion config: %v", c)
	}
	for _, m := range ms {
		if strings.HasPrefix(m.Topic, "homeassistant/") && strings.Contains(m.Payload, "site2/hik") {
			t.Errorf("discovery off, yet %s: %s", m.Topic, m.Payload)
		}
	}
	// The device restarts: offline turns the state OFF; online again makes
	// it available with the state it had after the restart (OFF until told).
	must(t, p.UpdateDevice(mqtt.DeviceHealth{Device: camera, Online: false}))
	rec.WaitLast("hikvision/127_0_0_1_8080/availability", "offline", wait)
	rec.WaitLast("hikvision/127_0_0_1_8080/1/fielddetection/state", "OFF", wait)
	must(t, p.UpdateDevice(mqtt.DeviceHealth{Device: camera, Online: true}))
	rec.WaitLast("hikvision/127_0_0_1_8080/availability", "online", wait)
	if m, _ := mqtttest.Last(rec.Messages(), "hikvision/127_0_0_1_8080/1/fielddetection/state"); m.Payload != "OFF" {
		t.Errorf("state after the device came back: %q", m.Payload)
	}
}

// While connected, an event that goes on and off at once still shows ON
// first, on every channel.
func TestShortPulsesKept(t *testing.T) {
	b := mqtttest.StartBroker(t, "")
	rec := mqtttest.Subscribe(t, b.URL(), "hikvision/+/+/+/state")
	p := newPublisher(t, mqtt.Config{Broker: b.URL()})
	const n = 50
	for ch := 1; ch <= n; ch++ {
		must(t, p.Declare(camera, "", ch, "motion"))
	}
	waitUntil(t, "connected", wait, func() bool { return p.Stats().Connected })
	rec.WaitFor("declared states", wait, func(ms []mqtttest.Msg) bool { return len(ms) >= n })
	for ch := 1; ch <= n; ch++ {
		must(t, p.Publish(mqtt.Event{Device: camera, Channel: ch, Type: "motion", Active: true}))
		must(t, p.Publish(mqtt.Event{Device: camera, Channel: ch, Type: "motion", Active: false}))
	}
	ms := rec.WaitFor("every channel back to OFF", wait, func(ms []mqtttest.Msg) bool {
		for ch := 1; ch <= n; ch++ {
			m, ok := mqtttest.Last(ms, "hikvision/127_0_0_1_8080/"+itoa(ch)+"/motion/state")
			if !ok || m.Payload != "OFF" || count(ms, m.Topic) < 3 {
				return false
			}
		}
		return true
	})
	for ch := 1; ch <= n; ch++ {
		topic := "hikvision/127_0_0_1_8080/" + itoa(ch) + "/motion/state"
		var seq []string
		for _, m := range ms {
			if m.Topic == topic {
				seq = append(seq, m.Payload)
			}
		}
		if strings.Join(seq, ",") != "OFF,ON,OFF" {
			t.Errorf("channel %d: %v, want OFF (declared), ON, OFF", ch, seq)
		}
	}
}
