package hikvision

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/events"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/guard"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/intercom"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/mqtt"
)

// EventOptions is the events: part of the hikvision: section. Events are
// off unless asked for:
//
//	hikvision:
//	  events: true              # every hikvision:// stream's device
//
//	hikvision:
//	  events:
//	    streams: [front_door]   # only the devices of these streams
//	    inactive_timeout: 10s
//
// An mqtt: section turns events on for every stream unless streams: names
// some.
type EventOptions struct {
	Enabled bool `yaml:"enabled"`
	// Streams limits events to the devices of these go2rtc streams (and
	// turns them on). Empty: every hikvision:// stream.
	Streams []string `yaml:"streams"`
	// InactiveTimeout ends an event the device repeats as "active" without
	// ever sending "inactive" this long after its last repeat. Default 10 s.
	InactiveTimeout time.Duration `yaml:"inactive_timeout"`
	// IdleTimeout reopens an event stream that sent nothing (no event, no
	// heartbeat) for this long, on devices that never showed a heartbeat.
	// Default 10 min.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// CallStatusInterval is how often a door station's call status is read
	// (rings). Default 1 s; a negative value turns the reading off.
	CallStatusInterval time.Duration `yaml:"call_status_interval"`
	// Rescan is how often the module looks for streams added or deleted
	// (through go2rtc's API). Default 5 s.
	Rescan time.Duration `yaml:"rescan"`
}

// UnmarshalYAML takes `events: true|false` as well as the mapping.
func (o *EventOptions) UnmarshalYAML(unmarshal func(any) error) error {
	var b bool
	if err := unmarshal(&b); err == nil {
		*o = EventOptions{Enabled: b}
		return nil
	}
	type plain EventOptions
	var p plain
	if err := unmarshal(&p); err != nil {
		return fmt.Errorf("hikvision: events: want true, false or a mapping (streams, inactive_timeout, ...): %w", err)
	}
	*o = EventOptions(p)
	return nil
}

// wanted reports whether events are on (with the MQTT section).
func (o EventOptions) wanted(mqttOn bool) bool {
	return o.Enabled || len(o.Streams) > 0 || mqttOn
}

// Event delivery defaults.
const (
	DefaultCallStatusInterval = time.Second
	DefaultEventRescan        = 5 * time.Second
	// eventQueue is the queue of one SSE client.
	eventQueue = 256
)

// ErrEventsOff: events were not turned on in the hikvision: section.
var ErrEventsOff = errors.New("hikvision: events are off (set `events: true` in the hikvision: section of go2rtc.yaml)")

// moduleEvents is the module's event machinery: the state of every
// subscribed device, the hub SSE clients read, the MQTT publisher, and the
// goroutine that keeps one subscription per wanted device.
type moduleEvents struct {
	m     *Module
	opts  EventOptions
	hub   *events.Hub
	state *events.State
	pub   *mqtt.Publisher // nil without an mqtt: section

	cancel context.CancelFunc
	done   chan struct{}

	mu sync.Mutex
	// names: device host → channel → go2rtc stream names (sorted), from the
	// registry at each scan.
	names map[string]map[int][]string
	// subs are the device attachments the module made, for the health view.
	subs map[*deviceEvents]struct{}
}

// StartEvents starts the event machinery the Options ask for (none: it
// does nothing). The glue calls it once, after SetStreamLister, when go2rtc's
// streams are loaded. A bad mqtt: section is returned (and events stay off).
func (m *Module) StartEvents() error {
	mqttOn := m.opts.MQTT != nil && m.opts.MQTT.Broker != ""
	if !m.opts.Events.wanted(mqttOn) {
		return nil
	}
	m.evMu.Lock()
	defer m.evMu.Unlock()
	if m.ev != nil {
		return nil
	}
	o := m.opts.Events
	if o.CallStatusInterval == 0 {
		o.CallStatusInterval = DefaultCallStatusInterval
	}
	if o.Rescan <= 0 {
		o.Rescan = DefaultEventRescan
	}
	ev := &moduleEvents{m: m, opts: o, hub: events.NewHub(), names: map[string]map[int][]string{},
		subs: map[*deviceEvents]struct{}{}, done: make(chan struct{})}
	if mqttOn {
		pub, err := mqtt.New(*m.opts.MQTT, m.log.With().Str("part", "mqtt").Logger())
		if err != nil {
			m.log.Error().Err(err).Msg("[hikvision] mqtt: not started")
			return err
		}
		ev.pub = pub
	}
	ev.state = events.NewState(events.StateConfig{InactiveTimeout: o.InactiveTimeout, Emit: ev.emit})
	ctx, cancel := context.WithCancel(context.Background())
	ev.cancel = cancel
	m.ev = ev
	go ev.run(ctx)
	return nil
}

// Close stops the module's event machinery (subscriptions, MQTT publisher,
// SSE clients), releases every device the module holds, then the device
// network SDK if this was its last user: afterwards no goroutine of the
// module runs. go2rtc never closes the module (it exits); tests do.
func (m *Module) Close() error {
	m.evMu.Lock()
	ev := m.ev
	m.evMu.Unlock()
	var err error
	if ev != nil {
		ev.cancel()
		<-ev.done
	}
	m.reg.close() // device references: the last one closes each device and its event attachment
	if ev != nil {
		ev.hub.Close()
		ev.state.Close()
		if ev.pub != nil {
			err = ev.pub.Close()
		}
	}
	return errors.Join(err, m.closeSDK())
}

// events returns the running event machinery, nil when off.
func (m *Module) events() *moduleEvents {
	m.evMu.Lock()
	defer m.evMu.Unlock()
	return m.ev
}

func (ev *moduleEvents) run(ctx context.Context) {
	defer close(ev.done)
	t := time.NewTicker(ev.opts.Rescan)
	defer t.Stop()
	for {
		ev.scan()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// scan drops deleted streams (registry prune, which releases their devices
// and so closes subscriptions nothing else wants), learns the stream names
// of every channel and makes the event attachment of every wanted device.
func (ev *moduleEvents) scan() {
	r := ev.m.reg
	r.prune()
	listed := r.listed()
	r.mu.Lock()
	srcs := r.entriesLocked()
	r.mu.Unlock()

	names := map[string]map[int][]string{}
	var want []*sourceEntry
	for _, s := range srcs {
		var ns []string
		if listed != nil {
			for n := range listed[s] {
				ns = append(ns, n)
			}
		} else {
			s.mu.Lock()
			for n := range s.streams {
				ns = append(ns, n)
			}
			s.mu.Unlock()
		}
		host := eventAddr(s.cfg)
		if names[host] == nil {
			names[host] = map[int][]string{}
		}
		names[host][s.cfg.Channel] = append(names[host][s.cfg.Channel], ns...)
		if len(ns) == 0 {
			continue
		}
		if len(ev.opts.Streams) == 0 || slices.ContainsFunc(ns, func(n string) bool { return slices.Contains(ev.opts.Streams, n) }) {
			want = append(want, s)
		}
	}
	for _, chans := range names {
		for ch, ns := range chans {
			sort.Strings(ns)
			chans[ch] = slices.Compact(ns)
		}
	}
	ev.mu.Lock()
	ev.names = names
	ev.mu.Unlock()

	for _, s := range want {
		a, err := s.dev.Attachment("events", ev.makeDeviceEvents)
		if err != nil {
			if !errors.Is(err, ErrDeviceClosed) {
				ev.m.log.Warn().Str("device", s.dev.host).Err(s.dev.safeErr(err)).Msg("[hikvision] events: not started")
			}
			continue
		}
		if de, ok := a.(*deviceEvents); ok && ev.pub != nil {
			de.declare()
		}
	}
}

// eventAddr is a device's address in its events, SSE filters and MQTT
// topics: host:port, the port always written (80 or 443 by default).
func eventAddr(cfg *Config) string {
	port := cfg.HTTPPort
	if port == 0 {
		port = 80
		if cfg.HTTPS {
			port = 443
		}
	}
	return hostPort(cfg.Host, strconv.Itoa(port))
}

// streamNames are the go2rtc streams of a device's channel; channel 0 (the
// device itself) gets the streams of the device's only channel, if it has
// one.
func (ev *moduleEvents) streamNames(host string, ch int) []string {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	chans := ev.names[host]
	if ch == 0 && len(chans) == 1 {
		for _, ns := range chans {
			return ns
		}
	}
	return chans[ch]
}

func firstName(ns []string) string {
	if len(ns) == 0 {
		return ""
	}
	return ns[0]
}

// emit receives every change from the state: to the SSE clients and MQTT.
// Neither blocks.
func (ev *moduleEvents) emit(e events.Event) {
	ev.hub.Publish(e)
	if ev.pub != nil {
		err := ev.pub.Publish(mqtt.Event{Device: e.Device, Stream: firstName(ev.streamNames(e.Device, e.Channel)),
			Channel: e.Channel, Type: e.Type, Active: e.Active, Time: e.Time, Picture: e.Picture})
		if err != nil && !errors.Is(err, mqtt.ErrClosed) {
			ev.m.log.Debug().Err(err).Str("device", e.Device).Str("type", e.Type).Msg("[hikvision] mqtt: event not published")
		}
	}
}

// deviceEvents is a device's "events" attachment: its one alert-stream
// subscription (every request through Device.Do), and on door stations the
// call-status reading. It lives as long as the device.
type deviceEvents struct {
	ev   *moduleEvents
	dev  *Device
	addr string // host:port, the Device of its events
	sub  *events.Subscriber
	// channels maps alert channel fields to our channel: the alert stream
	// and the event triggers use the same one.
	channels events.ChannelMapper

	cancel context.CancelFunc
	done   chan struct{}
	// kick wakes side when the alert stream connected: the credentials
	// work, so reads the device refused are made again.
	kick chan struct{}

	mu        sync.Mutex
	conn      events.ConnState
	connErr   string
	online    *bool
	info      *isapi.DeviceInfo
	door      bool // the device answers call status: a door station
	call      intercom.CallState
	declared  bool
	doorErr   string
	infoTried bool
	trig      TriggersHealth // the device's event triggers (triggers.go)
}

func (ev *moduleEvents) makeDeviceEvents(d *Device) (Attachment, error) {
	c, err := d.isapiClient()
	if err != nil {
		return nil, err
	}
	de := &deviceEvents{ev: ev, dev: d, addr: eventAddr(d.cfg), done: make(chan struct{}), kick: make(chan struct{}, 1),
		channels: events.DefaultChannels, trig: TriggersHealth{State: TriggersReading}}
	sub, err := events.NewSubscriber(events.SubscriberConfig{
		Device:   de.addr,
		Channels: de.channels,
		Open: func(ctx context.Context) (*http.Response, error) {
			var resp *http.Response
			err := d.Do(ctx, func(ctx context.Context) error {
				r, err := c.OpenStream(ctx, events.AlertStreamPath)
				resp = r
				return err
			})
			if err != nil {
				return nil, d.safeErr(err)
			}
			return resp, nil
		},
		State:       ev.state,
		IdleTimeout: ev.opts.IdleTimeout,
		OnConnState: de.connState,
	})
	if err != nil {
		return nil, err
	}
	de.sub = sub
	ctx, cancel := context.WithCancel(context.Background())
	de.cancel = cancel
	ev.mu.Lock()
	ev.subs[de] = struct{}{}
	ev.mu.Unlock()
	sub.Start()
	go de.side(ctx, c)
	ev.m.log.Info().Str("device", d.host).Msg("[hikvision] events: subscribed")
	return de, nil
}

// doer is the intercom Doer of the device: one ISAPI request through Do.
func (de *deviceEvents) doer(c *isapi.Client) intercom.Doer { return deviceDoer(de.dev, c) }

func deviceDoer(d *Device, c *isapi.Client) intercom.Doer {
	return func(ctx context.Context, method, path string, body []byte) (int, []byte, error) {
		var status int
		var rb []byte
		err := d.Do(ctx, func(ctx context.Context) error {
			var err error
			status, rb, err = c.Do(ctx, method, path, body)
			return err
		})
		if err != nil {
			err = d.safeErr(err)
		}
		return status, rb, err
	}
}

// side reads the device's identity once it answers (for MQTT's device
// block) and its event triggers (triggers.go), and, on door stations, polls
// the call status for rings.
func (de *deviceEvents) side(ctx context.Context, c *isapi.Client) {
	defer close(de.done)
	if de.findDoor(ctx, c) {
		de.pollDoor(ctx, c)
		return
	}
	// Not a door station: read again the triggers that failed for a
	// reason that may pass (no answer, a busy device), with a growing
	// wait; those the device refused (a wrong password) only once its
	// alert stream connected, so a refused login is never tried again
	// from here.
	wait := 2 * time.Second
	for {
		var timer <-chan time.Time
		if de.triggersPending() {
			timer = time.After(wait)
			wait = min(2*wait, time.Minute)
		}
		select {
		case <-ctx.Done():
			return
		case <-timer:
		case <-de.kick:
			de.retryRefusedTriggers()
		}
		de.readInfo(ctx, c)
		de.readTriggers(ctx, c)
	}
}

// findDoor reads the identity and the triggers, then tells whether the
// device is a door station (it answers call status), trying again while it
// does not answer; false when it is not one, or on ctx's end.
func (de *deviceEvents) findDoor(ctx context.Context, c *isapi.Client) bool {
	do := de.doer(c)
	interval := de.ev.opts.CallStatusInterval
	// The first reading tells whether the device is a door station; a
	// device that refuses the path (404, not supported) is not polled again.
	wait := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
		de.readInfo(ctx, c)
		de.readTriggers(ctx, c)
		if interval < 0 {
			return false
		}
		st, err := intercom.GetCallStatus(ctx, do)
		if err == nil {
			de.setCall(intercom.CallIdle, st)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		var se *intercom.StatusError
		var ise *isapi.StatusError
		if errors.As(err, &se) && (se.HTTPStatus == http.StatusNotFound || se.HTTPStatus == http.StatusForbidden ||
			se.HTTPStatus == http.StatusNotImplemented || se.SubStatusCode == "notSupport") ||
			errors.As(err, &ise) && (ise.HTTPStatus == http.StatusNotFound || ise.SubStatusCode == "notSupport") ||
			errors.Is(err, intercom.ErrBadAnswer) {
			return false // not a door station
		}
		// no answer, a hold, a refused login: try again later
		wait = min(max(2*wait, 2*time.Second), time.Minute)
	}
}

// pollDoor reads a door station's call status until ctx ends.
func (de *deviceEvents) pollDoor(ctx context.Context, c *isapi.Client) {
	do := de.doer(c)
	interval := de.ev.opts.CallStatusInterval
	de.ev.m.log.Info().Str("device", de.dev.host).Msg("[hikvision] events: door station: reading its call status")
	prev := de.callState()
	_ = intercom.PollCallStatus(ctx, do, interval, func(_, cur intercom.CallState) {
		de.setCall(prev, cur)
		prev = cur
	}, func(err error) {
		de.mu.Lock()
		de.doorErr = err.Error()
		de.mu.Unlock()
	})
}

// readInfo reads the device's identity once (model, serial, firmware).
func (de *deviceEvents) readInfo(ctx context.Context, c *isapi.Client) {
	de.mu.Lock()
	tried := de.infoTried
	de.infoTried = true
	de.mu.Unlock()
	if tried {
		return
	}
	var info *isapi.DeviceInfo
	err := de.dev.Do(ctx, func(ctx context.Context) error {
		var err error
		info, err = c.DeviceInfo(ctx)
		return err
	})
	if err != nil {
		de.mu.Lock()
		switch guard.Classify(err) {
		case guard.KindNotSupported, guard.KindProtocol, guard.KindLowPrivilege, guard.KindOther:
			// the device answered, for good: not asked again
		default: // no answer, busy, a hold or a refused login: asked again later
			de.infoTried = false
		}
		de.mu.Unlock()
		return
	}
	de.dev.setModel(info.Model)
	de.mu.Lock()
	de.info = info
	de.mu.Unlock()
	de.health()
}

// setCall feeds a call-status reading to the state: "ring" while ringing,
// "call" while on call, device-wide (channel 0), where a ring reported on
// the alert stream goes too.
func (de *deviceEvents) setCall(prev, cur intercom.CallState) {
	de.mu.Lock()
	first := !de.door
	de.door, de.call, de.doorErr = true, cur, ""
	de.mu.Unlock()
	if first {
		de.dev.setDoorStation()
		de.declare()
	}
	for _, a := range intercom.CallAlerts(prev, cur) {
		de.ev.state.Apply(de.addr, a)
	}
}

func (de *deviceEvents) callState() intercom.CallState {
	de.mu.Lock()
	defer de.mu.Unlock()
	if de.call == "" {
		return intercom.CallIdle
	}
	return de.call
}

// declare lists a door station's ring entity in MQTT before its first ring.
func (de *deviceEvents) declare() {
	pub := de.ev.pub
	if pub == nil {
		return
	}
	de.mu.Lock()
	door, done := de.door, de.declared
	if door {
		de.declared = true
	}
	de.mu.Unlock()
	if door && !done {
		_ = pub.Declare(de.addr, firstName(de.ev.streamNames(de.addr, 0)), 0, events.TypeRing)
	}
}

// connState follows the subscription: the device is online while its
// stream is open, offline when a reopen failed (not when a stream merely
// ended and the next open works). Going offline ends the device's active
// events.
func (de *deviceEvents) connState(st events.ConnState, err error) {
	de.mu.Lock()
	prev := de.conn
	de.conn = st
	if err != nil {
		de.connErr = de.dev.redact(err.Error())
	}
	var online *bool
	switch {
	case st == events.StateConnected:
		v := true
		online = &v
		de.connErr = ""
	case st == events.StateDisconnected && prev != events.StateConnected:
		v := false
		online = &v
	}
	changed := online != nil && (de.online == nil || *de.online != *online)
	if online != nil {
		de.online = online
	}
	de.mu.Unlock()
	log := de.ev.m.log
	switch st {
	case events.StateConnected:
		log.Debug().Str("device", de.dev.host).Msg("[hikvision] events: stream open")
		select {
		case de.kick <- struct{}{}:
		default:
		}
	case events.StateDisconnected:
		log.Debug().Str("device", de.dev.host).Str("err", de.dev.redact(err.Error())).Msg("[hikvision] events: stream lost")
	}
	if changed && !*online {
		log.Warn().Str("device", de.dev.host).Str("err", de.dev.redact(err.Error())).
			Msg("[hikvision] events: device offline (its event stream cannot be opened)")
		// the device is gone: what it reported active ends now, so that
		// its first report after it comes back starts a new period
		de.ev.state.Forget(de.addr)
	}
	if changed && *online {
		log.Info().Str("device", de.dev.host).Msg("[hikvision] events: device online")
	}
	if changed {
		de.health()
	}
}

// health hands the device's identity and availability to MQTT.
func (de *deviceEvents) health() {
	pub := de.ev.pub
	if pub == nil {
		return
	}
	de.mu.Lock()
	h := mqtt.DeviceHealth{Device: de.addr, Online: de.online != nil && *de.online}
	if de.info != nil {
		h.Name, h.Model, h.Serial, h.Firmware = de.info.DeviceName, de.info.Model, de.info.SerialNumber, de.info.FirmwareVersion
	}
	known := de.online != nil
	de.mu.Unlock()
	if known {
		_ = pub.UpdateDevice(h)
	}
}

// Close ends the subscription (its active events end at once) and the
// call-status reading, and waits for their goroutines.
func (de *deviceEvents) Close() error {
	de.cancel()
	err := de.sub.Close()
	<-de.done
	de.ev.mu.Lock()
	delete(de.ev.subs, de)
	de.ev.mu.Unlock()
	if pub := de.ev.pub; pub != nil {
		_ = pub.UpdateDevice(mqtt.DeviceHealth{Device: de.addr, Online: false})
	}
	de.ev.m.log.Info().Str("device", de.dev.host).Msg("[hikvision] events: unsubscribed")
	return err
}
