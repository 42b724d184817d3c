package isapi_test

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
)

func TestEventTriggers(t *testing.T) {
	cases := []struct {
		file string
		want []isapi.EventTrigger
	}{
		{"eventTriggers_camera.xml", []isapi.EventTrigger{
			{ID: "VMD-1", EventType: "VMD", VideoChannel: 1, DynVideoChannel: 1, Methods: []string{"center", "email"}},
			{ID: "tamper-1", EventType: "tamperdetection", VideoChannel: 1, DynVideoChannel: 1}, // empty list
			{ID: "linedetection-1", EventType: "linedetection", VideoChannel: 1, DynVideoChannel: 1, Methods: []string{"record"}},
			{ID: "IO-1", EventType: "IO", IOPort: 1, DynIOPort: 1, Methods: []string{"IO", "Center"}},
			{ID: "diskfull", EventType: "diskfull"}, // no list at all
		}},
		{"eventTriggers_nvr.xml", []isapi.EventTrigger{
			{ID: "VMD-33", EventType: "VMD", VideoChannel: 33, DynVideoChannel: 1, Methods: []string{"center", "beep"}},
			{ID: "VMD-34", EventType: "VMD", VideoChannel: 34, DynVideoChannel: 2, Methods: []string{"monitorAlarm"}},
			{ID: "videoloss-34", EventType: "videoloss", VideoChannel: 34, DynVideoChannel: 2, Methods: []string{"center"}},
			{ID: "IO-2", EventType: "IO", IOPort: 2, Methods: []string{"center"}},
			{ID: "IO-D1-1", EventType: "IO"}, // a port id that is no number
		}},
		{"eventTriggers_wrapped.xml", []isapi.EventTrigger{ // EventNotification/EventTriggerList, isapi.org
			{ID: "fielddetection-1", EventType: "fielddetection", VideoChannel: 1, Methods: []string{"center", "HTTP"}},
			// the trigger without an eventType is left out
			{ID: "regionEntrance-1", EventType: "regionEntrance", VideoChannel: 1},
		}},
		{"eventTriggers_empty_nonamespace.xml", []isapi.EventTrigger{}},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			d := newFakeDevice(t)
			d.handle(isapi.PathEventTriggers, serveFile(t, 200, tc.file))
			c, _ := start(t, d, nil)
			got, err := c.EventTriggers(ctxT(t))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestEventTriggerNotifies(t *testing.T) {
	tr := isapi.EventTrigger{Methods: []string{"IO", "Center"}}
	if !tr.Notifies(isapi.NotifyCenter) || tr.Notifies("email") || (isapi.EventTrigger{}).Notifies(isapi.NotifyCenter) {
		t.Fatalf("Notifies wrong for %+v", tr)
	}
}

// A device without the resource: a typed "not supported" that still holds
// the device's answer; other failures keep their own kind.
func TestEventTriggersNotSupported(t *testing.T) {
	cases := []struct {
		name    string
		handler func(t *testing.T) http.HandlerFunc
		unsupp  bool
		status  int
	}{
		{"404 invalidOperation", func(t *testing.T) http.HandlerFunc { return serveFile(t, 404, "responseStatus_invalidOperation.xml") }, true, 404},
		{"bare 404", func(t *testing.T) http.HandlerFunc { return http.NotFound }, true, 404},
		{"403 notSupport", func(t *testing.T) http.HandlerFunc { return serveFile(t, 403, "responseStatus_notSupport.xml") }, true, 403},
		{"bare 403", func(t *testing.T) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(403) }
		}, true, 403},
		{"501", func(t *testing.T) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(501) }
		}, true, 501},
		{"503 busy", func(t *testing.T) http.HandlerFunc { return serveFile(t, 503, "responseStatus_deviceBusy.xml") }, false, 503},
		{"500", func(t *testing.T) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }
		}, false, 500},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := newFakeDevice(t)
			d.handle(isapi.PathEventTriggers, tc.handler(t))
			c, _ := start(t, d, nil)
			got, err := c.EventTriggers(ctxT(t))
			if err == nil || got != nil {
				t.Fatalf("%v %v, want an error", got, err)
			}
			if errors.Is(err, isapi.ErrNotSupported) != tc.unsupp {
				t.Fatalf("%v: ErrNotSupported %v, want %v", err, errors.Is(err, isapi.ErrNotSupported), tc.unsupp)
			}
			var se *isapi.StatusError
			if !errors.As(err, &se) || se.HTTPStatus != tc.status || se.Path != isapi.PathEventTriggers {
				t.Fatalf("%v: want the device's StatusError (HTTP %d)", err, tc.status)
			}
			noSecret(t, err)
		})
	}
}

func TestEventTriggersNotAList(t *testing.T) {
	for name, body := range map[string]string{
		"other root": `<?xml version="1.0" encoding="UTF-8"?><DeviceInfo xmlns="http://www.hikvision.com/ver20/XMLSchema"><model>x</model></DeviceInfo>`,
		"HTML":       `<!DOCTYPE html><html><body>login</body></html>`,
		"not XML":    `{"EventTriggerList":[]}`,
		"cut":        `<?xml version="1.0" encoding="UTF-8"?><EventTriggerList><EventTrigger><id>VMD-1</id><eventType>VMD`,
		"bad wrap":   `<EventNotification><EventTriggerList><EventTrigger><eventType>VMD</eventType></EventTriggerList></EventNotification>`,
	} {
		t.Run(name, func(t *testing.T) {
			d := newFakeDevice(t)
			d.handle(isapi.PathEventTriggers, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/xml")
				_, _ = w.Write([]byte(body))
			})
			c, _ := start(t, d, nil)
			got, err := c.EventTriggers(context.Background())
			if !errors.Is(err, isapi.ErrProtocol) || got != nil {
				t.Fatalf("%v %v, want ErrProtocol", got, err)
			}
			if !strings.Contains(err.Error(), isapi.PathEventTriggers) {
				t.Fatalf("%v: does not name the resource", err)
			}
		})
	}
}
