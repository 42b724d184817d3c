package isapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// PathEventTriggers lists what the device does when each of its events
// fires (see "Event triggers" in the package doc).
const PathEventTriggers = "/ISAPI/Event/triggers"

// NotifyCenter is the notification method that sends an event to the alert
// stream ("Notify Surveillance Center" in the device's web pages).
const NotifyCenter = "center"

// EventTrigger is one EventTrigger of GET /ISAPI/Event/triggers: an event
// source of the device and how it reports. Channel fields the device left
// out or could not number are 0.
type EventTrigger struct {
	ID        string // "VMD-1", "IO-1", "linedetection-33", ... as sent
	EventType string // the device's eventType: VMD, linedetection, IO, videoloss, ...
	// VideoChannel is videoInputChannelID (on recorders the IP channels may
	// be numbered from the first digital channel, e.g. 33).
	VideoChannel int
	// DynVideoChannel is dynVideoInputChannelID: a recorder's IP channel number.
	DynVideoChannel int
	// IOPort is inputIOPortID (alarm inputs), DynIOPort dynInputIOPortID.
	IOPort, DynIOPort int
	// Methods are the notificationMethod values in order (center, record,
	// email, beep, IO, FTP, HTTP, monitorAlarm, ...); empty when the
	// device lists none.
	Methods []string
}

// Notifies reports whether the trigger uses the notification method
// (case-insensitive), e.g. NotifyCenter.
func (t EventTrigger) Notifies(method string) bool {
	for _, m := range t.Methods {
		if strings.EqualFold(m, method) {
			return true
		}
	}
	return false
}

type eventTriggerXML struct {
	ID                     string `xml:"id"`
	EventType              string `xml:"eventType"`
	VideoInputChannelID    string `xml:"videoInputChannelID"`
	DynVideoInputChannelID string `xml:"dynVideoInputChannelID"`
	InputIOPortID          string `xml:"inputIOPortID"`
	DynInputIOPortID       string `xml:"dynInputIOPortID"`
	Notifications          []struct {
		Method string `xml:"notificationMethod"`
	} `xml:"EventTriggerNotificationList>EventTriggerNotification"`
}

// EventTriggers reads GET /ISAPI/Event/triggers. A device without the
// resource (404, 403, 405, 501 or notSupport) answers an error matching
// ErrNotSupported that also holds the device's *StatusError; an answer that
// is not a trigger list matches ErrProtocol. Triggers without an eventType
// are left out.
func (c *Client) EventTriggers(ctx context.Context) ([]EventTrigger, error) {
	_, b, err := c.Do(ctx, http.MethodGet, PathEventTriggers, nil)
	if err != nil {
		var se *StatusError
		if errors.As(err, &se) && !errors.Is(err, ErrNotSupported) {
			switch se.HTTPStatus {
			case http.StatusNotFound, http.StatusForbidden, http.StatusMethodNotAllowed, http.StatusNotImplemented:
				return nil, fmt.Errorf("%w: %w", ErrNotSupported, err)
			}
		}
		return nil, err
	}
	return parseEventTriggers(b)
}

func parseEventTriggers(b []byte) ([]EventTrigger, error) {
	var list []eventTriggerXML
	switch root := rootName(b); root {
	case "EventTriggerList":
		var x struct {
			Triggers []eventTriggerXML `xml:"EventTrigger"`
		}
		if err := decodeXML(b, &x); err != nil {
			return nil, protocolError(http.MethodGet, PathEventTriggers, "decoding <%s>: %v", root, err)
		}
		list = x.Triggers
	case "EventNotification": // some firmware wraps the list
		var x struct {
			Triggers []eventTriggerXML `xml:"EventTriggerList>EventTrigger"`
		}
		if err := decodeXML(b, &x); err != nil {
			return nil, protocolError(http.MethodGet, PathEventTriggers, "decoding <%s>: %v", root, err)
		}
		list = x.Triggers
	case "":
		return nil, protocolError(http.MethodGet, PathEventTriggers, "want <EventTriggerList>, got no XML")
	default:
		return nil, protocolError(http.MethodGet, PathEventTriggers, "want <EventTriggerList>, got <%s>", root)
	}
	out := make([]EventTrigger, 0, len(list))
	for _, x := range list {
		t := EventTrigger{
			ID: strings.TrimSpace(x.ID), EventType: strings.TrimSpace(x.EventType),
			VideoChannel: channelNumber(x.VideoInputChannelID), DynVideoChannel: channelNumber(x.DynVideoInputChannelID),
			IOPort: channelNumber(x.InputIOPortID), DynIOPort: channelNumber(x.DynInputIOPortID),
		}
		if t.EventType == "" {
			continue
		}
		for _, n := range x.Notifications {
			if m := strings.TrimSpace(n.Method); m != "" {
				t.Methods = append(t.Methods, m)
			}
		}
		out = append(out, t)
	}
	return out, nil
}

// channelNumber reads a channel or port id: a positive number, else 0.
func channelNumber(s string) int {
	return max(atoiOr(s, 0), 0)
}
