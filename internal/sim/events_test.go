package sim_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

// openStream opens the alert stream with digest auth and returns the streaming response.
func openStream(t *testing.T, d *sim.Device) *http.Response {
	t.Helper()
	c := newClient(t, d)
	const path = "/ISAPI/Event/notification/alertStream"
	ch := c.challengeFor(path, "MD5")
	req, _ := http.NewRequest("GET", c.base+path, nil)
	req.Header.Set("Authorization", digestAuthorization(ch, "GET", path, "admin", "hik12345", 1))
	res, err := c.tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	if res.StatusCode != 200 {
		t.Fatalf("alert stream: status %d", res.StatusCode)
	}
	return res
}

// stream is an alert stream being read; what one readUntil read past its
// last want is where the next one starts (reads come in chunks that may hold
// the next report too).
type stream struct {
	r    io.Reader
	rest []byte
}

func newStream(r io.Reader) *stream { return &stream{r: r} }

// readUntil reads the stream until what it holds since the end of the last
// call's wants contains all of wants (or fails after 10 s), and returns it.
func readUntil(t *testing.T, s *stream, wants ...string) string {
	t.Helper()
	var buf bytes.Buffer
	buf.Write(s.rest)
	has := func() bool {
		for _, w := range wants {
			if !bytes.Contains(buf.Bytes(), []byte(w)) {
				return false
			}
		}
		return true
	}
	done := make(chan error, 1)
	if has() {
		done <- nil
	} else {
		go func() {
			p := make([]byte, 4096)
			for {
				n, err := s.r.Read(p)
				buf.Write(p[:n]) // only this goroutine writes until done
				if has() || err != nil {
					done <- err
					return
				}
			}
		}()
	}
	select {
	case err := <-done:
		for _, w := range wants {
			if !strings.Contains(buf.String(), w) {
				t.Fatalf("stream ended (%v) without %q:\n%s", err, w, buf.String())
			}
		}
		cut := 0
		for _, w := range wants {
			cut = max(cut, strings.Index(buf.String(), w)+len(w))
		}
		s.rest = bytes.Clone(buf.Bytes()[cut:])
		return buf.String()
	case <-time.After(10 * time.Second):
		t.Fatalf("no %q within 10 s", wants)
	}
	return ""
}

func TestAlertStreamNeedsDigest(t *testing.T) {
	d := start(t, sim.Config{})
	status, h, _ := newClient(t, d).do("GET", "/ISAPI/Event/notification/alertStream", "")
	if status != 401 || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Digest ") {
		t.Fatalf("status %d, challenge %q", status, h.Get("WWW-Authenticate"))
	}
}

func TestAlertStreamCameraQuirks(t *testing.T) {
	d := start(t, sim.Config{ControlAddr: "127.0.0.1:0", Events: sim.EventsConfig{
		Heartbeat: 30 * time.Millisecond, AnnouncedBoundary: "hikboundary", DuplicateDelimiter: true,
	}})
	res := openStream(t, d)
	body := newStream(res.Body)
	if ct := res.Header.Get("Content-Type"); ct != "multipart/mixed; boundary=hikboundary" {
		t.Errorf("Content-Type %q", ct)
	}
	out := readUntil(t, body, "<eventState>inactive</eventState>")
	if !strings.HasPrefix(out, "--boundary\r\nContent-Type: application/xml") || !strings.Contains(out, "<channelID>1</channelID>") {
		t.Errorf("first part:\n%s", out)
	}
	steps := `[{"type":"linedetection","channel":1,"picture":true,"channel_name":"Tom & Jerry"},` +
		`{"type":"fielddetection","channel":1,"duration":true,"delay_ms":10},{"type":"VMD","channel":1,"repeat":3,"every_ms":20}]`
	resp, err := http.Post("http://"+d.ControlAddr()+"/events", "application/json", strings.NewReader(steps))
	if err != nil {
		t.Fatal(err)
	}
	var n map[string]int
	_ = json.NewDecoder(resp.Body).Decode(&n)
	resp.Body.Close()
	if n["streams"] != 1 {
		t.Fatalf("control answer %v", n)
	}
	out = readUntil(t, body, "<relationEvent>fielddetection</relationEvent>", "Content-Type: image/jpeg", "<channelName>Tom & Jerry</channelName>",
		"<detectionPictureTransType>binary</detectionPictureTransType>")
	if !strings.Contains(out, "--boundary\r\n--boundary\r\n") {
		t.Errorf("no duplicate delimiter:\n%.400s", out)
	}
	i := strings.Index(out, "Content-Type: image/jpeg\r\nContent-Length: ")
	if body := out[strings.Index(out[i:], "\r\n\r\n")+i+4:]; !strings.HasPrefix(body, "\xff\xd8") {
		t.Errorf("JPEG part does not start with SOI")
	}
	readUntil(t, body, "<eventType>VMD</eventType>")
	eventually(t, "3 motion repeats written", 5*time.Second, func() bool { return d.EventStats().Parts == 5 })
	if st := d.EventStats(); st.Streams != 1 || st.Open != 1 || st.Pictures != 1 || st.Heartbeats < 1 {
		t.Errorf("stats %+v", st)
	}
	// heartbeats stop and restart
	d.SetHeartbeat(sim.HeartbeatNone)
	before := d.EventStats().Heartbeats
	time.Sleep(200 * time.Millisecond)
	if got := d.EventStats().Heartbeats; got > before+1 {
		t.Errorf("heartbeats went on: %d → %d", before, got)
	}
	_ = d.Close()
	if _, err := io.ReadAll(res.Body); err == nil && d.OpenAlertStreams() != 0 {
		t.Errorf("stream still open after Close")
	}
}

func TestAlertStreamNVRAndJSON(t *testing.T) {
	nvr := start(t, sim.Config{Personality: sim.PersonalityNVR, Namespace: sim.NamespaceISAPI, Events: sim.EventsConfig{
		Heartbeat: time.Hour, Script: []sim.EventStep{{Type: "fielddetection", Channel: 2}}}})
	out := readUntil(t, newStream(openStream(t, nvr).Body), "<eventType>fielddetection</eventType>")
	for _, w := range []string{"<dynChannelID/>\r\n<channelID></channelID>", "<dynChannelID>2</dynChannelID>", "<protocolType>HTTP</protocolType>", `xmlns="http://www.isapi.org/ver20/XMLSchema"`} {
		if !strings.Contains(out, w) {
			t.Errorf("NVR stream lacks %q:\n%s", w, out)
		}
	}
	off := start(t, sim.Config{Personality: sim.PersonalityNVR, Events: sim.EventsConfig{ChannelIDs: sim.ChannelIDsOffset,
		Heartbeat: sim.HeartbeatNone, GlueDelimiter: true, Script: []sim.EventStep{{Type: "VMD", Channel: 3}, {Type: "VMD", Channel: 4}}}})
	out = readUntil(t, newStream(openStream(t, off).Body), "<channelID>36</channelID>")
	if !strings.Contains(out, "<channelID>35</channelID>") || !strings.Contains(out, "</EventNotificationAlert>--boundary\r\n") || strings.Contains(out, "videoloss") {
		t.Errorf("offset/glue stream:\n%s", out)
	}
	door := start(t, sim.Config{Personality: sim.PersonalityDoorStation, Events: sim.EventsConfig{Heartbeat: 20 * time.Millisecond,
		Script: []sim.EventStep{{Type: "AccessControllerEvent", Access: []int{5, 21}, Channel: 1}}}})
	res := openStream(t, door)
	out = readUntil(t, newStream(res.Body), `"subEventType": 21`, `"eventState": "inactive"`)
	sc := bufio.NewScanner(strings.NewReader(out))
	var parts []string
	var cur strings.Builder
	for sc.Scan() {
		switch line := sc.Text(); {
		case line == "--MIME_boundary":
			if cur.Len() > 0 {
				parts = append(parts, cur.String())
			}
			cur.Reset()
		case strings.HasPrefix(line, "Content-"), line == "":
		default:
			cur.WriteString(line + "\n")
		}
	}
	if len(parts) == 0 {
		t.Fatalf("no complete JSON part:\n%s", out)
	}
	for _, p := range parts {
		var m map[string]any
		if err := json.Unmarshal([]byte(p), &m); err != nil {
			t.Errorf("part is not JSON: %v\n%s", err, p)
		}
	}
}

func TestDoorStationSim(t *testing.T) {
	d := start(t, sim.Config{Personality: sim.PersonalityDoorStation, ControlAddr: "127.0.0.1:0"})
	c := newClient(t, d)
	ch := c.challengeFor("/ISAPI/System/deviceInfo", "MD5")
	nc := 1
	req := func(method, path, body string) (int, string) {
		nc++
		r, _ := http.NewRequest(method, c.base+path, strings.NewReader(body))
		r.Header.Set("Authorization", digestAuthorization(ch, method, path, "admin", "hik12345", nc))
		res, err := c.hc.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if _, body := req("GET", "/ISAPI/System/deviceInfo", ""); !strings.Contains(body, "<deviceType>DoorStation</deviceType>") || !strings.Contains(body, "DS-KV6113") {
		t.Errorf("deviceInfo:\n%s", body)
	}
	status := func() string {
		code, body := req("GET", "/ISAPI/VideoIntercom/callStatus?format=json", "")
		var v struct{ CallStatus struct{ Status string } }
		if err := json.Unmarshal([]byte(body), &v); code != 200 || err != nil {
			t.Fatalf("callStatus %d %s", code, body)
		}
		return v.CallStatus.Status
	}
	if s := status(); s != "idle" {
		t.Fatalf("status %q", s)
	}
	if res, err := http.Post("http://"+d.ControlAddr()+"/ring", "", nil); err != nil || res.StatusCode != 200 {
		t.Fatalf("control ring: %v", err)
	}
	if s := status(); s != "ring" {
		t.Fatalf("status %q after ring", s)
	}
	if code, body := req("PUT", "/ISAPI/VideoIntercom/callSignal?format=json", `{"CallSignal":{"cmdType":"answer"}}`); code != 200 || !strings.Contains(body, `"statusString": "OK"`) {
		t.Fatalf("answer: %d %s", code, body)
	}
	if s := status(); s != "onCall" {
		t.Fatalf("status %q after answer", s)
	}
	if code, _ := req("PUT", "/ISAPI/VideoIntercom/callSignal?format=json", `{"CallSignal":{"cmdType":"dance"}}`); code != 400 {
		t.Errorf("bad cmdType: %d", code)
	}
	if code, body := req("PUT", "/ISAPI/AccessControl/RemoteControl/door/1", `<RemoteControlDoor><cmd>open</cmd></RemoteControlDoor>`); code != 200 || !strings.Contains(body, "<statusCode>1</statusCode>") {
		t.Errorf("door open: %d %s", code, body)
	}
	if code, _ := req("PUT", "/ISAPI/AccessControl/RemoteControl/door/7", `<RemoteControlDoor><cmd>open</cmd></RemoteControlDoor>`); code != 400 {
		t.Errorf("door 7: %d", code)
	}
	st := d.DoorStats()
	if st.State != "onCall" || st.Signals["answer"] != 1 || st.RefusedSignals != 1 || st.Unlocks[1] != 1 || st.RefusedUnlocks != 1 || st.StatusPolls != 3 {
		t.Errorf("stats %+v", st)
	}
	cam := start(t, sim.Config{})
	if err := cam.Ring(); err == nil {
		t.Errorf("a camera rang")
	}
}
