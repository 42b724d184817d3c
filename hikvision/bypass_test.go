//lint:file-ignore SA1019 go2rtc v1.9.14 marks core.Producer Start/Stop deprecated, yet they are the interface it calls.

package hikvision

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/AlexxIT/go2rtc/pkg/core"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/guard"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/snapshot"
)

// Every path that sends credentials to the device goes through the device's
// login guard: for each path, the device's password is changed under the
// module, the path is driven, and every failed login the simulator counted
// (ISAPI and RTSP, counted by the device itself from its own digest checks)
// must be one the guard recorded. A request made past the guard shows up as
// a failed login the guard never saw. Each path runs in its own module, so
// its guard starts with a full budget.
func TestEveryLoginThroughTheGuard(t *testing.T) {
	const newPass = "changed/at-the-device"
	paths := []struct {
		name string
		// run drives the path after the password changed; m's device is
		// the simulator at src (with the old password).
		run func(t *testing.T, m *Module, dev *sim.Device, src string)
		// before runs with the right password first (a session to reconnect).
		before func(t *testing.T, m *Module, src string) any
		door   bool // the device is a door station
		cfg    func(*sim.Config)
	}{
		{name: "probe (cold Dial)", run: func(t *testing.T, m *Module, dev *sim.Device, src string) {
			if _, err := m.Dial(src); err == nil {
				t.Fatal("Dial with a wrong password succeeded")
			}
		}},
		{name: "rtsp describe (warm Dial)",
			before: func(t *testing.T, m *Module, src string) any {
				p, err := m.Dial(src) // caches the probe
				if err != nil {
					t.Fatal(err)
				}
				// stopped at the end: a TEARDOWN written now could reach
				// the device after the password changed
				t.Cleanup(func() { _ = p.Stop() })
				return nil
			},
			run: func(t *testing.T, m *Module, dev *sim.Device, src string) {
				if _, err := m.Dial(src); err == nil {
					t.Fatal("warm Dial with a wrong password succeeded")
				}
			}},
		{name: "rtsp setup (GetTrack)",
			before: func(t *testing.T, m *Module, src string) any {
				p, err := m.Dial(src)
				if err != nil {
					t.Fatal(err)
				}
				return p
			},
			run: func(t *testing.T, m *Module, dev *sim.Device, src string) {}},
		{name: "rtsp reconnect",
			before: func(t *testing.T, m *Module, src string) any {
				pl := startPlaying(t, src) // on m: the test's module
				pl.waitPacket(t, 0, 10*time.Second)
				return pl
			},
			run: func(t *testing.T, m *Module, dev *sim.Device, src string) { dev.DropRTSP() }},
		{name: "talk open",
			before: func(t *testing.T, m *Module, src string) any {
				p, err := m.Dial(src)
				if err != nil {
					t.Fatal(err)
				}
				return p
			},
			run: func(t *testing.T, m *Module, dev *sim.Device, src string) {}},
		{name: "talk open (ringing door station: call status, answer)", door: true,
			before: func(t *testing.T, m *Module, src string) any {
				p, err := m.Dial(src)
				if err != nil {
					t.Fatal(err)
				}
				return p
			},
			run: func(t *testing.T, m *Module, dev *sim.Device, src string) {
				if err := dev.Ring(); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "event triggers (read again after a busy answer)",
			cfg: func(c *sim.Config) { c.Triggers.Busy = 3 }, // read again after 2 s, 4 s
			before: func(t *testing.T, m *Module, src string) any {
				m.opts.Events = EventOptions{Enabled: true, Rescan: 50 * time.Millisecond, CallStatusInterval: -1}
				m.SetStreamLister(func() map[string][]string { return map[string][]string{"cam": {src}} })
				if err := m.StartEvents(); err != nil {
					t.Fatal(err)
				}
				// stopped before the check (cleanups run last first): the
				// subscription itself ends with the device
				t.Cleanup(func() {
					ev := m.events()
					ev.cancel()
					<-ev.done
				})
				waitFor(t, "the alert stream and a busy triggers answer", 10*time.Second, func() bool {
					h := m.eventsHealth()
					return len(h.Subscriptions) == 1 && h.Subscriptions[0].State == "connected" &&
						h.Subscriptions[0].Triggers.State == TriggersReading && h.Subscriptions[0].Triggers.LastError != ""
				})
				return nil
			},
			run: func(t *testing.T, m *Module, dev *sim.Device, src string) {
				// the alert stream stays open: the triggers read again is
				// the one login with the changed password
				waitFor(t, "the triggers to be refused", 20*time.Second, func() bool {
					h := m.eventsHealth()
					return len(h.Subscriptions) == 1 && h.Subscriptions[0].Triggers.State == TriggersRefused
				})
			}},
		{name: "snapshot", run: func(t *testing.T, m *Module, dev *sim.Device, src string) {
			m.reg.cacheOptions = snapshot.Options{MinInterval: time.Millisecond}
			m.SetStreamResolver(func(string) []string { return []string{src} })
			rec := httptest.NewRecorder()
			m.SnapshotHandler(rec, httptest.NewRequest("GET", "/api/hikvision/snapshot?src=cam", nil))
			if rec.Code == 200 {
				t.Fatal("a snapshot with a wrong password succeeded")
			}
		}},
	}
	for _, path := range paths {
		t.Run(path.name, func(t *testing.T) {
			t.Parallel()
			m := resetModule(t, Options{Reconnect: ReconnectOptions{BackoffBase: 50 * time.Millisecond}}, guard.Config{})
			cfg := sim.Config{Users: map[string]string{"admin": simPass}, MaxFailures: 50}
			if path.door {
				cfg.Personality = sim.PersonalityDoorStation
			}
			if path.cfg != nil {
				path.cfg(&cfg)
			}
			dev := apiStartSim(t, cfg)
			m.rtspGuess = simPort(t, dev.RTSPAddr()) // a cold start's RTSP beside the login, as on port 554
			src := simURL(dev, simPass)
			// checked last, after every producer of the path stopped
			t.Cleanup(func() {
				g := m.guardOf(mustParse(t, src)).Snapshot()
				cs := dev.Client("127.0.0.1")
				device := cs.FailedLogins + cs.RTSPFailedLogins
				t.Logf("device: %d failed logins (ISAPI %d, RTSP %d); guard: %d failed logins, %d allowed",
					device, cs.FailedLogins, cs.RTSPFailedLogins, g.LoginFailures, g.Allowed)
				if device == 0 {
					t.Error("the path made no login with the wrong password: it tests nothing")
				}
				if device != g.LoginFailures {
					t.Errorf("the device counted %d failed logins, the guard recorded %d: a login went past the guard",
						device, g.LoginFailures)
				}
			})
			var state any
			if path.before != nil {
				state = path.before(t, m, src)
			}
			if err := dev.SetPassword("admin", newPass); err != nil {
				t.Fatal(err)
			}
			path.run(t, m, dev, src)
			switch p := state.(type) {
			case *Producer:
				if strings.HasPrefix(path.name, "talk open") {
					f := addTrack(t, p)
					f.write(g711Tone(160), 160)
					waitFor(t, "talk to fail", 10*time.Second, func() bool {
						ts := p.Talk()
						return ts != nil && ts.Error != ""
					})
				} else {
					var m *core.Media
					for _, md := range p.GetMedias() {
						if md.Direction == core.DirectionRecvonly {
							m = md
							break
						}
					}
					if _, err := p.GetTrack(m, m.Codecs[0]); err == nil {
						t.Fatal("SETUP with a wrong password succeeded")
					}
				}
				_ = p.Stop()
			case *playing:
				// Start ends with the refusal (a permanent error)
				select {
				case err := <-p.startErr:
					if err == nil || !isPermanent(err) {
						t.Fatalf("Start after the password changed: %v, want a permanent error", err)
					}
				case <-time.After(10 * time.Second):
					t.Fatal("Start did not end after the password changed")
				}
				_ = p.p.Stop()
			}

		})
	}
}
