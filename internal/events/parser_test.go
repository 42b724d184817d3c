package events_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/events"
)

// want is what one decoded alert must be: "channel/type:on|off" plus flags.
type want struct {
	s         string // eventString form
	heartbeat bool
	picture   bool
	raw       string // "" = not checked
}

func decodeAll(t *testing.T, r io.Reader, ct string, m events.ChannelMapper) ([]events.Alert, *events.Decoder) {
	t.Helper()
	dec := events.NewDecoder(r, ct, m)
	var out []events.Alert
	for {
		a, err := dec.Next()
		if errors.Is(err, io.EOF) {
			return out, dec
		}
		if err != nil {
			t.Fatalf("Next: %v (after %d alerts)", err, len(out))
		}
		out = append(out, a)
	}
}

func alertString(a events.Alert) string {
	return eventString(events.Event{Channel: a.Channel, Type: a.Type, Active: a.Active})
}

func TestFixtures(t *testing.T) {
	hb1 := want{s: "1/videoloss:off", heartbeat: true}
	hb0 := want{s: "0/videoloss:off", heartbeat: true}
	cases := []struct {
		file     string
		boundary string
		alerts   []want
		check    func(t *testing.T, as []events.Alert)
	}{
		{"camera_ver20.txt", "boundary", []want{hb1, {s: "1/motion:on", raw: "VMD: Motion alarm"}, {s: "1/motion:on"}, hb1}, nil},
		{"nvr_isapi_dyn.txt", "boundary", []want{hb0, {s: "6/fielddetection:on"}, hb0}, func(t *testing.T, as []events.Alert) {
			if as[1].IDs != (events.ChannelIDs{DynChannel: 6}) {
				t.Errorf("ids = %+v, want dynChannelID 6 only", as[1].IDs)
			}
		}},
		{"nvr_boundary_mismatch_ch33.txt", "boundary", []want{hb0, {s: "3/linedetection:on"}, hb0}, nil},
		{"camera_ver10_duration.txt", "boundary", []want{{s: "1/fielddetection:on", raw: "duration/fielddetection: duration alarm"}, {s: "1/fielddetection:on"}}, nil},
		{"camera_linedetection_jpeg_amp.txt", "boundary", []want{{s: "1/linedetection:on", picture: true}, hb1}, nil},
		{"camera_duplicate_delimiter.txt", "boundary", []want{hb1, {s: "1/tamper:on", raw: "tamperdetection: Tamper & shelter alarm"}, hb1}, nil},
		{"doorstation_json.txt", "MIME_boundary", []want{hb1, {s: "1/unlock:on", raw: "AccessControllerEvent major=5 minor=21: Access Controller Event"}, {s: "0/ring:on"}}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			ct, body := loadFixture(t, tc.file)
			for _, mode := range []string{"whole", "one-byte reads"} {
				var r io.Reader = bytes.NewReader(body)
				if mode != "whole" {
					r = iotest.OneByteReader(r)
				}
				as, dec := decodeAll(t, r, ct, nil)
				if dec.Boundary() != tc.boundary {
					t.Errorf("%s: boundary %q, want %q", mode, dec.Boundary(), tc.boundary)
				}
				if st := dec.Stats(); st.BadParts != 0 || st.OrphanPictures != 0 {
					t.Errorf("%s: stats %+v, last error %v", mode, st, dec.LastError())
				}
				if len(as) != len(tc.alerts) {
					t.Fatalf("%s: %d alerts, want %d: %+v", mode, len(as), len(tc.alerts), as)
				}
				for i, w := range tc.alerts {
					a := as[i]
					if got := alertString(a); got != w.s {
						t.Errorf("%s: alert %d = %s, want %s", mode, i, got, w.s)
					}
					if a.Heartbeat != w.heartbeat {
						t.Errorf("%s: alert %d heartbeat=%v, want %v", mode, i, a.Heartbeat, w.heartbeat)
					}
					if w.picture != (a.Picture != nil) {
						t.Errorf("%s: alert %d picture %d bytes, want picture=%v", mode, i, len(a.Picture), w.picture)
					}
					if a.Picture != nil && (!bytes.HasPrefix(a.Picture, []byte{0xFF, 0xD8}) || !bytes.HasSuffix(a.Picture, []byte{0xFF, 0xD9})) {
						t.Errorf("%s: alert %d picture is not a whole JPEG (% x ... % x)", mode, i, a.Picture[:2], a.Picture[len(a.Picture)-2:])
					}
					if w.raw != "" {
						got := a.Raw
						if a.Description != "" {
							got += ": " + a.Description
						}
						if got != w.raw {
							t.Errorf("%s: alert %d raw %q, want %q", mode, i, got, w.raw)
						}
					}
				}
				if tc.check != nil {
					tc.check(t, as)
				}
			}
		})
	}
}

func TestNVRChannelMapping(t *testing.T) {
	cases := []struct {
		first int
		ids   events.ChannelIDs
		want  int
	}{
		{33, events.ChannelIDs{Channel: 33}, 1},
		{33, events.ChannelIDs{Channel: 40}, 8},
		{33, events.ChannelIDs{Channel: 35, DynChannel: 2}, 2}, // dynChannelID wins
		{33, events.ChannelIDs{Channel: 4}, 4},                 // analogue channel kept
		{17, events.ChannelIDs{Channel: 17}, 1},                // hybrid DVR with 16 analogue inputs
		{0, events.ChannelIDs{Channel: 35}, 35},
		{33, events.ChannelIDs{}, 0},
	}
	for _, c := range cases {
		if got := events.NVRChannels(c.first)(c.ids); got != c.want {
			t.Errorf("NVRChannels(%d)(%+v) = %d, want %d", c.first, c.ids, got, c.want)
		}
	}
	// a caller-supplied mapping is used for every non-IO alert
	ct, body := loadFixture(t, "nvr_isapi_dyn.txt")
	as, _ := decodeAll(t, bytes.NewReader(body), ct, func(ids events.ChannelIDs) int { return 100 + ids.DynChannel })
	if got := alertString(as[1]); got != "106/fielddetection:on" {
		t.Errorf("custom mapper: %s", got)
	}
}

const xmlAlert = `<EventNotificationAlert version="2.0" xmlns="%s"><channelID>%s</channelID>` +
	`<eventType>%s</eventType><eventState>%s</eventState><eventDescription>%s</eventDescription></EventNotificationAlert>`

func stream(boundary string, parts ...string) string {
	var b strings.Builder
	for _, p := range parts {
		fmt.Fprintf(&b, "--%s\r\nContent-Type: application/xml\r\n\r\n%s\r\n", boundary, p)
	}
	return b.String()
}

func TestParserEdges(t *testing.T) {
	motion := fmt.Sprintf(xmlAlert, "http://www.isapi.org/ver20/XMLSchema", "2", "VMD", "active", "a & b")
	cases := []struct {
		name, ct, body string
		want           []string
		bad            int
	}{
		{"glued delimiter", "multipart/mixed; boundary=b", "--b\r\nContent-Type: application/xml\r\n\r\n" + motion + "--b\r\nContent-Type: application/xml\r\n\r\n" + motion + "\r\n--b--\r\n", []string{"2/motion:on", "2/motion:on"}, 0},
		{"no header boundary", "multipart/mixed", stream("x", motion, motion), []string{"2/motion:on", "2/motion:on"}, 0},
		{"preamble and blank lines", "multipart/mixed; boundary=x", "\r\n\r\nwelcome\r\n" + stream("x", motion), []string{"2/motion:on"}, 0},
		{"first part without delimiter", "multipart/mixed; boundary=x", "Content-Type: application/xml\r\n\r\n" + motion + "\r\n" + stream("x", motion), []string{"2/motion:on", "2/motion:on"}, 0},
		{"part without headers", "multipart/mixed; boundary=x", "--x\r\n" + motion + "\r\n--x\r\n", []string{"2/motion:on"}, 0},
		{"closing delimiter ends", "multipart/mixed; boundary=x", stream("x", motion) + "--x--\r\n" + stream("x", motion), []string{"2/motion:on"}, 0},
		{"broken part skipped", "multipart/mixed; boundary=x", stream("x", "<EventNotificationAlert><eventType>VMD", "<Other/>", "{not json", motion), []string{"2/motion:on"}, 3},
		{"wrong content length ignored for XML", "multipart/mixed; boundary=x", "--x\r\nContent-Type: application/xml\r\nContent-Length: 5\r\n\r\n" + motion + "\r\n--x\r\n", []string{"2/motion:on"}, 0},
		{"unannounced picture dropped", "multipart/mixed; boundary=x", stream("x", motion) + "--x\r\nContent-Type: image/jpeg\r\nContent-Length: 4\r\n\r\n\xff\xd8\xff\xd9\r\n" + stream("x", motion), []string{"2/motion:on", "2/motion:on"}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			as, dec := decodeAll(t, strings.NewReader(c.body), c.ct, nil)
			var got []string
			for _, a := range as {
				got = append(got, alertString(a))
				if a.Description != "a & b" {
					t.Errorf("description %q, want %q", a.Description, "a & b")
				}
			}
			if strings.Join(got, " ") != strings.Join(c.want, " ") {
				t.Errorf("alerts %v, want %v", got, c.want)
			}
			if dec.Stats().BadParts != c.bad {
				t.Errorf("bad parts %d, want %d (last: %v)", dec.Stats().BadParts, c.bad, dec.LastError())
			}
			if c.bad > 0 {
				var pe *events.PartError
				if !errors.As(dec.LastError(), &pe) {
					t.Errorf("LastError %v is not a *PartError", dec.LastError())
				}
			}
		})
	}
}

func TestNoBoundary(t *testing.T) {
	dec := events.NewDecoder(strings.NewReader("<EventNotificationAlert/>\r\n"), "text/plain", nil)
	if _, err := dec.Next(); !errors.Is(err, events.ErrNoBoundary) {
		t.Fatalf("err %v, want ErrNoBoundary", err)
	}
}

func TestPartTooLargeSkipped(t *testing.T) {
	motion := fmt.Sprintf(xmlAlert, "x", "1", "VMD", "active", "a & b")
	big := "--x\r\nContent-Type: application/xml\r\n\r\n<EventNotificationAlert>" + strings.Repeat("y", events.DefaultMaxPartSize+10) + "\r\n"
	as, _ := decodeAll(t, strings.NewReader(big+stream("x", motion)), "multipart/mixed; boundary=x", nil)
	if len(as) != 1 || alertString(as[0]) != "1/motion:on" {
		t.Fatalf("alerts %+v, want the motion after the oversized part", as)
	}
}

func TestHeartbeatKinds(t *testing.T) {
	cases := []struct {
		body      string
		heartbeat bool
		typ       string
	}{
		{`{"eventType":"heartBeat","eventState":"active"}`, true, "heartbeat"},
		{`{"eventType":"other","eventState":"active","eventDescription":"Heartbeat"}`, true, "other"},
		{`{"eventType":"videoloss","eventState":"active","channelID":3}`, false, "videoloss"},
		{`{"EventNotificationAlert":{"eventType":"VMD","eventState":"active","channelID":"2"}}`, false, "motion"},
		{`{"eventType":"voiceTalkEvent","VoiceTalkEvent":{"cmdType":"request"}}`, false, "ring"},
		{`{"eventType":"voiceTalkEvent","VoiceTalkEvent":{"cmdType":"hangUp"}}`, false, "call"},
		{`{"eventType":"AccessControllerEvent","AccessControllerEvent":{"majorEventType":5,"subEventType":26}}`, false, "door"},
	}
	for _, c := range cases {
		a, err := events.ParseAlert("application/json", []byte(c.body))
		if err != nil {
			t.Errorf("%s: %v", c.body, err)
			continue
		}
		if a.Heartbeat != c.heartbeat || a.Type != c.typ {
			t.Errorf("%s: heartbeat=%v type=%q, want %v %q", c.body, a.Heartbeat, a.Type, c.heartbeat, c.typ)
		}
	}
}

// TestPartReturnedBeforeNextDelimiter: a report must not wait for the next part (which may come
// seconds later, or never on devices without heartbeats).
func TestPartReturnedBeforeNextDelimiter(t *testing.T) {
	motion := fmt.Sprintf(xmlAlert, "x", "1", "VMD", "active", "a & b")
	json := `{"eventType":"VMD","eventState":"active","channelID":1}`
	cases := map[string]string{
		"xml with length":     fmt.Sprintf("--x\r\nContent-Type: application/xml\r\nContent-Length: %d\r\n\r\n%s\r\n", len(motion), motion),
		"xml without length":  "--x\r\nContent-Type: application/xml\r\n\r\n<?xml version=\"1.0\"?>\r\n" + motion + "\r\n",
		"json with length":    fmt.Sprintf("--x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s\r\n", len(json), json),
		"json without length": "--x\r\nContent-Type: application/json\r\n\r\n{\r\n\"eventType\": \"VMD\",\r\n\"eventState\": \"active\",\r\n\"channelID\": 1\r\n}\r\n",
	}
	for name, first := range cases {
		t.Run(name, func(t *testing.T) {
			r, w := io.Pipe()
			defer w.Close()
			dec := events.NewDecoder(r, "multipart/mixed; boundary=x", nil)
			got := make(chan events.Alert, 2)
			go func() {
				for {
					a, err := dec.Next()
					if err != nil {
						close(got)
						return
					}
					got <- a
				}
			}()
			if _, err := io.WriteString(w, first); err != nil {
				t.Fatal(err)
			}
			select {
			case a := <-got:
				if alertString(a) != "1/motion:on" {
					t.Fatalf("alert %s", alertString(a))
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the part waited for the next delimiter")
			}
			// the stream goes on normally after it
			if _, err := io.WriteString(w, first); err != nil {
				t.Fatal(err)
			}
			select {
			case a, ok := <-got:
				if !ok || alertString(a) != "1/motion:on" {
					t.Fatalf("second alert %v %s", ok, alertString(a))
				}
			case <-time.After(5 * time.Second):
				t.Fatal("second part not returned")
			}
			w.Close()
			if _, ok := <-got; ok {
				t.Fatal("an alert from nothing")
			}
		})
	}
}

func TestContentLengthTooLong(t *testing.T) {
	motion := fmt.Sprintf(xmlAlert, "x", "1", "VMD", "active", "a & b")
	body := fmt.Sprintf("--x\r\nContent-Type: application/xml\r\nContent-Length: %d\r\n\r\n%s\r\n", len(motion)+500, motion) +
		stream("x", strings.Replace(motion, ">1<", ">2<", 1))
	as, dec := decodeAll(t, strings.NewReader(body), "multipart/mixed; boundary=x", nil)
	if len(as) != 2 || alertString(as[0]) != "1/motion:on" || alertString(as[1]) != "2/motion:on" || dec.Stats().BadParts != 0 {
		t.Fatalf("alerts %+v stats %+v", as, dec.Stats())
	}
}
