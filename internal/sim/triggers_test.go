package sim_test

import (
	"encoding/xml"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

const triggersPath = "/ISAPI/Event/triggers"

// triggerXML is one EventTrigger as a client reads it.
type triggerXML struct {
	ID    string `xml:"id"`
	Type  string `xml:"eventType"`
	Video string `xml:"videoInputChannelID"`
	Dyn   string `xml:"dynVideoInputChannelID"`
	IO    string `xml:"inputIOPortID"`
	List  *struct {
		Methods []string `xml:"EventTriggerNotification>notificationMethod"`
	} `xml:"EventTriggerNotificationList"`
}

// short writes a trigger as "id type video/dyn/io [methods]" ("-" for no list).
func (t triggerXML) short() string {
	m := "-"
	if t.List != nil {
		m = "[" + strings.Join(t.List.Methods, ",") + "]"
	}
	return t.ID + " " + t.Type + " " + t.Video + "/" + t.Dyn + "/" + t.IO + " " + m
}

func readTriggers(t *testing.T, a *authed, wrapped bool) (xml.Name, []string) {
	t.Helper()
	body := a.getOK(triggersPath)
	var out []string
	if wrapped {
		x := decode[struct {
			XMLName  xml.Name
			Triggers []triggerXML `xml:"EventTriggerList>EventTrigger"`
		}](t, body)
		for _, tr := range x.Triggers {
			out = append(out, tr.short())
		}
		return x.XMLName, out
	}
	x := decode[struct {
		XMLName  xml.Name
		Triggers []triggerXML `xml:"EventTrigger"`
	}](t, body)
	for _, tr := range x.Triggers {
		out = append(out, tr.short())
	}
	return x.XMLName, out
}

func TestTriggersCamera(t *testing.T) {
	d := start(t, sim.Config{})
	a := login(t, d, "admin", "hik12345")
	root, got := readTriggers(t, a, false)
	want := []string{
		"VMD-1 VMD 1// [center,email]",
		"linedetection-1 linedetection 1// [center]",
		"fielddetection-1 fielddetection 1// [center,record]",
		"tamperdetection-1 tamperdetection 1// []",
		"videoloss-1 videoloss 1// -",
		"IO-1 IO //1 [IO]",
	}
	if root.Local != "EventTriggerList" || root.Space != sim.NamespaceHikvision || !reflect.DeepEqual(got, want) {
		t.Fatalf("<%s xmlns=%s>\n got %q\nwant %q", root.Local, root.Space, got, want)
	}
	if n := d.Client("127.0.0.1").Requests[triggersPath]; n != 1 {
		t.Fatalf("%d requests counted for %s, want 1", n, triggersPath)
	}
	wantStatus(t, a, "PUT", triggersPath, 403, 4, "methodNotAllowed")
}

// NVR: IP channels counted from 33 with the IP channel in
// dynVideoInputChannelID, as the NVR's alert stream numbers them; a DVR's
// analog inputs keep their number.
func TestTriggersRecorders(t *testing.T) {
	d := start(t, sim.Config{Personality: sim.PersonalityNVR, Namespace: sim.NamespaceHikvisionV1})
	root, got := readTriggers(t, login(t, d, "admin", "hik12345"), false)
	var want []string
	for ch := 1; ch <= 4; ch++ {
		v, dyn := strconv.Itoa(32+ch), strconv.Itoa(ch)
		want = append(want, "VMD-"+dyn+" VMD "+v+"/"+dyn+"/ [center,beep]",
			"linedetection-"+dyn+" linedetection "+v+"/"+dyn+"/ [record]")
	}
	want = append(want, "IO-1 IO //1 [center]", "IO-2 IO //2 []")
	if root.Space != sim.NamespaceHikvisionV1 || !reflect.DeepEqual(got, want) {
		t.Fatalf("%s\n got %q\nwant %q", root.Space, got, want)
	}
	if !reflect.DeepEqual(want, triggerShorts(sim.DefaultTriggers(sim.Config{Personality: sim.PersonalityNVR}), true)) {
		t.Fatalf("DefaultTriggers does not list what the NVR serves")
	}

	dvr := start(t, sim.Config{Personality: sim.PersonalityHybrid})
	_, got = readTriggers(t, login(t, dvr, "admin", "hik12345"), false)
	if got[0] != "VMD-1 VMD 1// [center,beep]" || got[8] != "VMD-5 VMD 37/5/ [center,beep]" {
		t.Fatalf("hybrid: analog 1 %q, IP channel 5 %q", got[0], got[8])
	}
}

// triggerShorts is how the NVR test writes a DefaultTriggers list.
func triggerShorts(list []sim.Trigger, nvr bool) []string {
	var out []string
	for _, tr := range list {
		id := fmt.Sprintf("%s-%d", tr.Type, tr.Channel)
		var pos string
		switch {
		case tr.Type == "IO":
			pos = fmt.Sprintf("//%d", tr.Channel)
		case nvr:
			pos = fmt.Sprintf("%d/%d/", 32+tr.Channel, tr.Channel)
		}
		m := "[" + strings.Join(tr.Methods, ",") + "]"
		out = append(out, id+" "+tr.Type+" "+pos+" "+m)
	}
	return out
}

func TestTriggersConfigured(t *testing.T) {
	d := start(t, sim.Config{Namespace: sim.NamespaceISAPI, Triggers: sim.TriggersConfig{Wrapped: true, Busy: 2,
		List: []sim.Trigger{{Type: "VMD", Channel: 1, Methods: []string{"center"}}, {Type: "diskfull", NoList: true},
			{Type: "IO", Channel: 3, Methods: []string{"center", "IO"}}}}})
	a := login(t, d, "admin", "hik12345")
	wantStatus(t, a, "GET", triggersPath, 503, 2, "deviceBusy")
	wantStatus(t, a, "GET", triggersPath, 503, 2, "deviceBusy")
	root, got := readTriggers(t, a, true)
	want := []string{"VMD-1 VMD 1// [center]", "diskfull diskfull // -", "IO-3 IO //3 [center,IO]"}
	if root.Local != "EventNotification" || root.Space != sim.NamespaceISAPI || !reflect.DeepEqual(got, want) {
		t.Fatalf("<%s xmlns=%s>\n got %q\nwant %q", root.Local, root.Space, got, want)
	}

	empty := start(t, sim.Config{Triggers: sim.TriggersConfig{List: []sim.Trigger{}}})
	if _, got := readTriggers(t, login(t, empty, "admin", "hik12345"), false); len(got) != 0 {
		t.Fatalf("an empty list served %q", got)
	}
}

// Door stations and devices set NotSupported answer 404, after the login
// like any other resource.
func TestTriggersNotSupported(t *testing.T) {
	for name, cfg := range map[string]sim.Config{
		"door station": {Personality: sim.PersonalityDoorStation},
		"NotSupported": {Triggers: sim.TriggersConfig{NotSupported: true}},
	} {
		t.Run(name, func(t *testing.T) {
			d := start(t, cfg)
			c := newClient(t, d)
			if status, _, _ := c.do("GET", triggersPath, ""); status != 401 {
				t.Fatalf("without credentials: %d, want 401", status)
			}
			wantStatus(t, login(t, d, "admin", "hik12345"), "GET", triggersPath, 404, 4, "invalidOperation")
		})
	}
	door := start(t, sim.Config{Personality: sim.PersonalityDoorStation,
		Triggers: sim.TriggersConfig{List: []sim.Trigger{{Type: "IO", Channel: 1, Methods: []string{"center"}}}}})
	if _, got := readTriggers(t, login(t, door, "admin", "hik12345"), false); len(got) != 1 {
		t.Fatalf("a door station given a list served %q", got)
	}
}
