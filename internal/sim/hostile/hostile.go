// Package hostile is a "device" that misbehaves on purpose, for testing that
// a client gives up in time, reads no more than its caps and follows no
// redirect: a response that never ends, a body of gigabytes, a megabyte XML
// element, headers trickling one byte at a time, the wrong content type, a
// JPEG that is an HTML page, an RTSP server that accepts and says nothing, a
// 401 loop with a fresh nonce every time and a redirect to another host.
//
// It speaks HTTP by hand over TCP (so it can misbehave below net/http) and
// counts the bytes it got written to each connection. It imports no client
// code.
package hostile

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Mode is how the server misbehaves. Every HTTP request gets the mode's
// answer, whatever its path (except ModeSilentRTSP, see there).
type Mode string

const (
	// ModeEndlessBody: 200 and XML headers, then a body that never ends: a few
	// bytes every Config.SlowInterval, no Content-Length.
	ModeEndlessBody Mode = "endless-body"
	// ModeHugeBody: 200 with a Content-Length of Config.HugeBytes (default
	// 4 GiB) and the body streamed as fast as the client reads it. The body
	// is generated, never held in memory.
	ModeHugeBody Mode = "huge-body"
	// ModeBigElement: a well-formed <DeviceInfo> whose deviceName element is
	// Config.ElementBytes long (default 1 MiB).
	ModeBigElement Mode = "big-element"
	// ModeTrickleHeaders: the status line and headers one byte every
	// Config.TrickleInterval (default 1 s).
	ModeTrickleHeaders Mode = "trickle-headers"
	// ModeWrongContentType: 200 text/html with an HTML login page.
	ModeWrongContentType Mode = "wrong-content-type"
	// ModeHTMLJPEG: 200 image/jpeg whose body is an HTML page.
	ModeHTMLJPEG Mode = "html-jpeg"
	// ModeAuthLoop: every request, with or without credentials, gets 401 and
	// a new digest nonce (stale="TRUE" when the request had credentials,
	// unless Config.NeverStale).
	ModeAuthLoop Mode = "auth-loop"
	// ModeRedirect: 302 to the same path on another listener (another host
	// for the client); requests that arrive there are counted by Followed.
	ModeRedirect Mode = "redirect"
	// ModeSilentRTSP: the HTTP side answers like a healthy camera without
	// authentication (deviceInfo, streaming channel, adminAccesses naming the
	// RTSP port); the RTSP listener accepts connections, reads what it is
	// sent and never answers.
	ModeSilentRTSP Mode = "silent-rtsp"
)

// Modes lists every mode.
var Modes = []Mode{ModeEndlessBody, ModeHugeBody, ModeBigElement, ModeTrickleHeaders, ModeWrongContentType,
	ModeHTMLJPEG, ModeAuthLoop, ModeRedirect, ModeSilentRTSP}

// Config of a hostile server. Zero fields take defaults.
type Config struct {
	Mode            Mode
	HugeBytes       int64         // ModeHugeBody Content-Length, default 4 GiB
	ElementBytes    int           // ModeBigElement element size, default 1 MiB
	TrickleInterval time.Duration // ModeTrickleHeaders, default 1 s per byte
	SlowInterval    time.Duration // ModeEndlessBody, default 100 ms per chunk
	NeverStale      bool          // ModeAuthLoop: stale="FALSE" on every 401
	// Host is the loopback address to listen on, default 127.0.0.1 (a
	// distinct 127.0.0.x is a distinct device to a client that keys state
	// by host).
	Host string
	// RedirectHost is the host:port the redirect points to. Default: a
	// listener of this server on 127.0.0.2 (127.0.0.3 when Host is
	// 127.0.0.2; Host if neither can be bound), counted by Followed.
	RedirectHost string
}

// ConnStats is what one accepted connection saw.
type ConnStats struct {
	Listener string // "http", "redirect" or "rtsp"
	Remote   string
	Sent     int64 // bytes written to the connection (accepted by the kernel)
	Received int64
	Requests int  // HTTP requests read
	Closed   bool // the connection is over
	// PeerClosed: it ended because the peer closed it or reset it (a read
	// EOF or a failed write), not because the server finished or was closed.
	PeerClosed bool
	Opened     time.Time
	Ended      time.Time // zero while open
}

// Server is a running hostile device.
type Server struct {
	cfg Config

	http, redirect, rtsp net.Listener

	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup

	followed atomic.Int64 // requests that reached the redirect target
	authed   atomic.Int64 // requests on the main listener with an Authorization header

	mu    sync.Mutex
	conns []*conn
}

// Start listens on Config.Host, port 0 (and the redirect/RTSP listeners the mode
// needs) and serves until Close.
func Start(cfg Config) (*Server, error) {
	switch cfg.Mode {
	case ModeEndlessBody, ModeHugeBody, ModeBigElement, ModeTrickleHeaders, ModeWrongContentType,
		ModeHTMLJPEG, ModeAuthLoop, ModeRedirect, ModeSilentRTSP:
	default:
		return nil, fmt.Errorf("hostile: unknown mode %q", cfg.Mode)
	}
	if cfg.HugeBytes <= 0 {
		cfg.HugeBytes = 4 << 30
	}
	if cfg.ElementBytes <= 0 {
		cfg.ElementBytes = 1 << 20
	}
	if cfg.TrickleInterval <= 0 {
		cfg.TrickleInterval = time.Second
	}
	if cfg.SlowInterval <= 0 {
		cfg.SlowInterval = 100 * time.Millisecond
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	s := &Server{cfg: cfg, done: make(chan struct{})}
	var err error
	if s.http, err = net.Listen("tcp", net.JoinHostPort(cfg.Host, "0")); err != nil {
		return nil, err
	}
	if cfg.Mode == ModeRedirect && cfg.RedirectHost == "" {
		other := "127.0.0.2"
		if cfg.Host == other {
			other = "127.0.0.3"
		}
		if s.redirect, err = net.Listen("tcp", net.JoinHostPort(other, "0")); err != nil {
			s.redirect, err = net.Listen("tcp", net.JoinHostPort(cfg.Host, "0"))
		}
		if err != nil {
			s.http.Close()
			return nil, err
		}
		s.cfg.RedirectHost = s.redirect.Addr().String()
	}
	if cfg.Mode == ModeSilentRTSP {
		if s.rtsp, err = net.Listen("tcp", net.JoinHostPort(cfg.Host, "0")); err != nil {
			s.http.Close()
			return nil, err
		}
	}
	s.serve("http", s.http, s.serveHTTP)
	if s.redirect != nil {
		s.serve("redirect", s.redirect, s.serveRedirectTarget)
	}
	if s.rtsp != nil {
		s.serve("rtsp", s.rtsp, s.serveSilent)
	}
	return s, nil
}

// HTTPAddr is the ISAPI host:port.
func (s *Server) HTTPAddr() string { return s.http.Addr().String() }

// RTSPAddr is the silent RTSP host:port ("" unless ModeSilentRTSP).
func (s *Server) RTSPAddr() string {
	if s.rtsp == nil {
		return ""
	}
	return s.rtsp.Addr().String()
}

// RedirectHost is where ModeRedirect points ("" in other modes).
func (s *Server) RedirectHost() string {
	if s.cfg.Mode != ModeRedirect {
		return ""
	}
	return s.cfg.RedirectHost
}

// Followed is how many HTTP requests reached the redirect target listener.
func (s *Server) Followed() int { return int(s.followed.Load()) }

// AuthAttempts is how many HTTP requests on the main listener carried an
// Authorization header (each is a login attempt to a real device).
func (s *Server) AuthAttempts() int { return int(s.authed.Load()) }

// Conns returns a snapshot of every connection accepted so far.
func (s *Server) Conns() []ConnStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ConnStats, 0, len(s.conns))
	for _, c := range s.conns {
		out = append(out, c.stats())
	}
	return out
}

// Sent is the total of bytes written on every connection of listener
// ("http", "redirect", "rtsp"; "" for all).
func (s *Server) Sent(listener string) int64 {
	var n int64
	for _, c := range s.Conns() {
		if listener == "" || c.Listener == listener {
			n += c.Sent
		}
	}
	return n
}

// Requests is the number of HTTP requests read on the main listener.
func (s *Server) Requests() int {
	n := 0
	for _, c := range s.Conns() {
		if c.Listener == "http" {
			n += c.Requests
		}
	}
	return n
}

// Close stops the listeners, closes every connection and waits for all of the
// server's goroutines.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		close(s.done)
		for _, l := range []net.Listener{s.http, s.redirect, s.rtsp} {
			if l != nil {
				l.Close()
			}
		}
		s.mu.Lock()
		for _, c := range s.conns {
			c.Conn.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return nil
}

// conn counts what goes through a connection.
type conn struct {
	net.Conn
	listener string
	opened   time.Time

	sent, received atomic.Int64
	requests       atomic.Int64

	mu         sync.Mutex
	ended      time.Time
	peerClosed bool
}

func (c *conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.received.Add(int64(n))
	return n, err
}

func (c *conn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.sent.Add(int64(n))
	return n, err
}

func (c *conn) stats() ConnStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return ConnStats{
		Listener: c.listener, Remote: c.RemoteAddr().String(),
		Sent: c.sent.Load(), Received: c.received.Load(), Requests: int(c.requests.Load()),
		Closed: !c.ended.IsZero(), PeerClosed: c.peerClosed, Opened: c.opened, Ended: c.ended,
	}
}

func (s *Server) serve(name string, l net.Listener, handle func(*conn) error) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			nc, err := l.Accept()
			if err != nil {
				return // closed
			}
			if tc, ok := nc.(*net.TCPConn); ok {
				// small kernel buffer, so Sent is close to what the peer took
				_ = tc.SetWriteBuffer(16 << 10)
			}
			c := &conn{Conn: nc, listener: name, opened: time.Now()}
			s.mu.Lock()
			select {
			case <-s.done:
				s.mu.Unlock()
				nc.Close()
				return
			default:
			}
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				err := handle(c)
				c.Conn.Close()
				c.mu.Lock()
				c.ended = time.Now()
				select {
				case <-s.done:
				default:
					c.peerClosed = err != nil
				}
				c.mu.Unlock()
			}()
		}
	}()
}

// sleep waits d; false when the server closes first.
func (s *Server) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.done:
		return false
	}
}

var errServerDone = errors.New("hostile: server closed")

// serveHTTP reads requests and answers each by the mode. It returns nil when
// it ended the connection itself, an error when the peer went away.
func (s *Server) serveHTTP(c *conn) error {
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, io.LimitReader(req.Body, 1<<20))
		req.Body.Close()
		if err != nil {
			return err
		}
		c.requests.Add(1)
		if req.Header.Get("Authorization") != "" {
			s.authed.Add(1)
		}
		keep, err := s.answer(c, req)
		if err != nil || !keep {
			return err
		}
	}
}

const xmlHead = `<?xml version="1.0" encoding="UTF-8"?>` + "\n"

const htmlPage = "<!DOCTYPE html>\n<html><head><title>Login</title></head><body><form action=\"/doc/page/login.asp\">" +
	"<input name=\"username\"><input name=\"password\" type=\"password\"></form></body></html>\n"

// answer writes the mode's response; keep is false when the connection must
// end after it.
func (s *Server) answer(c *conn, req *http.Request) (keep bool, err error) {
	switch s.cfg.Mode {
	case ModeEndlessBody:
		if err := writeHead(c, 200, "application/xml", -1, nil); err != nil {
			return false, err
		}
		if _, err := io.WriteString(c, xmlHead+"<DeviceInfo><deviceName>"); err != nil {
			return false, err
		}
		for s.sleep(s.cfg.SlowInterval) {
			if _, err := io.WriteString(c, "AAAA"); err != nil {
				return false, err
			}
		}
		return false, nil
	case ModeHugeBody:
		if err := writeHead(c, 200, "application/xml", s.cfg.HugeBytes, nil); err != nil {
			return false, err
		}
		return false, s.writeGenerated(c, s.cfg.HugeBytes)
	case ModeBigElement:
		head := xmlHead + `<DeviceInfo version="2.0" xmlns="http://www.hikvision.com/ver20/XMLSchema"><deviceName>`
		tail := "</deviceName><model>DS-HOSTILE</model><deviceType>IPCamera</deviceType></DeviceInfo>\n"
		if err := writeHead(c, 200, "application/xml", int64(len(head)+s.cfg.ElementBytes+len(tail)), nil); err != nil {
			return false, err
		}
		if _, err := io.WriteString(c, head); err != nil {
			return false, err
		}
		if err := s.writeGenerated(c, int64(s.cfg.ElementBytes)); err != nil {
			return false, err
		}
		_, err := io.WriteString(c, tail)
		return err == nil, err
	case ModeTrickleHeaders:
		msg := "HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: 0\r\n\r\n"
		for i := 0; i < len(msg); i++ {
			if _, err := c.Write([]byte{msg[i]}); err != nil {
				return false, err
			}
			if !s.sleep(s.cfg.TrickleInterval) {
				return false, nil
			}
		}
		return true, nil
	case ModeWrongContentType:
		return true, writeAll(c, 200, "text/html; charset=utf-8", []byte(htmlPage), nil)
	case ModeHTMLJPEG:
		return true, writeAll(c, 200, "image/jpeg", []byte(htmlPage), nil)
	case ModeAuthLoop:
		stale := "FALSE"
		if req.Header.Get("Authorization") != "" && !s.cfg.NeverStale {
			stale = "TRUE"
		}
		h := http.Header{}
		h.Add("WWW-Authenticate", fmt.Sprintf(`Digest qop="auth", realm="IP Camera(HOSTILE)", nonce="%s", stale="%s", opaque=""`, nonce(), stale))
		body := xmlHead + `<userCheck version="2.0" xmlns="http://www.hikvision.com/ver20/XMLSchema">` +
			"<statusValue>401</statusValue><statusString>Unauthorized</statusString></userCheck>\n"
		return true, writeAll(c, 401, "application/xml", []byte(body), h)
	case ModeRedirect:
		h := http.Header{}
		h.Set("Location", "http://"+s.cfg.RedirectHost+req.URL.RequestURI())
		return true, writeAll(c, 302, "text/html", []byte("<html>moved</html>"), h)
	case ModeSilentRTSP:
		status, body := s.healthyISAPI(req.URL.Path)
		return true, writeAll(c, status, "application/xml", body, nil)
	}
	return false, nil
}

// healthyISAPI answers the probe of a camera whose RTSP port is the silent
// listener.
func (s *Server) healthyISAPI(path string) (int, []byte) {
	const ns = ` version="2.0" xmlns="http://www.hikvision.com/ver20/XMLSchema"`
	switch {
	case path == "/ISAPI/System/deviceInfo":
		return 200, []byte(xmlHead + "<DeviceInfo" + ns + "><deviceName>HOSTILE</deviceName><model>DS-HOSTILE</model>" +
			"<firmwareVersion>V0.0.0</firmwareVersion><deviceType>IPCamera</deviceType></DeviceInfo>\n")
	case strings.HasPrefix(path, "/ISAPI/Streaming/channels/"):
		id := strings.TrimPrefix(path, "/ISAPI/Streaming/channels/")
		return 200, []byte(xmlHead + "<StreamingChannel" + ns + "><id>" + id + "</id><channelName>Camera 01</channelName>" +
			"<enabled>true</enabled><Video><videoCodecType>H.264</videoCodecType></Video></StreamingChannel>\n")
	case path == "/ISAPI/Security/adminAccesses":
		_, port, _ := net.SplitHostPort(s.RTSPAddr())
		return 200, []byte(xmlHead + "<AdminAccessProtocolList" + ns + "><AdminAccessProtocol><id>4</id><enabled>true</enabled>" +
			"<protocol>RTSP</protocol><portNo>" + port + "</portNo></AdminAccessProtocol></AdminAccessProtocolList>\n")
	}
	return 404, []byte(xmlHead + "<ResponseStatus" + ns + "><requestURL>" + path + "</requestURL><statusCode>4</statusCode>" +
		"<statusString>Invalid Operation</statusString><subStatusCode>notSupport</subStatusCode></ResponseStatus>\n")
}

// serveRedirectTarget counts requests that followed the redirect and answers
// them 200.
func (s *Server) serveRedirectTarget(c *conn) error {
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return err
		}
		req.Body.Close()
		c.requests.Add(1)
		s.followed.Add(1)
		if err := writeAll(c, 200, "application/xml", []byte(xmlHead+"<DeviceInfo><model>FOLLOWED</model></DeviceInfo>\n"), nil); err != nil {
			return err
		}
	}
}

// serveSilent reads (and drops) whatever the peer sends and never writes.
func (s *Server) serveSilent(c *conn) error {
	_, err := io.Copy(io.Discard, c)
	if err == nil {
		err = io.EOF // the peer closed
	}
	return err
}

var filler = []byte(strings.Repeat("A", 32<<10))

// writeGenerated writes n filler bytes, stopping at the first write error or
// when the server closes.
func (s *Server) writeGenerated(w io.Writer, n int64) error {
	for n > 0 {
		select {
		case <-s.done:
			return errServerDone
		default:
		}
		b := filler
		if int64(len(b)) > n {
			b = b[:n]
		}
		m, err := w.Write(b)
		n -= int64(m)
		if err != nil {
			return err
		}
	}
	return nil
}

func writeHead(w io.Writer, status int, ctype string, length int64, h http.Header) error {
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n", status, http.StatusText(status), ctype)
	if length >= 0 {
		b.WriteString("Content-Length: " + strconv.FormatInt(length, 10) + "\r\n")
	} else {
		b.WriteString("Connection: close\r\n")
	}
	for k, vs := range h {
		for _, v := range vs {
			b.WriteString(k + ": " + v + "\r\n")
		}
	}
	b.WriteString("\r\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func writeAll(w io.Writer, status int, ctype string, body []byte, h http.Header) error {
	if err := writeHead(w, status, ctype, int64(len(body)), h); err != nil {
		return err
	}
	_, err := w.Write(body)
	return err
}

func nonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
