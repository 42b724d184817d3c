//lint:file-ignore SA1019 go2rtc v1.9.14 marks core.Producer Start/Stop, Receiver.WriteRTP and Sender.HandleRTP deprecated, yet they are the interface it calls; the tests drive the producer as go2rtc does.

package hikvision

import (
	"errors"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/guard"
	"strings"
	"testing"

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
