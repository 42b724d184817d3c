// Package lockout_test checks, end to end, that several go2rtc processes
// with this module, all given the same wrong password for one device, never
// get the device to lock them out together. It is its own package so that
// `go test ./...` runs its ten minutes beside the other packages.
package lockout_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/e2e"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

const (
	rightPassword = "R1ght/P@ss:lockout"
	wrongPassword = "Wr0ng/P@ss:lockout"
	processes     = 3
	pollEvery     = 5 * time.Second
	fullRun       = 10 * time.Minute
	maxFailures   = 5 // the device locks the client address after 5 wrong passwords
	reserveTries  = 1 // tries the module never uses (the guard's default)
)

// Three go2rtc processes on one address (the device counts failed logins
// per client address, so they share one count), each asked for the stream
// every 5 s for 10 minutes with the same wrong password, against a device
// that locks after 5 failures: the device never locks, and at least the
// reserved try is always left for a person.
//
// The full 10 minutes need a test timeout above go test's default of 10
// minutes (.ci/run runs it so); under a shorter timeout it polls for as long
// as the timeout allows, minus a margin, and says so.
func TestThreeProcessesNeverLock(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 10 minutes and builds go2rtc")
	}
	bin := e2e.Go2rtcBinary(t)
	runFor := fullRun
	if dl, ok := t.Deadline(); ok {
		if left := time.Until(dl) - 90*time.Second; left < runFor {
			runFor = left
			t.Logf("the test timeout allows %s of polling, not %s (run with -timeout 20m for the full run)",
				runFor.Round(time.Second), fullRun)
		}
	}
	if runFor < time.Minute {
		t.Fatalf("the test timeout leaves %s of polling: run with -timeout 20m", runFor)
	}
	dev, err := sim.Start(sim.Config{
		Users:        map[string]string{"admin": rightPassword},
		MaxFailures:  maxFailures,
		LockDuration: 30 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dev.Close() })

	src := "hikvision://" + url.UserPassword("admin", wrongPassword).String() + "@" + dev.HTTPAddr() + "/?channel=1"
	config := fmt.Sprintf("log:\n  level: info\nstreams:\n  cam: %q\n", src)
	var gs []*e2e.Go2rtc
	for i := 0; i < processes; i++ {
		gs = append(gs, e2e.StartGo2rtc(t, bin, config))
	}

	ctx, cancel := context.WithTimeout(context.Background(), runFor+2*time.Minute)
	defer cancel()
	const ip = "127.0.0.1"
	minLeft := maxFailures
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	rounds := 0
	for end := time.Now().Add(runFor); time.Now().Before(end); {
		rounds++
		// Each process is asked for the stream (a request that dials it).
		for i, g := range gs {
			status, body, err := g.Get(ctx, "/api/frame.mp4?src=cam")
			if err != nil {
				t.Fatalf("round %d, process %d: %v", rounds, i, err)
			}
			if status == 200 {
				t.Fatalf("round %d, process %d: the wrong password played: %.200s", rounds, i, body)
			}
		}
		locked, _, left := dev.LockStatus(ip)
		cs := dev.Client(ip)
		if locked || cs.LockEvents != 0 {
			t.Fatalf("round %d: the device locked %s (stats %+v)", rounds, ip, cs)
		}
		if left < minLeft {
			minLeft = left
			t.Logf("round %d (%s): %d tries left; failed logins ISAPI %d, RTSP %d",
				rounds, time.Now().Format(time.TimeOnly), left, cs.FailedLogins, cs.RTSPFailedLogins)
		}
		if left < reserveTries {
			t.Fatalf("round %d: %d tries left, want at least %d kept for a person", rounds, left, reserveTries)
		}
		<-tick.C
	}

	cs := dev.Client(ip)
	failed := cs.FailedLogins + cs.RTSPFailedLogins
	t.Logf("%d rounds of %d processes: %d failed logins, %d tries left at the lowest, %d requests without credentials",
		rounds, processes, failed, minLeft, cs.Challenges)
	if failed == 0 {
		t.Fatal("the device saw no failed login: the wrong password never reached it")
	}
	if failed > maxFailures-reserveTries {
		t.Errorf("%d failed logins, want at most %d", failed, maxFailures-reserveTries)
	}
	// Every process tried at least once (none was blocked by another's
	// outcome alone), and each says why it holds.
	for i, g := range gs {
		st, err := g.GetStreams(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := st["cam"]; !ok {
			t.Errorf("process %d: no stream cam", i)
		}
	}
}

// The glue reads go2rtc.yaml's hikvision: section into the module's options:
// a budget of 1 failed login shows in /api/hikvision and holds after one.
func TestOptionsFromConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("builds go2rtc")
	}
	t.Parallel()
	bin := e2e.Go2rtcBinary(t)
	dev, err := sim.Start(sim.Config{Users: map[string]string{"admin": rightPassword}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dev.Close() })
	src := "hikvision://" + url.UserPassword("admin", wrongPassword).String() + "@" + dev.HTTPAddr() + "/?channel=1"
	config := fmt.Sprintf("log:\n  level: info\nhikvision:\n  guard:\n    max_failed_logins: 1\nstreams:\n  cam: %q\n", src)
	g := e2e.StartGo2rtc(t, bin, config)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := 0; i < 3; i++ {
		if status, _, err := g.Get(ctx, "/api/frame.mp4?src=cam"); err != nil || status == 200 {
			t.Fatalf("frame %d: %d %v", i, status, err)
		}
	}
	if cs := dev.Client("127.0.0.1"); cs.FailedLogins+cs.RTSPFailedLogins != 1 {
		t.Errorf("%d failed logins with a budget of 1, want 1 (%+v)", cs.FailedLogins+cs.RTSPFailedLogins, cs)
	}
	status, body, err := g.Get(ctx, "/api/hikvision")
	if err != nil || status != 200 {
		t.Fatalf("GET /api/hikvision: %d %v", status, err)
	}
	var h struct {
		Devices []struct {
			LoginBudget int `json:"login_budget"`
		} `json:"devices"`
	}
	if err := json.Unmarshal(body, &h); err != nil || len(h.Devices) != 1 || h.Devices[0].LoginBudget != 1 {
		t.Fatalf("health %s (%v): want one device with login_budget 1", body, err)
	}
}
