package hikvision

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/guard"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/redact"
)

// ErrDeviceClosed: the device's last reference was released; make a new one
// through the module.
var ErrDeviceClosed = errors.New("hikvision: device closed")

// Device is one device as this module talks to it: scheme, host, port,
// user (and password, which the ISAPI client carries). It owns the device's
// ISAPI client and its attachments, and holds the device's login guard,
// which the module keeps beyond the device (a stream deleted and added again
// keeps its failed-login budget).
//
// A Device is counted: every user (a producer, a source of a go2rtc stream,
// a snapshot cache) holds a reference from Module.device until it calls
// Release. When the last reference is released the device closes: its
// attachments are closed, then its ISAPI client. Nothing else closes it.
//
// Every authenticated request to the device goes through Do.
type Device struct {
	m      *Module
	key    string
	host   string // HTTPAddr
	user   string
	cfg    *Config // of the first user; for the ISAPI client
	guard  *guard.Guard
	secret []string // password forms to redact

	mu          sync.Mutex
	refs        int
	closed      bool
	client      *isapi.Client
	attachments map[string]Attachment
	order       []string // attachment names, in the order they were made
	model       string
	doorStation bool      // known to answer call status (events) or to say so in deviceInfo
	lastUp      time.Time // the device last answered (any answer, even an error)
	lastDown    time.Time // the device last did not answer (refused, timeout)
	lastError   string    // redacted, of the last failure seen
	lastErrAt   time.Time
	// picProxy: per streaming channel id, the snapshot path that worked
	// (true: StreamingProxy, false: the plain Streaming path).
	picProxy map[int]bool
}

// setDoorStation records that the device is a door station (it answered
// the call status).
func (d *Device) setDoorStation() {
	d.mu.Lock()
	d.doorStation = true
	d.mu.Unlock()
}

// isDoorStation: the device is known to be a door station.
func (d *Device) isDoorStation() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.doorStation
}

// pictureProxy is the snapshot path that last worked for the streaming
// channel id (known false: never tried).
func (d *Device) pictureProxy(id int) (proxy, known bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	proxy, known = d.picProxy[id]
	return proxy, known
}

func (d *Device) setPictureProxy(id int, proxy bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.picProxy == nil {
		d.picProxy = map[int]bool{}
	}
	d.picProxy[id] = proxy
}

// Attachment is something a device owns beside its ISAPI client and that
// lives as long as the device: a vendor-SDK login session, an event
// subscription. It is made on first use by Device.Attachment and closed
// once, when the device closes (its last reference released), before the
// ISAPI client. Close must end every goroutine the attachment started and
// must not call back into the device.
type Attachment interface {
	Close() error
}

// Attachment returns the device's attachment called name (e.g. "sdk",
// "events"), making it with make on first use. make runs with no device
// lock held and may use the device (Do, ISAPI); if two callers race, the
// first one stored wins and the other's value is closed. After the device
// closed it answers ErrDeviceClosed.
func (d *Device) Attachment(name string, make func(*Device) (Attachment, error)) (Attachment, error) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil, ErrDeviceClosed
	}
	if a := d.attachments[name]; a != nil {
		d.mu.Unlock()
		return a, nil
	}
	d.mu.Unlock()

	a, err := make(d)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		_ = a.Close()
		return nil, ErrDeviceClosed
	}
	if old := d.attachments[name]; old != nil {
		d.mu.Unlock()
		_ = a.Close()
		return old, nil
	}
	if d.attachments == nil {
		d.attachments = map[string]Attachment{}
	}
	d.attachments[name] = a
	d.order = append(d.order, name)
	d.mu.Unlock()
	return a, nil
}

// deviceKey identifies a device: scheme, user, host:port (case-insensitive)
// and the password's secret (the ISAPI client carries the credentials).
func deviceKey(cfg *Config) string {
	scheme := "http"
	if cfg.HTTPS {
		scheme = "https"
	}
	return scheme + "://" + cfg.Username + "@" + strings.ToLower(cfg.HTTPAddr()) + "\x00" + guard.Secret(cfg.Password)
}

// device returns cfg's device with one more reference; the caller calls
// Release when done with it.
func (m *Module) device(cfg *Config) *Device {
	key := deviceKey(cfg)
	m.devMu.Lock()
	defer m.devMu.Unlock()
	d := m.devices[key]
	if d == nil {
		d = &Device{
			m: m, key: key, host: cfg.HTTPAddr(), user: cfg.Username, cfg: cfg,
			guard:  m.guards.Get(cfg.HTTPAddr(), cfg.Username, guard.Secret(cfg.Password)),
			secret: []string{cfg.Password, cfg.Username + ":" + cfg.Password},
		}
		m.devices[key] = d
	}
	d.mu.Lock()
	d.refs++
	d.mu.Unlock()
	return d
}

// Device returns the device of a hikvision:// URL with one more reference
// (the caller calls Release when done): the way for work that lives beside
// the sources (an event subscription, a vendor-SDK session shared by a
// device's channels) to reach a device and its attachments. Errors are
// *ConfigError.
func (m *Module) Device(source string) (*Device, error) {
	cfg, err := ParseURL(source)
	if err != nil {
		return nil, err
	}
	return m.device(cfg), nil
}

// ISAPI returns the device's ISAPI client (made on first use; ErrDeviceClosed
// after the device closed). Send authenticated requests with it only inside
// Do.
func (d *Device) ISAPI() (*isapi.Client, error) { return d.isapiClient() }

// Release drops one reference; the last one closes the device.
func (d *Device) Release() {
	d.m.devMu.Lock()
	d.mu.Lock()
	d.refs--
	last := d.refs <= 0 && !d.closed
	if last {
		d.closed = true
		if d.m.devices[d.key] == d {
			delete(d.m.devices, d.key)
		}
	}
	client, names, atts := d.client, d.order, d.attachments
	if last {
		d.client, d.order, d.attachments = nil, nil, nil
	}
	d.mu.Unlock()
	d.m.devMu.Unlock()
	if !last {
		return
	}
	for i := len(names) - 1; i >= 0; i-- {
		_ = atts[names[i]].Close()
	}
	if client != nil {
		client.Close()
	}
}

// Do runs req as one authenticated attempt through the device's login
// guard (guard.Guard.Do, with a peek at the device's login state when the
// credentials were refused before). A hold answers *HoldError without any
// request. It is the only way this package sends credentials to a device.
func (d *Device) Do(ctx context.Context, req func(ctx context.Context) error) error {
	return d.guard.Do(ctx, d.peek, req)
}

// doVerified runs a best-effort request whose answer is never read (RTSP
// TEARDOWN) only while the device's credentials are known good
// (guard.Guard.DoVerified); otherwise it sends nothing.
func (d *Device) doVerified(ctx context.Context, req func(ctx context.Context) error) error {
	return d.guard.DoVerified(ctx, req)
}

// peek reads the device's login state for this client without credentials.
func (d *Device) peek(ctx context.Context) (guard.Peeked, error) {
	c, err := d.isapiClient()
	if err != nil {
		return guard.Peeked{}, err
	}
	ae, err := c.ReadLoginState(ctx)
	if err != nil {
		return guard.Peeked{}, err
	}
	return guard.Peeked{Locked: ae.Locked, UnlockTime: ae.UnlockTime, TriesLeft: ae.RetryLoginTime}, nil
}

// isapiClient returns the device's ISAPI client, making it on first use.
func (d *Device) isapiClient() (*isapi.Client, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, ErrDeviceClosed
	}
	if d.client != nil {
		return d.client, nil
	}
	c, err := isapi.New(d.cfg.isapiConfig())
	if err != nil {
		return nil, &ConfigError{Param: "url", Value: d.cfg.String(), Reason: redactErr(err, d.cfg)}
	}
	d.client = c
	return c, nil
}

// Host is the device's HTTP host[:port]; User the user it logs in as.
func (d *Device) Host() string { return d.host }
func (d *Device) User() string { return d.user }

// Guard is the device's login guard (for status pages).
func (d *Device) Guard() *guard.Guard { return d.guard }

func (d *Device) redact(s string) string { return redact.String(s, d.secret...) }

func (d *Device) answered(now time.Time) {
	d.mu.Lock()
	if now.After(d.lastUp) {
		d.lastUp = now
	}
	d.mu.Unlock()
}

func (d *Device) setModel(m string) {
	if m == "" {
		return
	}
	d.mu.Lock()
	d.model = m
	d.mu.Unlock()
}

// saw records a failure: whether the device answered, and the error.
func (d *Device) saw(kind guard.Kind, msg string, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch kind {
	case guard.KindUnreachable, guard.KindTimeout:
		d.lastDown = now
	case guard.KindLoginPending, guard.KindOther:
		// the guard held (no request) or an unknown failure: says nothing about the device
	default:
		if now.After(d.lastUp) {
			d.lastUp = now
		}
	}
	d.lastError, d.lastErrAt = msg, now
}

// reachable is true when the device answered last, false when it did not,
// nil when nothing is known.
func (d *Device) reachable() *bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.lastUp.IsZero() && d.lastDown.IsZero() {
		return nil
	}
	v := !d.lastUp.Before(d.lastDown)
	return &v
}

// safeErr returns err, or a stand-in without the password if its text
// quotes it (errors.Is still matches the original).
func (d *Device) safeErr(err error) error {
	if msg := d.redact(err.Error()); msg != err.Error() {
		return &redactedError{msg: msg, orig: err}
	}
	return err
}
