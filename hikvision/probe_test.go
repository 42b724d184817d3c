package hikvision

import (
	"errors"
	"strings"
	"testing"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

// An unknown channel answered 400 statusCode 6 badParameters (as the
// simulator and real firmware do), on a camera and on an NVR, is "no such
// channel or stream" (permanent), not an RTSP DESCRIBE failure.
func TestUnknownChannelBadParameters(t *testing.T) {
	for _, tc := range []struct {
		name, personality, query, id string
	}{
		{"camera channel 7", sim.PersonalityCamera, "?channel=7&stream=main", "701"},
		{"nvr channel 9", sim.PersonalityNVR, "?channel=9&stream=sub", "902"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			probes.reset()
			t.Cleanup(probes.reset)
			const pass = "hik/12@45"
			dev := apiStartSim(t, sim.Config{Personality: tc.personality, Users: map[string]string{"admin": pass}})
			src := strings.Replace(apiSimURL(dev, "admin", pass, ""), "?channel=1&stream=main", tc.query, 1)
			p, err := Dial(src)
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
