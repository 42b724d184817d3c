package hikvision

import (
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/AlexxIT/go2rtc/pkg/core"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

// Against the project's device simulator (internal/sim): a real RTSP peer
// sending the testdata media.
func TestSimulator(t *testing.T) {
	tests := []struct {
		name   string
		cfg    sim.Config
		query  string
		codecs string
		nvr    bool
	}{
		{"camera H.264 AAC", sim.Config{Audio: "AAC"}, "?channel=1&stream=main", "H264 MPEG4-GENERIC", false},
		{"camera H.265 PCMU", sim.Config{Video: "H.265"}, "?channel=1&stream=main", "H265 PCMU", false},
		{"nvr channel 2 sub", sim.Config{Personality: sim.PersonalityNVR}, "?channel=2&stream=sub", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			probes.reset()
			defer probes.reset()
			const pass = "hik/12@45"
			tt.cfg.Users = map[string]string{"admin": pass}
			dev, err := sim.Start(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer dev.Close()
			base := runtime.NumGoroutine()

			src := "hikvision://" + url.UserPassword("admin", pass).String() + "@" + dev.HTTPAddr() + "/" + tt.query
			prod, err := Dial(src)
			if err != nil {
				t.Fatal(err)
			}
			p := prod.(*Producer)
			if p.Device().NVR != tt.nvr {
				t.Errorf("NVR %v, want %v (%+v)", p.Device().NVR, tt.nvr, p.Device())
			}
			var codecs []string
			for _, m := range p.GetMedias() {
				codecs = append(codecs, m.Codecs[0].Name)
			}
			if tt.codecs != "" && strings.Join(codecs, " ") != tt.codecs {
				t.Errorf("codecs %v, want %s", codecs, tt.codecs)
			}
			if len(codecs) == 0 {
				t.Fatal("no medias")
			}

			packets := make(chan string, 10)
			for _, m := range p.GetMedias() {
				r, err := p.GetTrack(m, m.Codecs[0])
				if err != nil {
					t.Fatal(err)
				}
				kind := m.Kind
				r.AppendChild(&core.Node{Codec: r.Codec, Input: func(*core.Packet) {
					select {
					case packets <- kind:
					default:
					}
				}})
			}
			startErr := make(chan error, 1)
			go func() { startErr <- p.Start() }()
			select {
			case <-packets:
			case err := <-startErr:
				t.Fatalf("Start: %v", err)
			case <-time.After(10 * time.Second):
				t.Fatal("no packets from the simulator")
			}
			if err := p.Stop(); err != nil {
				t.Error(err)
			}
			if err := <-startErr; err != nil {
				t.Errorf("Start after Stop: %v", err)
			}

			// Cold Dial: one challenge, three authenticated requests.
			if cs := dev.Client("127.0.0.1"); cs.Challenges != 1 || cs.GoodLogins != 3 || cs.FailedLogins != 0 ||
				totalRequests(dev) != 4 {
				t.Errorf("cold Dial ISAPI: %+v", cs)
			}
			// Warm Dial: no ISAPI request.
			before := totalRequests(dev)
			p2, err := Dial(src)
			if err != nil {
				t.Fatal(err)
			}
			_ = p2.Stop()
			if after := totalRequests(dev); after != before {
				t.Errorf("warm Dial made %d ISAPI requests", after-before)
			}
			waitGoroutines(t, base)
		})
	}
}

func totalRequests(d *sim.Device) int {
	n := 0
	for _, c := range d.Stats().Clients {
		for _, v := range c.Requests {
			n += v
		}
	}
	return n
}
