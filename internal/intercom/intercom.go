package intercom

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/events"
)

// Doer performs one authenticated ISAPI request through the device's login guard and returns the HTTP
// status and body. It may return an error for a non-2xx answer instead (as isapi.Client.Do does); both
// are handled.
type Doer func(ctx context.Context, method, path string, body []byte) (status int, respBody []byte, err error)

// ISAPI paths and request bodies of the door-station side.
const (
	CallStatusPath = "/ISAPI/VideoIntercom/callStatus?format=json"
	CallSignalPath = "/ISAPI/VideoIntercom/callSignal?format=json"
	DoorPathPrefix = "/ISAPI/AccessControl/RemoteControl/door/"
)

// CallState is the door station's call status.
type CallState string

// Call states (callStatus "status").
const (
	CallIdle   CallState = "idle"
	CallRing   CallState = "ring"
	CallOnCall CallState = "onCall"
)

// CallCommand is a callSignal cmdType.
type CallCommand string

// Call commands.
const (
	Answer CallCommand = "answer" // take the ringing call: ringing stops, status onCall
	HangUp CallCommand = "hangUp" // end the call (or the ringing)
	Reject CallCommand = "reject" // refuse the ringing call
	Cancel CallCommand = "cancel" // withdraw a call
)

// DoorCommand is a RemoteControlDoor cmd.
type DoorCommand string

// Door commands.
const (
	DoorOpen        DoorCommand = "open"
	DoorClose       DoorCommand = "close"
	DoorAlwaysOpen  DoorCommand = "alwaysOpen"
	DoorAlwaysClose DoorCommand = "alwaysClose"
	DoorResume      DoorCommand = "resume"
)

// Errors.
var (
	ErrBadParameter = errors.New("intercom: bad parameter")
	ErrBadAnswer    = errors.New("intercom: unreadable device answer")
)

// StatusError is a refused request: the HTTP status and the device's ResponseStatus (JSON or XML).
type StatusError struct {
	Op            string // e.g. "PUT /ISAPI/VideoIntercom/callSignal"
	HTTPStatus    int
	StatusCode    int
	StatusString  string
	SubStatusCode string
	ErrorMsg      string
	Err           error // the Doer's error, if it reported the refusal as one
}

// Unwrap returns the Doer's error.
func (e *StatusError) Unwrap() error { return e.Err }

func (e *StatusError) Error() string {
	s := fmt.Sprintf("intercom: %s: HTTP %d", e.Op, e.HTTPStatus)
	if e.StatusCode != 0 || e.SubStatusCode != "" {
		s += fmt.Sprintf(", statusCode %d %q, subStatusCode %q", e.StatusCode, e.StatusString, e.SubStatusCode)
	}
	if e.ErrorMsg != "" && e.ErrorMsg != e.SubStatusCode {
		s += fmt.Sprintf(", errorMsg %q", e.ErrorMsg)
	}
	return s
}

// flexCode reads statusCode sent as a number or a string.
type flexCode int

func (f *flexCode) UnmarshalJSON(b []byte) error {
	var n int
	_, err := fmt.Sscan(strings.Trim(string(b), `"`), &n)
	if err != nil {
		n = -1
	}
	*f = flexCode(n)
	return nil
}

type responseStatus struct {
	StatusCode    flexCode `json:"statusCode" xml:"statusCode"`
	StatusString  string   `json:"statusString" xml:"statusString"`
	SubStatusCode string   `json:"subStatusCode" xml:"subStatusCode"`
	ErrorMsg      string   `json:"errorMsg" xml:"errorMsg"`
}

func (f *flexCode) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	var s string
	if err := d.DecodeElement(&s, &start); err != nil {
		return err
	}
	n := -1
	_, _ = fmt.Sscan(strings.TrimSpace(s), &n)
	*f = flexCode(n)
	return nil
}

// parseStatus reads a ResponseStatus (JSON object or XML element); ok false when body is neither.
func parseStatus(body []byte) (responseStatus, bool) {
	var rs responseStatus
	t := bytes.TrimSpace(body)
	if bytes.HasPrefix(t, []byte("{")) {
		if json.Unmarshal(t, &rs) == nil && (rs.StatusCode != 0 || rs.StatusString != "") {
			return rs, true
		}
		return rs, false
	}
	if bytes.HasPrefix(t, []byte("<")) {
		var x struct {
			XMLName xml.Name
			responseStatus
		}
		if xml.Unmarshal(t, &x) == nil && x.XMLName.Local == "ResponseStatus" {
			return x.responseStatus, true
		}
	}
	return rs, false
}

// do runs one request and turns refusals into *StatusError. body is the answer of a 2xx.
func do(ctx context.Context, d Doer, method, path string, reqBody []byte) ([]byte, error) {
	op := method + " " + strings.SplitN(path, "?", 2)[0]
	status, body, err := d(ctx, method, path, reqBody)
	if err != nil && status == 0 {
		return nil, fmt.Errorf("intercom: %s: %w", op, err)
	}
	rs, isStatus := parseStatus(body)
	if err != nil || status < 200 || status > 299 || isStatus && rs.StatusCode != 1 {
		se := &StatusError{Op: op, HTTPStatus: status, Err: err}
		if isStatus {
			se.StatusCode, se.StatusString, se.SubStatusCode, se.ErrorMsg = int(rs.StatusCode), rs.StatusString, rs.SubStatusCode, rs.ErrorMsg
		}
		return nil, se
	}
	return body, nil
}

// GetCallStatus reads the call status.
func GetCallStatus(ctx context.Context, d Doer) (CallState, error) {
	body, err := do(ctx, d, http.MethodGet, CallStatusPath, nil)
	if err != nil {
		return "", err
	}
	var v struct {
		CallStatus *struct {
			Status string `json:"status"`
		} `json:"CallStatus"`
	}
	if err := json.Unmarshal(body, &v); err != nil || v.CallStatus == nil {
		return "", fmt.Errorf("%w: GET /ISAPI/VideoIntercom/callStatus: want {\"CallStatus\":{\"status\":...}}, got %.80q", ErrBadAnswer, body)
	}
	switch s := CallState(v.CallStatus.Status); s {
	case CallIdle, CallRing, CallOnCall:
		return s, nil
	default:
		return "", fmt.Errorf("%w: GET /ISAPI/VideoIntercom/callStatus: unknown status %q", ErrBadAnswer, s)
	}
}

// SendCallSignal sends a call command.
func SendCallSignal(ctx context.Context, d Doer, cmd CallCommand) error {
	switch cmd {
	case Answer, HangUp, Reject, Cancel:
	default:
		return fmt.Errorf("%w: call command %q (want answer, hangUp, reject or cancel)", ErrBadParameter, cmd)
	}
	b, _ := json.Marshal(map[string]any{"CallSignal": map[string]string{"cmdType": string(cmd)}})
	_, err := do(ctx, d, http.MethodPut, CallSignalPath, b)
	return err
}

// ControlDoor sends a door command to lock output door (1-based).
func ControlDoor(ctx context.Context, d Doer, door int, cmd DoorCommand) error {
	if door < 1 || door > 99 {
		return fmt.Errorf("%w: door %d (want 1..99)", ErrBadParameter, door)
	}
	switch cmd {
	case DoorOpen, DoorClose, DoorAlwaysOpen, DoorAlwaysClose, DoorResume:
	default:
		return fmt.Errorf("%w: door command %q", ErrBadParameter, cmd)
	}
	body := fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?><RemoteControlDoor><cmd>%s</cmd></RemoteControlDoor>`, cmd)
	_, err := do(ctx, d, http.MethodPut, fmt.Sprintf("%s%d", DoorPathPrefix, door), []byte(body))
	return err
}

// OpenDoor releases the lock of door (1-based).
func OpenDoor(ctx context.Context, d Doer, door int) error {
	return ControlDoor(ctx, d, door, DoorOpen)
}

// TalkGate applies what door stations do with a talk that starts while they ring: the voice-talk session
// does not answer the call (the station keeps ringing and the visitor does not hear the talk), so
// TalkStarting answers a ringing call first and TalkEnded hangs up a call it answered.
type TalkGate struct {
	Do       Doer
	answered bool
}

// TalkStarting answers the call if the station rings; it reports whether it did.
func (g *TalkGate) TalkStarting(ctx context.Context) (bool, error) {
	st, err := GetCallStatus(ctx, g.Do)
	if err != nil || st != CallRing {
		return false, err
	}
	if err := SendCallSignal(ctx, g.Do, Answer); err != nil {
		return false, err
	}
	g.answered = true
	return true, nil
}

// TalkEnded hangs up the call TalkStarting answered (nothing otherwise).
func (g *TalkGate) TalkEnded(ctx context.Context) error {
	if !g.answered {
		return nil
	}
	g.answered = false
	return SendCallSignal(ctx, g.Do, HangUp)
}

// CallAlerts turns one call-status reading into alerts for events.State: "ring" active while ringing,
// "call" active while on call, and the end of the previous one on a change. An unchanged ringing or
// on-call status gives the active alert again, which State folds into the running period (and which keeps
// it from timing out while the station still rings). Channel 0 (the station).
func CallAlerts(prev, cur CallState) []events.Alert {
	var out []events.Alert
	raw := "callStatus/" + string(cur)
	if prev != cur && prev == CallRing {
		out = append(out, events.Alert{Type: events.TypeRing, Raw: raw})
	}
	if prev != cur && prev == CallOnCall {
		out = append(out, events.Alert{Type: events.TypeCall, Raw: raw})
	}
	switch cur {
	case CallRing:
		out = append(out, events.Alert{Type: events.TypeRing, Active: true, Raw: raw})
	case CallOnCall:
		out = append(out, events.Alert{Type: events.TypeCall, Active: true, Raw: raw})
	}
	return out
}

// PollCallStatus reads the call status every interval until ctx ends and calls onStatus with the previous
// and the new reading after every successful read (prev starts as idle; feed both to CallAlerts). Read
// errors go to onError (may be nil) and polling goes on. It returns ctx's error.
func PollCallStatus(ctx context.Context, d Doer, interval time.Duration, onStatus func(prev, cur CallState), onError func(error)) error {
	if interval <= 0 {
		interval = time.Second
	}
	prev := CallIdle
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		st, err := GetCallStatus(ctx, d)
		switch {
		case err != nil && ctx.Err() == nil:
			if onError != nil {
				onError(err)
			}
		case err == nil:
			onStatus(prev, st)
			prev = st
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
