package sim

import (
	"fmt"
	"net"
	"sync"
	"time"
)

// Freeze makes the device go completely silent for dur, as a hung device or
// a link that drops every packet without a FIN or RST would: every open
// connection (ISAPI, RTSP, talk) stays open, but the device reads nothing,
// answers nothing and sends nothing; new connections are accepted (the
// kernel's handshake) and get no answer either. RTP and RTCP due while
// frozen are dropped (the encoder runs on; what it made is lost), anything
// else the device was about to write (answers) is written when the freeze
// ends, and requests that arrived meanwhile are handled then. A Freeze while
// frozen moves the end to now+dur. Frozen tells when it is over.
func (d *Device) Freeze(dur time.Duration) error {
	if dur < 0 {
		return fmt.Errorf("sim: negative freeze duration %v", dur)
	}
	if d.isClosed() {
		return ErrClosed
	}
	d.frz.freeze(dur)
	return nil
}

// Frozen reports whether the device is frozen and, if so, a channel that is
// closed when the freeze ends.
func (d *Device) Frozen() (bool, <-chan struct{}) {
	ch := d.frz.current()
	return ch != nil, ch
}

// ThawedAt is when the last freeze ended (zero before one did): the moment
// the device resumed, before anything it sent afterwards (a watcher of
// Frozen's channel may wake up later than that).
func (d *Device) ThawedAt() time.Time {
	d.frz.mu.Lock()
	defer d.frz.mu.Unlock()
	return d.frz.thawedAt
}

// freezeGate is the device-wide freeze state.
type freezeGate struct {
	mu       sync.Mutex
	ch       chan struct{} // non-nil while frozen; closed when the freeze ends
	timer    *time.Timer
	thawedAt time.Time // when the last freeze ended
}

func (g *freezeGate) freeze(dur time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ch == nil {
		g.ch = make(chan struct{})
	}
	if g.timer != nil {
		g.timer.Stop()
	}
	ch := g.ch
	g.timer = time.AfterFunc(dur, func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.ch == ch {
			// under mu: a write checks the freeze under it, so nothing
			// the device sends after the thaw precedes thawedAt
			g.thawedAt = time.Now()
			close(ch)
			g.ch, g.timer = nil, nil
		}
	})
}

// current is the open freeze's channel, nil when not frozen.
func (g *freezeGate) current() chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.ch
}

// stop ends a freeze at once (device Close).
func (g *freezeGate) stop() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.timer != nil {
		g.timer.Stop()
	}
	if g.ch != nil {
		close(g.ch)
	}
	g.ch, g.timer = nil, nil
}

// freezeListener hands out connections that obey the device's freeze.
type freezeListener struct {
	net.Listener
	d *Device
}

func (l *freezeListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.d.freezeConn(c), nil
}

func (d *Device) freezeConn(c net.Conn) net.Conn {
	return &frozenConn{Conn: c, d: d, done: make(chan struct{})}
}

// frozenConn waits out a freeze before each read and write. Deadlines set on
// it are moved by the time spent waiting, so a freeze never turns into a
// timeout of the device's own.
type frozenConn struct {
	net.Conn
	d    *Device
	done chan struct{}
	once sync.Once

	mu       sync.Mutex
	rdl, wdl time.Time
}

// SetLinger forwards to the TCP connection (the RTSP side resets
// connections with SO_LINGER 0).
func (c *frozenConn) SetLinger(sec int) error {
	if tc, ok := c.Conn.(*net.TCPConn); ok {
		return tc.SetLinger(sec)
	}
	return nil
}

// wait blocks while the device is frozen; it returns how long it waited and
// false when the connection or the device closed meanwhile.
func (c *frozenConn) wait() (time.Duration, bool) {
	ch := c.d.frz.current()
	if ch == nil {
		return 0, true
	}
	start := time.Now()
	select {
	case <-ch:
		return time.Since(start), true
	case <-c.done:
		return 0, false
	case <-c.d.closed:
		return 0, false
	}
}

func (c *frozenConn) Read(b []byte) (int, error) {
	if w, ok := c.wait(); !ok {
		return 0, net.ErrClosed
	} else if w > 0 {
		c.shiftRead(w)
	}
	n, err := c.Conn.Read(b)
	if n > 0 {
		// what arrived while frozen is handled when the freeze ends
		if w, ok := c.wait(); !ok {
			return 0, net.ErrClosed
		} else if w > 0 {
			c.shiftRead(w)
		}
	}
	return n, err
}

func (c *frozenConn) Write(b []byte) (int, error) {
	if len(b) > 0 && b[0] == '$' {
		if frozen, _ := c.d.Frozen(); frozen {
			return len(b), nil // RTP/RTCP of a frozen device: never sent
		}
		return c.Conn.Write(b)
	}
	if w, ok := c.wait(); !ok {
		return 0, net.ErrClosed
	} else if w > 0 {
		c.shiftWrite(w)
	}
	return c.Conn.Write(b)
}

func (c *frozenConn) shiftRead(w time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.rdl.IsZero() {
		c.rdl = c.rdl.Add(w)
		_ = c.Conn.SetReadDeadline(c.rdl)
	}
}

func (c *frozenConn) shiftWrite(w time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.wdl.IsZero() {
		c.wdl = c.wdl.Add(w)
		_ = c.Conn.SetWriteDeadline(c.wdl)
	}
}

func (c *frozenConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rdl, c.wdl = t, t
	return c.Conn.SetDeadline(t)
}

func (c *frozenConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rdl = t
	return c.Conn.SetReadDeadline(t)
}

func (c *frozenConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wdl = t
	return c.Conn.SetWriteDeadline(t)
}

func (c *frozenConn) Close() error {
	c.once.Do(func() { close(c.done) })
	return c.Conn.Close()
}
