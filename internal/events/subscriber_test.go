package events_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/events"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

func startSim(t *testing.T, cfg sim.Config) *sim.Device {
	t.Helper()
	d, err := sim.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// alertLog collects alerts from OnAlert.
type alertLog struct {
	mu sync.Mutex
	as []events.Alert
}

func (l *alertLog) add(a events.Alert) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.as = append(l.as, a)
}

func (l *alertLog) count(f func(events.Alert) bool) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, a := range l.as {
		if f(a) {
			n++
		}
	}
	return n
}

type connLog struct {
	mu     sync.Mutex
	states []events.ConnState
	errs   []error
}

func (c *connLog) add(st events.ConnState, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.states = append(c.states, st)
	if err != nil {
		c.errs = append(c.errs, err)
	}
}

func (c *connLog) n(st events.ConnState) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, s := range c.states {
		if s == st {
			n++
		}
	}
	return n
}

func (c *connLog) lastErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.errs) == 0 {
		return nil
	}
	return c.errs[len(c.errs)-1]
}

// TestSubscriberSimulatedCamera goes the whole way: the simulator's digest-protected alert stream with a
// script, the subscriber, State and Hub.
func TestSubscriberSimulatedCamera(t *testing.T) {
	d := startSim(t, sim.Config{Events: sim.EventsConfig{
		Heartbeat: 50 * time.Millisecond,
		Script: []sim.EventStep{
			{Delay: 50 * time.Millisecond, Type: "VMD", Channel: 1, Repeat: 5, Every: 40 * time.Millisecond},
			{Type: "linedetection", Channel: 1, Picture: true, ChannelName: "Garage & Yard"},
			{Type: "fielddetection", Channel: 1, Duration: true},
			{Type: "IO", Channel: 2},
			{Type: "IO", Channel: 2, Inactive: true, Delay: 20 * time.Millisecond},
		},
	}})
	hub := events.NewHub()
	defer hub.Close()
	sub := hub.Subscribe(events.Filter{}, 64)
	state := events.NewState(events.StateConfig{InactiveTimeout: 400 * time.Millisecond, Emit: hub.Publish})
	defer state.Close()
	log := &alertLog{}
	s, err := events.NewSubscriber(events.SubscriberConfig{
		Device: d.HTTPAddr(), Open: digestOpener("http://"+d.HTTPAddr(), "admin", "hik12345"),
		State: state, OnAlert: log.add,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()

	got := map[string]events.Event{}
	deadline := time.After(20 * time.Second)
	for len(got) < 8 {
		select {
		case e := <-sub.C():
			if e.Device != d.HTTPAddr() {
				t.Errorf("event device %q", e.Device)
			}
			k := eventString(e)
			if _, dup := got[k]; dup {
				t.Errorf("%s delivered twice (repeats must fold)", k)
			}
			got[k] = e
		case <-deadline:
			t.Fatalf("events so far: %v; subscriber %+v", got, s.Stats())
		}
	}
	for _, k := range []string{"1/motion:on", "1/motion:off", "1/linedetection:on", "1/linedetection:off",
		"1/fielddetection:on", "1/fielddetection:off", "2/io:on", "2/io:off"} {
		if _, ok := got[k]; !ok {
			t.Errorf("missing %s in %v", k, got)
		}
	}
	if p := got["1/linedetection:on"].Picture; len(p) < 100 || p[0] != 0xFF || p[1] != 0xD8 {
		t.Errorf("linedetection picture: %d bytes", len(p))
	}
	if e := got["1/fielddetection:on"]; !strings.HasPrefix(e.Raw, "duration/fielddetection") {
		t.Errorf("duration event raw %q", e.Raw)
	}
	st := s.Stats()
	if st.Connects != 1 || st.Alerts != 9 || st.Heartbeats < 2 || st.BadParts != 0 || st.Pictures != 1 || !st.Connected {
		t.Errorf("stats %+v", st)
	}
	if n := log.count(func(a events.Alert) bool { return a.Type == events.TypeMotion }); n != 5 {
		t.Errorf("OnAlert saw %d motion repeats, want 5", n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the device to see the stream closed", 5*time.Second, func() bool { return d.OpenAlertStreams() == 0 })
	checkNoGoroutines(t)
}

// TestSimulatorQuirks reads the simulator's stream in every quirk it has, through the product's digest
// code, and checks each decodes to the same events.
func TestSimulatorQuirks(t *testing.T) {
	steps := []sim.EventStep{
		{Type: "VMD", Channel: 2},
		{Type: "linedetection", Channel: 3, Picture: true},
		{Type: "regionEntrance", Channel: 1, Duration: true, Description: "Tom & Jerry"},
	}
	wantFor := func(dyn bool) []string {
		_ = dyn
		return []string{"2/motion:on", "3/linedetection:on", "1/regionentrance:on"}
	}
	cases := []struct {
		name string
		cfg  sim.Config
	}{
		{"camera defaults", sim.Config{}},
		{"boundary mismatch", sim.Config{Events: sim.EventsConfig{AnnouncedBoundary: "--hikboundary"}}},
		{"ver10 namespace", sim.Config{Events: sim.EventsConfig{Namespace: sim.NamespaceHikvisionV1}}},
		{"isapi namespace", sim.Config{Events: sim.EventsConfig{Namespace: sim.NamespaceISAPI}}},
		{"JSON parts", sim.Config{Events: sim.EventsConfig{JSON: true}}},
		{"no content length, x-mixed-replace", sim.Config{Events: sim.EventsConfig{NoContentLength: true, MediaType: "multipart/x-mixed-replace"}}},
		{"duplicate delimiters", sim.Config{Events: sim.EventsConfig{DuplicateDelimiter: true}}},
		{"glued delimiters", sim.Config{Events: sim.EventsConfig{GlueDelimiter: true}}},
		{"NVR dynChannelID", sim.Config{Personality: sim.PersonalityNVR, Namespace: sim.NamespaceISAPI}},
		{"NVR channels from 33", sim.Config{Personality: sim.PersonalityNVR, Events: sim.EventsConfig{ChannelIDs: sim.ChannelIDsOffset}}},
		{"door station", sim.Config{Personality: sim.PersonalityDoorStation}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := c.cfg
			cfg.Events.Heartbeat = 30 * time.Millisecond
			cfg.Events.Script = steps
			d := startSim(t, cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			resp, err := digestOpener("http://"+d.HTTPAddr(), "admin", "hik12345")(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			dec := events.NewDecoder(resp.Body, resp.Header.Get("Content-Type"), nil)
			var got []string
			heartbeats := 0
			var pic []byte
			for len(got) < 3 || heartbeats < 3 {
				a, err := dec.Next()
				if err != nil {
					t.Fatalf("Next: %v (got %v)", err, got)
				}
				if a.Heartbeat {
					heartbeats++
					continue
				}
				got = append(got, alertString(a))
				if a.Picture != nil {
					pic = a.Picture
				}
				if a.Type == events.TypeRegionEntrance && a.Raw != "duration/regionEntrance" {
					t.Errorf("raw %q", a.Raw)
				}
			}
			if join(got) != join(wantFor(false)) {
				t.Errorf("alerts %v, want %v", got, wantFor(false))
			}
			if len(pic) < 100 {
				t.Errorf("picture %d bytes", len(pic))
			}
			if st := dec.Stats(); st.BadParts != 0 || st.OrphanPictures != 0 {
				t.Errorf("stats %+v (%v)", st, dec.LastError())
			}
			if c.name == "boundary mismatch" && (dec.Boundary() != "boundary" || !strings.Contains(resp.Header.Get("Content-Type"), "hikboundary")) {
				t.Errorf("boundary %q, header %q", dec.Boundary(), resp.Header.Get("Content-Type"))
			}
		})
	}
}

func TestSubscriberReconnectAfterReboot(t *testing.T) {
	d := startSim(t, sim.Config{Events: sim.EventsConfig{Heartbeat: 50 * time.Millisecond}})
	conns := &connLog{}
	state := events.NewState(events.StateConfig{InactiveTimeout: time.Minute})
	defer state.Close()
	var attempts []int
	var mu sync.Mutex
	s, err := events.NewSubscriber(events.SubscriberConfig{
		Device: d.HTTPAddr(), Open: digestOpener("http://"+d.HTTPAddr(), "admin", "hik12345"),
		State: state, OnConnState: conns.add,
		Backoff: func(n int) time.Duration {
			mu.Lock()
			attempts = append(attempts, n)
			mu.Unlock()
			return 50 * time.Millisecond
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	defer s.Close()
	waitFor(t, "connected", 10*time.Second, func() bool { return conns.n(events.StateConnected) == 1 })
	d.TriggerEvents(sim.EventStep{Type: "VMD", Channel: 1})
	waitFor(t, "motion active", 10*time.Second, func() bool { return len(state.Snapshot("")) == 1 })

	if err := d.Reboot(500 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "reconnected after the reboot", 20*time.Second, func() bool { return conns.n(events.StateConnected) == 2 })
	if conns.n(events.StateDisconnected) < 1 || conns.lastErr() == nil {
		t.Errorf("states %v", conns.states)
	}
	mu.Lock()
	if len(attempts) < 2 || attempts[0] != 1 { // the device refused connections while down: attempts count up
		t.Errorf("backoff attempts %v", attempts)
	}
	mu.Unlock()
	d.TriggerEvents(sim.EventStep{Type: "linedetection", Channel: 1})
	waitFor(t, "an event after the reboot", 10*time.Second, func() bool {
		for _, e := range state.Snapshot("") {
			if e.Type == events.TypeLineDetection && e.Active {
				return true
			}
		}
		return false
	})
	if st := s.Stats(); st.Connects != 2 || st.Failures < 1 {
		t.Errorf("stats %+v", st)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if snap := state.Snapshot(""); len(snap) != 0 {
		t.Errorf("state after Close: %+v", snap)
	}
	checkNoGoroutines(t)
}

// TestWatchdog: a stream whose heartbeats stop is reconnected; a stream that never had heartbeats is
// left alone (no reconnect loop) until IdleTimeout.
func TestWatchdog(t *testing.T) {
	d := startSim(t, sim.Config{Events: sim.EventsConfig{Heartbeat: 40 * time.Millisecond}})
	conns := &connLog{}
	s, err := events.NewSubscriber(events.SubscriberConfig{
		Device: d.HTTPAddr(), Open: digestOpener("http://"+d.HTTPAddr(), "admin", "hik12345"),
		OnConnState: conns.add, MinWatchdog: 300 * time.Millisecond, IdleTimeout: time.Hour,
		Backoff: func(int) time.Duration { return 10 * time.Millisecond },
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	defer s.Close()
	waitFor(t, "heartbeat interval learned", 10*time.Second, func() bool { return s.Stats().HeartbeatInterval > 0 })
	d.SetHeartbeat(sim.HeartbeatNone) // the stream stays open but goes quiet
	waitFor(t, "the watchdog to reconnect", 20*time.Second, func() bool { return s.Stats().Connects == 2 })
	st := s.Stats()
	if st.WatchdogFires != 1 || !errors.Is(conns.lastErr(), events.ErrStalled) {
		t.Fatalf("stats %+v, last error %v", st, conns.lastErr())
	}
	// The new stream shows no heartbeats either: the learned cadence is applied to it once more (a
	// stream that hangs right after opening is caught too), then forgotten, and the watchdog falls back
	// to IdleTimeout: no reconnect loop.
	waitFor(t, "the heartbeat interval forgotten", 20*time.Second, func() bool {
		st := s.Stats()
		return st.HeartbeatInterval == 0 && st.Connects == 3
	})
	st = s.Stats()
	if st.Connects != 3 || st.WatchdogFires != 2 {
		t.Fatalf("after the cadence was forgotten: %+v", st)
	}
	time.Sleep(time.Second) // more than 3 MinWatchdog periods: a looping watchdog would reconnect here
	if st2 := s.Stats(); st2.Connects != 3 || st2.WatchdogFires != 2 {
		t.Fatalf("reconnect loop on a stream without heartbeats: %+v", st2)
	}
	d.SetHeartbeat(40 * time.Millisecond)
	waitFor(t, "heartbeats learned again", 10*time.Second, func() bool { return s.Stats().HeartbeatInterval > 0 })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkNoGoroutines(t)
}

// TestWatchdogFakeClock drives the watchdog and the backoff with an injected clock on a stream that
// delivers one heartbeat part at a time.
func TestWatchdogFakeClock(t *testing.T) {
	clk := newFakeClock()
	hb := "--b\r\nContent-Type: application/xml\r\n\r\n<EventNotificationAlert><channelID>1</channelID><eventType>videoloss</eventType><eventState>inactive</eventState></EventNotificationAlert>\r\n"
	type conn struct {
		w    *io.PipeWriter
		done chan struct{}
	}
	opened := make(chan conn, 4)
	open := func(ctx context.Context) (*http.Response, error) {
		r, w := io.Pipe()
		c := conn{w: w, done: make(chan struct{})}
		go func() { <-ctx.Done(); _ = w.CloseWithError(ctx.Err()); close(c.done) }()
		opened <- c
		return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"multipart/mixed; boundary=b"}}, Body: r}, nil
	}
	log := &alertLog{}
	var backoffs []int
	var mu sync.Mutex
	s, _ := events.NewSubscriber(events.SubscriberConfig{Device: "x:80", Open: open, Clock: clk, OnAlert: log.add,
		MinWatchdog: 5 * time.Second, IdleTimeout: time.Hour,
		Backoff: func(n int) time.Duration {
			mu.Lock()
			backoffs = append(backoffs, n)
			mu.Unlock()
			return 7 * time.Second
		}})
	s.Start()
	defer s.Close()
	c := <-opened
	for i := 1; i <= 3; i++ { // heartbeats every 2 s
		if _, err := io.WriteString(c.w, hb); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "heartbeat", 5*time.Second, func() bool { return s.Stats().Heartbeats == i })
		clk.Advance(2 * time.Second)
	}
	if iv := s.Stats().HeartbeatInterval; iv != 2*time.Second {
		t.Fatalf("learned interval %v, want 2s", iv)
	}
	clk.Advance(3 * time.Second) // 5 s since the last heartbeat: limit is max(3×2 s, 5 s) = 6 s
	select {
	case <-c.done:
		t.Fatal("watchdog fired before 3× the heartbeat interval")
	default:
	}
	clk.Advance(time.Second + time.Millisecond)
	<-c.done
	waitFor(t, "backoff requested", 5*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(backoffs) == 1 })
	select {
	case <-opened:
		t.Fatal("reconnected before the backoff elapsed")
	default:
	}
	clk.Advance(7 * time.Second)
	c2 := <-opened
	// the open signals before the subscriber counts the connect: poll
	waitFor(t, "second connect counted", 5*time.Second, func() bool { return s.Stats().Connects == 2 })
	if st := s.Stats(); st.WatchdogFires != 1 || st.Connects != 2 {
		t.Errorf("stats %+v", st)
	}
	_ = c2
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	<-c2.done
	checkNoGoroutines(t)
}

func TestSubscriberStatusAndConfigErrors(t *testing.T) {
	if _, err := events.NewSubscriber(events.SubscriberConfig{Open: func(context.Context) (*http.Response, error) { return nil, nil }}); err == nil || !strings.Contains(err.Error(), "Device") {
		t.Errorf("missing Device: %v", err)
	}
	if _, err := events.NewSubscriber(events.SubscriberConfig{Device: "h:80"}); err == nil || !strings.Contains(err.Error(), "Open") {
		t.Errorf("missing Open: %v", err)
	}
	// a camera without the stream (or a wrong password answered by the guard) gives a typed error
	d := startSim(t, sim.Config{})
	conns := &connLog{}
	s, _ := events.NewSubscriber(events.SubscriberConfig{Device: d.HTTPAddr(), OnConnState: conns.add,
		Open:    digestOpener("http://"+d.HTTPAddr(), "admin", "wrong"),
		Backoff: func(int) time.Duration { return time.Hour }})
	s.Start()
	waitFor(t, "the first failure", 10*time.Second, func() bool { return conns.n(events.StateDisconnected) == 1 })
	var se *events.StatusError
	if !errors.As(conns.lastErr(), &se) || se.Code != http.StatusUnauthorized {
		t.Errorf("error %v, want *StatusError 401", conns.lastErr())
	}
	if strings.Contains(conns.lastErr().Error(), "wrong") {
		t.Errorf("error quotes the password: %v", conns.lastErr())
	}
	if err := s.Close(); err != nil { // Close during a long backoff returns at once
		t.Fatal(err)
	}
	checkNoGoroutines(t)
	// Close without Start
	s2, _ := events.NewSubscriber(events.SubscriberConfig{Device: "h:80", Open: digestOpener("http://127.0.0.1:1", "a", "b")})
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestSubscriberWithISAPIClient uses the product's ISAPI client as the Opener (what the login guard
// wraps) across a reboot of the device: the cached nonce is gone afterwards and must be renewed, never
// counted as a failed login.
func TestSubscriberWithISAPIClient(t *testing.T) {
	d := startSim(t, sim.Config{NonceLifetime: 300 * time.Millisecond, Events: sim.EventsConfig{Heartbeat: 50 * time.Millisecond}})
	c, err := isapi.New(isapi.Config{Host: d.HTTPAddr(), Username: "admin", Password: "hik12345"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	conns := &connLog{}
	s, _ := events.NewSubscriber(events.SubscriberConfig{
		Device: d.HTTPAddr(), OnConnState: conns.add,
		Open:    func(ctx context.Context) (*http.Response, error) { return c.OpenStream(ctx, events.AlertStreamPath) },
		Backoff: func(int) time.Duration { return 50 * time.Millisecond },
	})
	s.Start()
	defer s.Close()
	waitFor(t, "heartbeats", 10*time.Second, func() bool { return s.Stats().Heartbeats >= 2 })
	if err := d.Reboot(300 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "reconnected", 20*time.Second, func() bool { return s.Stats().Connects == 2 })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// the cached nonce expires: the next stream answers the stale challenge once more
	stale := d.Stats().Clients["127.0.0.1"].StaleNonces
	time.Sleep(400 * time.Millisecond) // let the nonce age past its lifetime (the device's clock)
	resp, err := c.OpenStream(context.Background(), events.AlertStreamPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cs := d.Stats().Clients["127.0.0.1"]
	if cs.FailedLogins != 0 || cs.RejectedAuth != 0 || cs.StaleNonces != stale+1 {
		t.Errorf("device saw %+v: want no failed login and one stale nonce answered", cs)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkNoGoroutines(t)

	// a wrong password is one failed login, reported as *isapi.AuthError
	bad, _ := isapi.New(isapi.Config{Host: d.HTTPAddr(), Username: "admin", Password: "nope"})
	defer bad.Close()
	_, err = bad.OpenStream(context.Background(), events.AlertStreamPath)
	var ae *isapi.AuthError
	if !errors.As(err, &ae) || !errors.Is(err, isapi.ErrUnauthorized) {
		t.Fatalf("wrong password: %v", err)
	}
	if n := d.Stats().Clients["127.0.0.1"].FailedLogins; n != 1 {
		t.Errorf("failed logins %d, want 1", n)
	}
}

// TestDoorStationRingOnStream: a door station that reports its ring on the alert stream (JSON
// VideoIntercomEvent) gives a "ring" period that ends InactiveTimeout later.
func TestDoorStationRingOnStream(t *testing.T) {
	d := startSim(t, sim.Config{Personality: sim.PersonalityDoorStation, Door: sim.DoorConfig{RingInStream: true},
		Events: sim.EventsConfig{Heartbeat: 50 * time.Millisecond}})
	hub := events.NewHub()
	defer hub.Close()
	sub := hub.Subscribe(events.Filter{Types: []string{events.TypeRing}}, 8)
	state := events.NewState(events.StateConfig{InactiveTimeout: 200 * time.Millisecond, Emit: hub.Publish})
	defer state.Close()
	s, _ := events.NewSubscriber(events.SubscriberConfig{Device: d.HTTPAddr(), State: state,
		Open: digestOpener("http://"+d.HTTPAddr(), "admin", "hik12345")})
	s.Start()
	defer s.Close()
	waitFor(t, "heartbeats", 10*time.Second, func() bool { return s.Stats().Heartbeats >= 1 })
	if err := d.Ring(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"0/ring:on", "0/ring:off"} {
		select {
		case e := <-sub.C():
			if got := eventString(e); got != want {
				t.Fatalf("event %s, want %s", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s", want)
		}
	}
}
