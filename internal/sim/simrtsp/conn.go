package simrtsp

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

const maxBody = 64 << 10

type request struct {
	method, uri, proto string
	header             textproto.MIMEHeader
}

type response struct {
	code   int
	header []string // "Name: value" lines
	body   []byte
	after  func() // run after the response is written (PLAY starts RTP)
	close  bool   // close the connection after writing
}

var reasons = map[int]string{
	200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Stream Not Found",
	413: "Request Entity Too Large", 453: "Not Enough Bandwidth", 454: "Session Not Found",
	455: "Method Not Valid in This State", 459: "Aggregate Operation Not Allowed",
	461: "Unsupported Transport", 501: "Not Implemented", 505: "RTSP Version Not Supported",
}

type conn struct {
	srv  *Server
	nc   net.Conn
	ip   string
	br   *bufio.Reader
	wmu  sync.Mutex // serializes writes of responses and RTP/RTCP
	quit chan struct{}
	once sync.Once
	sess *session // owned by the serve goroutine
}

type track struct {
	setup   bool
	ch      byte // interleaved RTP channel; RTCP on rtcpCh
	rtcpCh  byte
	pt      byte
	clock   int
	ssrc    uint32
	seq     uint16 // next sequence number
	ts0     uint32 // RTP timestamp of media time 0
	url     string
	packets uint32
	octets  uint32
}

type session struct {
	id      string
	path    string
	st      *Stream
	tracks  [2]track // 0 video, 1 audio
	playing bool
	stop    chan struct{}
	done    chan struct{}
}

func newConn(s *Server, nc net.Conn) *conn {
	ip := nc.RemoteAddr().String()
	if h, _, err := net.SplitHostPort(ip); err == nil {
		ip = h
	}
	return &conn{srv: s, nc: nc, ip: ip, br: bufio.NewReaderSize(nc, 4096), quit: make(chan struct{})}
}

func (c *conn) close() {
	c.once.Do(func() {
		close(c.quit)
		_ = c.nc.Close()
	})
}

func (c *conn) reset() {
	if tc, ok := c.nc.(linger); ok {
		_ = tc.SetLinger(0)
	}
	c.close()
}

func (c *conn) serve() {
	defer c.close()
	defer c.endSession()
	for {
		_ = c.nc.SetReadDeadline(time.Now().Add(c.srv.cfg.SessionTimeout))
		b, err := c.br.Peek(1)
		if err != nil {
			return
		}
		if b[0] == '$' { // interleaved frame from the client (RTCP receiver report): discard
			var h [4]byte
			if _, err := io.ReadFull(c.br, h[:]); err != nil {
				return
			}
			if _, err := c.br.Discard(int(binary.BigEndian.Uint16(h[2:]))); err != nil {
				return
			}
			continue
		}
		req, err := c.readRequest()
		if err != nil {
			var pe *parseError
			if errors.As(err, &pe) {
				c.write(&response{code: pe.code}, "0")
			}
			return
		}
		resp := c.handle(req)
		if err := c.write(resp, req.header.Get("CSeq")); err != nil || resp.close {
			return
		}
		if resp.after != nil {
			resp.after()
		}
	}
}

type parseError struct {
	code int
	msg  string
}

func (e *parseError) Error() string { return "simrtsp: bad request: " + e.msg }

func (c *conn) readRequest() (*request, error) {
	tp := textproto.NewReader(c.br)
	line, err := tp.ReadLine()
	if err != nil {
		return nil, err
	}
	parts := strings.Fields(line)
	if len(parts) != 3 {
		return nil, &parseError{400, "request line " + strconv.Quote(line)}
	}
	hdr, err := tp.ReadMIMEHeader()
	if err != nil {
		return nil, &parseError{400, "headers: " + err.Error()}
	}
	if cl := hdr.Get("Content-Length"); cl != "" {
		n, err := strconv.Atoi(cl)
		if err != nil || n < 0 {
			return nil, &parseError{400, "Content-Length " + cl}
		}
		if n > maxBody {
			return nil, &parseError{413, "body too large"}
		}
		if _, err := c.br.Discard(n); err != nil {
			return nil, err
		}
	}
	return &request{method: parts[0], uri: parts[1], proto: parts[2], header: hdr}, nil
}

func (c *conn) write(r *response, cseq string) error {
	var sb strings.Builder
	reason := reasons[r.code]
	if reason == "" {
		reason = "Error"
	}
	fmt.Fprintf(&sb, "RTSP/1.0 %d %s\r\nCSeq: %s\r\n", r.code, reason, cseq)
	for _, h := range r.header {
		sb.WriteString(h)
		sb.WriteString("\r\n")
	}
	sb.WriteString("Date: " + time.Now().UTC().Format("Mon, Jan 02 2006 15:04:05 GMT") + "\r\n")
	if len(r.body) > 0 {
		sb.WriteString("Content-Length: " + strconv.Itoa(len(r.body)) + "\r\n")
	}
	sb.WriteString("\r\n")
	sb.Write(r.body)
	return c.writeRaw([]byte(sb.String()))
}

func (c *conn) writeRaw(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout))
	_, err := c.nc.Write(b)
	if err != nil {
		c.close()
	}
	return err
}

func (c *conn) sessionHeader() string {
	return "Session: " + c.sess.id + ";timeout=" + strconv.Itoa(int(c.srv.cfg.SessionTimeout/time.Second))
}

func (c *conn) handle(req *request) *response {
	if req.header.Get("CSeq") == "" {
		return &response{code: 400, close: true}
	}
	if req.proto != "RTSP/1.0" {
		return &response{code: 505}
	}
	if req.method == "OPTIONS" {
		return &response{code: 200, header: []string{
			"Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER, SET_PARAMETER"}}
	}
	if r := c.authorize(req); r != nil {
		return r
	}
	switch req.method {
	case "DESCRIBE":
		return c.describe(req)
	case "SETUP":
		return c.setup(req)
	case "PLAY":
		return c.play(req)
	case "TEARDOWN":
		if r := c.checkSession(req, true); r != nil {
			return r
		}
		c.endSession()
		return &response{code: 200}
	case "GET_PARAMETER", "SET_PARAMETER":
		if r := c.checkSession(req, false); r != nil {
			return r
		}
		r := &response{code: 200}
		if c.sess != nil {
			r.header = append(r.header, c.sessionHeader())
		}
		return r
	}
	return &response{code: 501}
}

func (c *conn) authorize(req *request) *response {
	s := c.srv
	unauthorized := func(stale bool) *response {
		return &response{code: 401, header: []string{"WWW-Authenticate: " + s.challenge(stale)}}
	}
	if s.cfg.Allow != nil && !s.cfg.Allow(c.ip) {
		return unauthorized(false)
	}
	if s.cfg.Lookup == nil {
		return nil
	}
	switch s.checkDigest(req.header.Get("Authorization"), req.method) {
	case authOK:
		if s.cfg.OnAuth != nil {
			s.cfg.OnAuth(c.ip, true)
		}
		return nil
	case authBad:
		s.authFailures.Add(1)
		if s.cfg.OnAuth != nil {
			s.cfg.OnAuth(c.ip, false)
		}
		return unauthorized(false)
	case authStale:
		return unauthorized(true)
	}
	return unauthorized(false)
}

// checkSession validates the Session header against the connection's session.
func (c *conn) checkSession(req *request, required bool) *response {
	id, _, _ := strings.Cut(req.header.Get("Session"), ";")
	id = strings.TrimSpace(id)
	if id == "" && !required {
		return nil
	}
	if c.sess == nil || id != c.sess.id {
		return &response{code: 454}
	}
	return nil
}

func parseURL(raw string) (*url.URL, *response) {
	u, err := url.Parse(raw)
	if err != nil || u.Path == "" {
		return nil, &response{code: 400}
	}
	return u, nil
}

// baseURL is the request URL without credentials and query.
func baseURL(u *url.URL) string {
	return u.Scheme + "://" + u.Host + u.Path
}

func (c *conn) describe(req *request) *response {
	u, r := parseURL(req.uri)
	if r != nil {
		return r
	}
	st := c.srv.stream(u.Path)
	if st == nil {
		return &response{code: 404}
	}
	host, _, _ := net.SplitHostPort(c.nc.LocalAddr().String())
	body := buildSDP(st, host)
	return &response{code: 200, body: body, header: []string{
		"Content-Type: application/sdp",
		"Content-Base: " + strings.TrimRight(baseURL(u), "/") + "/",
	}}
}

func (c *conn) setup(req *request) *response {
	u, r := parseURL(req.uri)
	if r != nil {
		return r
	}
	low := strings.ToLower(u.Path)
	i := strings.LastIndex(low, "/trackid=")
	if i < 0 {
		return &response{code: 404}
	}
	tid, err := strconv.Atoi(u.Path[i+len("/trackid="):])
	if err != nil || tid < 1 || tid > 2 {
		return &response{code: 404}
	}
	path := strings.TrimRight(u.Path[:i], "/")
	st := c.srv.stream(path)
	if st == nil || (tid == 2 && st.Audio == nil) {
		return &response{code: 404}
	}
	ch, ok := parseTransport(req.header.Get("Transport"), byte(2*(tid-1)))
	if !ok {
		return &response{code: 461}
	}
	if sid := req.header.Get("Session"); sid != "" || c.sess != nil {
		if r := c.checkSession(req, true); r != nil {
			return r
		}
		if cleanPath(path) != c.sess.path {
			return &response{code: 459}
		}
		if c.sess.playing {
			return &response{code: 455}
		}
	} else if r := c.newSession(path, st); r != nil {
		return r
	}
	t := &c.sess.tracks[tid-1]
	*t = track{setup: true, ch: ch[0], rtcpCh: ch[1], ssrc: rand32(), seq: uint16(rand32()), ts0: rand32(),
		url: baseURL(u)}
	if tid == 1 {
		t.pt, t.clock = 96, 90000
	} else {
		t.pt, t.clock = st.Audio.PayloadType(), st.Audio.ClockRate
	}
	return &response{code: 200, header: []string{
		fmt.Sprintf("Transport: RTP/AVP/TCP;unicast;interleaved=%d-%d;ssrc=%08X;mode=\"play\"", t.ch, t.rtcpCh, t.ssrc),
		c.sessionHeader(),
	}}
}

// parseTransport picks the first RTP/AVP/TCP transport of the Transport
// header and returns its interleaved channels (def, def+1 when absent).
func parseTransport(h string, def byte) ([2]byte, bool) {
	for _, spec := range strings.Split(h, ",") {
		params := strings.Split(strings.TrimSpace(spec), ";")
		if !strings.EqualFold(params[0], "RTP/AVP/TCP") {
			continue
		}
		ch := [2]byte{def, def + 1}
		for _, p := range params[1:] {
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			if !strings.EqualFold(k, "interleaved") {
				continue
			}
			a, b, hasB := strings.Cut(v, "-")
			x, err := strconv.Atoi(a)
			if err != nil || x < 0 || x > 255 {
				return ch, false
			}
			y := x + 1
			if hasB {
				if y, err = strconv.Atoi(b); err != nil || y < 0 || y > 255 {
					return ch, false
				}
			}
			ch = [2]byte{byte(x), byte(y)}
		}
		return ch, true
	}
	return [2]byte{}, false
}

func rand32() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])
}

func (c *conn) newSession(path string, st *Stream) *response {
	s := c.srv
	s.mu.Lock()
	if s.cfg.MaxSessions > 0 && s.sessions >= s.cfg.MaxSessions {
		s.mu.Unlock()
		return &response{code: 453}
	}
	s.sessions++
	s.mu.Unlock()
	s.totalSessions.Add(1)
	c.sess = &session{id: strconv.FormatUint(uint64(rand32()|1), 10), path: cleanPath(path), st: st}
	return nil
}

func (c *conn) endSession() {
	sess := c.sess
	if sess == nil {
		return
	}
	c.sess = nil
	if sess.stop != nil {
		close(sess.stop)
		<-sess.done
	}
	c.srv.mu.Lock()
	c.srv.sessions--
	c.srv.mu.Unlock()
}

func (c *conn) play(req *request) *response {
	if r := c.checkSession(req, true); r != nil {
		return r
	}
	sess := c.sess
	r := &response{code: 200, header: []string{c.sessionHeader(), "Range: npt=now-"}}
	if sess.playing {
		return r // the streamer owns the tracks now
	}
	var info []string
	for i := range sess.tracks {
		if t := &sess.tracks[i]; t.setup {
			info = append(info, fmt.Sprintf("url=%s;seq=%d;rtptime=%d", t.url, t.seq, t.ts0))
		}
	}
	r.header = append(r.header, "RTP-Info: "+strings.Join(info, ","))
	sess.playing = true
	r.after = func() {
		sess.stop, sess.done = make(chan struct{}), make(chan struct{})
		c.srv.wg.Add(1) // the serve goroutine holds a count, so this cannot race Close's Wait
		go func() {
			defer c.srv.wg.Done()
			defer close(sess.done)
			c.stream(sess)
		}()
	}
	return r
}
