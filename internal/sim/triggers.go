package sim

// The event triggers, GET /ISAPI/Event/triggers: what the device does when each of its events fires.
// Written from public captures of cameras and recorders:
//
//   - the root is EventTriggerList, wrapped in EventNotification on some firmware;
//   - one EventTrigger per event source: id ("VMD-1", "IO-1"), eventType, eventDescription, the channel
//     (videoInputChannelID; recorders also dynVideoInputChannelID, the IP channel, with
//     videoInputChannelID counted from the first digital channel, 33) or the alarm input
//     (inputIOPortID);
//   - EventTriggerNotificationList with one EventTriggerNotification per method (center, record, email,
//     beep, IO, ...), empty or left out when none is set;
//   - door stations and some firmware do not have the resource: 404.

import (
	"fmt"
	"net/http"
	"strings"
)

// TriggersConfig shapes GET /ISAPI/Event/triggers. The zero value lists the personality's default
// triggers (DefaultTriggers); door stations answer 404 unless List is set.
type TriggersConfig struct {
	// NotSupported answers 404 with a ResponseStatus invalidOperation, as a device without the resource.
	NotSupported bool
	// Wrapped nests the list in <EventNotification>, as some firmware does.
	Wrapped bool
	// List replaces the default triggers; a non-nil empty list is a device that lists none.
	List []Trigger
	// Busy answers the first Busy reads 503 deviceBusy (a device still starting).
	Busy int
}

// Trigger is one EventTrigger.
type Trigger struct {
	// Type is the device's eventType: VMD, linedetection, fielddetection, tamperdetection, videoloss, IO,
	// diskfull, ...
	Type string `json:"type"`
	// Channel is the video channel (Config.Channels numbering), the input port for IO; 0 = device-wide.
	Channel int `json:"channel"`
	// Methods are the notificationMethod values in order (center, record, email, beep, IO, ...);
	// none = an empty EventTriggerNotificationList.
	Methods []string `json:"methods"`
	// NoList leaves EventTriggerNotificationList out (seen on IP cameras).
	NoList bool `json:"no_list"`
}

// DefaultTriggers are the triggers a device of cfg's personality lists when TriggersConfig.List is nil:
// a camera's VMD, line crossing and intrusion detection notify "center", its tamper detection, video
// loss and alarm input do not; a recorder's VMD of every channel and alarm input 1 notify "center",
// its line crossing and alarm input 2 do not. Door stations have none.
func DefaultTriggers(cfg Config) []Trigger {
	switch cfg.Personality {
	case PersonalityDoorStation:
		return nil
	case PersonalityNVR, PersonalityDVR, PersonalityHybrid:
		if n, err := cfg.normalize(); err == nil {
			cfg = n // the personality's channels
		}
		var out []Trigger
		for _, ch := range cfg.Channels {
			out = append(out,
				Trigger{Type: "VMD", Channel: ch.ID, Methods: []string{"center", "beep"}},
				Trigger{Type: "linedetection", Channel: ch.ID, Methods: []string{"record"}})
		}
		return append(out,
			Trigger{Type: "IO", Channel: 1, Methods: []string{"center"}},
			Trigger{Type: "IO", Channel: 2})
	}
	return []Trigger{
		{Type: "VMD", Channel: 1, Methods: []string{"center", "email"}},
		{Type: "linedetection", Channel: 1, Methods: []string{"center"}},
		{Type: "fielddetection", Channel: 1, Methods: []string{"center", "record"}},
		{Type: "tamperdetection", Channel: 1},
		{Type: "videoloss", Channel: 1, NoList: true},
		{Type: "IO", Channel: 1, Methods: []string{"IO"}},
	}
}

// triggers answers GET /ISAPI/Event/triggers.
func (d *Device) triggers(r *http.Request) (int, []byte) {
	ns := d.cfg.Namespace
	tc := d.cfg.Triggers
	if r.Method != http.MethodGet {
		return http.StatusForbidden, responseStatus(ns, r.RequestURI, 4, "methodNotAllowed")
	}
	if tc.NotSupported || d.isDoorStation() && tc.List == nil {
		return http.StatusNotFound, responseStatus(ns, r.RequestURI, 4, "invalidOperation")
	}
	d.mu.Lock()
	busy := d.triggerReads < tc.Busy
	d.triggerReads++
	d.mu.Unlock()
	if busy {
		return http.StatusServiceUnavailable, responseStatus(ns, r.RequestURI, 2, "deviceBusy")
	}
	list := tc.List
	if list == nil {
		list = DefaultTriggers(d.cfg)
	}
	return http.StatusOK, d.triggersXML(list, tc.Wrapped)
}

func (d *Device) triggersXML(list []Trigger, wrapped bool) []byte {
	ns := xmlEscape(d.cfg.Namespace)
	version := "2.0"
	if d.cfg.Namespace == NamespaceHikvisionV1 {
		version = "1.0"
	}
	var b strings.Builder
	b.WriteString(xmlHeader)
	if wrapped {
		fmt.Fprintf(&b, "<EventNotification version=\"%s\" xmlns=\"%s\">\n<EventTriggerList version=\"%s\">\n", version, ns, version)
	} else {
		fmt.Fprintf(&b, "<EventTriggerList version=\"%s\" xmlns=\"%s\">\n", version, ns)
	}
	for _, t := range list {
		typ := xmlEscape(t.Type)
		io := strings.EqualFold(t.Type, "IO")
		id := typ
		if t.Channel > 0 {
			id = fmt.Sprintf("%s-%d", typ, t.Channel)
		}
		if wrapped {
			b.WriteString("<EventTrigger>\n")
		} else {
			fmt.Fprintf(&b, "<EventTrigger version=\"%s\" xmlns=\"%s\">\n", version, ns)
		}
		fmt.Fprintf(&b, "<id>%s</id>\n<eventType>%s</eventType>\n<eventDescription>%s Event trigger Information</eventDescription>\n", id, typ, typ)
		switch {
		case t.Channel <= 0:
		case io:
			fmt.Fprintf(&b, "<inputIOPortID>%d</inputIOPortID>\n", t.Channel)
		case d.cfg.recorder() && !d.analog(t.Channel):
			// IP channels: counted from the first digital channel, and the IP channel itself
			fmt.Fprintf(&b, "<videoInputChannelID>%d</videoInputChannelID>\n<dynVideoInputChannelID>%d</dynVideoInputChannelID>\n", 32+t.Channel, t.Channel)
		default:
			fmt.Fprintf(&b, "<videoInputChannelID>%d</videoInputChannelID>\n", t.Channel)
		}
		switch {
		case t.NoList:
		case len(t.Methods) == 0:
			b.WriteString("<EventTriggerNotificationList/>\n")
		default:
			b.WriteString("<EventTriggerNotificationList>\n")
			for _, m := range t.Methods {
				m = xmlEscape(m)
				fmt.Fprintf(&b, "<EventTriggerNotification>\n<id>%s</id>\n<notificationMethod>%s</notificationMethod>\n<notificationRecurrence>beginning</notificationRecurrence>\n</EventTriggerNotification>\n", m, m)
			}
			b.WriteString("</EventTriggerNotificationList>\n")
		}
		b.WriteString("</EventTrigger>\n")
	}
	b.WriteString("</EventTriggerList>\n")
	if wrapped {
		b.WriteString("</EventNotification>\n")
	}
	return []byte(b.String())
}

// analog reports whether channel id is an analog input.
func (d *Device) analog(id int) bool {
	ch := d.channel(id)
	return ch != nil && ch.Analog
}
