package events_test

import (
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/events"
)

const dev = "192.0.2.1:80"

func newState(clk *fakeClock, rec *recorder) *events.State {
	return events.NewState(events.StateConfig{InactiveTimeout: 10 * time.Second, ExplicitTimeout: time.Minute, Emit: rec.emit, Clock: clk})
}

func motion(ch int, active bool) events.Alert {
	return events.Alert{Type: events.TypeMotion, Raw: "VMD", Channel: ch, Active: active}
}

func TestStateRepeatsFoldAndTimeout(t *testing.T) {
	clk, rec := newFakeClock(), &recorder{}
	s := newState(clk, rec)
	defer s.Close()
	start := clk.Now()
	for range 8 { // a device repeating "active" every second, never "inactive"
		s.Apply(dev, motion(1, true))
		clk.Advance(time.Second)
	}
	if got := rec.summary(); got != "1/motion:on" {
		t.Fatalf("after 8 repeats: %q, want one active", got)
	}
	clk.Advance(8 * time.Second) // 9 s after the last repeat
	if got := rec.summary(); got != "1/motion:on" {
		t.Fatalf("9 s after the last repeat: %q, still active expected", got)
	}
	clk.Advance(time.Second)
	evs := rec.all()
	if got := rec.summary(); got != "1/motion:on 1/motion:off" {
		t.Fatalf("10 s after the last repeat: %q", got)
	}
	if want := start.Add(17 * time.Second); !evs[1].Time.Equal(want) {
		t.Errorf("inactive at %v, want %v (10 s after the last repeat)", evs[1].Time.Sub(start), want.Sub(start))
	}
	if evs[1].Raw != "timeout" || evs[0].Raw != "VMD" || evs[0].Device != dev {
		t.Errorf("events %+v", evs)
	}
	// a new active starts a new period
	s.Apply(dev, motion(1, true))
	if got := rec.summary(); got != "1/motion:on 1/motion:off 1/motion:on" {
		t.Fatalf("new period: %q", got)
	}
}

func TestStateExplicitInactive(t *testing.T) {
	clk, rec := newFakeClock(), &recorder{}
	s := newState(clk, rec)
	defer s.Close()
	s.Apply(dev, motion(2, true))
	clk.Advance(3 * time.Second)
	s.Apply(dev, motion(2, false))
	s.Apply(dev, motion(2, false)) // a second inactive changes nothing
	if got := rec.summary(); got != "2/motion:on 2/motion:off" {
		t.Fatalf("%q", got)
	}
	// this device sends "inactive": a silent active period may now last up to ExplicitTimeout
	s.Apply(dev, motion(2, true))
	clk.Advance(30 * time.Second)
	if got := rec.summary(); got != "2/motion:on 2/motion:off 2/motion:on" {
		t.Fatalf("30 s into an active period of a device that sends inactive: %q", got)
	}
	clk.Advance(30 * time.Second)
	if got := rec.summary(); got != "2/motion:on 2/motion:off 2/motion:on 2/motion:off" {
		t.Fatalf("after ExplicitTimeout: %q", got)
	}
	// the channel is part of the key
	s.Apply(dev, motion(3, true))
	s.Apply(dev, motion(4, false))
	if n := len(rec.all()); n != 5 {
		t.Fatalf("%d events: %s", n, rec.summary())
	}
}

func TestStateReconnectNoStaleActive(t *testing.T) {
	clk, rec := newFakeClock(), &recorder{}
	s := newState(clk, rec)
	defer s.Close()
	// learn that the device sends inactive, then start a period: it would last a minute
	s.Apply(dev, motion(1, true))
	s.Apply(dev, motion(1, false))
	s.Apply(dev, motion(1, true))
	s.Apply(dev, events.Alert{Type: events.TypeLineDetection, Channel: 1, Active: true})
	clk.Advance(2 * time.Second)
	s.Disconnected(dev) // the stream broke: the "inactive" may be lost
	clk.Advance(5 * time.Second)
	// reconnected; the device repeats linedetection only
	s.Apply(dev, events.Alert{Type: events.TypeLineDetection, Channel: 1, Active: true})
	clk.Advance(5 * time.Second) // 10 s after the disconnect
	if got := rec.summary(); got != "1/motion:on 1/motion:off 1/motion:on 1/linedetection:on 1/motion:off" {
		t.Fatalf("10 s after the disconnect: %q (motion not re-confirmed must end, linedetection must stay)", got)
	}
	clk.Advance(5 * time.Second)
	if got := rec.summary(); got != "1/motion:on 1/motion:off 1/motion:on 1/linedetection:on 1/motion:off 1/linedetection:off" {
		t.Fatalf("%q", got)
	}
	// quick reconnect: nothing flaps
	s.Apply(dev, motion(1, true))
	s.Disconnected(dev)
	clk.Advance(time.Second)
	s.Apply(dev, motion(1, true))
	clk.Advance(9 * time.Second)
	if n := len(rec.all()); n != 7 {
		t.Fatalf("quick reconnect flapped: %s", rec.summary())
	}
}

func TestStateVideolossHeartbeatEndsVideoloss(t *testing.T) {
	clk, rec := newFakeClock(), &recorder{}
	s := newState(clk, rec)
	defer s.Close()
	hb := events.Alert{Type: events.TypeVideoLoss, Heartbeat: true, Channel: 0}
	s.Apply(dev, hb) // heartbeat on nothing: nothing
	s.Apply(dev, events.Alert{Type: events.TypeVideoLoss, Channel: 3, Active: true})
	s.Apply(dev, hb) // another channel's heartbeat
	s.Apply(dev, events.Alert{Type: events.TypeVideoLoss, Channel: 3, Heartbeat: true})
	if got := rec.summary(); got != "3/videoloss:on 3/videoloss:off" {
		t.Fatalf("%q", got)
	}
}

func TestStateForgetAndSnapshot(t *testing.T) {
	clk, rec := newFakeClock(), &recorder{}
	s := newState(clk, rec)
	s.Apply(dev, motion(2, true))
	s.Apply(dev, motion(1, true))
	s.Apply("other:80", motion(1, true))
	s.Apply(dev, events.Alert{Type: events.TypeLineDetection, Channel: 1, Active: true, Picture: []byte{1}})
	snap := s.Snapshot(dev)
	var got []string
	for _, e := range snap {
		got = append(got, eventString(e))
		if e.Picture != nil {
			t.Errorf("snapshot keeps a picture")
		}
	}
	if want := "1/linedetection:on 1/motion:on 2/motion:on"; join(got) != want {
		t.Fatalf("snapshot %q, want %q", join(got), want)
	}
	if evs := rec.all(); evs[3].Picture == nil {
		t.Errorf("the emitted event lost its picture")
	}
	s.Forget(dev)
	if got := rec.summary(); got != "2/motion:on 1/motion:on 1/motion:on 1/linedetection:on 1/linedetection:off 1/motion:off 2/motion:off" {
		t.Fatalf("after Forget: %q", got)
	}
	if len(s.Snapshot(dev)) != 0 || len(s.Snapshot("")) != 1 {
		t.Fatalf("snapshot after Forget: %+v", s.Snapshot(""))
	}
	s.Close()
	clk.Advance(time.Hour)
	s.Apply("other:80", motion(5, true))
	if n := len(rec.all()); n != 7 {
		t.Fatalf("emits after Close: %s", rec.summary())
	}
}

func join(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out
}

func TestHubSlowConsumer(t *testing.T) {
	h := events.NewHub()
	defer h.Close()
	slow := h.Subscribe(events.Filter{}, 4)
	only2 := h.Subscribe(events.Filter{Channels: []int{2}, Devices: []string{dev}}, 0)
	done := make(chan struct{})
	go func() { // publishing 1000 events must not wait for the slow subscriber
		defer close(done)
		for i := range 1000 {
			h.Publish(events.Event{Device: dev, Channel: i % 3, Type: events.TypeMotion, Active: true})
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Publish blocked on a subscriber that does not read")
	}
	if d := slow.Dropped(); d != 996 {
		t.Errorf("slow subscriber dropped %d, want 996", d)
	}
	// the newest ones are kept
	var last events.Event
	for range 4 {
		last = <-slow.C()
	}
	if last.Channel != 999%3 {
		t.Errorf("last kept event channel %d, want %d", last.Channel, 999%3)
	}
	if n := len(only2.C()); n != events.DefaultQueue || only2.Dropped() != 333-events.DefaultQueue {
		t.Errorf("filtered subscriber: %d queued, %d dropped", n, only2.Dropped())
	}
	for range events.DefaultQueue {
		if e := <-only2.C(); e.Channel != 2 {
			t.Fatalf("filter let channel %d through", e.Channel)
		}
	}
	slow.Close()
	slow.Close()
	if h.Subscribers() != 1 {
		t.Errorf("%d subscribers after Close", h.Subscribers())
	}
	h.Close()
	if _, ok := <-only2.C(); ok {
		t.Errorf("channel open after Hub.Close")
	}
	if _, ok := <-h.Subscribe(events.Filter{}, 1).C(); ok {
		t.Errorf("Subscribe after Close gave an open channel")
	}
}
