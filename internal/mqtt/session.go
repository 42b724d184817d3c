package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/redact"
)

// errLost ends a session when paho reports the connection gone.
var errLost = errors.New("mqtt: connection lost")

// backoff is the wait before connection attempt n (1-based) after failures:
// 0.5 s doubling to max, with ±20 % jitter from r (0 ≤ r < 1).
func backoff(n int, max time.Duration, r float64) time.Duration {
	d := 500 * time.Millisecond
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return time.Duration(float64(d) * (0.8 + 0.4*r))
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// run owns the connection: connect, run a session until the connection is
// lost, back off, again; until stop.
func (p *Publisher) run(stop context.Context) {
	defer close(p.done)
	dialCtx, dialCancel := context.WithCancel(context.Background())
	defer dialCancel()
	failures := 0
	for stop.Err() == nil {
		lost := make(chan error, 1)
		c := paho.NewClient(p.clientOptions(dialCtx, lost))
		tok := c.Connect()
		select {
		case <-tok.Done():
		case <-stop.Done():
			dialCancel() // closes the connection being set up
			<-tok.Done()
			c.Disconnect(250)
			return
		}
		if err := tok.Error(); err != nil {
			failures++
			p.failed(err, failures)
			if !sleepCtx(stop, backoff(failures, p.s.maxBackoff, rand.Float64())) {
				return
			}
			continue
		}
		failures = 0
		p.setConnected(true)
		p.log.Info().Str("broker", p.s.broker.String()).Msg("[hikvision] mqtt: connected")
		err := p.session(stop, c, lost)
		p.setConnected(false)
		if stop.Err() != nil {
			if c.IsConnectionOpen() {
				t := c.Publish(p.t.bridgeAvailability(), p.s.qos, p.s.retain, PayloadOffline)
				t.WaitTimeout(time.Second)
			}
			c.Disconnect(250)
			return
		}
		c.Disconnect(250)
		p.failed(err, 1)
		if !sleepCtx(stop, backoff(1, p.s.maxBackoff, rand.Float64())) {
			return
		}
	}
}

func (p *Publisher) failed(err error, attempts int) {
	msg := redact.String(err.Error(), p.s.password)
	p.mu.Lock()
	p.lastErr = msg
	p.attempts = uint64(attempts)
	p.mu.Unlock()
	ev := p.log.Warn()
	if attempts > 1 {
		ev = p.log.Debug() // the first failure of a run is enough at warn level
	}
	ev.Str("broker", p.s.broker.String()).Int("attempt", attempts).Str("err", msg).Msg("[hikvision] mqtt: broker unavailable")
}

func (p *Publisher) setConnected(up bool) {
	p.mu.Lock()
	p.connected.Store(up)
	p.since = time.Now()
	if up {
		p.connects.Add(1)
		p.attempts = 0
		p.lastErr = ""
	}
	p.mu.Unlock()
}

func (p *Publisher) clientOptions(dialCtx context.Context, lost chan error) *paho.ClientOptions {
	s := p.s
	o := paho.NewClientOptions()
	o.AddBroker(s.broker.String())
	o.SetClientID(s.clientID)
	o.SetUsername(s.username)
	o.SetPassword(s.password)
	o.SetProtocolVersion(4)
	o.SetCleanSession(true)
	o.SetAutoReconnect(false) // run() reconnects, with its own bounded, cancellable attempts
	o.SetConnectRetry(false)
	o.SetConnectTimeout(s.connectTimeout)
	o.SetWriteTimeout(s.publishTimeout)
	o.SetKeepAlive(30 * time.Second)
	o.SetPingTimeout(10 * time.Second)
	o.SetBinaryWill(p.t.bridgeAvailability(), []byte(PayloadOffline), s.qos, s.retain)
	o.SetTLSConfig(&tls.Config{InsecureSkipVerify: s.insecure, RootCAs: s.roots}) //nolint:gosec // insecure: opt-in for self-signed brokers
	o.SetConnectionLostHandler(func(_ paho.Client, err error) {
		select {
		case lost <- err:
		default:
		}
	})
	o.SetCustomOpenConnectionFn(func(u *url.URL, opts paho.ClientOptions) (net.Conn, error) {
		return openConn(dialCtx, u, opts)
	})
	return o
}

// openConn dials the broker; cancelling ctx aborts the dial and closes the
// connection (Close uses that to end an attempt at once).
func openConn(ctx context.Context, u *url.URL, o paho.ClientOptions) (net.Conn, error) {
	d := &net.Dialer{Timeout: o.ConnectTimeout}
	var conn net.Conn
	var err error
	switch u.Scheme {
	case "tcp", "mqtt":
		conn, err = d.DialContext(ctx, "tcp", u.Host)
	case "ssl", "tls", "mqtts":
		td := &tls.Dialer{NetDialer: d, Config: o.TLSConfig}
		conn, err = td.DialContext(ctx, "tcp", u.Host)
	case "ws", "wss":
		var tc *tls.Config
		if u.Scheme == "wss" {
			tc = o.TLSConfig
		}
		conn, err = paho.NewWebsocket(u.String(), tc, o.ConnectTimeout, o.HTTPHeaders, o.WebsocketOptions)
	default:
		err = fmt.Errorf("scheme %q not supported", u.Scheme)
	}
	if err != nil {
		return nil, err
	}
	cc := &ctxConn{Conn: conn}
	cc.stop = context.AfterFunc(ctx, func() { _ = conn.Close() })
	return cc, nil
}

type ctxConn struct {
	net.Conn
	stop func() bool
}

func (c *ctxConn) Close() error {
	c.stop()
	return c.Conn.Close()
}

// session publishes until the connection is lost or stop: first it clears
// stale retained states, then publishes everything it holds, announces the
// bridge online, and then sends what changes. Publishes are pipelined: up to
// window of them wait for the broker's acknowledgement at once, so a slow
// acknowledgement never holds back the next event.
func (p *Publisher) session(stop context.Context, c paho.Client, lost chan error) error {
	if p.s.discovery {
		// Home Assistant announces its (re)start here: publish everything again,
		// for brokers or set-ups that keep no retained messages.
		tok := c.Subscribe(p.s.discoveryPrefix+"/status", 0, func(_ paho.Client, m paho.Message) {
			if string(m.Payload()) == PayloadOnline {
				p.mu.Lock()
				p.republish = true
				p.mu.Unlock()
				p.signal()
			}
		})
		if err := p.wait(stop, lost, tok); err != nil {
			return err
		}
	}
	pl := &pipeline{p: p, c: c}
	defer pl.abandon()
	if err := p.sweep(stop, c, lost, pl); err != nil {
		return err
	}
	p.mu.Lock()
	p.republish = true
	p.mu.Unlock()
	if err := p.flush(stop, lost, pl); err != nil {
		return err
	}
	if err := pl.publish(stop, lost, message{topic: p.t.bridgeAvailability(), payload: []byte(PayloadOnline), retain: p.s.retain}, false); err != nil {
		return err
	}
	for {
		if err := p.flush(stop, lost, pl); err != nil {
			return err
		}
		if err := pl.reap(); err != nil {
			return err
		}
		var acked <-chan struct{}
		var expire <-chan time.Time
		var t *time.Timer
		if len(pl.inflight) > 0 {
			acked = pl.inflight[0].tok.Done()
			t = time.NewTimer(time.Until(pl.inflight[0].at.Add(p.s.publishTimeout)))
			expire = t.C
		}
		var err error
		select {
		case <-p.wake:
		case <-acked:
		case <-expire:
			err = errPublishTimeout
		case <-stop.Done():
			err = stop.Err()
		case e := <-lost:
			err = fmt.Errorf("%w: %v", errLost, e)
		}
		if t != nil {
			t.Stop()
		}
		if err != nil {
			return err
		}
	}
}

var errPublishTimeout = errors.New("mqtt: broker did not answer within the publish timeout")

// wait waits for one token, the connection's loss, stop, or the publish
// timeout.
func (p *Publisher) wait(stop context.Context, lost chan error, tok paho.Token) error {
	t := time.NewTimer(p.s.publishTimeout)
	defer t.Stop()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-stop.Done():
		return stop.Err()
	case err := <-lost:
		return fmt.Errorf("%w: %v", errLost, err)
	case <-t.C:
		return errPublishTimeout
	}
}

// sweep reads the retained state and availability topics under the topic
// prefix and turns those this publisher does not know (left by an earlier
// run) OFF and offline, so no stale ON stays retained.
func (p *Publisher) sweep(stop context.Context, c paho.Client, lost chan error, pl *pipeline) error {
	if !p.s.retain {
		return nil
	}
	marker := p.t.prefix + "/bridge/sweep/" + topicID(p.s.clientID)
	var mu sync.Mutex
	seen := map[string]string{}
	end := make(chan struct{})
	var once sync.Once
	filters := map[string]byte{
		p.t.prefix + "/+/+/+/state":    0,
		p.t.prefix + "/+/availability": 0,
		marker:                         0,
	}
	tok := c.SubscribeMultiple(filters, func(_ paho.Client, m paho.Message) {
		if m.Topic() == marker {
			once.Do(func() { close(end) })
			return
		}
		if m.Retained() {
			mu.Lock()
			seen[m.Topic()] = string(m.Payload())
			mu.Unlock()
		}
	})
	if err := p.wait(stop, lost, tok); err != nil {
		return err
	}
	// The broker sends the retained messages of a subscription before
	// anything published after it, on one connection: the marker comes last.
	if err := p.wait(stop, lost, c.Publish(marker, 0, false, "")); err != nil {
		return err
	}
	t := time.NewTimer(p.s.publishTimeout)
	defer t.Stop()
	select {
	case <-end:
	case <-stop.Done():
		return stop.Err()
	case err := <-lost:
		return fmt.Errorf("%w: %v", errLost, err)
	case <-t.C:
		return errors.New("mqtt: retained topics not read within the publish timeout")
	}
	names := make([]string, 0, len(filters))
	for f := range filters {
		names = append(names, f)
	}
	if err := p.wait(stop, lost, c.Unsubscribe(names...)); err != nil {
		return err
	}

	mu.Lock()
	defer mu.Unlock()
	p.mu.Lock()
	known := make(map[string]bool, len(p.entities)+len(p.devices)+1)
	for _, e := range p.entities {
		known[p.t.state(e.dev.id, e.channel, e.typ)] = true
	}
	for _, d := range p.devices {
		if d.availSet { // else a retained online is stale: offline until health says
			known[p.t.deviceAvailability(d.id)] = true
		}
	}
	p.mu.Unlock()
	known[p.t.bridgeAvailability()] = true
	var out []message
	for topic, payload := range seen {
		if known[topic] {
			continue
		}
		switch {
		case strings.HasSuffix(topic, "/state") && payload != PayloadOff:
			out = append(out, message{topic: topic, payload: []byte(PayloadOff), retain: true})
		case strings.HasSuffix(topic, "/availability") && payload != PayloadOffline:
			out = append(out, message{topic: topic, payload: []byte(PayloadOffline), retain: true})
		}
	}
	if len(out) > 0 {
		p.log.Debug().Int("topics", len(out)).Msg("[hikvision] mqtt: clearing stale retained states")
	}
	for _, m := range out {
		if err := pl.publish(stop, lost, m, false); err != nil {
			return err
		}
	}
	return nil
}

// flush publishes everything dirty, then the queued event messages.
func (p *Publisher) flush(stop context.Context, lost chan error, pl *pipeline) error {
	for {
		msgs, events := p.take()
		if len(msgs) == 0 {
			return nil
		}
		first := len(msgs) - events
		for i, m := range msgs {
			if err := pl.publish(stop, lost, m, i >= first); err != nil {
				p.requeue(eventsOf(msgs[i+1:], max(first-i-1, 0)))
				return err
			}
		}
	}
}

func eventsOf(ms []message, skip int) []message {
	if skip >= len(ms) {
		return nil
	}
	return ms[skip:]
}

// take renders the dirty state into messages (clearing it) and appends the
// queued event messages; events is how many of msgs, at the end, are those.
func (p *Publisher) take() (msgs []message, events int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.republish {
		p.republish = false
		for _, d := range p.devices {
			if d.availSet {
				p.markDevice(d)
			}
		}
		for _, e := range p.entities {
			f := fState | fAttrs | fDiscovery
			if e.picture != nil {
				f |= fPicture
			}
			p.markEntity(e, f)
		}
	}
	retain := p.s.retain
	for _, d := range p.dirtyDevices {
		if d.dirty {
			pl := PayloadOffline
			if d.online {
				pl = PayloadOnline
			}
			msgs = append(msgs, message{topic: p.t.deviceAvailability(d.id), payload: []byte(pl), retain: retain})
		}
		d.dirty, d.queued = false, false
	}
	p.dirtyDevices = p.dirtyDevices[:0]
	for _, e := range p.dirtyEntities {
		d := e.dev
		if e.flags&fDiscovery != 0 && p.s.discovery {
			msgs = append(msgs, message{
				topic:   p.t.discoveryTopic(componentBinarySensor, d.id, e.channel, e.typ),
				payload: p.t.discoveryPayload(e, componentBinarySensor, p.s.qos), retain: retain,
			})
			if e.typ == EventTypeRing {
				msgs = append(msgs, message{
					topic:   p.t.discoveryTopic(componentEvent, d.id, e.channel, e.typ),
					payload: p.t.discoveryPayload(e, componentEvent, p.s.qos), retain: retain,
				})
			}
			if e.hasPicture {
				msgs = append(msgs, message{
					topic:   p.t.discoveryTopic(componentImage, d.id, e.channel, e.typ),
					payload: p.t.discoveryPayload(e, componentImage, p.s.qos), retain: retain,
				})
			}
		}
		if e.flags&fState != 0 {
			pl := PayloadOff
			if e.active {
				pl = PayloadOn
			} else if e.pulse {
				// On and off again before this send, while connected: show the on.
				msgs = append(msgs, message{topic: p.t.state(d.id, e.channel, e.typ), payload: []byte(PayloadOn), retain: retain})
			}
			msgs = append(msgs, message{topic: p.t.state(d.id, e.channel, e.typ), payload: []byte(pl), retain: retain})
			e.pulse = false
		}
		if e.flags&fAttrs != 0 {
			msgs = append(msgs, message{topic: p.t.attributes(d.id, e.channel, e.typ), payload: attributesOf(e), retain: retain})
		}
		if e.flags&fPicture != 0 && e.picture != nil {
			msgs = append(msgs, message{topic: p.t.picture(d.id, e.channel, e.typ), payload: e.picture, retain: retain})
		}
		e.flags, e.queued = 0, false
	}
	p.dirtyEntities = p.dirtyEntities[:0]
	events = len(p.events)
	msgs = append(msgs, p.events...)
	p.events = p.events[:0]
	return msgs, events
}

// requeue puts event messages that were not confirmed back at the front of
// the queue, within its bound (newer ones win).
func (p *Publisher) requeue(ms []message) {
	if len(ms) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	room := p.s.queue - len(p.events)
	if room < len(ms) {
		p.dropped.Add(uint64(len(ms) - max(room, 0)))
		ms = ms[len(ms)-max(room, 0):]
	}
	p.events = append(append(make([]message, 0, len(ms)+len(p.events)), ms...), p.events...)
}

// window is how many publishes may wait for the broker's acknowledgement.
const window = 256

type inflight struct {
	tok   paho.Token
	m     message
	event bool
	at    time.Time
}

// pipeline keeps the publishes of one session in flight, in order.
type pipeline struct {
	p        *Publisher
	c        paho.Client
	inflight []inflight
}

// publish sends m, first waiting for the oldest publish if the window is
// full.
func (pl *pipeline) publish(stop context.Context, lost chan error, m message, event bool) error {
	if err := pl.reap(); err != nil {
		pl.inflight = append(pl.inflight, inflight{m: m, event: event})
		return err
	}
	for len(pl.inflight) >= window {
		if err := pl.p.wait(stop, lost, pl.inflight[0].tok); err != nil {
			pl.inflight = append(pl.inflight, inflight{m: m, event: event})
			return err
		}
		if err := pl.reap(); err != nil {
			pl.inflight = append(pl.inflight, inflight{m: m, event: event})
			return err
		}
	}
	tok := pl.c.Publish(m.topic, pl.p.s.qos, m.retain, m.payload)
	pl.inflight = append(pl.inflight, inflight{tok: tok, m: m, event: event, at: time.Now()})
	return nil
}

// reap counts the acknowledged publishes at the front; a failed one ends the
// session.
func (pl *pipeline) reap() error {
	n := 0
	for _, f := range pl.inflight {
		if f.tok == nil {
			break
		}
		select {
		case <-f.tok.Done():
		default:
			pl.drop(n)
			return nil
		}
		if err := f.tok.Error(); err != nil {
			pl.drop(n)
			return err
		}
		pl.p.published.Add(1)
		n++
	}
	pl.drop(n)
	return nil
}

func (pl *pipeline) drop(n int) {
	pl.inflight = pl.inflight[:copy(pl.inflight, pl.inflight[n:])]
}

// abandon ends the session's pipeline: event messages not acknowledged go
// back to the queue (retained state is published again in full on the next
// connection anyway).
func (pl *pipeline) abandon() {
	_ = pl.reap()
	var ev []message
	for _, f := range pl.inflight {
		if f.event {
			ev = append(ev, f.m)
		}
	}
	pl.inflight = nil
	pl.p.requeue(ev)
}
