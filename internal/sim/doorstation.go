package sim

// The door-station personality (villa door stations such as the DS-KV6113): one camera channel, a call
// button and lock outputs. Written from public reports of these devices:
//
//	GET /ISAPI/VideoIntercom/callStatus?format=json    {"CallStatus":{"status":"idle"|"ring"|"onCall"}}
//	PUT /ISAPI/VideoIntercom/callSignal?format=json    {"CallSignal":{"cmdType":"answer"|"hangUp"|"reject"|"cancel"}}
//	                                                   answers {"statusCode":1,"statusString":"OK","subStatusCode":"ok"}
//	PUT /ISAPI/AccessControl/RemoteControl/door/<N>    <RemoteControlDoor><cmd>open</cmd></RemoteControlDoor>
//	                                                   answers an XML ResponseStatus
//
// Talk and calls: opening a voice-talk session (TwoWayAudio open) while the station rings does not answer
// the call: the station keeps ringing and the status stays "ring" (users of other clients report that
// two-way audio does not work until the call is answered or hung up). Answering with callSignal "answer"
// stops the ringing (status "onCall"); "hangUp" ends the call (status "idle"). When the indoor station
// answers (AnswerLocally), the call holds the talk channel: a client's TwoWayAudio open is refused as busy
// until the call ends. An unanswered ring ends after DoorConfig.RingTimeout.

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// PersonalityDoorStation is a villa door station.
const PersonalityDoorStation = "doorstation"

// Call states of a door station (callStatus "status").
const (
	CallIdle   = "idle"
	CallRing   = "ring"
	CallOnCall = "onCall"
)

// DoorConfig is the door-station side.
type DoorConfig struct {
	Doors       int           // lock outputs (door numbers 1..Doors), default 1
	RingTimeout time.Duration // an unanswered ring ends after this (Config.Now), default 30 s
	// RingInStream also reports a ring on the alert stream (a JSON VideoIntercomEvent part); many door
	// stations only show it in callStatus.
	RingInStream bool
}

// DoorStats records what clients did to the door station.
type DoorStats struct {
	State                 string         `json:"state"` // call state now
	Rings                 int            `json:"rings"`
	StatusPolls           int            `json:"status_polls"`
	Signals               map[string]int `json:"signals"`         // accepted callSignal cmdTypes
	RefusedSignals        int            `json:"refused_signals"` // bad or out-of-state cmdTypes
	Unlocks               map[int]int    `json:"unlocks"`         // door number → open commands
	RefusedUnlocks        int            `json:"refused_unlocks"`
	TalkOpensWhileRinging int            `json:"talk_opens_while_ringing"`
}

// doorSide is the call state (guarded by Device.mu).
type doorSide struct {
	state       string
	ringAt      time.Time
	localAnswer bool
	stats       DoorStats
}

func (cfg *Config) doorStationDefaults() {
	if cfg.Model == "" {
		cfg.Model = "DS-KV6113-WPE1(C)"
	}
	if cfg.Firmware == "" {
		cfg.Firmware = "V2.2.53"
	}
	if cfg.DeviceName == "" {
		cfg.DeviceName = "Door Station"
	}
	if cfg.Door.Doors <= 0 {
		cfg.Door.Doors = 1
	}
	if cfg.Door.RingTimeout <= 0 {
		cfg.Door.RingTimeout = 30 * time.Second
	}
}

// stateLocked is the call state after an unanswered ring timed out. Caller holds d.mu.
func (d *Device) doorStateLocked() string {
	ds := &d.door
	if ds.state == "" {
		ds.state = CallIdle
	}
	if ds.state == CallRing && d.cfg.Now().Sub(ds.ringAt) >= d.cfg.Door.RingTimeout {
		ds.state = CallIdle
	}
	return ds.state
}

func (d *Device) isDoorStation() bool { return d.cfg.Personality == PersonalityDoorStation }

// Ring makes the station ring, as when a visitor presses the call button.
func (d *Device) Ring() error {
	if !d.isDoorStation() {
		return fmt.Errorf("sim: ring: personality %q is not a door station", d.cfg.Personality)
	}
	d.mu.Lock()
	if d.doorStateLocked() == CallOnCall {
		d.mu.Unlock()
		return fmt.Errorf("sim: ring: a call is in progress")
	}
	d.door.state = CallRing
	d.door.ringAt = d.cfg.Now()
	d.door.stats.Rings++
	d.mu.Unlock()
	if d.cfg.Door.RingInStream {
		d.TriggerEvents(EventStep{Type: "VideoIntercomEvent", Channel: 1, JSON: true, Description: "Video intercom event"})
	}
	return nil
}

// AnswerLocally answers a ringing call on the indoor station: the call holds the talk channel.
func (d *Device) AnswerLocally() error {
	d.mu.Lock()
	if d.doorStateLocked() != CallRing {
		d.mu.Unlock()
		return fmt.Errorf("sim: answer: the station is not ringing")
	}
	d.door.state = CallOnCall
	d.door.localAnswer = true
	d.mu.Unlock()
	return d.SetLocalTalk(true)
}

// CallState is the call status now.
func (d *Device) CallState() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.doorStateLocked()
}

// DoorStats returns the door-station counters.
func (d *Device) DoorStats() DoorStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.door.stats
	st.State = d.doorStateLocked()
	st.Signals = map[string]int{}
	for k, v := range d.door.stats.Signals {
		st.Signals[k] = v
	}
	st.Unlocks = map[int]int{}
	for k, v := range d.door.stats.Unlocks {
		st.Unlocks[k] = v
	}
	return st
}

// doorTalkOpenedLocked notes a talk session opened (caller holds d.mu): it does not answer a ringing call.
func (d *Device) doorTalkOpenedLocked() {
	if d.isDoorStation() && d.doorStateLocked() == CallRing {
		d.door.stats.TalkOpensWhileRinging++
	}
}

func writeDoorJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.MarshalIndent(v, "", "\t")
	w.Header().Set("Content-Type", "application/json; charset=\"UTF-8\"")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func jsonStatus(code int, str, sub string) map[string]any {
	m := map[string]any{"statusCode": code, "statusString": str, "subStatusCode": sub}
	if code != 1 {
		m["errorCode"] = 0x40000000 + code
		m["errorMsg"] = sub
	}
	return m
}

// serveDoorStation serves the intercom and door endpoints; false for other paths.
func (d *Device) serveDoorStation(w http.ResponseWriter, r *http.Request) bool {
	p := strings.TrimSuffix(r.URL.Path, "/")
	call := hasPrefixFold(p, "/ISAPI/VideoIntercom/")
	door := hasPrefixFold(p, "/ISAPI/AccessControl/RemoteControl/door/")
	if !call && !door {
		return false
	}
	if !d.isDoorStation() {
		writeXML(w, http.StatusForbidden, responseStatus(d.cfg.Namespace, r.RequestURI, 4, "notSupport"))
		return true
	}
	switch {
	case strings.EqualFold(p, "/ISAPI/VideoIntercom/callStatus"):
		if r.Method != http.MethodGet {
			writeDoorJSON(w, http.StatusForbidden, jsonStatus(4, "Invalid Operation", "methodNotAllowed"))
			return true
		}
		d.mu.Lock()
		st := d.doorStateLocked()
		d.door.stats.StatusPolls++
		d.mu.Unlock()
		writeDoorJSON(w, http.StatusOK, map[string]any{"CallStatus": map[string]string{"status": st}})
	case strings.EqualFold(p, "/ISAPI/VideoIntercom/callSignal"):
		d.callSignal(w, r)
	case door:
		d.remoteDoor(w, r, p[len("/ISAPI/AccessControl/RemoteControl/door/"):])
	default:
		writeDoorJSON(w, http.StatusNotFound, jsonStatus(4, "Invalid Operation", "notSupport"))
	}
	return true
}

func (d *Device) callSignal(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut {
		writeDoorJSON(w, http.StatusForbidden, jsonStatus(4, "Invalid Operation", "methodNotAllowed"))
		return
	}
	var req struct {
		CallSignal *struct {
			CmdType string `json:"cmdType"`
		} `json:"CallSignal"`
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err := json.Unmarshal(body, &req); err != nil || req.CallSignal == nil {
		d.mu.Lock()
		d.door.stats.RefusedSignals++
		d.mu.Unlock()
		writeDoorJSON(w, http.StatusBadRequest, jsonStatus(6, "Invalid Content", "badJsonFormat"))
		return
	}
	cmd := req.CallSignal.CmdType
	d.mu.Lock()
	st := d.doorStateLocked()
	next, ok := "", true
	switch {
	case cmd == "answer" && st == CallRing:
		next = CallOnCall
	case (cmd == "reject" || cmd == "cancel") && st == CallRing,
		cmd == "hangUp" && (st == CallRing || st == CallOnCall):
		next = CallIdle
	case cmd == "answer" || cmd == "reject" || cmd == "cancel" || cmd == "hangUp":
		ok = false // right command, wrong state
	default:
		d.door.stats.RefusedSignals++
		d.mu.Unlock()
		writeDoorJSON(w, http.StatusBadRequest, jsonStatus(6, "Invalid Content", "badParameters"))
		return
	}
	if !ok {
		d.door.stats.RefusedSignals++
		d.mu.Unlock()
		writeDoorJSON(w, http.StatusForbidden, jsonStatus(4, "Invalid Operation", "invalidOperation"))
		return
	}
	if d.door.stats.Signals == nil {
		d.door.stats.Signals = map[string]int{}
	}
	d.door.stats.Signals[cmd]++
	releaseLocal := next == CallIdle && d.door.localAnswer
	d.door.state = next
	if next == CallIdle {
		d.door.localAnswer = false
	}
	d.mu.Unlock()
	if releaseLocal {
		_ = d.SetLocalTalk(false)
	}
	writeDoorJSON(w, http.StatusOK, jsonStatus(1, "OK", "ok"))
}

func (d *Device) remoteDoor(w http.ResponseWriter, r *http.Request, rest string) {
	ns := d.cfg.Namespace
	refuse := func(status, code int, sub string) {
		d.mu.Lock()
		d.door.stats.RefusedUnlocks++
		d.mu.Unlock()
		writeXML(w, status, responseStatus(ns, r.RequestURI, code, sub))
	}
	if r.Method != http.MethodPut {
		refuse(http.StatusForbidden, 4, "methodNotAllowed")
		return
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 1 || n > d.cfg.Door.Doors {
		refuse(http.StatusBadRequest, 6, "badParameters")
		return
	}
	var req struct {
		XMLName xml.Name
		Cmd     string `xml:"cmd"`
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err := xml.Unmarshal(body, &req); err != nil || req.XMLName.Local != "RemoteControlDoor" {
		refuse(http.StatusBadRequest, 5, "badXmlFormat")
		return
	}
	switch req.Cmd {
	case "open", "close", "alwaysOpen", "alwaysClose", "resume":
	default:
		refuse(http.StatusBadRequest, 6, "badParameters")
		return
	}
	d.mu.Lock()
	if req.Cmd == "open" {
		if d.door.stats.Unlocks == nil {
			d.door.stats.Unlocks = map[int]int{}
		}
		d.door.stats.Unlocks[n]++
	}
	d.mu.Unlock()
	writeXML(w, http.StatusOK, responseStatus(ns, r.RequestURI, 1, "ok"))
}
