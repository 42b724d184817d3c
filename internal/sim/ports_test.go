package sim_test

import (
	"testing"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

// A device behind a port forward reports its configured RTSP port, not the
// one it listens on; without the setting it reports the one it listens on.
func TestAdvertisedRTSPPort(t *testing.T) {
	for _, tc := range []struct {
		cfg  sim.Config
		want func(d *sim.Device) int
	}{
		{sim.Config{AdvertisedRTSPPort: 554}, func(*sim.Device) int { return 554 }},
		{sim.Config{}, func(d *sim.Device) int { return portOf(t, d.RTSPAddr()) }},
	} {
		d := start(t, tc.cfg)
		aa := decode[adminAccessesXML](t, login(t, d, "admin", "hik12345").getOK("/ISAPI/Security/adminAccesses"))
		got := 0
		for _, p := range aa.Protocols {
			if p.Protocol == "RTSP" {
				got = p.PortNo
			}
		}
		if want := tc.want(d); got != want {
			t.Errorf("AdvertisedRTSPPort %d: adminAccesses RTSP port %d, want %d", tc.cfg.AdvertisedRTSPPort, got, want)
		}
	}
}

func TestAdvertisedRTSPPortRange(t *testing.T) {
	for _, p := range []int{-1, 65536} {
		if d, err := sim.Start(sim.Config{AdvertisedRTSPPort: p}); err == nil {
			_ = d.Close()
			t.Errorf("AdvertisedRTSPPort %d: Start succeeded, want an error naming it", p)
		}
	}
}
