package sim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

type capabilitiesXML struct {
	XMLName   xml.Name
	AnalogIn  int `xml:"SysCap>VideoCap>videoInputPortNums"`
	IPIn      int `xml:"RacmCap>inputProxyNums"`
	VoiceTalk int `xml:"voicetalkNums"`
}

type videoInputsXML struct {
	XMLName  xml.Name
	Channels []struct {
		ID   int    `xml:"id"`
		Port int    `xml:"inputPort"`
		Name string `xml:"name"`
	} `xml:"VideoInputChannel"`
}

// personalityWant is what a preset must show.
type personalityWant struct {
	deviceType string
	streams    []int          // every stream id the device lists and serves over RTSP
	absent     map[int]int    // stream id → bare HTTP status (no body)
	ipChannels []int          // InputProxy channel ids
	analog     []int          // System/Video/inputs channel ids on a recorder
	talk       int            // TwoWayAudio channels = voicetalkNums
	codecs     map[int]string // stream id → videoCodecType where not H.264
	probe      []int          // streams ffprobe plays (one of each kind)
}

func TestPersonalities(t *testing.T) {
	wants := map[string]personalityWant{
		sim.PresetCameraDefault: {deviceType: "IPCamera", streams: []int{101, 102}, talk: 1, probe: []int{101, 102}},
		sim.PresetFourStreams: {deviceType: "IPCamera", streams: []int{101, 102, 103, 104}, talk: 1,
			probe: []int{101, 102, 103, 104}},
		sim.PresetOldCamera: {deviceType: "IPCamera", streams: []int{101, 102}, absent: map[int]int{103: 500, 104: 500},
			talk: 1, codecs: map[int]string{102: "MJPEG"}, probe: []int{101, 102}},
		sim.PresetNVRTwoTalk: {deviceType: "NVR", streams: []int{101, 102, 201, 202, 301, 302, 401, 402},
			absent: map[int]int{103: 403, 104: 403, 403: 403, 404: 403}, ipChannels: []int{1, 2, 3, 4}, talk: 2,
			codecs: map[int]string{201: "H.265", 202: "H.265"}, probe: []int{101, 202}},
		sim.PresetNVRFourth: {deviceType: "NVR", streams: []int{101, 102, 104, 201, 202, 204, 301, 302, 304, 401, 402, 404},
			absent: map[int]int{103: 403, 203: 403}, ipChannels: []int{1, 2, 3, 4}, talk: 2, probe: []int{104}},
		sim.PresetAnalogDVR: {deviceType: "DVR", streams: []int{101, 102, 201, 202, 301, 302, 401, 402},
			absent: map[int]int{103: 400, 104: 403, 403: 400, 404: 403}, analog: []int{1, 2, 3, 4}, talk: 1,
			codecs: map[int]string{201: "H.265", 202: "H.265"}, probe: []int{101, 102}},
		sim.PresetHybrid: {deviceType: "DVR", streams: []int{101, 102, 201, 202, 301, 302, 401, 402, 501, 502, 601, 602},
			absent: map[int]int{103: 400, 504: 403}, analog: []int{1, 2, 3, 4}, ipChannels: []int{5, 6}, talk: 1,
			codecs: map[int]string{201: "H.265", 202: "H.265", 601: "H.265", 602: "H.265"}, probe: []int{101, 501}},
	}
	for _, name := range sim.Presets() {
		w, ok := wants[name]
		if !ok {
			t.Fatalf("preset %s has no expectations in this test", name)
		}
		t.Run(name, func(t *testing.T) {
			cfg, ok := sim.Preset(name)
			if !ok {
				t.Fatal("unknown preset")
			}
			d := start(t, cfg)
			a := login(t, d, "admin", "hik12345")
			checkPersonality(t, d, a, w)
		})
	}
	if _, ok := sim.Preset("no-such"); ok {
		t.Fatal("an unknown preset name was accepted")
	}
}

func checkPersonality(t *testing.T, d *sim.Device, a *authed, w personalityWant) {
	recorder := w.deviceType != "IPCamera"
	di := decode[deviceInfoXML](t, a.getOK(devInfo))
	if di.DeviceType != w.deviceType {
		t.Fatalf("deviceType %q, want %q", di.DeviceType, w.deviceType)
	}

	// streams: the list, each one alone, and the absent ones
	list := decode[streamingChannelListXML](t, a.getOK("/ISAPI/Streaming/channels"))
	var ids []int
	for _, sc := range list.Channels {
		ids = append(ids, sc.ID)
		codec := "H.264"
		if c, ok := w.codecs[sc.ID]; ok {
			codec = c
		}
		if sc.Video.Codec != codec {
			t.Errorf("stream %d: codec %q, want %q", sc.ID, sc.Video.Codec, codec)
		}
		one := decode[streamingChannelXML](t, a.getOK("/ISAPI/Streaming/channels/"+strconv.Itoa(sc.ID)))
		if one.ID != sc.ID || one.Video.Codec != codec {
			t.Errorf("stream %d alone: %+v", sc.ID, one)
		}
	}
	if !slices.Equal(ids, w.streams) {
		t.Fatalf("streams %v, want %v", ids, w.streams)
	}
	for id, code := range w.absent {
		path := "/ISAPI/Streaming/channels/" + strconv.Itoa(id)
		a.nc++
		status, h, body := a.do("GET", path, digestAuthorization(a.ch, "GET", path, a.user, a.pass, a.nc))
		if status != code || len(body) != 0 || h.Get("Content-Type") != "" {
			t.Errorf("absent stream %d: %d %q (%d bytes), want a bare %d", id, status, h.Get("Content-Type"), len(body), code)
		}
	}
	// a channel the device does not have at all: the ResponseStatus answer
	wantStatus(t, a, "GET", "/ISAPI/Streaming/channels/9901", http.StatusBadRequest, 6, "badParameters")

	// recorder lists
	if recorder {
		ip := decode[inputProxyXML](t, a.getOK("/ISAPI/ContentMgmt/InputProxy/channels"))
		var got []int
		for _, ch := range ip.Channels {
			got = append(got, ch.ID)
		}
		if ip.XMLName.Local != "InputProxyChannelList" || !slices.Equal(got, w.ipChannels) {
			t.Errorf("InputProxy channels %v (%s), want %v", got, ip.XMLName.Local, w.ipChannels)
		}
		st := decode[inputProxyStatusXML](t, a.getOK("/ISAPI/ContentMgmt/InputProxy/channels/status"))
		if len(st.Channels) != len(w.ipChannels) {
			t.Errorf("InputProxy status: %d channels, want %d", len(st.Channels), len(w.ipChannels))
		}
		vi := decode[videoInputsXML](t, a.getOK("/ISAPI/System/Video/inputs/channels"))
		got = nil
		for _, ch := range vi.Channels {
			got = append(got, ch.ID)
		}
		if !slices.Equal(got, w.analog) {
			t.Errorf("analog inputs %v, want %v", got, w.analog)
		}
	} else {
		wantStatus(t, a, "GET", "/ISAPI/ContentMgmt/InputProxy/channels", http.StatusForbidden, 4, "notSupport")
	}
	caps := decode[capabilitiesXML](t, a.getOK("/ISAPI/System/capabilities"))
	if caps.XMLName.Local != "DeviceCap" || caps.VoiceTalk != w.talk || caps.AnalogIn != len(w.analog) ||
		(recorder && caps.IPIn < len(w.ipChannels)) {
		t.Errorf("capabilities %+v, want voicetalkNums %d, %d analog inputs, ≥ %d IP channels", caps, w.talk, len(w.analog), len(w.ipChannels))
	}

	// talk channels: each one opens and closes on its own
	twa := decode[twoWayAudioXML](t, a.getOK("/ISAPI/System/TwoWayAudio/channels"))
	if len(twa.Channels) != w.talk {
		t.Fatalf("%d talk channels, want %d", len(twa.Channels), w.talk)
	}
	for i := 1; i <= w.talk; i++ {
		base := "/ISAPI/System/TwoWayAudio/channels/" + strconv.Itoa(i)
		if status, body := a.get("PUT", base+"/open"); status != 200 {
			t.Fatalf("talk channel %d open: %d %s", i, status, body)
		}
	}
	if w.talk > 1 { // several talk channels are independent lines: both are open now
		twa = decode[twoWayAudioXML](t, a.getOK("/ISAPI/System/TwoWayAudio/channels"))
		for _, ch := range twa.Channels {
			if !ch.Enabled {
				t.Errorf("talk channel %s not enabled while open", ch.ID)
			}
		}
	}
	for i := 1; i <= w.talk; i++ {
		if status, body := a.get("PUT", "/ISAPI/System/TwoWayAudio/channels/"+strconv.Itoa(i)+"/close"); status != 200 {
			t.Fatalf("talk channel %d close: %d %s", i, status, body)
		}
	}
	wantStatus(t, a, "PUT", "/ISAPI/System/TwoWayAudio/channels/"+strconv.Itoa(w.talk+1)+"/open", http.StatusNotFound, 4, "invalidOperation")

	// snapshots: analog channels on the plain path, IP channels of a recorder on StreamingProxy
	c := newClient(t, d)
	for _, ch := range w.analog {
		plain := "/ISAPI/Streaming/channels/" + strconv.Itoa(ch*100+1) + "/picture"
		if status, h, body := picture(c, plain); status != 200 || h.Get("Content-Type") != "image/jpeg" {
			t.Errorf("analog channel %d, plain picture path: %d %s", ch, status, body)
		}
		proxy := "/ISAPI/ContentMgmt/StreamingProxy/channels/" + strconv.Itoa(ch*100+1) + "/picture"
		status, _, body := picture(c, proxy)
		if rs := decode[responseStatus](t, body); status != http.StatusForbidden || rs.StatusCode != 6 {
			t.Errorf("analog channel %d, StreamingProxy picture path: %d %+v, want 403 statusCode 6", ch, status, rs)
		}
	}
	for _, ch := range w.ipChannels {
		proxy := "/ISAPI/ContentMgmt/StreamingProxy/channels/" + strconv.Itoa(ch*100+1) + "/picture"
		if status, h, body := picture(c, proxy); status != 200 || h.Get("Content-Type") != "image/jpeg" {
			t.Errorf("IP channel %d, StreamingProxy picture path: %d %s", ch, status, body)
		}
		plain := "/ISAPI/Streaming/channels/" + strconv.Itoa(ch*100+1) + "/picture"
		status, _, body := picture(c, plain)
		if rs := decode[responseStatus](t, body); status != http.StatusBadRequest || rs.StatusCode != 6 || rs.SubStatusCode != "badXmlContent" {
			t.Errorf("IP channel %d, plain picture path: %d %+v, want 400 statusCode 6 badXmlContent", ch, status, rs)
		}
	}
	if !recorder {
		if status, h, body := picture(c, "/ISAPI/Streaming/channels/101/picture"); status != 200 || h.Get("Content-Type") != "image/jpeg" {
			t.Errorf("camera picture: %d %s", status, body)
		}
	}

	// RTSP: ffprobe plays one stream of each kind; the absent ones are refused
	for _, id := range w.probe {
		codec := map[string]string{"H.264": "h264", "H.265": "hevc", "MJPEG": "mjpeg"}[pick(w.codecs, id, "H.264")]
		probeRTSP(t, d, id, codec)
	}
}

func pick(m map[int]string, k int, def string) string {
	if v, ok := m[k]; ok {
		return v
	}
	return def
}

// probeRTSP runs ffprobe on a stream of d and checks the video codec it finds.
func probeRTSP(t *testing.T, d *sim.Device, id int, codec string) {
	t.Helper()
	ffprobe, err := exec.LookPath("ffprobe")
	if err != nil {
		t.Skip("ffprobe not installed")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	url := "rtsp://admin:hik12345@" + d.RTSPAddr() + "/Streaming/Channels/" + strconv.Itoa(id)
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, ffprobe, "-v", "error", "-rtsp_transport", "tcp",
		"-show_entries", "stream=codec_type,codec_name", "-of", "json", url)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Errorf("ffprobe stream %d: %v\n%s", id, err, stderr.String())
		return
	}
	var res struct {
		Streams []struct {
			Type string `json:"codec_type"`
			Name string `json:"codec_name"`
		}
	}
	if err := json.Unmarshal(out, &res); err != nil || len(res.Streams) == 0 || res.Streams[0].Type != "video" || res.Streams[0].Name != codec {
		t.Errorf("ffprobe stream %d: %s (%v), want %s video", id, out, err, codec)
	}
}
