package mqtt

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// Payloads of the state and availability topics.
const (
	PayloadOn      = "ON"
	PayloadOff     = "OFF"
	PayloadOnline  = "online"
	PayloadOffline = "offline"
	// EventTypeRing is the event_type of a door station ring on the ring
	// event topic (Home Assistant event entity).
	EventTypeRing = "ring"
)

// Manufacturer is the device block's manufacturer.
const Manufacturer = "Hikvision"

// topicID turns a device address or event type into one topic level and
// discovery id: lower case [a-z0-9_-], every other byte an underscore, no
// leading or trailing underscore.
func topicID(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
			b = append(b, c)
		case c >= 'A' && c <= 'Z':
			b = append(b, c+'a'-'A')
		default:
			b = append(b, '_')
		}
	}
	return strings.Trim(string(b), "_")
}

type eventKind struct {
	label       string
	deviceClass string // binary_sensor device_class, "" for none
	icon        string
}

// kinds maps the event types devices send (lower case) to how Home Assistant
// shows them. Types not listed get no device class and their type as label.
var kinds = map[string]eventKind{
	"motion":         {"Motion", "motion", ""},
	"vmd":            {"Motion", "motion", ""},
	"pir":            {"PIR", "motion", ""},
	"linedetection":  {"Line crossing", "motion", "mdi:vector-line"},
	"fielddetection": {"Intrusion", "motion", "mdi:vector-square"},
	"regionentrance": {"Region entrance", "motion", "mdi:location-enter"},
	"regionexiting":  {"Region exiting", "motion", "mdi:location-exit"},
	"scenechange":    {"Scene change", "tamper", ""},
	"facedetection":  {"Face", "occupancy", "mdi:face-recognition"},
	"videoloss":      {"Video loss", "problem", ""},
	"tamper":         {"Tamper", "tamper", ""},
	"shelteralarm":   {"Tamper", "tamper", ""},
	"audioexception": {"Audio exception", "sound", ""},
	"io":             {"Alarm input", "", "mdi:electric-switch"},
	"diskfull":       {"Disk full", "problem", ""},
	"diskerror":      {"Disk error", "problem", ""},
	"ring":           {"Ringing", "", "mdi:bell-ring"},
	"call":           {"On call", "", "mdi:phone-in-talk"},
}

func kindOf(typ string) eventKind {
	if k, ok := kinds[typ]; ok {
		return k
	}
	return eventKind{label: typ}
}

// topics of one publisher.
type topics struct{ prefix, discovery string }

func (t topics) bridgeAvailability() string { return t.prefix + "/bridge/availability" }
func (t topics) events() string             { return t.prefix + "/events" }
func (t topics) deviceAvailability(dev string) string {
	return t.prefix + "/" + dev + "/availability"
}
func (t topics) entityBase(dev string, ch int, typ string) string {
	return t.prefix + "/" + dev + "/" + strconv.Itoa(ch) + "/" + typ
}
func (t topics) state(dev string, ch int, typ string) string {
	return t.entityBase(dev, ch, typ) + "/state"
}
func (t topics) attributes(dev string, ch int, typ string) string {
	return t.entityBase(dev, ch, typ) + "/attributes"
}
func (t topics) picture(dev string, ch int, typ string) string {
	return t.entityBase(dev, ch, typ) + "/picture"
}
func (t topics) ringEvent(dev string, ch int) string {
	return t.entityBase(dev, ch, EventTypeRing) + "/event"
}

// nodeID is the discovery topic's node level for a device.
func (t topics) nodeID(dev string) string { return topicID(t.prefix) + "_" + dev }

// objectID names one entity of a device.
func objectID(ch int, typ string) string { return "ch" + strconv.Itoa(ch) + "_" + typ }

// componentSuffix tells apart the ids of the entities one (device, channel,
// type) may have besides its binary sensor.
func componentSuffix(component string) string {
	switch component {
	case componentEvent:
		return "_event"
	case componentImage:
		return "_picture"
	}
	return ""
}

func (t topics) discoveryTopic(component, dev string, ch int, typ string) string {
	return t.discovery + "/" + component + "/" + t.nodeID(dev) + "/" + objectID(ch, typ) + "/config"
}

func (t topics) uniqueID(dev string, ch int, typ, component string) string {
	return t.nodeID(dev) + "_" + objectID(ch, typ) + componentSuffix(component)
}

const (
	componentBinarySensor = "binary_sensor"
	componentEvent        = "event"
	componentImage        = "image"
)

// Discovery payload shapes (Home Assistant MQTT discovery).
type (
	discoveryConfig struct {
		Name                string          `json:"name"`
		UniqueID            string          `json:"unique_id"`
		ObjectID            string          `json:"object_id"`
		DefaultEntityID     string          `json:"default_entity_id"`
		StateTopic          string          `json:"state_topic,omitempty"`
		ImageTopic          string          `json:"image_topic,omitempty"`
		ContentType         string          `json:"content_type,omitempty"`
		JSONAttributesTopic string          `json:"json_attributes_topic,omitempty"`
		PayloadOn           string          `json:"payload_on,omitempty"`
		PayloadOff          string          `json:"payload_off,omitempty"`
		EventTypes          []string        `json:"event_types,omitempty"`
		DeviceClass         string          `json:"device_class,omitempty"`
		Icon                string          `json:"icon,omitempty"`
		Availability        []availability  `json:"availability"`
		AvailabilityMode    string          `json:"availability_mode"`
		QoS                 byte            `json:"qos"`
		Device              discoveryDevice `json:"device"`
		Origin              discoveryOrigin `json:"origin"`
	}
	availability struct {
		Topic               string `json:"topic"`
		PayloadAvailable    string `json:"payload_available"`
		PayloadNotAvailable string `json:"payload_not_available"`
	}
	discoveryDevice struct {
		Identifiers  []string `json:"identifiers"`
		Name         string   `json:"name"`
		Manufacturer string   `json:"manufacturer"`
		Model        string   `json:"model,omitempty"`
		SerialNumber string   `json:"serial_number,omitempty"`
		SwVersion    string   `json:"sw_version,omitempty"`
	}
	discoveryOrigin struct {
		Name       string `json:"name"`
		SupportURL string `json:"support_url,omitempty"`
	}
)

func (t topics) deviceBlock(d *device) discoveryDevice {
	ids := []string{t.nodeID(d.id)}
	if d.health.Serial != "" {
		ids = append(ids, "hikvision_"+d.health.Serial)
	}
	name := d.health.Name
	if name == "" {
		name = d.health.Model
	}
	if name == "" {
		name = "Hikvision " + d.addr
	}
	return discoveryDevice{
		Identifiers:  ids,
		Name:         name,
		Manufacturer: Manufacturer,
		Model:        d.health.Model,
		SerialNumber: d.health.Serial,
		SwVersion:    d.health.Firmware,
	}
}

func entityName(e *entity, label string) string {
	switch {
	case e.stream != "":
		return e.stream + " " + label
	case e.channel > 0:
		return "Channel " + strconv.Itoa(e.channel) + " " + label
	}
	return label
}

func (t topics) discoveryPayload(e *entity, component string, qos byte) []byte {
	k := kindOf(e.typ)
	d := e.dev
	c := discoveryConfig{
		UniqueID: t.uniqueID(d.id, e.channel, e.typ, component),
		Availability: []availability{
			{Topic: t.bridgeAvailability(), PayloadAvailable: PayloadOnline, PayloadNotAvailable: PayloadOffline},
			{Topic: t.deviceAvailability(d.id), PayloadAvailable: PayloadOnline, PayloadNotAvailable: PayloadOffline},
		},
		AvailabilityMode: "all",
		QoS:              qos,
		Device:           t.deviceBlock(d),
		Origin:           discoveryOrigin{Name: "go2rtc-hikvision"},
	}
	obj := topicID(t.prefix) + "_" + d.id + "_" + objectID(e.channel, e.typ) + componentSuffix(component)
	switch component {
	case componentEvent:
		c.Name = entityName(e, "Doorbell")
		c.StateTopic = t.ringEvent(d.id, e.channel)
		c.EventTypes = []string{EventTypeRing}
		c.DeviceClass = "doorbell"
	case componentImage:
		c.Name = entityName(e, k.label+" picture")
		c.ImageTopic = t.picture(d.id, e.channel, e.typ)
		c.ContentType = "image/jpeg"
	default:
		c.Name = entityName(e, k.label)
		c.StateTopic = t.state(d.id, e.channel, e.typ)
		c.JSONAttributesTopic = t.attributes(d.id, e.channel, e.typ)
		c.PayloadOn, c.PayloadOff = PayloadOn, PayloadOff
		c.DeviceClass = k.deviceClass
		c.Icon = k.icon
	}
	c.ObjectID = obj
	c.DefaultEntityID = component + "." + obj
	b, _ := json.Marshal(c) // plain strings and slices: cannot fail
	return b
}

// attributesPayload is the JSON on an entity's attributes topic.
type attributesPayload struct {
	Device  string `json:"device"`
	Stream  string `json:"stream,omitempty"`
	Channel int    `json:"channel"`
	Type    string `json:"type"`
	Active  bool   `json:"active"`
	Since   string `json:"since,omitempty"`
	Picture bool   `json:"picture"`
}

func attributesOf(e *entity) []byte {
	a := attributesPayload{
		Device: e.dev.addr, Stream: e.stream, Channel: e.channel, Type: e.typ,
		Active: e.active, Picture: e.picture != nil,
	}
	if !e.since.IsZero() {
		a.Since = e.since.UTC().Format(time.RFC3339Nano)
	}
	b, _ := json.Marshal(a)
	return b
}

// eventPayload is one message on the events topic, and (with EventType set)
// on a ring event topic.
type eventPayload struct {
	EventType string `json:"event_type,omitempty"`
	Device    string `json:"device"`
	DeviceID  string `json:"device_id"`
	Stream    string `json:"stream,omitempty"`
	Channel   int    `json:"channel"`
	Type      string `json:"type"`
	Active    bool   `json:"active"`
	Time      string `json:"time"`
	Picture   bool   `json:"picture"`
}
