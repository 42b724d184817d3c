package events

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Alert is one decoded alert-stream part: an event report or a heartbeat.
type Alert struct {
	Type        string     // normalised type (the nested one for "duration" reports)
	Raw         string     // the device's eventType, "duration/<nested>" for duration reports
	Description string     // eventDescription
	Active      bool       // eventState active
	Heartbeat   bool       // a keep-alive, not an event (see doc.go)
	IDs         ChannelIDs // channel fields as sent
	Channel     int        // our channel number, after the ChannelMapper
	DeviceTime  time.Time  // dateTime as sent (zero when absent or unreadable)
	Pictures    int        // binary pictures announced to follow this part
	Picture     []byte     // the JPEG that followed, if any
}

// PartError is a part that could not be decoded; the stream goes on.
type PartError struct {
	ContentType string
	Err         error
}

func (e *PartError) Error() string {
	ct := e.ContentType
	if ct == "" {
		ct = "no content type"
	}
	return fmt.Sprintf("events: alert stream part (%s): %v", ct, e.Err)
}

func (e *PartError) Unwrap() error { return e.Err }

// ErrNotAlert: a well-formed part that is not an event notification (other root element, no eventType).
var ErrNotAlert = errors.New("not an event notification")

// flexInt reads an XML/JSON field that devices send as a number, a string, empty or null.
type flexInt int

func (f *flexInt) set(s string) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 {
		n = 0
	}
	*f = flexInt(n)
}

func (f *flexInt) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	var s string
	if err := d.DecodeElement(&s, &start); err != nil {
		return err
	}
	f.set(s)
	return nil
}

func (f *flexInt) UnmarshalJSON(b []byte) error {
	f.set(strings.Trim(string(b), `"`))
	return nil
}

type accessEvent struct {
	Major          flexInt `xml:"majorEventType" json:"majorEventType"`
	Minor          flexInt `xml:"subEventType" json:"subEventType"`
	DoorNo         flexInt `xml:"doorNo" json:"doorNo"`
	PicturesNumber flexInt `xml:"picturesNumber" json:"picturesNumber"`
}

type alertXML struct {
	XMLName         xml.Name
	ChannelID       flexInt      `xml:"channelID"`
	DynChannelID    flexInt      `xml:"dynChannelID"`
	InputIOPortID   flexInt      `xml:"inputIOPortID"`
	DateTime        string       `xml:"dateTime"`
	EventType       string       `xml:"eventType"`
	EventState      string       `xml:"eventState"`
	Description     string       `xml:"eventDescription"`
	Relation        []string     `xml:"DurationList>Duration>relationEvent"`
	PictureTransfer string       `xml:"detectionPictureTransType"`
	PicturesNumber  flexInt      `xml:"detectionPicturesNumber"`
	Access          *accessEvent `xml:"AccessControllerEvent"`
}

type alertJSON struct {
	ChannelID    flexInt `json:"channelID"`
	DynChannelID flexInt `json:"dynChannelID"`
	IOPort       flexInt `json:"inputIOPortID"`
	DateTime     string  `json:"dateTime"`
	EventType    string  `json:"eventType"`
	EventState   string  `json:"eventState"`
	Description  string  `json:"eventDescription"`
	Duration     *struct {
		Relation string `json:"relationEvent"`
	} `json:"DurationList"`
	PicturesNumber flexInt      `json:"picturesNumber"`
	Access         *accessEvent `json:"AccessControllerEvent"`
	VoiceTalk      *struct {
		CmdType string `json:"cmdType"`
	} `json:"VoiceTalkEvent"`
	Wrapped *json.RawMessage `json:"EventNotificationAlert"`
}

// bareAmp finds '&' that does not start an entity or character reference.
var bareAmp = regexp.MustCompile(`&([^a-zA-Z#]|#[^0-9xX]|$)`)

// fixAmpersands escapes bare '&' in text, which some firmware sends (e.g. in channel names).
func fixAmpersands(b []byte) []byte {
	if !bytes.Contains(b, []byte("&")) {
		return b
	}
	return bareAmp.ReplaceAllFunc(b, func(m []byte) []byte { return append([]byte("&amp;"), m[1:]...) })
}

// ParseAlert decodes one part body (XML EventNotificationAlert in any namespace, or JSON) into an
// Alert. contentType may be empty: the body is sniffed. The channel is left for the caller to map.
func ParseAlert(contentType string, body []byte) (Alert, error) {
	t := bytes.TrimSpace(body)
	switch {
	case strings.Contains(contentType, "json") || bytes.HasPrefix(t, []byte("{")):
		return parseJSON(t)
	case strings.Contains(contentType, "xml") || bytes.HasPrefix(t, []byte("<")):
		return parseXML(t)
	}
	return Alert{}, fmt.Errorf("%w: neither XML nor JSON", ErrNotAlert)
}

func parseXML(body []byte) (Alert, error) {
	var x alertXML
	dec := xml.NewDecoder(bytes.NewReader(fixAmpersands(body)))
	dec.Strict = false
	dec.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	if err := dec.Decode(&x); err != nil {
		return Alert{}, fmt.Errorf("bad XML: %w", err)
	}
	if x.XMLName.Local != "EventNotificationAlert" {
		return Alert{}, fmt.Errorf("%w: root element <%s>", ErrNotAlert, x.XMLName.Local)
	}
	a := Alert{
		Description: strings.TrimSpace(x.Description),
		IDs:         ChannelIDs{Channel: int(x.ChannelID), DynChannel: int(x.DynChannelID), IOPort: int(x.InputIOPortID)},
		DeviceTime:  parseDeviceTime(x.DateTime),
	}
	if strings.EqualFold(strings.TrimSpace(x.PictureTransfer), "binary") {
		a.Pictures = int(x.PicturesNumber)
	}
	var relation string
	for _, r := range x.Relation {
		if r = strings.TrimSpace(r); r != "" {
			relation = r
			break
		}
	}
	return finish(a, x.EventType, x.EventState, relation, x.Access, "")
}

func parseJSON(body []byte) (Alert, error) {
	var j alertJSON
	if err := json.Unmarshal(body, &j); err != nil {
		return Alert{}, fmt.Errorf("bad JSON: %w", err)
	}
	if j.EventType == "" && j.Wrapped != nil { // {"EventNotificationAlert":{...}}
		if err := json.Unmarshal(*j.Wrapped, &j); err != nil {
			return Alert{}, fmt.Errorf("bad JSON: %w", err)
		}
	}
	a := Alert{
		Description: strings.TrimSpace(j.Description),
		IDs:         ChannelIDs{Channel: int(j.ChannelID), DynChannel: int(j.DynChannelID), IOPort: int(j.IOPort)},
		DeviceTime:  parseDeviceTime(j.DateTime),
		Pictures:    int(j.PicturesNumber),
	}
	relation := ""
	if j.Duration != nil {
		relation = strings.TrimSpace(j.Duration.Relation)
	}
	cmd := ""
	if j.VoiceTalk != nil {
		cmd = strings.TrimSpace(j.VoiceTalk.CmdType)
	}
	if j.Access != nil && a.Pictures == 0 {
		a.Pictures = int(j.Access.PicturesNumber)
	}
	return finish(a, j.EventType, j.EventState, relation, j.Access, cmd)
}

// finish fills type, state and heartbeat from the fields both encodings share.
func finish(a Alert, eventType, state, relation string, access *accessEvent, voiceCmd string) (Alert, error) {
	eventType = strings.TrimSpace(eventType)
	if eventType == "" {
		return Alert{}, fmt.Errorf("%w: no eventType", ErrNotAlert)
	}
	state = strings.ToLower(strings.TrimSpace(state))
	a.Active = state == "active" || state == "1" || state == "true"
	a.Raw = eventType
	a.Type = NormaliseType(eventType)
	lower := strings.ToLower(eventType)
	switch {
	case lower == "duration" && relation != "":
		a.Raw = eventType + "/" + relation
		a.Type = NormaliseType(relation)
	case lower == "videoloss" && !a.Active,
		lower == "heartbeat",
		strings.EqualFold(a.Description, "heartbeat"):
		a.Heartbeat = true
	case access != nil:
		a.Raw = fmt.Sprintf("%s major=%d minor=%d", eventType, access.Major, access.Minor)
		a.Type, a.Active = accessType(int(access.Major), int(access.Minor))
		if access.DoorNo > 0 && a.IDs.Channel == 0 {
			a.IDs.Channel = int(access.DoorNo)
		}
	case voiceCmd != "":
		a.Raw = eventType + "/" + voiceCmd
		switch strings.ToLower(voiceCmd) {
		case "request":
			a.Type, a.Active = TypeRing, true
		case "answer":
			a.Type, a.Active = TypeCall, true
		default: // cancel, reject, hangUp
			a.Type, a.Active = TypeCall, false
		}
	}
	if a.Type == "" {
		return Alert{}, fmt.Errorf("%w: eventType %q", ErrNotAlert, eventType)
	}
	return a, nil
}

// accessType maps access-control (major, minor) codes: major 5 are events; minor 21/22 lock released /
// locked, 25/26 door contact open / closed. Everything else is a momentary "access" event.
func accessType(major, minor int) (string, bool) {
	if major == 5 {
		switch minor {
		case 21:
			return TypeUnlock, true
		case 22:
			return TypeUnlock, false
		case 25:
			return TypeDoor, true
		case 26:
			return TypeDoor, false
		}
	}
	return TypeAccess, true
}

var deviceTimeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05-0700", "2006-01-02T15:04:05", "2006-01-02 15:04:05"}

func parseDeviceTime(s string) time.Time {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}
	}
	for _, l := range deviceTimeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t
		}
	}
	return time.Time{}
}
