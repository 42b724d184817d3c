package mqtt

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Event is one state change of one event type on one channel of a device.
type Event struct {
	Device  string    // device address, host:port
	Stream  string    // go2rtc stream name, when known
	Channel int       // channel number (0: the device itself)
	Type    string    // motion, linedetection, fielddetection, regionentrance, regionexiting, videoloss, tamper, io, ring, call ...
	Active  bool      // the event is going on
	Time    time.Time // when the device saw it; zero: now
	Picture []byte    // JPEG taken with the event, if any
}

// DeviceHealth is what the module knows of a device: who it is and whether
// it answers.
type DeviceHealth struct {
	Device   string // device address, host:port
	Name     string
	Model    string
	Serial   string
	Firmware string
	Online   bool
}

// Stats are the publisher's counters for the health view.
type Stats struct {
	Connected bool      `json:"connected"`
	Since     time.Time `json:"since,omitzero"` // last change of Connected
	Connects  uint64    `json:"connects"`       // successful connections
	Attempts  uint64    `json:"attempts"`       // failed connection attempts in a row
	Published uint64    `json:"published"`      // messages the broker took
	Dropped   uint64    `json:"dropped"`        // event messages dropped (queue full) and pictures let go
	Pending   int       `json:"pending"`        // messages waiting: coalesced states plus queued events
	Entities  int       `json:"entities"`
	Devices   int       `json:"devices"`
	LastError string    `json:"last_error,omitempty"`
}

// dirty flags of an entity
const (
	fState uint8 = 1 << iota
	fAttrs
	fPicture
	fDiscovery
)

type device struct {
	id       string // topic level
	addr     string // host:port as given
	health   DeviceHealth
	online   bool
	availSet bool // availability known (health or an event)
	dirty    bool // availability to publish
	queued   bool
	entities []*entity
}

type entity struct {
	dev         *device
	channel     int
	typ         string
	stream      string
	active      bool
	since       time.Time
	picture     []byte
	pictureTime time.Time
	hasPicture  bool // a picture came once: the entity has an image entity
	pulse       bool // went active while connected, not yet sent: an OFF before the send still shows ON first
	flags       uint8
	queued      bool
}

type entityKey struct {
	dev     string
	channel int
	typ     string
}

// message is one MQTT publish.
type message struct {
	topic   string
	payload []byte
	retain  bool
}

// Publisher delivers events and device health to an MQTT broker. Its
// methods never wait for the network: they update the state it holds and
// wake the one goroutine that talks to the broker.
type Publisher struct {
	s   *settings
	t   topics
	log zerolog.Logger

	mu            sync.Mutex
	closed        bool
	devices       map[string]*device // by topic id
	entities      map[entityKey]*entity
	dirtyDevices  []*device
	dirtyEntities []*entity
	events        []message // bounded by s.queue, oldest dropped first
	pictureBytes  int
	republish     bool // everything to be published again
	since         time.Time
	lastErr       string
	attempts      uint64

	wake chan struct{}

	connected atomic.Bool
	connects  atomic.Uint64
	published atomic.Uint64
	dropped   atomic.Uint64

	cancel context.CancelFunc
	done   chan struct{}
}

// New validates cfg and starts connecting in the background. It never waits
// for the broker.
func New(cfg Config, log zerolog.Logger) (*Publisher, error) {
	s, err := cfg.settings()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Publisher{
		s:        s,
		t:        topics{prefix: s.prefix, discovery: s.discoveryPrefix},
		log:      log,
		devices:  map[string]*device{},
		entities: map[entityKey]*entity{},
		wake:     make(chan struct{}, 1),
		cancel:   cancel,
		done:     make(chan struct{}),
		since:    time.Now(),
	}
	go p.run(ctx)
	return p, nil
}

func (p *Publisher) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *Publisher) markDevice(d *device) {
	d.dirty = true
	if !d.queued {
		d.queued = true
		p.dirtyDevices = append(p.dirtyDevices, d)
	}
}

func (p *Publisher) markEntity(e *entity, f uint8) {
	e.flags |= f
	if !e.queued {
		e.queued = true
		p.dirtyEntities = append(p.dirtyEntities, e)
	}
}

func (p *Publisher) pushEvent(m message) {
	if len(p.events) >= p.s.queue {
		copy(p.events, p.events[1:])
		p.events = p.events[:len(p.events)-1]
		p.dropped.Add(1)
	}
	p.events = append(p.events, m)
}

// deviceLocked finds or adds the device of a host:port.
func (p *Publisher) deviceLocked(addr string) (*device, error) {
	id := topicID(addr)
	if id == "" {
		return nil, &EventError{Field: "device", Value: addr, Reason: "empty or no letter or digit"}
	}
	d := p.devices[id]
	if d == nil {
		if len(p.devices) >= p.s.maxEntities {
			return nil, ErrTooManyEntities
		}
		d = &device{id: id, addr: addr}
		p.devices[id] = d
	}
	return d, nil
}

func (p *Publisher) entityLocked(d *device, ch int, typ string) (*entity, error) {
	k := entityKey{d.id, ch, typ}
	e := p.entities[k]
	if e != nil {
		return e, nil
	}
	if len(p.entities) >= p.s.maxEntities {
		return nil, ErrTooManyEntities
	}
	e = &entity{dev: d, channel: ch, typ: typ}
	p.entities[k] = e
	d.entities = append(d.entities, e)
	p.markEntity(e, fState|fAttrs|fDiscovery)
	return e, nil
}

func checkEvent(channel int, typ string) (string, error) {
	if channel < 0 || channel > 9999 {
		return "", &EventError{Field: "channel", Value: strconv.Itoa(channel), Reason: "must be 0..9999"}
	}
	id := topicID(typ)
	if id == "" {
		return "", &EventError{Field: "type", Value: typ, Reason: "empty or no letter or digit"}
	}
	return id, nil
}

// Declare adds the entities of a channel before any event, so Home
// Assistant lists them (OFF) from the start. stream may be empty.
func (p *Publisher) Declare(device, stream string, channel int, types ...string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	d, err := p.deviceLocked(device)
	if err != nil {
		return err
	}
	for _, typ := range types {
		id, err := checkEvent(channel, typ)
		if err != nil {
			return err
		}
		e, err := p.entityLocked(d, channel, id)
		if err != nil {
			return err
		}
		if stream != "" && e.stream != stream {
			e.stream = stream
			p.markEntity(e, fAttrs|fDiscovery)
		}
	}
	p.signal()
	return nil
}

// Publish records an event and wakes the sender. It never blocks on the
// broker: while the broker is away, only the latest state of each entity is
// kept, and event messages beyond the queue bound drop the oldest.
func (p *Publisher) Publish(ev Event) error {
	typ, err := checkEvent(ev.Channel, ev.Type)
	if err != nil {
		return err
	}
	at := ev.Time
	if at.IsZero() {
		at = time.Now()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	d, err := p.deviceLocked(ev.Device)
	if err != nil {
		return err
	}
	e, err := p.entityLocked(d, ev.Channel, typ)
	if err != nil {
		p.dropped.Add(1)
		return err
	}
	if !d.availSet || !d.online {
		// An event is a sign of life; health updates override it.
		d.availSet, d.online = true, true
		p.markDevice(d)
	}
	if ev.Stream != "" && ev.Stream != e.stream {
		e.stream = ev.Stream
		p.markEntity(e, fAttrs|fDiscovery)
	}
	rising := ev.Active && !e.active
	changed := ev.Active != e.active
	if changed {
		e.active = ev.Active
		e.since = at
		if rising && p.connected.Load() {
			e.pulse = true
		}
		p.markEntity(e, fState|fAttrs)
	}
	if ev.Picture != nil {
		p.setPictureLocked(e, ev.Picture, at)
	}
	if changed || ev.Picture != nil {
		payload := eventPayload{
			Device: d.addr, DeviceID: d.id, Stream: e.stream, Channel: e.channel, Type: typ,
			Active: ev.Active, Time: at.UTC().Format(time.RFC3339Nano), Picture: ev.Picture != nil,
		}
		b, _ := json.Marshal(payload)
		p.pushEvent(message{topic: p.t.events(), payload: b})
		if typ == EventTypeRing && rising {
			payload.EventType = EventTypeRing
			b, _ := json.Marshal(payload)
			p.pushEvent(message{topic: p.t.ringEvent(d.id, e.channel), payload: b})
		}
	}
	p.signal()
	return nil
}

// setPictureLocked keeps the latest picture of an entity for its retained
// picture topic, within the picture memory bound.
func (p *Publisher) setPictureLocked(e *entity, pic []byte, at time.Time) {
	if len(pic) == 0 || len(pic) > p.s.maxPicture {
		p.dropped.Add(1)
		return
	}
	p.pictureBytes += len(pic) - len(e.picture)
	e.picture = append([]byte(nil), pic...)
	e.pictureTime = at
	f := fPicture | fAttrs
	if !e.hasPicture {
		e.hasPicture = true
		f |= fDiscovery
	}
	p.markEntity(e, f)
	for p.pictureBytes > p.s.pictureMemory {
		var oldest *entity
		for _, o := range p.entities {
			if o.picture != nil && o != e && (oldest == nil || o.pictureTime.Before(oldest.pictureTime)) {
				oldest = o
			}
		}
		if oldest == nil {
			break
		}
		p.pictureBytes -= len(oldest.picture)
		oldest.picture = nil
		oldest.flags &^= fPicture
		p.dropped.Add(1)
	}
}

// UpdateDevice records a device's health. Offline makes the device's
// entities unavailable and turns its active states OFF: after the device
// comes back, states start from what it reports anew.
func (p *Publisher) UpdateDevice(h DeviceHealth) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	d, err := p.deviceLocked(h.Device)
	if err != nil {
		return err
	}
	old := d.health
	d.health = h
	if old.Name != h.Name || old.Model != h.Model || old.Serial != h.Serial || old.Firmware != h.Firmware {
		for _, e := range d.entities {
			p.markEntity(e, fDiscovery)
		}
	}
	if !d.availSet || d.online != h.Online {
		d.availSet, d.online = true, h.Online
		p.markDevice(d)
	}
	if !h.Online {
		now := time.Now()
		for _, e := range d.entities {
			if e.active {
				e.active = false
				e.since = now
				p.markEntity(e, fState|fAttrs)
			}
		}
	}
	p.signal()
	return nil
}

// Stats returns the counters.
func (p *Publisher) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := Stats{
		Connected: p.connected.Load(),
		Since:     p.since,
		Connects:  p.connects.Load(),
		Attempts:  p.attempts,
		Published: p.published.Load(),
		Dropped:   p.dropped.Load(),
		Pending:   len(p.events),
		Entities:  len(p.entities),
		Devices:   len(p.devices),
		LastError: p.lastErr,
	}
	for _, d := range p.dirtyDevices {
		if d.dirty {
			st.Pending++
		}
	}
	for _, e := range p.dirtyEntities {
		for f := e.flags; f != 0; f &= f - 1 {
			st.Pending++
		}
	}
	return st
}

// CloseTimeout bounds Close.
const CloseTimeout = 5 * time.Second

// Close publishes the bridge's offline availability if connected, closes the
// connection and waits for the publisher's goroutines, at most CloseTimeout.
func (p *Publisher) Close() error {
	p.mu.Lock()
	already := p.closed
	p.closed = true
	p.mu.Unlock()
	if !already {
		p.cancel()
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(CloseTimeout):
		return ErrCloseTimeout
	}
}
