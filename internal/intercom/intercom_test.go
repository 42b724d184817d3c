package intercom_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/events"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/intercom"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

// station starts a simulated door station and a digest client for it (the product's isapi client plays
// the part of the login guard's Do).
func station(t *testing.T, cfg sim.Config) (*sim.Device, intercom.Doer, *isapi.Client) {
	t.Helper()
	if cfg.Personality == "" {
		cfg.Personality = sim.PersonalityDoorStation
	}
	d, err := sim.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	c, err := isapi.New(isapi.Config{Host: d.HTTPAddr(), Username: "admin", Password: "hik12345"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return d, c.Do, c
}

func mustState(t *testing.T, do intercom.Doer, want intercom.CallState) {
	t.Helper()
	st, err := intercom.GetCallStatus(context.Background(), do)
	if err != nil || st != want {
		t.Fatalf("call status %q (%v), want %q", st, err, want)
	}
}

func TestCallControl(t *testing.T) {
	d, do, _ := station(t, sim.Config{})
	ctx := context.Background()
	mustState(t, do, intercom.CallIdle)

	// answer with nothing ringing: refused, with the device's reason
	err := intercom.SendCallSignal(ctx, do, intercom.Answer)
	var se *intercom.StatusError
	if !errors.As(err, &se) || se.HTTPStatus != 403 || se.SubStatusCode != "invalidOperation" {
		t.Fatalf("answer while idle: %v", err)
	}

	if err := d.Ring(); err != nil {
		t.Fatal(err)
	}
	mustState(t, do, intercom.CallRing)
	if err := intercom.SendCallSignal(ctx, do, intercom.Answer); err != nil {
		t.Fatal(err)
	}
	mustState(t, do, intercom.CallOnCall)
	if err := intercom.SendCallSignal(ctx, do, intercom.HangUp); err != nil {
		t.Fatal(err)
	}
	mustState(t, do, intercom.CallIdle)

	_ = d.Ring()
	if err := intercom.SendCallSignal(ctx, do, intercom.Reject); err != nil {
		t.Fatal(err)
	}
	mustState(t, do, intercom.CallIdle)

	if err := intercom.SendCallSignal(ctx, do, "ring"); !errors.Is(err, intercom.ErrBadParameter) {
		t.Errorf("bad command: %v", err)
	}
	st := d.DoorStats()
	if st.Signals["answer"] != 1 || st.Signals["hangUp"] != 1 || st.Signals["reject"] != 1 || st.RefusedSignals != 1 || st.Rings != 2 {
		t.Errorf("door stats %+v", st)
	}
}

func TestRingTimesOut(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	d, do, _ := station(t, sim.Config{Now: clock, Door: sim.DoorConfig{RingTimeout: 30 * time.Second}})
	_ = d.Ring()
	mustState(t, do, intercom.CallRing)
	mu.Lock()
	now = now.Add(30 * time.Second)
	mu.Unlock()
	mustState(t, do, intercom.CallIdle)
}

func TestOpenDoor(t *testing.T) {
	d, do, _ := station(t, sim.Config{Door: sim.DoorConfig{Doors: 2}})
	ctx := context.Background()
	if err := intercom.OpenDoor(ctx, do, 2); err != nil {
		t.Fatal(err)
	}
	if err := intercom.OpenDoor(ctx, do, 1); err != nil {
		t.Fatal(err)
	}
	var se *intercom.StatusError
	if err := intercom.OpenDoor(ctx, do, 3); !errors.As(err, &se) || se.HTTPStatus != 400 || se.SubStatusCode != "badParameters" {
		t.Errorf("door 3 of 2: %v", err)
	}
	if err := intercom.OpenDoor(ctx, do, 0); !errors.Is(err, intercom.ErrBadParameter) {
		t.Errorf("door 0: %v", err)
	}
	if err := intercom.ControlDoor(ctx, do, 1, "explode"); !errors.Is(err, intercom.ErrBadParameter) {
		t.Errorf("bad door command: %v", err)
	}
	st := d.DoorStats()
	if st.Unlocks[1] != 1 || st.Unlocks[2] != 1 || st.RefusedUnlocks != 1 {
		t.Errorf("door stats %+v (door 0 and the bad command must not reach the device)", st)
	}
}

func TestNotADoorStation(t *testing.T) {
	_, do, _ := station(t, sim.Config{Personality: sim.PersonalityCamera})
	_, err := intercom.GetCallStatus(context.Background(), do)
	var se *intercom.StatusError
	if !errors.As(err, &se) || se.HTTPStatus != 403 || !errors.Is(err, isapi.ErrNotSupported) {
		t.Fatalf("camera callStatus: %v", err)
	}
}

// TestTalkWhileRinging: a voice-talk session opened while the station rings does not answer the call;
// TalkGate answers it and hangs it up when the talk ends.
func TestTalkWhileRinging(t *testing.T) {
	d, do, c := station(t, sim.Config{})
	ctx := context.Background()
	_ = d.Ring()
	if _, err := c.TalkOpen(ctx, "1"); err != nil {
		t.Fatal(err)
	}
	mustState(t, do, intercom.CallRing) // still ringing: the talk did not answer
	if n := d.DoorStats().TalkOpensWhileRinging; n != 1 {
		t.Fatalf("talk opens while ringing %d", n)
	}
	g := &intercom.TalkGate{Do: do}
	answered, err := g.TalkStarting(ctx)
	if err != nil || !answered {
		t.Fatalf("TalkStarting: %v %v", answered, err)
	}
	mustState(t, do, intercom.CallOnCall)
	if err := g.TalkEnded(ctx); err != nil {
		t.Fatal(err)
	}
	mustState(t, do, intercom.CallIdle)
	if err := g.TalkEnded(ctx); err != nil { // nothing to hang up twice
		t.Fatal(err)
	}
	if n := d.DoorStats().Signals["hangUp"]; n != 1 {
		t.Errorf("hangUps %d", n)
	}
	_ = c.TalkClose(ctx, "1")

	// not ringing: the gate leaves the station alone
	if answered, err := g.TalkStarting(ctx); err != nil || answered {
		t.Errorf("TalkStarting while idle: %v %v", answered, err)
	}
	// answered on the indoor station: the call holds the talk channel
	_ = d.Ring()
	if err := d.AnswerLocally(); err != nil {
		t.Fatal(err)
	}
	var ise *isapi.StatusError
	if _, err := c.TalkOpen(ctx, "1"); !errors.As(err, &ise) || ise.HTTPStatus != 403 {
		t.Errorf("talk during a call answered indoors: %v, want refused (403)", err)
	}
	if err := intercom.SendCallSignal(ctx, do, intercom.HangUp); err != nil {
		t.Fatal(err)
	}
	if _, err := c.TalkOpen(ctx, "1"); err != nil {
		t.Errorf("talk after the call ended: %v", err)
	}
}

// TestPollIntoState: callStatus polling turns a ring into a "ring" period in events.State that lasts as
// long as the ringing, however long that is.
func TestPollIntoState(t *testing.T) {
	d, do, _ := station(t, sim.Config{})
	var mu sync.Mutex
	var got []string
	state := events.NewState(events.StateConfig{InactiveTimeout: 150 * time.Millisecond, Emit: func(e events.Event) {
		mu.Lock()
		defer mu.Unlock()
		s := e.Type + ":off"
		if e.Active {
			s = e.Type + ":on"
		}
		got = append(got, s)
	}})
	defer state.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- intercom.PollCallStatus(ctx, do, 20*time.Millisecond, func(prev, cur intercom.CallState) {
			for _, a := range intercom.CallAlerts(prev, cur) {
				state.Apply(d.HTTPAddr(), a)
			}
		}, nil)
	}()
	snapshot := func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), got...) }
	wait := func(n int) {
		deadline := time.Now().Add(10 * time.Second)
		for len(snapshot()) < n {
			if time.Now().After(deadline) {
				t.Fatalf("events %v, want %d", snapshot(), n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	_ = d.Ring()
	wait(1)
	time.Sleep(500 * time.Millisecond) // > InactiveTimeout: still ringing, so still on
	if s := snapshot(); len(s) != 1 || s[0] != "ring:on" {
		t.Fatalf("while ringing: %v", s)
	}
	if err := intercom.SendCallSignal(context.Background(), do, intercom.Answer); err != nil {
		t.Fatal(err)
	}
	wait(3)
	if err := intercom.SendCallSignal(context.Background(), do, intercom.HangUp); err != nil {
		t.Fatal(err)
	}
	wait(4)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("PollCallStatus returned %v", err)
	}
	if s := snapshot(); len(s) != 4 || s[0] != "ring:on" || s[1] != "ring:off" || s[2] != "call:on" || s[3] != "call:off" {
		t.Fatalf("events %v", s)
	}
}
