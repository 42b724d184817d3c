package sim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed is returned by fault methods called after Close.
var ErrClosed = errors.New("sim: device closed")

// Device is one running simulated device.
type Device struct {
	cfg Config

	httpAddr string // fixed at Start: a reboot re-listens on the same address
	rtspAddr string

	closed    chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
	httpOpen  atomic.Int64 // open ISAPI connections (ConnState)
	frz       freezeGate   // Freeze (freeze.go)

	ctlSrv  *http.Server
	ctlAddr string

	// everything below is guarded by mu
	mu         sync.Mutex
	users      map[string]string
	httpSrv    *http.Server
	rtsp       RTSPServer
	down       bool          // rebooting: both ports closed
	upAt       time.Time     // when a reboot ends
	rebootKick chan struct{} // a Reboot while down moved upAt
	upCh       chan struct{}
	stallCh    chan struct{} // non-nil while HTTP is stalled; closed to release handlers
	rtspStall  bool
	rtspRefuse bool
	badXML     int
	// triggerReads counts GET /ISAPI/Event/triggers answers (TriggersConfig.Busy)
	triggerReads int
	nonces       map[string]*nonceState
	locks        map[string]*lockState
	stats        Stats
	rtspBase     uint64 // RTSP sessions of servers already closed (reboots)
	// talk: the open voice-talk session per TwoWayAudio channel id; tk: the rest of the talk side (talk.go).
	talk map[string]*talkSession
	tk   talkSide
	// ev: the alert streams (events.go); door: the door-station call state (doorstation.go).
	ev   eventSide
	door doorSide
}

// Start starts a device: the ISAPI HTTP listener, the RTSP listener and, if cfg.ControlAddr is set, the
// control API. Close stops all of it.
func Start(cfg Config) (*Device, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	d := &Device{
		cfg:    cfg,
		closed: make(chan struct{}),
		users:  cfg.Users,
		nonces: map[string]*nonceState{},
		locks:  map[string]*lockState{},
		talk:   map[string]*talkSession{},
		stats:  Stats{Clients: map[string]*ClientStats{}},
		upCh:   make(chan struct{}),

		rebootKick: make(chan struct{}, 1),
	}
	close(d.upCh)

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("sim: listen ISAPI %s: %w", cfg.HTTPAddr, err)
	}
	d.httpAddr = ln.Addr().String()

	rtsp, err := d.startRTSP(cfg.RTSPAddr)
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("sim: listen RTSP %s: %w", cfg.RTSPAddr, err)
	}
	d.rtsp = rtsp
	d.rtspAddr = rtsp.Addr()

	if cfg.ControlAddr != "" {
		cln, err := net.Listen("tcp", cfg.ControlAddr)
		if err != nil {
			_ = ln.Close()
			_ = rtsp.Close()
			return nil, fmt.Errorf("sim: listen control %s: %w", cfg.ControlAddr, err)
		}
		d.ctlAddr = cln.Addr().String()
		d.ctlSrv = &http.Server{Handler: d.controlHandler(), ReadHeaderTimeout: 10 * time.Second}
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			_ = d.ctlSrv.Serve(cln)
		}()
	}

	d.mu.Lock()
	d.serveHTTPLocked(ln)
	d.mu.Unlock()
	return d, nil
}

func (d *Device) startRTSP(addr string) (RTSPServer, error) {
	factory := d.cfg.RTSP
	if factory == nil {
		factory = defaultRTSP
	}
	return factory(RTSPOptions{
		Addr:     addr,
		Realm:    d.cfg.Realm,
		Channels: append([]Channel(nil), d.cfg.Channels...),
		Password: func(user string) (string, bool) {
			d.mu.Lock()
			defer d.mu.Unlock()
			p, ok := d.users[user]
			return p, ok
		},
		Locked: d.isLocked,
		AuthResult: func(ip string, ok bool) {
			d.mu.Lock()
			defer d.mu.Unlock()
			d.loginResultLocked(ip, ok, true)
		},
		ConnAccepted: func(ip string) {
			d.mu.Lock()
			defer d.mu.Unlock()
			d.clientLocked(ip).RTSPConnections++
		},
		SessionStarted: func(ip string) {
			d.mu.Lock()
			defer d.mu.Unlock()
			d.clientLocked(ip).RTSPSessions++
		},
		WrapConn: d.freezeConn,
	})
}

// serveHTTPLocked starts the ISAPI server on ln. Caller holds d.mu.
func (d *Device) serveHTTPLocked(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(d.serveISAPI), ReadHeaderTimeout: 30 * time.Second,
		ConnState: d.trackHTTPConn}
	d.httpSrv = srv
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		_ = srv.Serve(&freezeListener{ln, d})
	}()
}

// trackHTTPConn counts open ISAPI connections (Stats.HTTPOpen): a real
// device has few HTTP session slots, and a client that parks idle
// keep-alives on it uses them up.
func (d *Device) trackHTTPConn(_ net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		d.httpOpen.Add(1)
	case http.StateClosed, http.StateHijacked:
		d.httpOpen.Add(-1)
	}
}

// HTTPAddr is the ISAPI listener, "127.0.0.1:PORT".
func (d *Device) HTTPAddr() string { return d.httpAddr }

// RTSPAddr is the RTSP listener, "127.0.0.1:PORT".
func (d *Device) RTSPAddr() string { return d.rtspAddr }

// ControlAddr is the control API listener, "" without one.
func (d *Device) ControlAddr() string { return d.ctlAddr }

// Config returns the device configuration with defaults filled in; Users is left out (no passwords).
func (d *Device) Config() Config {
	c := d.cfg
	c.Channels = append([]Channel(nil), d.cfg.Channels...)
	c.Users = nil
	return c
}

// Channels returns the channel layout.
func (d *Device) Channels() []Channel { return append([]Channel(nil), d.cfg.Channels...) }

// Close stops the listeners, closes every connection and waits for every goroutine.
func (d *Device) Close() error {
	var err error
	d.closeOnce.Do(func() {
		close(d.closed)
		d.frz.stop()
		d.mu.Lock()
		d.releaseStallLocked()
		srv, rtsp := d.httpSrv, d.rtsp
		d.httpSrv, d.rtsp = nil, nil
		d.mu.Unlock()
		if srv != nil {
			err = errors.Join(err, ignoreClosed(srv.Close()))
		}
		if rtsp != nil {
			err = errors.Join(err, ignoreClosed(rtsp.Close()))
			d.mu.Lock()
			d.rtspBase += rtsp.TotalSessions()
			d.mu.Unlock()
		}
		if d.ctlSrv != nil {
			err = errors.Join(err, ignoreClosed(d.ctlSrv.Close()))
		}
		d.closeTalk(true) // hijacked audioData connections: http.Server.Close does not know them
		d.wg.Wait()
	})
	return err
}

func ignoreClosed(err error) error {
	if err == nil || errors.Is(err, net.ErrClosed) || errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func (d *Device) isClosed() bool {
	select {
	case <-d.closed:
		return true
	default:
		return false
	}
}

// Reboot takes the device down for dur: every connection (ISAPI and RTSP) is closed and both ports
// refuse connections until the device comes back on the same ports. Nonces and login locks are
// forgotten, as on a real reboot. It returns once the device is down; Up reports when it is back.
// A Reboot while rebooting moves the end of the reboot to now+dur. The reboot runs on the real clock.
func (d *Device) Reboot(dur time.Duration) error {
	if dur < 0 {
		return fmt.Errorf("sim: negative reboot duration %v", dur)
	}
	d.mu.Lock()
	if d.isClosed() {
		d.mu.Unlock()
		return ErrClosed
	}
	d.stats.Reboots++
	d.upAt = time.Now().Add(dur)
	if d.down {
		select {
		case d.rebootKick <- struct{}{}:
		default:
		}
		d.mu.Unlock()
		return nil
	}
	d.down = true
	d.upCh = make(chan struct{})
	srv, rtsp := d.httpSrv, d.rtsp
	d.httpSrv, d.rtsp = nil, nil
	d.wg.Add(1)
	go d.rebootLoop()
	d.mu.Unlock()

	var err error
	if srv != nil {
		err = errors.Join(err, ignoreClosed(srv.Close()))
	}
	if rtsp != nil {
		err = errors.Join(err, ignoreClosed(rtsp.Close()))
		d.mu.Lock()
		d.rtspBase += rtsp.TotalSessions()
		d.mu.Unlock()
	}
	d.closeTalk(false) // talk sessions end with the reboot
	return err
}

// rebootLoop waits for the end of a reboot and re-opens both listeners on their old ports.
func (d *Device) rebootLoop() {
	defer d.wg.Done()
	for {
		d.mu.Lock()
		wait := time.Until(d.upAt)
		d.mu.Unlock()
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-d.rebootKick:
				t.Stop()
				continue
			case <-d.closed:
				t.Stop()
				return
			}
		}
		if d.tryBootUp() {
			return
		}
		// a port may be busy for a moment: try again shortly
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-t.C:
		case <-d.closed:
			t.Stop()
			return
		}
	}
}

// tryBootUp re-opens the listeners; it reports whether the loop is over (up, closed or extended).
func (d *Device) tryBootUp() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.isClosed() {
		return true
	}
	if time.Until(d.upAt) > 0 {
		return false // extended meanwhile
	}
	ln, err := net.Listen("tcp", d.httpAddr)
	if err != nil {
		return false
	}
	// the factory only stores the hooks (they take d.mu): starting under d.mu is safe
	rtsp, err := d.startRTSP(d.rtspAddr)
	if err != nil {
		_ = ln.Close()
		return false
	}
	rtsp.SetStall(d.rtspStall)
	rtsp.SetRefuse(d.rtspRefuse)
	d.rtsp = rtsp
	d.nonces = map[string]*nonceState{}
	d.locks = map[string]*lockState{}
	d.down = false
	d.serveHTTPLocked(ln)
	close(d.upCh)
	return true
}

// Up returns a channel that is closed once the device is up (at once when it is not rebooting).
func (d *Device) Up() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.upCh
}

// Rebooting reports whether the device is down for a reboot.
func (d *Device) Rebooting() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.down
}

// SetStall makes the device accept connections and requests but never answer (ISAPI and RTSP) while on.
func (d *Device) SetStall(on bool) {
	d.mu.Lock()
	if on && d.stallCh == nil {
		d.stallCh = make(chan struct{})
	}
	if !on {
		d.releaseStallLocked()
	}
	d.rtspStall = on
	r := d.rtsp
	d.mu.Unlock()
	if r != nil {
		r.SetStall(on)
	}
}

func (d *Device) releaseStallLocked() {
	if d.stallCh != nil {
		close(d.stallCh)
		d.stallCh = nil
	}
}

// SetRefuseRTSP makes the RTSP side refuse new connections while on (ISAPI keeps working).
func (d *Device) SetRefuseRTSP(on bool) {
	d.mu.Lock()
	d.rtspRefuse = on
	r := d.rtsp
	d.mu.Unlock()
	if r != nil {
		r.SetRefuse(on)
	}
}

// DropRTSP closes every open RTSP connection.
func (d *Device) DropRTSP() {
	d.mu.Lock()
	r := d.rtsp
	d.mu.Unlock()
	if r != nil {
		r.DropAll()
	}
}

// LockIP puts a client IP under the illegal login lock for dur (0 = Config.LockDuration), as if it
// had sent too many wrong passwords.
func (d *Device) LockIP(ip string, dur time.Duration) error {
	if net.ParseIP(ip) == nil {
		return fmt.Errorf("sim: lock: %q is not an IP address", ip)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lockIPLocked(ip, dur)
	return nil
}

// UnlockIP lifts the lock of a client IP and resets its failure count.
func (d *Device) UnlockIP(ip string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.locks, ip)
}

// LockStatus reports the lock state of a client IP as the 401 body would: locked, seconds left,
// tries left.
func (d *Device) LockStatus(ip string) (locked bool, unlockSeconds, retriesLeft int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lockInfoLocked(ip)
}

// SetBadXML makes the next n answers to authenticated ISAPI requests malformed XML (0 turns it off).
func (d *Device) SetBadXML(n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if n < 0 {
		n = 0
	}
	d.badXML = n
}

// SetPassword sets (or adds) a user's password for ISAPI and RTSP. An empty password removes the user.
func (d *Device) SetPassword(user, password string) error {
	if user == "" {
		return errors.New("sim: set password: empty user name")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if password == "" {
		delete(d.users, user)
		return nil
	}
	d.users[user] = password
	return nil
}

// stall blocks a handler while the device is stalled. It returns false if the request must be dropped.
func (d *Device) stall(ctx context.Context) bool {
	d.mu.Lock()
	ch := d.stallCh
	d.mu.Unlock()
	if ch == nil {
		return true
	}
	select {
	case <-ch:
		return !d.isClosed()
	case <-ctx.Done():
		return false
	case <-d.closed:
		return false
	}
}

func portOf(addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}
