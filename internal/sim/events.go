package sim

// The alert stream, GET /ISAPI/Event/notification/alertStream: a response that never ends, made of
// multipart parts. Each part is an EventNotificationAlert (XML, or JSON on door stations and newer
// firmware), sometimes followed by a JPEG part. Written from public captures of cameras, NVRs and door
// stations, with their quirks switchable one by one:
//
//   - the boundary in the Content-Type header and the one in the body can differ (old NVRs);
//   - a stray second delimiter line before a part; a delimiter glued to the end of the XML;
//   - parts with or without Content-Length;
//   - namespaces hikvision.com ver10/ver20 and isapi.org ver20;
//   - NVRs leave channelID empty and put the IP channel in dynChannelID, or number IP channels from 33;
//   - "duration" reports whose real type is in DurationList/Duration/relationEvent;
//   - unescaped '&' in text (channel names, descriptions);
//   - heartbeats: "videoloss" "inactive" every 1 s or 10 s, or none at all;
//   - "active" repeated about once a second and never followed by "inactive".

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Channel id styles of EventsConfig.ChannelIDs.
const (
	ChannelIDsCamera  = "channel" // <channelID>N</channelID>
	ChannelIDsDynamic = "dyn"     // NVR: <dynChannelID>N</dynChannelID>, <channelID/> empty
	ChannelIDsOffset  = "offset"  // NVR: <channelID>32+N</channelID> (IP channels from 33), no dynChannelID
)

// HeartbeatNone turns the keep-alive off (EventsConfig.Heartbeat, SetHeartbeat).
const HeartbeatNone = time.Duration(-1)

// EventsConfig shapes the alert stream. The zero value is a camera's stream.
type EventsConfig struct {
	// Heartbeat is the "videoloss inactive" keep-alive interval: 0 = 10 s, HeartbeatNone = never.
	Heartbeat time.Duration
	// Boundary is the boundary written in the body: default "boundary" ("MIME_boundary" on door stations).
	Boundary string
	// AnnouncedBoundary is the boundary in the Content-Type header; "" = Boundary. Set it to something
	// else for the header/body mismatch of old NVRs.
	AnnouncedBoundary string
	// MediaType is "multipart/mixed" (default) or "multipart/x-mixed-replace".
	MediaType string
	// Namespace of EventNotificationAlert; "" = Config.Namespace.
	Namespace string
	// JSON sends every report as a JSON part (newer firmware; always on for door stations).
	JSON bool
	// NoContentLength leaves Content-Length out of the part headers.
	NoContentLength bool
	// DuplicateDelimiter writes a second delimiter line before every other part.
	DuplicateDelimiter bool
	// GlueDelimiter writes the delimiter right after the last '>' of an XML part, on the same line.
	GlueDelimiter bool
	// ChannelIDs is how channels are numbered: ChannelIDsCamera (default; cameras and door stations),
	// ChannelIDsDynamic (default for the NVR), ChannelIDsOffset.
	ChannelIDs string
	// Script is played on every new stream, from the moment it opens.
	Script []EventStep
}

// EventStep is one scripted report (or run of repeats).
type EventStep struct {
	Delay       time.Duration `json:"-"`        // after the previous step
	DelayMS     float64       `json:"delay_ms"` // JSON form of Delay
	Type        string        `json:"type"`     // the device's eventType: VMD, linedetection, fielddetection, regionEntrance, IO, videoloss, tamperdetection, ...
	Channel     int           `json:"channel"`  // channel number (the IO port for IO); 0 = none
	Inactive    bool          `json:"inactive"` // eventState inactive
	Repeat      int           `json:"repeat"`   // send the report this many times (default 1)
	Every       time.Duration `json:"-"`        // between repeats, default 1 s
	EveryMS     float64       `json:"every_ms"`
	Picture     bool          `json:"picture"`      // a binary JPEG part follows (detectionPictureTransType binary)
	Duration    bool          `json:"duration"`     // sent as eventType "duration" with Type nested
	Description string        `json:"description"`  // eventDescription, default "<Type> alarm" (a raw '&' is sent as is)
	ChannelName string        `json:"channel_name"` // channelName (a raw '&' is sent as is)
	JSON        bool          `json:"json"`         // this part as JSON
	Namespace   string        `json:"namespace"`    // this part's namespace
	// Access sends an AccessControllerEvent {major, minor} (door stations; JSON when JSON or the stream is JSON).
	Access []int `json:"access,omitempty"`
	// VoiceTalk sends a VoiceTalkEvent with this cmdType (request, answer, hangUp, ...), JSON.
	VoiceTalk string `json:"voice_talk,omitempty"`
}

// EventStats counts the alert-stream side.
type EventStats struct {
	Streams    int `json:"streams"`    // streams opened
	Open       int `json:"open"`       // streams open now
	Parts      int `json:"parts"`      // report parts written (heartbeats excluded)
	Heartbeats int `json:"heartbeats"` // heartbeat parts written
	Pictures   int `json:"pictures"`   // JPEG parts written
	Dropped    int `json:"dropped"`    // triggered steps a full stream queue refused
}

// eventSide is the alert-stream state of a Device (zero value ready).
type eventSide struct {
	mu        sync.Mutex
	streams   map[*alertConn]struct{}
	heartbeat *time.Duration // SetHeartbeat override
	hbChanged chan struct{}  // closed and replaced when the heartbeat changes
	stats     EventStats
	jpeg      []byte
}

type alertConn struct {
	in chan []EventStep
}

func (e *eventSide) changedLocked() chan struct{} {
	if e.hbChanged == nil {
		e.hbChanged = make(chan struct{})
	}
	return e.hbChanged
}

func (d *Device) eventsCfg() EventsConfig {
	c := d.cfg.Events
	door := d.cfg.Personality == PersonalityDoorStation
	if c.Boundary == "" {
		c.Boundary = "boundary"
		if door {
			c.Boundary = "MIME_boundary"
		}
	}
	if door {
		c.JSON = true // door stations send JSON parts
	}
	if c.AnnouncedBoundary == "" {
		c.AnnouncedBoundary = c.Boundary
	}
	if c.MediaType == "" {
		c.MediaType = "multipart/mixed"
	}
	if c.Namespace == "" {
		c.Namespace = d.cfg.Namespace
	}
	if c.ChannelIDs == "" {
		c.ChannelIDs = ChannelIDsCamera
		if d.cfg.Personality == PersonalityNVR {
			c.ChannelIDs = ChannelIDsDynamic
		}
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = 10 * time.Second
	}
	return c
}

// SetHeartbeat changes the keep-alive interval of every stream at once (HeartbeatNone = stop sending).
func (d *Device) SetHeartbeat(every time.Duration) {
	if every == 0 {
		every = 10 * time.Second
	}
	e := &d.ev
	e.mu.Lock()
	e.heartbeat = &every
	if e.hbChanged != nil {
		close(e.hbChanged)
	}
	e.hbChanged = make(chan struct{})
	e.mu.Unlock()
}

// TriggerEvents plays steps on every open alert stream (each stream plays them from now). It returns
// how many streams got them.
func (d *Device) TriggerEvents(steps ...EventStep) int {
	e := &d.ev
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for c := range e.streams {
		select {
		case c.in <- steps:
			n++
		default:
			e.stats.Dropped++
		}
	}
	return n
}

// EventStats returns the alert-stream counters.
func (d *Device) EventStats() EventStats {
	e := &d.ev
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.stats
	st.Open = len(e.streams)
	return st
}

// OpenAlertStreams is the number of alert streams open now.
func (d *Device) OpenAlertStreams() int { return d.EventStats().Open }

// scheduled is one part due at a time.
type scheduled struct {
	at   time.Time
	step EventStep
}

// expand turns steps (with delays and repeats) into timed parts starting at start.
func expand(start time.Time, steps []EventStep) []scheduled {
	var out []scheduled
	t := start
	for _, s := range steps {
		if s.Delay == 0 && s.DelayMS > 0 {
			s.Delay = time.Duration(s.DelayMS * float64(time.Millisecond))
		}
		if s.Every == 0 && s.EveryMS > 0 {
			s.Every = time.Duration(s.EveryMS * float64(time.Millisecond))
		}
		if s.Every <= 0 {
			s.Every = time.Second
		}
		t = t.Add(s.Delay)
		n := max(s.Repeat, 1)
		for i := range n {
			out = append(out, scheduled{at: t.Add(time.Duration(i) * s.Every), step: s})
		}
		t = t.Add(time.Duration(n-1) * s.Every)
	}
	return out
}

// serveAlertStream serves the alert stream; false when r is something else.
func (d *Device) serveAlertStream(w http.ResponseWriter, r *http.Request) bool {
	if !strings.EqualFold(strings.TrimSuffix(r.URL.Path, "/"), "/ISAPI/Event/notification/alertStream") {
		return false
	}
	if r.Method != http.MethodGet {
		writeXML(w, http.StatusForbidden, responseStatus(d.cfg.Namespace, r.RequestURI, 4, "methodNotAllowed"))
		return true
	}
	cfg := d.eventsCfg()
	rc := http.NewResponseController(w)
	c := &alertConn{in: make(chan []EventStep, 16)}
	e := &d.ev
	e.mu.Lock()
	if e.streams == nil {
		e.streams = map[*alertConn]struct{}{}
	}
	e.streams[c] = struct{}{}
	e.stats.Streams++
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.streams, c)
		e.mu.Unlock()
	}()

	w.Header().Set("Content-Type", fmt.Sprintf("%s; boundary=%s", cfg.MediaType, cfg.AnnouncedBoundary))
	w.Header().Set("Connection", "close")
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush()

	queue := expand(time.Now(), cfg.Script)
	nextHB := time.Now()
	written := 0
	for {
		e.mu.Lock()
		hb := cfg.Heartbeat
		if e.heartbeat != nil {
			hb = *e.heartbeat
		}
		changed := e.changedLocked()
		e.mu.Unlock()

		now := time.Now()
		var due []EventStep
		rest := queue[:0]
		for _, s := range queue {
			if !s.at.After(now) {
				due = append(due, s.step)
			} else {
				rest = append(rest, s)
			}
		}
		queue = rest
		var out []byte
		for _, s := range due {
			out = append(out, d.alertParts(cfg, s, &written)...)
		}
		if hb > 0 && !now.Before(nextHB) {
			out = append(out, d.heartbeatPart(cfg, &written)...)
			nextHB = now.Add(hb)
			e.mu.Lock()
			e.stats.Heartbeats++
			e.mu.Unlock()
		}
		if len(out) > 0 {
			if _, err := w.Write(out); err != nil {
				return true
			}
			if rc.Flush() != nil {
				return true
			}
		}
		wake := time.Hour
		if hb > 0 {
			wake = min(wake, time.Until(nextHB))
		}
		for _, s := range queue {
			wake = min(wake, time.Until(s.at))
		}
		t := time.NewTimer(max(wake, 0))
		select {
		case steps := <-c.in:
			queue = append(queue, expand(time.Now(), steps)...)
		case <-changed:
			nextHB = time.Now() // new interval: a heartbeat now, then the new cadence
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return true
		case <-d.closed:
			t.Stop()
			return true
		}
		t.Stop()
	}
}

// part frames one body as a multipart part.
func (d *Device) part(cfg EventsConfig, ctype string, body []byte, written *int) []byte {
	var b strings.Builder
	if cfg.DuplicateDelimiter && *written%2 == 1 {
		b.WriteString("--" + cfg.Boundary + "\r\n")
	}
	*written++
	b.WriteString("--" + cfg.Boundary + "\r\n")
	b.WriteString("Content-Type: " + ctype + "\r\n")
	if !cfg.NoContentLength {
		b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n")
	}
	b.WriteString("\r\n")
	b.Write(body)
	if cfg.GlueDelimiter && strings.HasPrefix(ctype, "application/xml") {
		return []byte(b.String()) // the next delimiter follows on the same line
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

func (d *Device) heartbeatPart(cfg EventsConfig, written *int) []byte {
	ch := 0
	if d.cfg.Personality != PersonalityNVR {
		ch = 1
	}
	s := EventStep{Type: "videoloss", Inactive: true, Channel: ch, Description: "videoloss alarm"}
	body, ctype := d.alertBody(cfg, s, now(d))
	return d.part(cfg, ctype, body, written)
}

func now(d *Device) time.Time { return d.cfg.Now() }

// alertParts renders one step: its report and, if asked, the JPEG after it.
func (d *Device) alertParts(cfg EventsConfig, s EventStep, written *int) []byte {
	body, ctype := d.alertBody(cfg, s, now(d))
	out := d.part(cfg, ctype, body, written)
	e := &d.ev
	e.mu.Lock()
	e.stats.Parts++
	if s.Picture {
		e.stats.Pictures++
		if e.jpeg == nil {
			e.jpeg, _ = EncodeTestJPEG(320, 180, s.Channel)
		}
	}
	jpg := e.jpeg
	e.mu.Unlock()
	if s.Picture && jpg != nil {
		out = append(out, d.part(cfg, "image/jpeg", jpg, written)...)
	}
	return out
}

// channelFields returns channelID and dynChannelID as the device writes them ("" = empty element).
func channelFields(style string, ch int) (channelID, dyn string, hasDyn bool) {
	if ch <= 0 {
		return "", "", style == ChannelIDsDynamic
	}
	switch style {
	case ChannelIDsDynamic:
		return "", strconv.Itoa(ch), true
	case ChannelIDsOffset:
		return strconv.Itoa(32 + ch), "", false
	}
	return strconv.Itoa(ch), "", false
}

// alertBody renders one report as XML or JSON.
func (d *Device) alertBody(cfg EventsConfig, s EventStep, at time.Time) ([]byte, string) {
	state := "active"
	if s.Inactive {
		state = "inactive"
	}
	typ := s.Type
	desc := s.Description
	if desc == "" {
		desc = typ + " alarm"
	}
	eventType := typ
	if s.Duration {
		eventType, desc = "duration", "duration alarm"
	}
	ip := "192.168.1.64"
	dt := at.Format("2006-01-02T15:04:05-07:00")
	io := strings.EqualFold(typ, "IO")
	channelID, dyn, hasDyn := channelFields(cfg.ChannelIDs, s.Channel)
	if io {
		channelID, dyn, hasDyn = "", "", false
	}
	if s.JSON || cfg.JSON || s.VoiceTalk != "" {
		m := map[string]any{
			"ipAddress": ip, "portNo": portOf(d.httpAddr), "protocol": "HTTP", "macAddress": d.macAddress(),
			"dateTime": dt, "activePostCount": 1, "eventType": eventType, "eventState": state,
			"eventDescription": desc,
		}
		if n, err := strconv.Atoi(channelID); err == nil {
			m["channelID"] = n
		} else if !io {
			m["channelID"] = channelID // empty string, as NVR firmware sends
		}
		if hasDyn {
			m["dynChannelID"] = dyn
		}
		if io {
			m["inputIOPortID"] = s.Channel
		}
		if s.Duration {
			m["DurationList"] = map[string]any{"relationEvent": typ}
		}
		if s.ChannelName != "" {
			m["channelName"] = s.ChannelName
		}
		if len(s.Access) == 2 {
			m["AccessControllerEvent"] = map[string]any{"majorEventType": s.Access[0], "subEventType": s.Access[1],
				"doorNo": max(s.Channel, 1), "picturesNumber": 0}
			m["eventType"] = "AccessControllerEvent"
		}
		if s.VoiceTalk != "" {
			m["eventType"] = "voiceTalkEvent"
			m["VoiceTalkEvent"] = map[string]any{"cmdType": s.VoiceTalk}
		}
		if s.Picture {
			m["picturesNumber"] = 1
		}
		b, _ := json.MarshalIndent(m, "", "\t")
		return b, "application/json; charset=\"UTF-8\""
	}
	ns := s.Namespace
	if ns == "" {
		ns = cfg.Namespace
	}
	version := "2.0"
	if ns == NamespaceHikvisionV1 {
		version = "1.0"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<EventNotificationAlert version=\"%s\" xmlns=\"%s\">\r\n", version, ns)
	fmt.Fprintf(&b, "<ipAddress>%s</ipAddress>\r\n<portNo>%d</portNo>\r\n", ip, portOf(d.httpAddr))
	if d.cfg.Personality == PersonalityNVR {
		b.WriteString("<protocolType>HTTP</protocolType>\r\n")
	} else {
		b.WriteString("<protocol>HTTP</protocol>\r\n")
	}
	fmt.Fprintf(&b, "<macAddress>%s</macAddress>\r\n", d.macAddress())
	if hasDyn {
		if dyn == "" {
			b.WriteString("<dynChannelID/>\r\n")
		} else {
			fmt.Fprintf(&b, "<dynChannelID>%s</dynChannelID>\r\n", dyn)
		}
	}
	if io {
		fmt.Fprintf(&b, "<inputIOPortID>%d</inputIOPortID>\r\n", s.Channel)
	} else if channelID == "" {
		b.WriteString("<channelID></channelID>\r\n")
	} else {
		fmt.Fprintf(&b, "<channelID>%s</channelID>\r\n", channelID)
	}
	fmt.Fprintf(&b, "<dateTime>%s</dateTime>\r\n<activePostCount>1</activePostCount>\r\n", dt)
	fmt.Fprintf(&b, "<eventType>%s</eventType>\r\n<eventState>%s</eventState>\r\n", eventType, state)
	fmt.Fprintf(&b, "<eventDescription>%s</eventDescription>\r\n", desc) // unescaped on purpose: devices do not escape
	if s.ChannelName != "" {
		fmt.Fprintf(&b, "<channelName>%s</channelName>\r\n", s.ChannelName)
	}
	if s.Duration {
		fmt.Fprintf(&b, "<DurationList>\r\n<Duration>\r\n<relationEvent>%s</relationEvent>\r\n</Duration>\r\n</DurationList>\r\n", typ)
	}
	if s.Picture {
		b.WriteString("<detectionPictureTransType>binary</detectionPictureTransType>\r\n<detectionPicturesNumber>1</detectionPicturesNumber>\r\n")
	}
	if len(s.Access) == 2 {
		fmt.Fprintf(&b, "<AccessControllerEvent>\r\n<majorEventType>%d</majorEventType>\r\n<subEventType>%d</subEventType>\r\n</AccessControllerEvent>\r\n", s.Access[0], s.Access[1])
	}
	b.WriteString("</EventNotificationAlert>")
	return []byte(b.String()), "application/xml; charset=\"UTF-8\""
}

// eventControl adds the control API of the event and door-station side:
//
//	POST /events          body: JSON array of EventStep; played on every open stream
//	POST /heartbeat?ms=N  keep-alive interval in ms; ms=none stops it
//	POST /ring            a visitor presses the call button (door station)
//	POST /answer-local    the indoor station answers (door station: onCall, talk busy)
//	GET  /events/stats    EventStats and DoorStats
func (d *Device) eventControl(post func(string, func(*http.Request) (any, error))) {
	post("/events", func(r *http.Request) (any, error) {
		var steps []EventStep
		if err := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20)).Decode(&steps); err != nil {
			return nil, fmt.Errorf("events: want a JSON array of steps: %v", err)
		}
		return map[string]int{"streams": d.TriggerEvents(steps...)}, nil
	})
	post("/heartbeat", func(r *http.Request) (any, error) {
		v := r.URL.Query().Get("ms")
		if v == "none" {
			d.SetHeartbeat(HeartbeatNone)
			return nil, nil
		}
		ms, err := strconv.ParseFloat(v, 64)
		if err != nil || ms <= 0 {
			return nil, fmt.Errorf("ms: want a positive number or none, got %q", v)
		}
		d.SetHeartbeat(time.Duration(ms * float64(time.Millisecond)))
		return nil, nil
	})
	post("/ring", func(*http.Request) (any, error) { return nil, d.Ring() })
	post("/answer-local", func(*http.Request) (any, error) { return nil, d.AnswerLocally() })
	post("/events/stats", func(*http.Request) (any, error) {
		return map[string]any{"events": d.EventStats(), "door": d.DoorStats()}, nil
	})
}
