package simrtsp_test

import (
	"bufio"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim/simrtsp"
)

const (
	testUser = "admin"
	testPass = "hik12345"
)

func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not found in PATH (install ffmpeg, e.g. apt-get install ffmpeg): %v", name, err)
		}
		t.Skipf("%s not found in PATH: %v", name, err)
	}
	return p
}

var (
	mediaOnce sync.Once
	media     *simrtsp.Media
	mediaErr  error
)

func loadMedia(t *testing.T) *simrtsp.Media {
	t.Helper()
	mediaOnce.Do(func() {
		dir, err := simrtsp.MediaDir()
		if err != nil {
			mediaErr = err
			return
		}
		media, mediaErr = simrtsp.LoadMedia(dir)
	})
	if mediaErr != nil {
		t.Fatal(mediaErr)
	}
	return media
}

// authLog records OnAuth calls.
type authLog struct {
	mu    sync.Mutex
	calls []string // "ip ok" / "ip fail"
}

func (a *authLog) hook(ip string, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ok {
		a.calls = append(a.calls, ip+" ok")
	} else {
		a.calls = append(a.calls, ip+" fail")
	}
}

func (a *authLog) count(suffix string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, c := range a.calls {
		if strings.HasSuffix(c, " "+suffix) {
			n++
		}
	}
	return n
}

type testServer struct {
	*simrtsp.Server
	addr  string
	auth  *authLog
	serve chan error
}

// startServer runs a server with the test users and streams
// 101 H.264+PCMU, 102 H.264 sub+PCMA, 201 H.265+AAC, 301 H.264 without audio.
func startServer(t *testing.T, cfg simrtsp.Config) *testServer {
	t.Helper()
	m := loadMedia(t)
	al := &authLog{}
	if cfg.Lookup == nil {
		cfg.Lookup = func(u string) (string, bool) {
			if u == testUser {
				return testPass, true
			}
			return "", false
		}
	}
	if cfg.OnAuth == nil {
		cfg.OnAuth = al.hook
	}
	s := simrtsp.NewServer(cfg)
	for id, st := range map[int]simrtsp.Stream{
		101: {Video: m.H264Main, Audio: m.PCMU},
		102: {Video: m.H264Sub, Audio: m.PCMA},
		201: {Video: m.H265Main, Audio: m.AAC},
		301: {Video: m.H264Sub},
	} {
		if err := s.AddStream(id, st); err != nil {
			t.Fatal(err)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: s, addr: l.Addr().String(), auth: al, serve: make(chan error, 1)}
	go func() { ts.serve <- s.Serve(l) }()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		select {
		case err := <-ts.serve:
			if !errors.Is(err, simrtsp.ErrServerClosed) {
				t.Errorf("Serve returned %v, want ErrServerClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after Close")
		}
	})
	return ts
}

func (ts *testServer) url(path string) string {
	return "rtsp://" + testUser + ":" + testPass + "@" + ts.addr + path
}

// waitFor polls cond until it is true or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// client is a minimal RTSP client for black-box tests, written independently
// of the server code.
type client struct {
	t       *testing.T
	nc      net.Conn
	br      *bufio.Reader
	cseq    int
	base    string // rtsp://host:port
	user    string
	pass    string
	realm   string
	nonce   string
	session string
}

type resp struct {
	code   int
	header textproto.MIMEHeader
	body   string
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	return &client{t: t, nc: nc, br: bufio.NewReader(nc), base: "rtsp://" + addr, user: testUser, pass: testPass}
}

func md5hex(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

var paramRe = regexp.MustCompile(`(\w+)="([^"]*)"`)

// do sends a request; with a known nonce it adds a digest Authorization (RFC 2617, no qop).
func (c *client) do(method, uri string, extra ...string) resp {
	c.t.Helper()
	r, err := c.try(method, uri, extra...)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, uri, err)
	}
	return r
}

func (c *client) try(method, uri string, extra ...string) (resp, error) {
	c.cseq++
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s %s RTSP/1.0\r\nCSeq: %d\r\nUser-Agent: simrtsp-test\r\n", method, uri, c.cseq)
	if c.nonce != "" {
		ha1 := md5hex(c.user + ":" + c.realm + ":" + c.pass)
		ha2 := md5hex(method + ":" + uri)
		fmt.Fprintf(&sb, "Authorization: Digest username=\"%s\", realm=\"%s\", nonce=\"%s\", uri=\"%s\", response=\"%s\"\r\n",
			c.user, c.realm, c.nonce, uri, md5hex(ha1+":"+c.nonce+":"+ha2))
	}
	if c.session != "" {
		sb.WriteString("Session: " + c.session + "\r\n")
	}
	for _, h := range extra {
		sb.WriteString(h + "\r\n")
	}
	sb.WriteString("\r\n")
	_ = c.nc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c.nc, sb.String()); err != nil {
		return resp{}, err
	}
	r, err := c.readResponse()
	if err != nil {
		return r, err
	}
	if got := r.header.Get("CSeq"); got != strconv.Itoa(c.cseq) {
		return r, fmt.Errorf("CSeq %q, want %d", got, c.cseq)
	}
	if r.code == 401 {
		ch := r.header.Get("WWW-Authenticate")
		for _, m := range paramRe.FindAllStringSubmatch(ch, -1) {
			switch m[1] {
			case "realm":
				c.realm = m[2]
			case "nonce":
				c.nonce = m[2]
			}
		}
	}
	return r, nil
}

// readResponse reads the next RTSP response, skipping interleaved frames.
func (c *client) readResponse() (resp, error) {
	for {
		b, err := c.br.Peek(1)
		if err != nil {
			return resp{}, err
		}
		if b[0] == '$' {
			if _, _, err := c.readFrame(); err != nil {
				return resp{}, err
			}
			continue
		}
		break
	}
	tp := textproto.NewReader(c.br)
	line, err := tp.ReadLine()
	if err != nil {
		return resp{}, err
	}
	f := strings.SplitN(line, " ", 3)
	if len(f) < 2 || f[0] != "RTSP/1.0" {
		return resp{}, fmt.Errorf("bad status line %q", line)
	}
	code, err := strconv.Atoi(f[1])
	if err != nil {
		return resp{}, fmt.Errorf("bad status line %q", line)
	}
	h, err := tp.ReadMIMEHeader()
	if err != nil {
		return resp{}, err
	}
	r := resp{code: code, header: h}
	if cl := h.Get("Content-Length"); cl != "" {
		n, _ := strconv.Atoi(cl)
		b := make([]byte, n)
		if _, err := io.ReadFull(c.br, b); err != nil {
			return r, err
		}
		r.body = string(b)
	}
	return r, nil
}

// readFrame reads one interleaved frame.
func (c *client) readFrame() (byte, []byte, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	var h [4]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		return 0, nil, err
	}
	if h[0] != '$' {
		return 0, nil, fmt.Errorf("expected interleaved frame, got %q", h[:])
	}
	b := make([]byte, binary.BigEndian.Uint16(h[2:]))
	_, err := io.ReadFull(c.br, b)
	return h[1], b, err
}

// authenticate gets a challenge with an unauthenticated DESCRIBE.
func (c *client) authenticate(path string) {
	c.t.Helper()
	if r := c.do("DESCRIBE", c.base+path); r.code != 401 {
		c.t.Fatalf("unauthenticated DESCRIBE: %d, want 401", r.code)
	}
}

// play sets up every track of path over TCP and sends PLAY. It returns the PLAY response.
func (c *client) play(path string, tracks int) resp {
	c.t.Helper()
	c.authenticate(path)
	d := c.do("DESCRIBE", c.base+path)
	if d.code != 200 {
		c.t.Fatalf("DESCRIBE %s: %d", path, d.code)
	}
	for i := 1; i <= tracks; i++ {
		r := c.do("SETUP", fmt.Sprintf("%s/trackID=%d", strings.TrimRight(d.header.Get("Content-Base"), "/"), i),
			fmt.Sprintf("Transport: RTP/AVP/TCP;unicast;interleaved=%d-%d", 2*i-2, 2*i-1))
		if r.code != 200 {
			c.t.Fatalf("SETUP track %d: %d", i, r.code)
		}
		c.session, _, _ = strings.Cut(r.header.Get("Session"), ";")
	}
	r := c.do("PLAY", c.base+path, "Range: npt=0.000-")
	if r.code != 200 {
		c.t.Fatalf("PLAY: %d", r.code)
	}
	return r
}
