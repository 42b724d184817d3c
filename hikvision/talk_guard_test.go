//lint:file-ignore SA1019 go2rtc v1.9.14 marks core.Producer Start/Stop, Receiver.WriteRTP and Sender.HandleRTP deprecated, yet they are the interface it calls; the tests drive the producer as go2rtc does.

package hikvision

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

func talkAt(dev *sim.Device) int { return talkRequests(dev) }

// Talk requests go through the device's login guard: each is an allowed
// attempt whose outcome is reported.
func TestTalkThroughLoginGuard(t *testing.T) {
	t.Parallel()
	shortTalk(t)
	dev, src := startTalkSim(t, sim.Config{})
	p := dialProducer(t, src)
	defer p.Stop()
	f := addTrack(t, p)
	g0 := p.dev.guard.Snapshot()
	f.talkG711(g711Tone(1600))
	waitFor(t, "our idle close", 5*time.Second, func() bool { return dev.TalkClient(ourIP).Closes == 1 })
	waitFor(t, "talk idle", 5*time.Second, func() bool { return p.Talk().State == "idle" })
	g1 := p.dev.guard.Snapshot()
	// open, audioData, close: three requests, three allowed attempts, three successes
	if n := talkAt(dev); n != 3 || g1.Allowed-g0.Allowed != 3 || g1.Successes-g0.Successes != 3 || g1.Failures != g0.Failures {
		t.Fatalf("%d talk requests; guard allowed %d, successes %d, failures %d (want 3, 3, 3, 0)",
			n, g1.Allowed-g0.Allowed, g1.Successes-g0.Successes, g1.Failures-g0.Failures)
	}
}

// While the guard holds (here: the device locked us out), talk sends nothing:
// no open, no close, whatever audio comes, and Stop sends nothing either.
func TestTalkGuardHoldSendsNothing(t *testing.T) {
	shortTalk(t)
	dev, src := startTalkSim(t, sim.Config{})
	base := runtime.NumGoroutine()
	p := dialProducer(t, src)
	f := addTrack(t, p)
	p.dev.guard.ReportLate(&isapi.AuthError{Method: "GET", Path: "/ISAPI/System/deviceInfo", Locked: true, UnlockTime: 600, RetryLoginTime: -1})
	before := dev.Client(ourIP)
	f.talkG711(g711Tone(800))
	waitFor(t, "talk failed", 5*time.Second, func() bool { return p.Talk().State == "failed" })
	if ts := p.Talk(); !strings.Contains(ts.Error, "locked") {
		t.Errorf("talk error %q does not say locked", ts.Error)
	}
	f.talkG711(g711Tone(800))
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if n, after := talkAt(dev), dev.Client(ourIP); n != 0 || after.GoodLogins != before.GoodLogins || after.FailedLogins != before.FailedLogins {
		t.Fatalf("%d talk requests while the guard held (logins %+v -> %+v)", n, before, after)
	}
	f.recv.Close()
	waitGoroutines(t, base)
}

// A password changed on the device while talk is idle: the next talk gets
// wrong credentials, which turns talk off and counts once against the
// device's budget of failed logins, even with talk_takeover (close, then
// open: two requests) and audio that keeps coming in more bursts.
func TestTalkWrongCredentialsCountOnce(t *testing.T) {
	shortTalk(t)
	dev, src := startTalkSim(t, sim.Config{})
	base := runtime.NumGoroutine()
	p := dialProducer(t, strings.Replace(src, "?channel=1", "?talk_takeover=1&channel=1", 1))
	f := addTrack(t, p)
	if err := dev.SetPassword("admin", "changed-on-the-device"); err != nil {
		t.Fatal(err)
	}
	f.talkG711(g711Tone(800))
	waitFor(t, "talk failed", 5*time.Second, func() bool { return p.Talk().State == "failed" })
	reqs := talkAt(dev)
	ts := p.Talk()
	if ts.Opens != 0 || !strings.Contains(strings.ToLower(ts.Error), "unauthorized") && !strings.Contains(ts.Error, "credentials") {
		t.Fatalf("talk status: %+v", ts)
	}
	noPassword(t, "talk error", ts.Error)
	// more bursts, after our idle time: nothing more is tried
	observe(ourIdle + 100*time.Millisecond)
	f.talkG711(g711Tone(800))
	observe(ourIdle + 100*time.Millisecond)
	f.talkG711(g711Tone(800))
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if n := talkAt(dev); n != reqs || n != 1 {
		t.Fatalf("talk requests: %d when talk failed, %d after more audio and Stop (want 1; no more)", reqs, n)
	}
	// One talk request failed its login, and the device counts it once: a
	// plain 401 (stale=FALSE) to the isapi client's cached challenge is a
	// failed login, not a reason to re-challenge. Without the latch the
	// take-over's close and open would be two requests: 2 at the device, 2
	// against the guard's budget.
	cs := dev.Client(ourIP)
	if cs.FailedLogins != 1 {
		t.Fatalf("the device counted %d failed logins, want the one request's", cs.FailedLogins)
	}
	if g := p.dev.guard.Snapshot(); g.FailedLogins != 1 || g.Reason.String() != "wrong credentials" {
		t.Fatalf("guard: %d failed logins (%s), want 1 wrong credentials", g.FailedLogins, g.Reason)
	}
	f.recv.Close()
	waitGoroutines(t, base)
}
