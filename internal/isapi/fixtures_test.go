package isapi_test

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/snapshot"
)

func TestFixturesAreDeviceXML(t *testing.T) {
	var files []string
	err := filepath.WalkDir(filepath.Join("..", "..", "testdata", "isapi"), func(p string, de os.DirEntry, err error) error {
		if err == nil && !de.IsDir() && strings.HasSuffix(p, ".xml") {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 25 {
		t.Fatalf("only %d fixtures", len(files))
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(b, []byte(`<?xml version="1.0" encoding="UTF-8"?>`+"\n<")) {
			t.Errorf("%s: no XML declaration", p)
		}
		if !strings.Contains(p, "nonamespace") && !bytes.Contains(b, []byte(` xmlns="`)) {
			t.Errorf("%s: no namespace", p)
		}
		dec := xml.NewDecoder(bytes.NewReader(b))
		for {
			_, err := dec.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Errorf("%s: %v", p, err)
				break
			}
		}
	}
}

func TestDeviceInfoEveryNamespace(t *testing.T) {
	names := []string{"hikvision20", "hikvision10", "isapi", "stdcgi", "psia", "nonamespace"}
	for _, n := range names {
		t.Run(n, func(t *testing.T) {
			d := newFakeDevice(t)
			d.handle("/ISAPI/System/deviceInfo", serveFile(t, 200, "ns/deviceInfo_"+n+".xml"))
			c, _ := start(t, d, nil)
			di, err := c.DeviceInfo(ctxT(t))
			if err != nil {
				t.Fatal(err)
			}
			want := isapi.DeviceInfo{
				DeviceName: "NS Test", DeviceID: "48443030-3637-3534-3837-44a642000001",
				Model: "DS-2CD2387G2-LU", SerialNumber: "DS-2CD2387G2-LU20231201AAWRAB1234567",
				MACAddress: "44:a6:42:00:00:01", FirmwareVersion: "V5.7.15",
				FirmwareReleasedDate: "build 231219", DeviceType: "IPCamera", Manufacturer: "Hikvision",
			}
			if *di != want {
				t.Fatalf("got %+v\nwant %+v", *di, want)
			}
		})
	}
}

func TestDeviceInfoKinds(t *testing.T) {
	cases := []struct {
		file, model, fw string
		nvr             bool
	}{
		{"deviceInfo_camera.xml", "DS-2CD2143G2-I", "V5.7.18", false},
		{"deviceInfo_nvr.xml", "DS-7608NXI-K2", "V4.76.110", true},
		{"deviceInfo_doorstation.xml", "DS-KV6113-WPE1(C)", "V2.2.53", false},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			d := newFakeDevice(t)
			d.handle("/ISAPI/System/deviceInfo", serveFile(t, 200, tc.file))
			c, _ := start(t, d, nil)
			di, err := c.DeviceInfo(ctxT(t))
			if err != nil {
				t.Fatal(err)
			}
			if di.Model != tc.model || di.FirmwareVersion != tc.fw || di.IsNVR() != tc.nvr {
				t.Fatalf("%+v IsNVR=%v", *di, di.IsNVR())
			}
		})
	}
	t.Run("notActivated", func(t *testing.T) {
		for _, status := range []int{200, 401, 403} {
			d := newFakeDevice(t)
			d.handle("/ISAPI/System/deviceInfo", serveFile(t, status, "deviceInfo_notActivated.xml"))
			c, _ := start(t, d, nil)
			_, err := c.DeviceInfo(ctxT(t))
			if !errors.Is(err, isapi.ErrNotActivated) {
				t.Fatalf("HTTP %d: %v, want ErrNotActivated", status, err)
			}
		}
	})
	t.Run("wrong root", func(t *testing.T) {
		d := newFakeDevice(t)
		d.handle("/ISAPI/System/deviceInfo", serveFile(t, 200, "adminAccesses.xml"))
		c, _ := start(t, d, nil)
		if _, err := c.DeviceInfo(ctxT(t)); !errors.Is(err, isapi.ErrProtocol) {
			t.Fatalf("%v, want ErrProtocol", err)
		}
	})
}

func TestStreamingChannels(t *testing.T) {
	d := newFakeDevice(t)
	d.handle("/ISAPI/Streaming/channels", serveFile(t, 200, "streamingChannelList.xml"))
	d.handle("/ISAPI/Streaming/channels/101", serveFile(t, 200, "streamingChannel_101.xml"))
	c, _ := start(t, d, nil)
	list, err := c.StreamingChannels(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	main := isapi.StreamingChannel{ID: 101, ChannelName: "Front Door", Enabled: true, VideoCodec: "H.264",
		Width: 2688, Height: 1520, MaxFrameRate: 2500, AudioEnabled: true, AudioCodec: "G.711ulaw"}
	sub := isapi.StreamingChannel{ID: 102, ChannelName: "Front Door", Enabled: true, VideoCodec: "H.265",
		Width: 640, Height: 360, MaxFrameRate: 1500, AudioEnabled: false, AudioCodec: "G.711ulaw"}
	if len(list) != 2 || list[0] != main || list[1] != sub {
		t.Fatalf("channels %+v", list)
	}
	one, err := c.StreamingChannel(ctxT(t), 101)
	if err != nil || *one != main {
		t.Fatalf("channel 101: %+v %v", one, err)
	}
}

func TestRTSPPort(t *testing.T) {
	cases := []struct {
		name    string
		handler func(t *testing.T) http.HandlerFunc
		want    int
	}{
		{"listed", func(t *testing.T) http.HandlerFunc { return serveFile(t, 200, "adminAccesses.xml") }, 8554},
		{"403 notSupport", func(t *testing.T) http.HandlerFunc { return serveFile(t, 403, "responseStatus_notSupport.xml") }, 554},
		{"404", func(t *testing.T) http.HandlerFunc { return http.NotFound }, 554},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := newFakeDevice(t)
			d.handle("/ISAPI/Security/adminAccesses", tc.handler(t))
			c, _ := start(t, d, nil)
			port, err := c.RTSPPort(ctxT(t))
			if err != nil || port != tc.want {
				t.Fatalf("port %d %v, want %d", port, err, tc.want)
			}
		})
	}
	t.Run("busy is an error", func(t *testing.T) {
		d := newFakeDevice(t)
		d.handle("/ISAPI/Security/adminAccesses", serveFile(t, 503, "responseStatus_deviceBusy.xml"))
		c, _ := start(t, d, nil)
		if _, err := c.RTSPPort(ctxT(t)); !errors.Is(err, isapi.ErrDeviceBusy) {
			t.Fatalf("%v, want ErrDeviceBusy", err)
		}
	})
}

func TestInputProxyChannels(t *testing.T) {
	for _, withStatus := range []bool{true, false} {
		d := newFakeDevice(t)
		d.handle("/ISAPI/ContentMgmt/InputProxy/channels", serveFile(t, 200, "inputProxyChannels.xml"))
		if withStatus {
			d.handle("/ISAPI/ContentMgmt/InputProxy/channels/status", serveFile(t, 200, "inputProxyChannelsStatus.xml"))
		} else {
			d.handle("/ISAPI/ContentMgmt/InputProxy/channels/status", serveFile(t, 403, "responseStatus_notSupport.xml"))
		}
		c, _ := start(t, d, nil)
		chs, err := c.InputProxyChannels(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		if len(chs) != 4 {
			t.Fatalf("%d channels", len(chs))
		}
		for i, ch := range chs {
			wantOnline := withStatus && ch.ID != 3
			if ch.ID != i+1 || ch.Name != "Camera 0"+string(rune('1'+i)) ||
				ch.IPAddress != "192.168.254."+string(rune('2'+i)) || ch.Online != wantOnline {
				t.Fatalf("withStatus=%v channel %+v", withStatus, ch)
			}
		}
	}
}

func TestTwoWayAudioChannels(t *testing.T) {
	cases := []struct {
		file string
		want isapi.TwoWayAudioChannel
	}{
		{"twoWayAudioChannels_g711.xml", isapi.TwoWayAudioChannel{ID: "1", Enabled: false, AudioCodec: "G.711ulaw", AudioOutputType: "Speaker"}},
		{"twoWayAudioChannels_aac.xml", isapi.TwoWayAudioChannel{ID: "1", Enabled: true, AudioCodec: "AAC",
			AudioBitRate: 32, AudioSamplingRate: 16000, AudioOutputType: "Speaker"}},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			d := newFakeDevice(t)
			d.handle("/ISAPI/System/TwoWayAudio/channels", serveFile(t, 200, tc.file))
			c, _ := start(t, d, nil)
			chs, err := c.TwoWayAudioChannels(ctxT(t))
			if err != nil || len(chs) != 1 || chs[0] != tc.want {
				t.Fatalf("%+v %v, want %+v", chs, err, tc.want)
			}
		})
	}
}

func TestTalkOpenAnswers(t *testing.T) {
	cases := []struct {
		status  int
		file    string
		session string
		err     error
	}{
		{200, "twoWayAudioSession.xml", "1844674407", nil},
		{200, "responseStatus_ok.xml", "", nil},
		{200, "responseStatus_deviceBusy.xml", "", isapi.ErrDeviceBusy},
		{403, "responseStatus_notSupport.xml", "", isapi.ErrNotSupported},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			d := newFakeDevice(t)
			var method string
			var bodyLen int64 = -2
			open := serveFile(t, tc.status, tc.file)
			d.handle("/ISAPI/System/TwoWayAudio/channels/1/open", func(w http.ResponseWriter, r *http.Request) {
				method, bodyLen = r.Method, r.ContentLength
				open(w, r)
			})
			c, _ := start(t, d, nil)
			sid, err := c.TalkOpen(ctxT(t), "1")
			if sid != tc.session || (tc.err == nil) != (err == nil) || (tc.err != nil && !errors.Is(err, tc.err)) {
				t.Fatalf("TalkOpen %q %v, want %q %v", sid, err, tc.session, tc.err)
			}
			if method != http.MethodPut || bodyLen != 0 {
				t.Fatalf("open sent %s with body length %d, want PUT with empty body", method, bodyLen)
			}
		})
	}
}

func TestUserCheckOK(t *testing.T) {
	d := newFakeDevice(t)
	d.handle("/ISAPI/Security/userCheck", serveFile(t, 200, "userCheck_ok.xml"))
	c, _ := start(t, d, nil)
	if err := c.UserCheck(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}

func TestSnapshot(t *testing.T) {
	jpeg, err := os.ReadFile(filepath.Join("..", "snapshot", "testdata", "frame_64x36.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	raw := func(b []byte) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "image/jpeg")
			_, _ = w.Write(b)
		}
	}
	d := newFakeDevice(t)
	d.handle("/ISAPI/Streaming/channels/101/picture", raw(jpeg))
	d.handle("/ISAPI/Streaming/channels/201/picture", raw(jpeg[:len(jpeg)-40]))
	d.handle("/ISAPI/Streaming/channels/301/picture", serveFile(t, 200, "responseStatus_badXmlContent.xml"))
	d.handle("/ISAPI/Streaming/channels/401/picture", raw([]byte("GIF89a....")))
	c, _ := start(t, d, nil)
	// The module's one snapshot path: Do, then snapshot.Validate on the body.
	snap := func(path string) ([]byte, error) {
		_, b, err := c.Do(ctxT(t), http.MethodGet, path, nil)
		if err != nil {
			return nil, err
		}
		return snapshot.Validate(b)
	}
	reason := func(err error) snapshot.Reason {
		var fe *snapshot.FetchError
		if errors.As(err, &fe) {
			return fe.Reason
		}
		return ""
	}
	got, err := snap("/ISAPI/Streaming/channels/101/picture")
	if err != nil || !bytes.Equal(got, jpeg) {
		t.Fatalf("snapshot: %d bytes %v", len(got), err)
	}
	if _, err := snap("/ISAPI/Streaming/channels/201/picture"); reason(err) != snapshot.ReasonTruncated {
		t.Fatalf("truncated JPEG: %v, want %s", err, snapshot.ReasonTruncated)
	}
	_, err = snap("/ISAPI/Streaming/channels/301/picture")
	var se *isapi.StatusError
	if !errors.As(err, &se) || se.SubStatusCode != "badXmlContent" || se.HTTPStatus != 200 {
		t.Fatalf("XML answer: %v, want StatusError badXmlContent", err)
	}
	if _, err := snap("/ISAPI/Streaming/channels/401/picture"); reason(err) != snapshot.ReasonNotJPEG {
		t.Fatalf("not a JPEG: %v, want %s", err, snapshot.ReasonNotJPEG)
	}
}

func TestInputProxyStatus(t *testing.T) {
	d := newFakeDevice(t)
	d.handle("/ISAPI/ContentMgmt/InputProxy/channels/status", serveFile(t, 200, "inputProxyChannelsStatus.xml"))
	c, _ := start(t, d, nil)
	st, err := c.InputProxyStatus(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 4 {
		t.Fatalf("%d channels: %+v", len(st), st)
	}
	for i, s := range st {
		wantOnline := s.ID != 3
		if s.ID != i+1 || !s.Known || s.Online != wantOnline || (s.DetectResult == "connect") != wantOnline {
			t.Fatalf("status %+v", s)
		}
	}
	d.handle("/ISAPI/ContentMgmt/InputProxy/channels/status", serveFile(t, 403, "responseStatus_notSupport.xml"))
	if _, err := c.InputProxyStatus(ctxT(t)); !errors.Is(err, isapi.ErrNotSupported) {
		t.Fatalf("refused: %v, want ErrNotSupported", err)
	}
}
