//lint:file-ignore SA1019 go2rtc v1.9.14 marks core.Producer Start/Stop, Receiver.WriteRTP and Sender.HandleRTP deprecated, yet they are the interface it calls; the tests drive the producer as go2rtc does.

package hikvision

import (
	"fmt"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/guard"
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
		codecs string // the recvonly medias' codecs ("" not checked)
		talk   string // the sendonly (talk) media's codec
		nvr    bool
	}{
		{"camera H.264 AAC", sim.Config{Audio: "AAC"}, "?channel=1&stream=main", "H264 MPEG4-GENERIC", "PCMU/8000", false},
		{"camera H.265 PCMU", sim.Config{Video: "H.265"}, "?channel=1&stream=main", "H265 PCMU", "PCMU/8000", false},
		{"camera A-law talk", sim.Config{TalkCodec: "G.711alaw"}, "?channel=1&stream=main", "H264 PCMU", "PCMA/8000", false},
		{"nvr channel 2 sub", sim.Config{Personality: sim.PersonalityNVR}, "?channel=2&stream=sub", "", "PCMU/8000", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resetModule(t, Options{}, guard.Config{})
			const pass = "hik/12@45"
			tt.cfg.Users = map[string]string{"admin": pass}
			dev, err := sim.Start(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer dev.Close()
			base := runtime.NumGoroutine()

			src := "hikvision://" + url.UserPassword("admin", pass).String() + "@" + dev.HTTPAddr() + "/" + tt.query
			prod, err := mod(t).Dial(src)
			if err != nil {
				t.Fatal(err)
			}
			p := prod.(*Producer)
			if p.Device().NVR != tt.nvr {
				t.Errorf("NVR %v, want %v (%+v)", p.Device().NVR, tt.nvr, p.Device())
			}
			// recvonly video/audio to play, and the device's talk channel as
			// one sendonly audio media (the last), which go2rtc feeds through
			// AddTrack, never GetTrack.
			var codecs, talks []string
			var play []*core.Media
			for _, m := range p.GetMedias() {
				switch m.Direction {
				case core.DirectionRecvonly:
					codecs = append(codecs, m.Codecs[0].Name)
					play = append(play, m)
				case core.DirectionSendonly:
					if m.Kind != core.KindAudio || len(m.Codecs) != 1 {
						t.Errorf("talk media %v", m)
					}
					talks = append(talks, fmt.Sprintf("%s/%d", m.Codecs[0].Name, m.Codecs[0].ClockRate))
				default:
					t.Errorf("media %v: neither recvonly nor sendonly", m)
				}
			}
			if tt.codecs != "" && strings.Join(codecs, " ") != tt.codecs {
				t.Errorf("codecs %v, want %s", codecs, tt.codecs)
			}
			if len(play) == 0 {
				t.Fatal("no medias to play")
			}
			if len(talks) != 1 || talks[0] != tt.talk {
				t.Errorf("talk medias %v, want one %s", talks, tt.talk)
			}
			if ms := p.GetMedias(); ms[len(ms)-1].Direction != core.DirectionSendonly {
				t.Errorf("the talk media is not the last: %v", ms)
			}
			if ts := p.Talk(); ts == nil || ts.State != "idle" {
				t.Errorf("talk status %+v, want idle", ts)
			}

			packets := make(chan string, 10)
			for _, m := range play {
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

			// Cold Dial: one challenge (whichever request went first), then
			// four authenticated requests in one concurrent round (five on
			// an NVR: the IP channel status too).
			coldDialRequests(t, dev, tt.nvr)
			// Warm Dial: no ISAPI request.
			before := totalRequests(dev)
			p2, err := mod(t).Dial(src)
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

// coldDialRequests checks a cold Dial's ISAPI requests: 5 in all. deviceInfo
// twice (the login: without credentials for the digest challenge, then with
// them), then the streaming channel, adminAccesses and TwoWayAudio/channels
// once each, with credentials.
func coldDialRequests(t *testing.T, dev *sim.Device, nvr bool) {
	t.Helper()
	cs := dev.Client("127.0.0.1")
	good, status := 4, 0
	if nvr {
		good, status = 5, 1
	}
	if cs.Challenges != 1 || cs.GoodLogins != good || cs.FailedLogins != 0 || totalRequests(dev) != good+1 {
		t.Errorf("cold Dial ISAPI: %d requests, %+v; want %d: 1 challenge, %d good logins", totalRequests(dev), cs, good+1, good)
	}
	for path, want := range map[string]int{"/ISAPI/System/deviceInfo": 2, "/ISAPI/Streaming/channels/": 1,
		"/ISAPI/Security/adminAccesses": 1, "/ISAPI/System/TwoWayAudio/channels": 1,
		"/ISAPI/ContentMgmt/InputProxy/channels/status": status} {
		n := 0
		for p, v := range cs.Requests {
			if p == path || strings.HasSuffix(path, "/") && strings.HasPrefix(p, path) {
				n += v
			}
		}
		if n != want {
			t.Errorf("cold Dial asked %s %d times, want %d: %v", path, n, want, cs.Requests)
		}
	}
}
