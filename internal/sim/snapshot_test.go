package sim_test

import (
	"bytes"
	"encoding/json"
	"image/jpeg"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

// picture does an authenticated GET of path with fresh credentials.
func picture(c *tclient, path string) (int, http.Header, []byte) {
	c.t.Helper()
	ch := c.challengeFor(path, "MD5")
	return c.do("GET", path, digestAuthorization(ch, "GET", path, "admin", "hik12345", 1))
}

func wantJPEG(t *testing.T, h http.Header, body []byte, w, hgt int) {
	t.Helper()
	if ct := h.Get("Content-Type"); ct != "image/jpeg" {
		t.Fatalf("Content-Type %q, want image/jpeg", ct)
	}
	if !bytes.HasPrefix(body, []byte{0xFF, 0xD8, 0xFF}) || !bytes.HasSuffix(body, []byte{0xFF, 0xD9}) {
		t.Fatalf("body is not a whole JPEG (%d bytes)", len(body))
	}
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("JPEG does not decode: %v", err)
	}
	if _, err := jpeg.Decode(bytes.NewReader(body)); err != nil {
		t.Fatalf("JPEG does not decode: %v", err)
	}
	if cfg.Width != w || cfg.Height != hgt {
		t.Fatalf("JPEG is %dx%d, want %dx%d", cfg.Width, cfg.Height, w, hgt)
	}
}

func TestSnapshotCamera(t *testing.T) {
	d := start(t, sim.Config{})
	c := newClient(t, d)

	// digest-protected like every ISAPI path
	if status, _, _ := c.do("GET", "/ISAPI/Streaming/channels/101/picture", ""); status != 401 {
		t.Fatalf("picture without credentials: %d, want 401", status)
	}

	status, h, body := picture(c, "/ISAPI/Streaming/channels/101/picture")
	if status != 200 {
		t.Fatalf("status %d: %s", status, body)
	}
	wantJPEG(t, h, body, 640, 360)
	first := sim.JPEGComment(body)

	_, h, body = picture(c, "/ISAPI/Streaming/channels/102/picture")
	wantJPEG(t, h, body, 320, 180)
	if second := sim.JPEGComment(body); second == first || !strings.Contains(second, "seq=2") {
		t.Fatalf("comments %q then %q: want a new sequence number per answer", first, second)
	}

	_, h, body = picture(c, "/ISAPI/Streaming/channels/101/picture?snapShotImageType=JPEG&videoResolutionWidth=160&videoResolutionHeight=90")
	wantJPEG(t, h, body, 160, 90)

	for _, p := range []string{
		"/ISAPI/Streaming/channels/101/picture?videoResolutionWidth=0&videoResolutionHeight=90",
		"/ISAPI/Streaming/channels/101/picture?videoResolutionWidth=99999&videoResolutionHeight=90",
		"/ISAPI/Streaming/channels/901/picture",
		"/ISAPI/Streaming/channels/abc/picture",
	} {
		status, _, body := picture(c, p)
		rs := decode[responseStatus](t, body)
		if status != 400 || rs.SubStatusCode != "badParameters" {
			t.Errorf("%s: %d %s, want 400 badParameters", p, status, rs.SubStatusCode)
		}
	}
	// a camera has no StreamingProxy
	status, _, body = picture(c, "/ISAPI/ContentMgmt/StreamingProxy/channels/101/picture")
	if rs := decode[responseStatus](t, body); status != 403 || rs.SubStatusCode != "notSupport" {
		t.Errorf("camera StreamingProxy picture: %d %s, want 403 notSupport", status, rs.SubStatusCode)
	}
	st := d.SnapshotStats()
	if st.Requests != 8 || st.Served != 3 || st.Rejected != 5 {
		t.Errorf("stats %+v, want 8 requests, 3 served, 5 rejected", st)
	}
}

func TestSnapshotNVR(t *testing.T) {
	d := start(t, sim.Config{Personality: sim.PersonalityNVR})
	c := newClient(t, d)
	ch := d.Channels()[1]

	status, _, body := picture(c, "/ISAPI/Streaming/channels/201/picture")
	if rs := decode[responseStatus](t, body); status != 400 || rs.SubStatusCode != "badXmlContent" {
		t.Fatalf("NVR plain picture path: %d %s, want 400 badXmlContent", status, rs.SubStatusCode)
	}
	status, h, body := picture(c, "/ISAPI/ContentMgmt/StreamingProxy/channels/201/picture")
	if status != 200 {
		t.Fatalf("NVR StreamingProxy picture: %d %s", status, body)
	}
	wantJPEG(t, h, body, ch.SubWidth, ch.SubHeight) // NVR default: substream resolution
	_, h, body = picture(c, "/ISAPI/ContentMgmt/StreamingProxy/channels/201/picture?videoResolutionWidth=200&videoResolutionHeight=100")
	wantJPEG(t, h, body, 200, 100)
}

func TestSnapshotFaultModes(t *testing.T) {
	d := start(t, sim.Config{})
	c := newClient(t, d)
	const path = "/ISAPI/Streaming/channels/101/picture"

	snapMust(t, d.FailNextSnapshots(1, sim.SnapshotXML))
	status, h, body := picture(c, path)
	if rs := decode[responseStatus](t, body); status != 200 || rs.StatusCode != 3 || !strings.HasPrefix(string(body), "<?xml") {
		t.Errorf("xml fault: %d %q %+v, want HTTP 200 with a ResponseStatus deviceError", status, h.Get("Content-Type"), rs)
	}

	snapMust(t, d.FailNextSnapshots(1, sim.SnapshotHTML))
	status, h, body = picture(c, path)
	if status != 200 || h.Get("Content-Type") != "text/html" || !bytes.Contains(body, []byte("<html>")) {
		t.Errorf("html fault: %d %q %q", status, h.Get("Content-Type"), body)
	}

	snapMust(t, d.FailNextSnapshots(1, sim.SnapshotTruncated))
	status, h, body = picture(c, path)
	if status != 200 || h.Get("Content-Type") != "image/jpeg" || !bytes.HasPrefix(body, []byte{0xFF, 0xD8, 0xFF}) ||
		bytes.HasSuffix(body, []byte{0xFF, 0xD9}) {
		t.Errorf("truncated fault: %d %q, %d bytes: want a JPEG start without EOI", status, h.Get("Content-Type"), len(body))
	}
	if _, err := jpeg.Decode(bytes.NewReader(body)); err == nil {
		t.Error("truncated JPEG decodes")
	}

	snapMust(t, d.FailNextSnapshots(1, sim.SnapshotTimeout))
	ch := c.challengeFor(path, "MD5")
	req, _ := http.NewRequest("GET", c.base+path, nil)
	req.Header.Set("Authorization", digestAuthorization(ch, "GET", path, "admin", "hik12345", 1))
	hc := &http.Client{Transport: c.tr, Timeout: 300 * time.Millisecond}
	began := time.Now()
	if res, err := hc.Do(req); err == nil {
		res.Body.Close()
		t.Fatalf("timeout fault answered %d", res.StatusCode)
	}
	if el := time.Since(began); el < 250*time.Millisecond {
		t.Errorf("timeout fault ended after %v, before the client gave up", el)
	}

	// and the device is fine again
	_, h, body = picture(c, path)
	wantJPEG(t, h, body, 640, 360)

	st := d.SnapshotStats()
	for _, f := range sim.AllSnapshotFaults {
		if st.Faults[f] != 1 {
			t.Errorf("faults[%s] = %d, want 1 (%+v)", f, st.Faults[f], st)
		}
	}
	if st.Requests != 5 || st.Served != 1 {
		t.Errorf("stats %+v, want 5 requests, 1 served", st)
	}
	if err := d.FailNextSnapshots(1, "bogus"); err == nil {
		t.Error("FailNextSnapshots(bogus): no error")
	}
	if err := d.SetSnapshotFaults(sim.SnapshotFaults{Rate: 1.5}); err == nil {
		t.Error("SetSnapshotFaults(rate 1.5): no error")
	}
}

// A rate of faults is about right, seeded (the same seed gives the same sequence), and the Go method
// and the control API agree.
func TestSnapshotFaultRate(t *testing.T) {
	run := func(viaControl bool) []string {
		d := start(t, sim.Config{ControlAddr: "127.0.0.1:0"})
		if viaControl {
			res, err := http.Post("http://"+d.ControlAddr()+"/snapshot-faults?rate=0.3&modes=xml,truncated,html&seed=7", "", nil)
			if err != nil {
				t.Fatal(err)
			}
			var st sim.SnapshotStats
			err = json.NewDecoder(res.Body).Decode(&st)
			res.Body.Close()
			if err != nil || res.StatusCode != 200 {
				t.Fatalf("control: %d %v", res.StatusCode, err)
			}
		} else {
			snapMust(t, d.SetSnapshotFaults(sim.SnapshotFaults{Rate: 0.3, Seed: 7,
				Modes: []sim.SnapshotFault{sim.SnapshotXML, sim.SnapshotTruncated, sim.SnapshotHTML}}))
		}
		c := newClient(t, d)
		var kinds []string
		for range 200 {
			_, h, body := picture(c, "/ISAPI/Streaming/channels/102/picture")
			k := "jpeg"
			switch {
			case h.Get("Content-Type") == "text/html":
				k = "html"
			case bytes.HasPrefix(body, []byte("<?xml")):
				k = "xml"
			case !bytes.HasSuffix(body, []byte{0xFF, 0xD9}):
				k = "truncated"
			}
			kinds = append(kinds, k)
		}
		st := d.SnapshotStats()
		failed := st.Faults[sim.SnapshotXML] + st.Faults[sim.SnapshotTruncated] + st.Faults[sim.SnapshotHTML]
		if failed < 35 || failed > 85 || st.Served != 200-failed || st.Faults[sim.SnapshotTimeout] != 0 {
			t.Errorf("200 requests at rate 0.3: %+v", st)
		}
		for _, f := range []sim.SnapshotFault{sim.SnapshotXML, sim.SnapshotTruncated, sim.SnapshotHTML} {
			if st.Faults[f] == 0 {
				t.Errorf("fault %s never chosen: %+v", f, st)
			}
		}
		return kinds
	}
	a, b := run(false), run(true)
	if strings.Join(a, ",") != strings.Join(b, ",") {
		t.Errorf("same seed, different fault sequences:\n%v\n%v", a, b)
	}

	d := start(t, sim.Config{ControlAddr: "127.0.0.1:0"})
	res, err := http.Post("http://"+d.ControlAddr()+"/snapshot-faults?rate=0.3&modes=nope", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 400 {
		t.Errorf("control with an unknown mode: %d, want 400", res.StatusCode)
	}
}

func TestEncodeTestJPEGSizes(t *testing.T) {
	for _, sz := range [][2]int{{1, 1}, {17, 9}, {1920, 1080}} {
		b, err := sim.EncodeTestJPEG(sz[0], sz[1], 1)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := jpeg.DecodeConfig(bytes.NewReader(sim.WithComment(b, "x")))
		if err != nil || cfg.Width != sz[0] || cfg.Height != sz[1] {
			t.Errorf("%v: %+v %v", sz, cfg, err)
		}
	}
	if _, err := sim.EncodeTestJPEG(0, 5, 1); err == nil {
		t.Error("size 0: no error")
	}
}

func snapMust(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
