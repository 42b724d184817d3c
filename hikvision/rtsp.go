package hikvision

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/AlexxIT/go2rtc/pkg/core"
	"github.com/AlexxIT/go2rtc/pkg/rtsp"
	"github.com/AlexxIT/go2rtc/pkg/tcp"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
)

// UserAgent is sent on RTSP requests.
const UserAgent = "go2rtc-hikvision"

// rtspBackend plays the stream over RTSP (TCP interleaved) with go2rtc's
// pkg/rtsp client: DESCRIBE in Open, SETUP in Setup, PLAY in Play.
type rtspBackend struct {
	cfg  *Config
	dev  *Device
	port int
	addr string // host:port
}

func newRTSPBackend(cfg *Config, dev *Device, port int) *rtspBackend {
	return &rtspBackend{cfg: cfg, dev: dev, port: port, addr: hostPort(cfg.Host, strconv.Itoa(port))}
}

func (b *rtspBackend) Protocol() string { return "rtsp+tcp" }
func (b *rtspBackend) Addr() string     { return b.addr }

// Open connects and DESCRIBEs the stream, as one authenticated attempt of
// the device's guard. Cancelling ctx closes the socket of the attempt.
func (b *rtspBackend) Open(ctx context.Context) (Session, error) { return b.openOn(ctx, nil) }

// newConn is a go2rtc RTSP client for the stream, not yet connected.
func (b *rtspBackend) newConn() *rtsp.Conn {
	c := rtsp.NewClient(b.cfg.RTSPURL(b.port))
	c.UserAgent = UserAgent
	c.Backchannel = false // Hikvision talk is ISAPI, not ONVIF backchannel
	c.Timeout = int(b.cfg.Timeout / time.Second)
	return c
}

// challengeUser is go2rtc's RTSP client with the patched UseChallenge: it
// takes a 401 it already holds as the challenge of its next request.
type challengeUser interface {
	UseChallenge(res *tcp.Response) bool
}

// openOn is Open on the connection preopen made, when it has one: the
// DESCRIBE answers the challenge preopen collected at once (go2rtc with
// UseChallenge; without it the DESCRIBE is refused once more first, as on a
// new connection).
func (b *rtspBackend) openOn(ctx context.Context, pre *preopened) (Session, error) {
	var s *rtspSession
	err := b.dev.Do(ctx, func(ctx context.Context) (err error) {
		var c *rtsp.Conn
		reused := pre != nil && pre.conn != nil
		if reused {
			c, pre.conn = pre.conn, nil
			if cu, ok := any(c).(challengeUser); ok {
				cu.UseChallenge(pre.res)
			}
		}
		for {
			if c == nil {
				c = b.newConn()
				if err := c.Dial(); err != nil {
					return newDialError("rtsp connect", b.addr, err, b.cfg)
				}
			}
			stop := context.AfterFunc(ctx, func() { _ = closeTransport(c) })
			err = b.step(c, c.Describe)
			stop()
			if reused && err != nil && ctx.Err() == nil && connLost(err) {
				// a device that hung up after its first answer: once
				// more on a new connection
				_ = closeTransport(c)
				_ = c.Stop()
				c, reused = nil, false
				continue
			}
			break
		}
		if err != nil || ctx.Err() != nil {
			_ = closeTransport(c) // first: Stop would write a TEARDOWN with the refused credentials
			_ = c.Stop()
			if ctx.Err() != nil {
				return ctx.Err() // stopped: the attempt is forgotten
			}
			return newDialError("rtsp describe", b.addr, rtspCause(err), b.cfg)
		}
		s = &rtspSession{b: b, conn: c, playSent: make(chan struct{}), ended: make(chan struct{})}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// preopened is an RTSP connection to the stream that has sent one DESCRIBE
// without credentials, and the device's answer (a 401 challenge on every
// device that asks for a password). No credentials went out on it.
type preopened struct {
	conn *rtsp.Conn // nil when the connect or the DESCRIBE failed
	res  *tcp.Response
	err  error
}

// preopen connects to the stream and sends a DESCRIBE without credentials,
// so that the DESCRIBE of openOn can answer the device's challenge at once.
// It sends no credentials (go2rtc's client only adds them once it has read a
// challenge itself), so it is no login attempt and needs no guard. Cancelling
// ctx closes its socket.
func (b *rtspBackend) preopen(ctx context.Context) *preopened {
	c := b.newConn()
	if err := c.Dial(); err != nil {
		return &preopened{err: err}
	}
	req := &tcp.Request{Method: rtsp.MethodDescribe, URL: c.URL, Header: map[string][]string{
		"Accept": {"application/sdp"}, "User-Agent": {UserAgent}}}
	var res *tcp.Response
	stop := context.AfterFunc(ctx, func() { _ = closeTransport(c) })
	err := b.step(c, func() (err error) {
		if err = c.WriteRequest(req); err == nil {
			res, err = c.ReadResponse()
		}
		return err
	})
	stop()
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		_ = closeTransport(c)
		_ = c.Stop()
		return &preopened{err: err}
	}
	return &preopened{conn: c, res: res}
}

// close closes the connection when openOn did not take it.
func (p *preopened) close() {
	if p != nil && p.conn != nil {
		_ = closeTransport(p.conn)
		_ = p.conn.Stop()
		p.conn = nil
	}
}

// step runs one request of conn that waits for the device's answer
// (DESCRIBE, SETUP) within the URL's #timeout. go2rtc's pkg/rtsp uses
// Conn.Timeout (set from #timeout) to connect and to read media, and (with
// the patched go2rtc) to wait for answers when it is longer than its
// package-wide rtsp.Timeout (5 s); a shorter #timeout closes the socket when
// it passes. Either way the step fails with "no answer within Ns" (a timeout
// for the guard), go2rtc's own read timeout worded the same.
func (b *rtspBackend) step(conn *rtsp.Conn, f func() error) error {
	d := b.cfg.Timeout
	if d <= 0 || d >= rtsp.Timeout {
		// go2rtc's read deadline ends the wait: same wording as ours
		err := f()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return &isapi.TimeoutError{After: max(d, rtsp.Timeout), Err: err}
		}
		return err
	}
	var mu sync.Mutex
	done, fired := false, false
	timer := time.AfterFunc(d, func() {
		mu.Lock()
		defer mu.Unlock()
		if !done {
			fired = true
			_ = closeTransport(conn)
		}
	})
	err := f()
	timer.Stop()
	mu.Lock()
	done = true
	timedOut := fired
	mu.Unlock()
	if timedOut {
		return &isapi.TimeoutError{After: d, Err: os.ErrDeadlineExceeded}
	}
	return err
}

// silentSessionTimeout (seconds) is how long a playing RTSP session may read
// nothing before go2rtc's client gives it up.
const silentSessionTimeout = 60

// rtspSession is one RTSP session of rtspBackend.
type rtspSession struct {
	b    *rtspBackend
	conn *rtsp.Conn

	// go2rtc's client writes PLAY from its read goroutine, unsynchronised:
	// a TEARDOWN may only follow once PLAY is out (the listener fires after
	// the request was prepared, before it is written).
	playSent chan struct{}
	ended    chan struct{} // closed when Play's conn.Start returned
	once     sync.Once

	mu      sync.Mutex
	playing bool
	closed  bool
}

func (s *rtspSession) Medias() []*core.Media { return s.conn.Medias }
func (s *rtspSession) SDP() string           { return s.conn.SDP }
func (s *rtspSession) RemoteAddr() string    { return s.conn.Connection.RemoteAddr }

// Setup SETUPs every track, as one authenticated attempt of the guard,
// matching each track to the session's media by kind, control and codec
// name.
func (s *rtspSession) Setup(ctx context.Context, tracks []Track) error {
	b := s.b
	return b.dev.Do(ctx, func(ctx context.Context) error {
		stop := context.AfterFunc(ctx, func() { _ = closeTransport(s.conn) })
		defer stop()
		for _, t := range tracks {
			m, c := matchMedia(s.conn.Medias, t.Media, t.Codec)
			if m == nil {
				// the login worked; the stream changed
				return newDialError("rtsp setup", b.addr, &causeError{sentinel: ErrStreamChanged,
					cause: errors.New(t.Media.String() + " not in " + mediaList(s.conn.Medias))}, b.cfg)
			}
			var r *core.Receiver
			err := b.step(s.conn, func() (err error) {
				r, err = s.conn.GetTrack(m, c)
				return err
			})
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil {
				return newDialError("rtsp setup", b.addr, rtspCause(err), b.cfg)
			}
			r.Input = t.Out
		}
		return nil
	})
}

// matchMedia finds the session's media and codec for a track: the same
// control (media ID) first, else the first of the same kind and codec name.
func matchMedia(medias []*core.Media, want *core.Media, codec *core.Codec) (*core.Media, *core.Codec) {
	var fallback *core.Media
	var fallbackCodec *core.Codec
	for _, m := range medias {
		if m.Kind != want.Kind || m.Direction != core.DirectionRecvonly {
			continue
		}
		for _, c := range m.Codecs {
			if c.Name != codec.Name {
				continue
			}
			if m.ID == want.ID {
				return m, c
			}
			if fallback == nil {
				fallback, fallbackCodec = m, c
			}
		}
	}
	return fallback, fallbackCodec
}

// Play sends PLAY and reads the session until it ends.
func (s *rtspSession) Play() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errStopped
	}
	s.playing = true
	s.mu.Unlock()
	defer close(s.ended)

	// go2rtc ends a session after Conn.Timeout without data (5 s by default):
	// a link that is silent for longer and then resumes would lose it. The
	// supervisor's stall timer decides about silence (it tries a new session
	// beside this one); only a much longer silence ends the read here.
	if s.conn.Timeout < silentSessionTimeout {
		s.conn.Timeout = silentSessionTimeout
	}
	s.conn.Listen(func(msg any) {
		if req, ok := msg.(*tcp.Request); ok && req.Method == rtsp.MethodPlay {
			s.once.Do(func() { close(s.playSent) })
		}
	})
	err := s.conn.Start()
	if err == nil {
		err = errors.New("session ended")
	}
	return newDialError("rtsp play", s.b.addr, rtspCause(err), s.b.cfg)
}

// Close TEARDOWNs the session (best effort: the device frees the session at
// once; only while the credentials are known good, since a TEARDOWN carries
// them and its answer is never read), closes its socket and waits for Play's
// read loop to end.
func (s *rtspSession) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	playing := s.playing
	s.mu.Unlock()

	teardown := func() {
		_ = s.b.dev.doVerified(context.Background(), func(context.Context) error { return s.conn.Teardown() })
	}
	if playing {
		select {
		case <-s.playSent:
			teardown()
		case <-s.ended: // ended before PLAY was sent
		}
		_ = closeTransport(s.conn)
		<-s.ended // Play's read loop is over: no packet after Close
	} else {
		teardown()
	}
	// The socket is closed before Stop, whose own TEARDOWN (go2rtc's
	// Conn.Close) would carry the credentials past the guard.
	_ = closeTransport(s.conn)
	err := s.conn.Stop() // closes the session's own receivers (not ours)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

func rtspCause(err error) error {
	if s := err.Error(); s == "wrong user/pass" || s == "user/pass not provided" {
		return &causeError{sentinel: ErrRTSPUnauthorized, cause: err}
	}
	return err
}

// connLost: the connection ended before an answer came (the peer closed or
// reset it).
func connLost(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func closeTransport(conn *rtsp.Conn) error {
	if c, ok := conn.Connection.Transport.(io.Closer); ok {
		return c.Close()
	}
	return nil
}
