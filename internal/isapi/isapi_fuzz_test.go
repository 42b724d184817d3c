package isapi_test

// Fuzz targets for every ISAPI answer the client decodes. The XML decoding is
// unexported, so the targets go through the exported calls against one
// in-process HTTP server that answers the fuzzed body (no authentication
// asked, so each call is one round trip). See testdata/fuzz/README.md at the
// repository root for how long each was fuzzed.

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
)

// fuzzPassword is the client's password. The fuzz server never asks for it,
// so it can only reach an error through a bug (or through the fuzzed body
// itself, which the checks exclude).
const fuzzPassword = "Pw-fuzz-Q7kz"

// fuzzStatuses maps the fuzzed status selector to an HTTP status.
var fuzzStatuses = []int{200, 200, 200, 200, 401, 403, 404, 500, 302, 204}

type fuzzServer struct {
	once   sync.Once
	srv    *httptest.Server
	client *isapi.Client

	mu     sync.Mutex
	status int
	bodies map[string][]byte // by path; others 404
}

var fz fuzzServer

// fuzzClient returns the shared client, answering bodies[path] with status
// for the next calls. Fuzz functions of one worker run one at a time.
func fuzzClient(t *testing.T, sel uint8, bodies map[string][]byte) *isapi.Client {
	fz.once.Do(func() {
		fz.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fz.mu.Lock()
			status, body, ok := fz.status, fz.bodies[r.URL.Path], fz.bodies[r.URL.Path] != nil
			fz.mu.Unlock()
			if !ok {
				w.WriteHeader(http.StatusNotFound)
				return
			}
			if status >= 300 && status < 400 {
				w.Header().Set("Location", "http://admin:"+fuzzPassword+"@192.0.2.1/elsewhere")
			}
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(status)
			_, _ = w.Write(body)
		}))
		c, err := isapi.New(isapi.Config{Host: strings.TrimPrefix(fz.srv.URL, "http://"),
			Username: "admin", Password: fuzzPassword})
		if err != nil {
			panic(err)
		}
		fz.client = c
	})
	fz.mu.Lock()
	fz.status = fuzzStatuses[int(sel)%len(fuzzStatuses)]
	fz.bodies = bodies
	fz.mu.Unlock()
	return fz.client
}

// addFixtures seeds f with every testdata/isapi fixture whose name starts
// with one of prefixes, with each status selector 0 (200) and 4 (401).
func addFixtures(f *testing.F, prefixes ...string) {
	var n int
	err := filepath.WalkDir(filepath.Join("..", "..", "testdata", "isapi"), func(p string, de os.DirEntry, err error) error {
		if err != nil || de.IsDir() || !strings.HasSuffix(p, ".xml") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		base := filepath.Base(p)
		for _, pre := range prefixes {
			if strings.HasPrefix(base, pre) {
				f.Add(uint8(0), b)
				f.Add(uint8(6), b)
				n++
				break
			}
		}
		return nil
	})
	if err != nil {
		f.Fatal(err)
	}
	if n == 0 {
		f.Fatalf("no fixtures for %v", prefixes)
	}
	f.Add(uint8(0), []byte(""))
	f.Add(uint8(0), []byte("<"))
	f.Add(uint8(0), []byte(`<?xml version="1.0" encoding="ISO-8859-1"?><DeviceInfo><model>\xe9</model></DeviceInfo>`))
	f.Add(uint8(0), []byte("\xef\xbb\xbf<ResponseStatus><statusCode>1</statusCode></ResponseStatus>"))
}

// checkErr: an error is one of the package's kinds and never holds the
// password unless the device's own body did.
func checkErr(t *testing.T, err error, body []byte) {
	t.Helper()
	if err == nil {
		return
	}
	var se *isapi.StatusError
	var ae *isapi.AuthError
	if !errors.As(err, &se) && !errors.As(err, &ae) && !errors.Is(err, isapi.ErrProtocol) &&
		!errors.Is(err, isapi.ErrTooLarge) {
		t.Fatalf("untyped error %T: %v", err, err)
	}
	if strings.Contains(err.Error(), fuzzPassword) && !strings.Contains(string(body), fuzzPassword) {
		t.Fatalf("error holds the password: %v", err)
	}
	if se != nil && se.HTTPStatus != 0 && !slices.Contains(fuzzStatuses, se.HTTPStatus) {
		t.Fatalf("StatusError with HTTP %d the server never sent", se.HTTPStatus)
	}
}

// trimmed: the typed calls hand out trimmed strings.
func trimmed(t *testing.T, name, s string) {
	t.Helper()
	if strings.TrimSpace(s) != s {
		t.Fatalf("%s %q not trimmed", name, s)
	}
}

func FuzzDeviceInfo(f *testing.F) {
	addFixtures(f, "deviceInfo", "responseStatus", "userCheck_bare")
	f.Fuzz(func(t *testing.T, sel uint8, body []byte) {
		c := fuzzClient(t, sel, map[string][]byte{isapi.PathDeviceInfo: body})
		info, err := c.DeviceInfo(context.Background())
		checkErr(t, err, body)
		if (info == nil) == (err == nil) {
			t.Fatalf("info %v, err %v", info, err)
		}
		if info != nil {
			for _, s := range []string{info.Model, info.DeviceType, info.FirmwareVersion, info.DeviceName, info.SerialNumber} {
				trimmed(t, "field", s)
			}
			_ = info.IsNVR()
		}
	})
}

func FuzzStreamingChannels(f *testing.F) {
	addFixtures(f, "streamingChannel", "responseStatus")
	f.Fuzz(func(t *testing.T, sel uint8, body []byte) {
		c := fuzzClient(t, sel, map[string][]byte{
			isapi.PathStreamingChannels:          body,
			isapi.PathStreamingChannels + "/101": body,
		})
		chs, err := c.StreamingChannels(context.Background())
		checkErr(t, err, body)
		if err == nil && len(chs) > strings.Count(string(body), "StreamingChannel") {
			t.Fatalf("%d channels from %d mentions", len(chs), strings.Count(string(body), "StreamingChannel"))
		}
		for _, ch := range chs {
			trimmed(t, "videoCodec", ch.VideoCodec)
		}
		ch, err := c.StreamingChannel(context.Background(), 101)
		checkErr(t, err, body)
		if (ch == nil) == (err == nil) {
			t.Fatalf("channel %v, err %v", ch, err)
		}
	})
}

func FuzzAdminAccesses(f *testing.F) {
	addFixtures(f, "adminAccesses", "responseStatus")
	f.Fuzz(func(t *testing.T, sel uint8, body []byte) {
		c := fuzzClient(t, sel, map[string][]byte{isapi.PathAdminAccesses: body})
		port, err := c.RTSPPort(context.Background())
		checkErr(t, err, body)
		if err == nil && (port < 1 || port > 65535) {
			t.Fatalf("RTSP port %d", port)
		}
		if err != nil && port != 0 {
			t.Fatalf("port %d with error %v", port, err)
		}
	})
}

func FuzzTwoWayAudioChannels(f *testing.F) {
	addFixtures(f, "twoWayAudioChannels", "responseStatus")
	f.Fuzz(func(t *testing.T, sel uint8, body []byte) {
		c := fuzzClient(t, sel, map[string][]byte{isapi.PathTwoWayAudioChannels: body})
		chs, err := c.TwoWayAudioChannels(context.Background())
		checkErr(t, err, body)
		for _, ch := range chs {
			if ch.AudioSamplingRate < 0 || ch.AudioBitRate < 0 {
				t.Fatalf("negative rate %+v", ch)
			}
			if ch.AudioSamplingRate > 0 && ch.AudioSamplingRate < 1000 {
				t.Fatalf("sampling rate %d not in Hz", ch.AudioSamplingRate)
			}
			trimmed(t, "id", ch.ID)
		}
	})
}

func FuzzTwoWayAudioSession(f *testing.F) {
	addFixtures(f, "twoWayAudioSession", "responseStatus")
	f.Fuzz(func(t *testing.T, sel uint8, body []byte) {
		c := fuzzClient(t, sel, map[string][]byte{
			isapi.PathTwoWayAudioChannels + "/1/open":  body,
			isapi.PathTwoWayAudioChannels + "/1/close": body,
		})
		id, err := c.TalkOpen(context.Background(), "1")
		checkErr(t, err, body)
		if err != nil && id != "" {
			t.Fatalf("session %q with error %v", id, err)
		}
		trimmed(t, "sessionId", id)
		checkErr(t, c.TalkClose(context.Background(), "1"), body)
	})
}

func FuzzResponseStatus(f *testing.F) {
	addFixtures(f, "responseStatus", "deviceInfo_notActivated")
	f.Fuzz(func(t *testing.T, sel uint8, body []byte) {
		c := fuzzClient(t, sel, map[string][]byte{"/ISAPI/x": body})
		status, got, err := c.Do(context.Background(), http.MethodPut, "/ISAPI/x", []byte("<x/>"))
		checkErr(t, err, body)
		if status != 0 && status != http.StatusNoContent && string(got) != string(body) {
			t.Fatalf("body changed: %q -> %q", body, got)
		}
		var se *isapi.StatusError
		if err == nil && (status < 200 || status > 299) {
			t.Fatalf("HTTP %d without error", status)
		}
		if errors.As(err, &se) && se.HTTPStatus != status {
			t.Fatalf("StatusError HTTP %d, Do returned %d", se.HTTPStatus, status)
		}
	})
}

func FuzzUserCheck(f *testing.F) {
	addFixtures(f, "userCheck", "responseStatus")
	f.Fuzz(func(t *testing.T, sel uint8, body []byte) {
		c := fuzzClient(t, sel, map[string][]byte{isapi.PathUserCheck: body})
		err := c.UserCheck(context.Background())
		checkErr(t, err, body)
		var ae *isapi.AuthError
		if errors.As(err, &ae) {
			if ae.UnlockTime < 0 || ae.RetryLoginTime < -1 {
				t.Fatalf("AuthError %+v", ae)
			}
			if ae.Locked != errors.Is(err, isapi.ErrLocked) || ae.Locked == errors.Is(err, isapi.ErrUnauthorized) {
				t.Fatalf("AuthError %+v matches the wrong sentinel", ae)
			}
		}
	})
}

func FuzzInputProxyChannels(f *testing.F) {
	// the list and the status list, split at the fuzzed byte offset
	dir := filepath.Join("..", "..", "testdata", "isapi")
	list, err1 := os.ReadFile(filepath.Join(dir, "inputProxyChannels.xml"))
	status, err2 := os.ReadFile(filepath.Join(dir, "inputProxyChannelsStatus.xml"))
	forbidden, err3 := os.ReadFile(filepath.Join(dir, "responseStatus_notSupport.xml"))
	if err := errors.Join(err1, err2, err3); err != nil {
		f.Fatal(err)
	}
	f.Add(uint8(0), list, status)
	f.Add(uint8(0), list, forbidden)
	f.Add(uint8(0), status, list)
	f.Add(uint8(5), forbidden, forbidden)
	f.Add(uint8(0), list, []byte("<InputProxyChannelStatusList><InputProxyChannelStatus><id>x</id></InputProxyChannelStatus></InputProxyChannelStatusList>"))
	f.Fuzz(func(t *testing.T, sel uint8, list, status []byte) {
		c := fuzzClient(t, sel, map[string][]byte{
			isapi.PathInputProxyChannels: list,
			isapi.PathInputProxyStatus:   status,
		})
		chs, err := c.InputProxyChannels(context.Background())
		checkErr(t, err, append(append([]byte(nil), list...), status...))
		if err != nil && chs != nil {
			t.Fatalf("channels %v with error %v", chs, err)
		}
		for _, ch := range chs {
			trimmed(t, "name", ch.Name)
			trimmed(t, "ip", ch.IPAddress)
		}
	})
}

func FuzzEventTriggers(f *testing.F) {
	addFixtures(f, "eventTriggers", "responseStatus_notSupport", "responseStatus_invalidOperation")
	f.Fuzz(func(t *testing.T, sel uint8, body []byte) {
		c := fuzzClient(t, sel, map[string][]byte{isapi.PathEventTriggers: body})
		trs, err := c.EventTriggers(context.Background())
		checkErr(t, err, body)
		if err != nil && trs != nil {
			t.Fatalf("triggers %v with error %v", trs, err)
		}
		if err == nil && len(trs) > strings.Count(string(body), "EventTrigger") {
			t.Fatalf("%d triggers from %d mentions", len(trs), strings.Count(string(body), "EventTrigger"))
		}
		for _, tr := range trs {
			if tr.EventType == "" {
				t.Fatalf("trigger without an event type: %+v", tr)
			}
			if tr.VideoChannel < 0 || tr.DynVideoChannel < 0 || tr.IOPort < 0 || tr.DynIOPort < 0 {
				t.Fatalf("negative channel: %+v", tr)
			}
			trimmed(t, "eventType", tr.EventType)
			trimmed(t, "id", tr.ID)
			for _, m := range tr.Methods {
				if m == "" {
					t.Fatalf("empty notification method: %+v", tr)
				}
				trimmed(t, "notificationMethod", m)
			}
		}
	})
}

// FuzzParseChallenges: WWW-Authenticate parsing, challenge choice and the
// Authorization answer.
func FuzzParseChallenges(f *testing.F) {
	for _, s := range []string{
		`Digest qop="auth", realm="IP Camera(K2195)", nonce="4e5468694e7a497a4e5441364e6a41774d6a513d", stale="FALSE", opaque=""`,
		`Basic realm="DS-7608NI-K2"`,
		`Digest realm="x", nonce="abc", algorithm=SHA-256, qop="auth,auth-int"` + "\n" + `Digest realm="x", nonce="abc", algorithm=MD5, qop="auth"`,
		`Digest realm="a\"b\\c", nonce=abc, qop=auth-int`,
		`Negotiate abc==, Digest realm=r, nonce=n, algorithm=md5-sess, qop=auth, stale=true`,
		`Digest realm="IP Camera", nonce="n", algorithm=" MD5 "`,
		`Digest`, `,,,`, `Digest realm="unterminated`, `Digest =x, realm`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, hdr string) {
		cs := isapi.ParseChallenges(strings.Split(hdr, "\n"))
		for _, c := range cs {
			if c.Params == nil {
				t.Fatalf("nil Params in %+v", c)
			}
			if c.Algorithm != strings.ToUpper(c.Algorithm) {
				t.Fatalf("algorithm %q not upper case", c.Algorithm)
			}
			switch c.QOP {
			case "", "auth", "unsupported":
			default:
				t.Fatalf("QOP %q", c.QOP)
			}
		}
		ch, ok := isapi.ChooseChallenge(cs)
		if !ok {
			return
		}
		if ch.Scheme != "Digest" && ch.Scheme != "Basic" {
			t.Fatalf("chose scheme %q", ch.Scheme)
		}
		const user, uri = "admin", "/ISAPI/System/deviceInfo"
		a := ch.Authorization(http.MethodGet, uri, user, fuzzPassword, 1, "0a4f113b")
		if ch.Scheme == "Basic" {
			return
		}
		if ch.Nonce == "" || ch.QOP == "unsupported" {
			t.Fatalf("chose an unusable digest challenge %+v", ch)
		}
		if strings.Contains(a, fuzzPassword) && !strings.Contains(hdr, fuzzPassword) {
			t.Fatalf("Authorization holds the password: %s", a)
		}
		if strings.ContainsAny(a, "\r\n") && !strings.ContainsAny(hdr, "\r") {
			// net/http never hands a header value with CR/LF to the client
			// (split lines here are separate headers): the answer must not
			// gain one either.
			t.Fatalf("Authorization with a line break: %q", a)
		}
		// The answer is an auth-param list: it parses back to the values
		// it quotes.
		back := isapi.ParseChallenges([]string{a})
		if len(back) != 1 || back[0].Scheme != "Digest" {
			t.Fatalf("Authorization %q parses as %+v", a, back)
		}
		p := back[0].Params
		if p["username"] != user || p["uri"] != uri || p["realm"] != ch.Realm || p["nonce"] != ch.Nonce {
			t.Fatalf("Authorization %q does not round-trip: %q", a, p)
		}
		if ch.HasOpaque && p["opaque"] != ch.Opaque {
			t.Fatalf("opaque %q, sent %q", ch.Opaque, p["opaque"])
		}
	})
}
