package events

import (
	"strings"
	"time"
)

// Event is one state change of one event source of a device, as delivered to SSE and MQTT.
type Event struct {
	Device  string    `json:"device"`  // host:port of the device
	Channel int       `json:"channel"` // our channel number, 0 = device-wide
	Type    string    `json:"type"`    // normalised: motion, linedetection, fielddetection, ring, ...
	Active  bool      `json:"active"`
	Time    time.Time `json:"time"`              // when we received it (device clocks are often wrong)
	Picture []byte    `json:"picture,omitempty"` // optional JPEG sent by the device with the event
	Raw     string    `json:"raw,omitempty"`     // the device's eventType (and nested type or description)
}

// Normalised event types. Unknown device types are passed on lower-cased, with characters other than
// letters, digits and '_' removed.
const (
	TypeMotion         = "motion"
	TypeLineDetection  = "linedetection"
	TypeFieldDetection = "fielddetection"
	TypeRegionEntrance = "regionentrance"
	TypeRegionExiting  = "regionexiting"
	TypeVideoLoss      = "videoloss"
	TypeTamper         = "tamper"
	TypeIO             = "io"
	TypePIR            = "pir"
	TypeSceneChange    = "scenechange"
	TypeFace           = "face"
	TypeRing           = "ring"   // a visitor pressed the call button of a door station
	TypeCall           = "call"   // a door-station call is in progress (answered)
	TypeDoor           = "door"   // door contact open (active) / closed
	TypeUnlock         = "unlock" // door lock released (active) / locked again
	TypeAccess         = "access" // other access-control events (card, face, ...)
)

var typeAliases = map[string]string{
	"vmd":                  TypeMotion,
	"motion":               TypeMotion,
	"motiondetection":      TypeMotion,
	"linedetection":        TypeLineDetection,
	"linecrossing":         TypeLineDetection,
	"fielddetection":       TypeFieldDetection,
	"intrusion":            TypeFieldDetection,
	"regionentrance":       TypeRegionEntrance,
	"regionexiting":        TypeRegionExiting,
	"videoloss":            TypeVideoLoss,
	"tamperdetection":      TypeTamper,
	"shelteralarm":         TypeTamper,
	"videotampering":       TypeTamper,
	"io":                   TypeIO,
	"pir":                  TypePIR,
	"piralarm":             TypePIR,
	"scenechangedetection": TypeSceneChange,
	"facedetection":        TypeFace,
	"videointercomevent":   TypeRing,
	"videointercom":        TypeRing,
	"videointercomalarm":   TypeRing,
	"doorbellpress":        TypeRing,
	"doorbell":             TypeRing,
	"bellringing":          TypeRing,
	"callingdevice":        TypeRing,
}

// NormaliseType maps a device eventType to our type name.
func NormaliseType(eventType string) string {
	key := strings.ToLower(strings.TrimSpace(eventType))
	if t, ok := typeAliases[key]; ok {
		return t
	}
	var b strings.Builder
	for _, r := range key {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// ChannelIDs are the channel fields of one alert as the device sent them (0 = empty or absent).
type ChannelIDs struct {
	Channel    int // channelID
	DynChannel int // dynChannelID (NVRs: the IP channel number)
	IOPort     int // inputIOPortID (alarm inputs)
}

// ChannelMapper turns an alert's channel fields into our channel number (0 = device-wide).
type ChannelMapper func(ids ChannelIDs) int

// DefaultFirstDigital is the channelID of the first IP (digital) channel on NVRs that number IP channels
// after 32 analogue slots.
const DefaultFirstDigital = 33

// NVRChannels maps the channel fields of a recorder whose IP channels start at channelID firstDigital
// (33 on most NVRs; on a hybrid DVR the first channel after its analogue inputs): dynChannelID wins when
// set, a channelID at or above firstDigital becomes firstDigital→1, a lower one is an analogue channel
// and is kept. firstDigital ≤ 0 keeps every channelID.
func NVRChannels(firstDigital int) ChannelMapper {
	return func(ids ChannelIDs) int {
		switch {
		case ids.DynChannel > 0:
			return ids.DynChannel
		case firstDigital > 0 && ids.Channel >= firstDigital:
			return ids.Channel - firstDigital + 1
		case ids.Channel > 0:
			return ids.Channel
		}
		return ids.IOPort // alarm inputs: the port number (0 when absent)
	}
}

// DefaultChannels is NVRChannels(DefaultFirstDigital): right for cameras (channel 1), door stations and
// most NVRs.
var DefaultChannels = NVRChannels(DefaultFirstDigital)
