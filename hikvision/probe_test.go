//lint:file-ignore SA1019 go2rtc v1.9.14 marks core.Producer Start/Stop, Receiver.WriteRTP and Sender.HandleRTP deprecated, yet they are the interface it calls; the tests drive the producer as go2rtc does.

package hikvision

import (
	"errors"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/guard"
	"strings"
	"testing"
	"time"

	"github.com/AlexxIT/go2rtc/pkg/core"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

// An unknown channel answered 400 statusCode 6 badParameters (as the
// simulator and real firmware do), on a camera and on an NVR, is "no such
// channel or stream" (permanent), not an RTSP DESCRIBE failure.
func TestUnknownChannelBadParameters(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, personality, query, id string
	}{
		{"camera channel 7", sim.PersonalityCamera, "?channel=7&stream=main", "701"},
		{"nvr channel 9", sim.PersonalityNVR, "?channel=9&stream=sub", "902"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resetModule(t, Options{}, guard.Config{})
			const pass = "hik/12@45"
			dev := apiStartSim(t, sim.Config{Personality: tc.personality, Users: map[string]string{"admin": pass}})
			src := strings.Replace(apiSimURL(dev, "admin", pass, ""), "?channel=1&stream=main", tc.query, 1)
			p, err := mod(t).Dial(src)
			if err == nil {
				_ = p.Stop()
				t.Fatal("Dial of an unknown channel succeeded")
			}
			t.Logf("%v", err)
			var de *DialError
			if !errors.Is(err, ErrChannelNotFound) || !errors.As(err, &de) || !de.Permanent() {
				t.Fatalf("err %v, want a permanent *DialError matching ErrChannelNotFound", err)
			}
			for _, w := range []string{"probe streaming", tc.id, "no such channel or stream"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if cs := dev.Client("127.0.0.1"); cs.RTSPConnections != 0 {
				t.Errorf("%d RTSP connections, want none (the probe knows)", cs.RTSPConnections)
			}
		})
	}
}

// An NVR channel whose IP camera is offline fails Dial with
// *ChannelOfflineError (not permanent), from the status read in the probe's
// concurrent round, before any RTSP; an online channel of the same NVR plays.
func TestNVRChannelOffline(t *testing.T) {
	t.Parallel()
	resetModule(t, Options{}, guard.Config{})
	const pass = "hik/12@45"
	dev := apiStartSim(t, sim.Config{Personality: sim.PersonalityNVR, Users: map[string]string{"admin": pass},
		Channels: []sim.Channel{{ID: 1}, {ID: 2, Offline: true}}})
	src := func(ch string) string {
		return strings.Replace(apiSimURL(dev, "admin", pass, "#backchannel=0"), "?channel=1&stream=main", "?channel="+ch+"&stream=sub", 1)
	}
	p, err := mod(t).Dial(src("2"))
	if err == nil {
		_ = p.Stop()
		t.Fatal("Dial of an offline NVR channel succeeded")
	}
	t.Logf("%v", err)
	var oe *ChannelOfflineError
	if !errors.As(err, &oe) || !errors.Is(err, ErrChannelOffline) || oe.Channel != 2 || oe.Detect != "netUnreachable" {
		t.Fatalf("err %v (%T), want *ChannelOfflineError for channel 2", err, err)
	}
	if isPermanent(err) {
		t.Fatalf("%v is permanent; the camera may come back", err)
	}
	for _, w := range []string{"NVR channel 2 is offline", "camera not connected to the NVR", dev.HTTPAddr()} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	cs := dev.Client("127.0.0.1")
	if cs.RTSPConnections != 0 {
		t.Errorf("%d RTSP connections, want none", cs.RTSPConnections)
	}
	if n := cs.Requests["/ISAPI/ContentMgmt/InputProxy/channels/status"]; n != 1 {
		t.Errorf("status asked %d times, want 1", n)
	}
	if g := mod(t).guardOf(mustParse(t, src("2"))).Snapshot(); g.FailedLogins != 0 {
		t.Errorf("guard counted %d failed logins for an offline channel", g.FailedLogins)
	}

	pr, err := mod(t).Dial(src("1"))
	if err != nil {
		t.Fatalf("online channel: %v", err)
	}
	if err := pr.Stop(); err != nil {
		t.Fatal(err)
	}
}

func mustParse(t *testing.T, src string) *Config {
	t.Helper()
	c, err := ParseURL(src)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A stream the device does not have, answered with a bare HTTP status and no
// body (recorders: 400 or 403 for x03/x04; an older camera: 500 for 103/104),
// fails Dial from the probe's one round: ErrChannelNotFound, permanent, the
// stream and the device's answer named, no StreamingProxy request and no RTSP.
// A bare 403 also names the other reading (the user's rights).
func TestAbsentStreamBareStatus(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		preset, query, id, status, stream string
	}{
		{sim.PresetOldCamera, "?channel=1&stream=third", "103", "HTTP 500", "third"},
		{sim.PresetOldCamera, "?channel=1&stream=fourth", "104", "HTTP 500", "fourth"},
		{sim.PresetNVRTwoTalk, "?channel=1&stream=third", "103", "HTTP 403", "third"},
		{sim.PresetAnalogDVR, "?channel=2&stream=third", "203", "HTTP 400", "third"},
		{sim.PresetAnalogDVR, "?channel=2&stream=4", "204", "HTTP 403", "fourth"},
	} {
		t.Run(tc.preset+"_"+tc.id, func(t *testing.T) {
			resetModule(t, Options{}, guard.Config{})
			const pass = "hik/12@45"
			cfg, _ := sim.Preset(tc.preset)
			cfg.Users = map[string]string{"admin": pass}
			dev := apiStartSim(t, cfg)
			src := strings.Replace(apiSimURL(dev, "admin", pass, ""), "?channel=1&stream=main", tc.query, 1)
			p, err := mod(t).Dial(src)
			if err == nil {
				_ = p.Stop()
				t.Fatal("Dial of an absent stream succeeded")
			}
			t.Logf("%v", err)
			var de *DialError
			var se *isapi.StatusError
			if !errors.Is(err, ErrChannelNotFound) || !errors.As(err, &de) || !de.Permanent() || !errors.As(err, &se) {
				t.Fatalf("err %v, want a permanent *DialError matching ErrChannelNotFound and *isapi.StatusError", err)
			}
			want := []string{"probe streaming channel " + tc.id, "no " + tc.stream + " stream", tc.status, "no body"}
			if tc.status == "HTTP 403" {
				want = append(want, "rights")
			}
			for _, w := range want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), pass) {
				t.Errorf("error shows the password: %v", err)
			}
			cs := dev.Client("127.0.0.1")
			if cs.RTSPConnections != 0 {
				t.Errorf("%d RTSP connections, want none (the probe knows)", cs.RTSPConnections)
			}
			for path := range cs.Requests {
				if strings.Contains(path, "StreamingProxy") {
					t.Errorf("asked %s after the bare answer: %v", path, cs.Requests)
				}
			}
		})
	}
}

// A bare 401 is the login, never "no such stream"; a bare 404 and a
// ResponseStatus 403 (lowPrivilege) are told apart from the bare statuses.
func TestIsBareAbsent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err          error
		bare, absent bool
	}{
		{&isapi.StatusError{HTTPStatus: 403}, true, true},
		{&isapi.StatusError{HTTPStatus: 400}, true, true},
		{&isapi.StatusError{HTTPStatus: 500}, true, true},
		{&isapi.StatusError{HTTPStatus: 404}, false, true},
		{&isapi.StatusError{HTTPStatus: 401}, false, false},
		{&isapi.StatusError{HTTPStatus: 503}, false, false},
		{&isapi.StatusError{HTTPStatus: 403, StatusCode: 4, SubStatusCode: "lowPrivilege"}, false, false},
		{&isapi.StatusError{HTTPStatus: 400, StatusCode: 6, SubStatusCode: "badParameters"}, false, true},
		{errors.New("EOF"), false, false},
	} {
		if got := isBareAbsent(tc.err); got != tc.bare {
			t.Errorf("isBareAbsent(%v) = %v, want %v", tc.err, got, tc.bare)
		}
		if got := isNotFound(tc.err); got != tc.absent {
			t.Errorf("isNotFound(%v) = %v, want %v", tc.err, got, tc.absent)
		}
	}
}

// An older camera's MJPEG sub stream is kept (RTP JPEG video) and its
// packets flow; the main stream's H.264 beside it is unchanged.
func TestMJPEGSubStream(t *testing.T) {
	t.Parallel()
	resetModule(t, Options{}, guard.Config{})
	const pass = "hik/12@45"
	cfg, _ := sim.Preset(sim.PresetOldCamera)
	cfg.Users = map[string]string{"admin": pass}
	dev := apiStartSim(t, cfg)
	src := strings.Replace(apiSimURL(dev, "admin", pass, "#backchannel=0"), "stream=main", "stream=sub", 1)
	prod, err := mod(t).Dial(src)
	if err != nil {
		t.Fatal(err)
	}
	p := prod.(*Producer)
	defer func() { _ = p.Stop() }()
	var video *core.Media
	for _, m := range p.GetMedias() {
		if m.Kind == core.KindVideo {
			video = m
		}
	}
	if video == nil || video.Codecs[0].Name != core.CodecJPEG {
		t.Fatalf("medias %v, want JPEG video", p.GetMedias())
	}
	r, err := p.GetTrack(video, video.Codecs[0])
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan int, 1)
	child := &core.Node{Codec: r.Codec}
	child.Input = func(pkt *core.Packet) {
		select {
		case got <- len(pkt.Payload):
		default:
		}
	}
	r.AppendChild(child)
	go func() { _ = p.Start() }()
	select {
	case n := <-got:
		if n == 0 {
			t.Error("empty JPEG packet")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no MJPEG packet within 20 s")
	}
}
