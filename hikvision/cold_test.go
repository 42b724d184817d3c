//lint:file-ignore SA1019 go2rtc v1.9.14 marks core.Producer Start/Stop deprecated, yet they are the interface it calls; the tests drive the producer as go2rtc does.

package hikvision

import (
	"errors"
	"net"
	"net/url"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/guard"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

func simPort(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return n
}

// waitClient polls dev's counters of 127.0.0.1 until ok accepts them.
func waitClient(t *testing.T, dev *sim.Device, what string, ok func(sim.ClientStats) bool) sim.ClientStats {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		cs := dev.Client("127.0.0.1")
		if ok(cs) {
			return cs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %+v", what, cs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A cold start opens its RTSP connection while the ISAPI login runs and
// DESCRIBEs on it once the login succeeded: one RTSP connection in all.
func TestColdStartOneRTSPConnection(t *testing.T) {
	for _, byURL := range []bool{true, false} {
		name := "port guessed"
		if byURL {
			name = "rtsp_port"
		}
		t.Run(name, func(t *testing.T) {
			m := resetModule(t, Options{}, guard.Config{})
			const pass = "hik/12@45"
			dev, err := sim.Start(sim.Config{Users: map[string]string{"admin": pass}})
			if err != nil {
				t.Fatal(err)
			}
			defer dev.Close()
			base := runtime.NumGoroutine()
			q := ""
			if byURL {
				q = "&rtsp_port=" + strconv.Itoa(simPort(t, dev.RTSPAddr()))
			} else {
				m.rtspGuess = simPort(t, dev.RTSPAddr()) // where the device listens, as 554 on most
			}
			pl := startPlaying(t, "hikvision://"+url.UserPassword("admin", pass).String()+"@"+dev.HTTPAddr()+"/?channel=1"+q)
			pl.waitPacket(t, 0, 10*time.Second)
			cs := dev.Client("127.0.0.1")
			if cs.RTSPConnections != 1 || cs.RTSPGoodLogins == 0 || cs.RTSPFailedLogins != 0 || cs.FailedLogins != 0 {
				t.Errorf("cold start: %d RTSP connections, %d good and %d failed RTSP logins, %d failed ISAPI logins; want 1, some, 0, 0",
					cs.RTSPConnections, cs.RTSPGoodLogins, cs.RTSPFailedLogins, cs.FailedLogins)
			}
			if pl.p.RemoteAddr != dev.RTSPAddr() {
				t.Errorf("playing from %s, want %s", pl.p.RemoteAddr, dev.RTSPAddr())
			}
			pl.stop(t)
			waitGoroutines(t, base)
		})
	}
}

// A wrong password costs one failed ISAPI login and sends the RTSP side no
// credentials, though its connection was opened beside the login.
func TestColdStartWrongPasswordNoRTSPLogin(t *testing.T) {
	m := resetModule(t, Options{}, guard.Config{})
	dev, err := sim.Start(sim.Config{Users: map[string]string{"admin": "right"}})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	base := runtime.NumGoroutine()
	m.rtspGuess = simPort(t, dev.RTSPAddr())
	_, err = m.Dial("hikvision://admin:wrong@" + dev.HTTPAddr() + "/?channel=1")
	if !errors.Is(err, isapi.ErrUnauthorized) {
		t.Fatalf("Dial: %v, want the wrong password", err)
	}
	// the preopen reached the RTSP server (so the test saw it) ...
	cs := waitClient(t, dev, "no RTSP connection", func(cs sim.ClientStats) bool { return cs.RTSPConnections == 1 })
	waitGoroutines(t, base) // ... and ended without the caller
	cs = dev.Client("127.0.0.1")
	if cs.FailedLogins != 1 || cs.RTSPFailedLogins != 0 || cs.RTSPGoodLogins != 0 {
		t.Errorf("%d failed ISAPI logins, %d failed and %d good RTSP logins; want 1, 0, 0",
			cs.FailedLogins, cs.RTSPFailedLogins, cs.RTSPGoodLogins)
	}
}

// The device names another RTSP port than the one tried beside the login:
// the stream plays from the device's port and the early session is closed.
func TestColdStartOtherPort(t *testing.T) {
	m := resetModule(t, Options{}, guard.Config{})
	users := map[string]string{"admin": "pw"}
	dev, err := sim.Start(sim.Config{Users: users})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	decoy, err := sim.Start(sim.Config{Users: users}) // something else at the usual port
	if err != nil {
		t.Fatal(err)
	}
	defer decoy.Close()
	base := runtime.NumGoroutine()
	m.rtspGuess = simPort(t, decoy.RTSPAddr())
	pl := startPlaying(t, "hikvision://admin:pw@"+dev.HTTPAddr()+"/?channel=1")
	pl.waitPacket(t, 0, 10*time.Second)
	if pl.p.RemoteAddr != dev.RTSPAddr() {
		t.Errorf("playing from %s, want the device's port %s", pl.p.RemoteAddr, dev.RTSPAddr())
	}
	if n := dev.Client("127.0.0.1").RTSPConnections; n != 1 {
		t.Errorf("%d RTSP connections to the device, want 1", n)
	}
	waitClient(t, decoy, "the port tried first saw nothing", func(cs sim.ClientStats) bool { return cs.RTSPConnections == 1 })
	pl.stop(t)
	waitGoroutines(t, base)

	// The probe expired: the next cold start tries the port the device
	// named, and plays on that connection.
	m.probes.mu.Lock()
	m.probes.now = func() time.Time { return time.Now().Add(2 * ProbeTTL) }
	m.probes.mu.Unlock()
	pl = startPlaying(t, "hikvision://admin:pw@"+dev.HTTPAddr()+"/?channel=1")
	pl.waitPacket(t, 0, 10*time.Second)
	pl.stop(t)
	if n := decoy.Client("127.0.0.1").RTSPConnections; n != 1 {
		t.Errorf("the second cold start tried the usual port again (%d connections there)", n)
	}
	if n := dev.Client("127.0.0.1").RTSPConnections; n != 2 {
		t.Errorf("%d RTSP connections to the device after two cold starts, want 2", n)
	}
	if n := dev.Client("127.0.0.1").Requests["/ISAPI/Security/adminAccesses"]; n != 2 {
		t.Errorf("adminAccesses asked %d times, want 2: the second start was not cold", n)
	}
	waitGoroutines(t, base)
}

// A device that hangs up after answering the DESCRIBE without credentials:
// the DESCRIBE after the login is made again on a new connection.
func TestColdStartDeviceHangsUpAfterChallenge(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sdpH264PCMA)
	e.rtsp.hangUpOn401.Store(true)
	p, err := mod(t).Dial(testURL(e.isapi.hostPort(), "?rtsp_port="+strconv.Itoa(e.rtsp.port())))
	if err != nil {
		t.Fatal(err)
	}
	_ = p.Stop()
	if n := e.rtsp.conns.Load(); n != 2 {
		t.Errorf("%d RTSP connections, want 2 (the one hung up, then a new one)", n)
	}
	if e.rtsp.hangUpOn401.Load() {
		t.Error("the device never answered a DESCRIBE without credentials")
	}
}
