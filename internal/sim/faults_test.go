package sim_test

import (
	"bufio"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

// rtspConn is a minimal RTSP/1.0 client for these tests.
type rtspConn struct {
	t    *testing.T
	addr string
	c    net.Conn
	br   *bufio.Reader
	cseq int
}

func dialRTSP(t *testing.T, addr string) *rtspConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial RTSP %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &rtspConn{t: t, addr: addr, c: c, br: bufio.NewReader(c)}
}

// request sends one request and returns the status and headers (the body is skipped).
func (r *rtspConn) request(method, path, authz string) (int, textproto.MIMEHeader, error) {
	r.cseq++
	req := fmt.Sprintf("%s rtsp://%s%s RTSP/1.0\r\nCSeq: %d\r\n", method, r.addr, path, r.cseq)
	if authz != "" {
		req += "Authorization: " + authz + "\r\n"
	}
	if method == "DESCRIBE" {
		req += "Accept: application/sdp\r\n"
	}
	_ = r.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(r.c, req+"\r\n"); err != nil {
		return 0, nil, err
	}
	tp := textproto.NewReader(r.br)
	line, err := tp.ReadLine()
	if err != nil {
		return 0, nil, err
	}
	f := strings.Fields(line)
	if len(f) < 2 || f[0] != "RTSP/1.0" {
		return 0, nil, fmt.Errorf("bad status line %q", line)
	}
	code, _ := strconv.Atoi(f[1])
	h, err := tp.ReadMIMEHeader()
	if err != nil {
		return 0, nil, err
	}
	if n, _ := strconv.Atoi(h.Get("Content-Length")); n > 0 {
		if _, err := io.CopyN(io.Discard, r.br, int64(n)); err != nil {
			return 0, nil, err
		}
	}
	return code, h, nil
}

// describe does DESCRIBE, answers the challenge (RFC 2617 without qop when none is offered), returns the status.
func (r *rtspConn) describe(path, user, pass string) int {
	r.t.Helper()
	code, h, err := r.request("DESCRIBE", path, "")
	if err != nil {
		r.t.Fatalf("DESCRIBE: %v", err)
	}
	if code != 401 {
		return code
	}
	ch := parseChallenge(r.t, h.Get("WWW-Authenticate"))
	uri := "rtsp://" + r.addr + path
	ha1 := hexHash("MD5", user+":"+ch.params["realm"]+":"+pass)
	ha2 := hexHash("MD5", "DESCRIBE:"+uri)
	var authz string
	if ch.params["qop"] == "" {
		authz = fmt.Sprintf(`Digest username=%q, realm=%q, nonce=%q, uri=%q, response=%q`, user, ch.params["realm"], ch.params["nonce"], uri,
			hexHash("MD5", ha1+":"+ch.params["nonce"]+":"+ha2))
	} else {
		cn := newCnonce()
		authz = fmt.Sprintf(`Digest username=%q, realm=%q, nonce=%q, uri=%q, qop=auth, nc=00000001, cnonce=%q, response=%q`, user, ch.params["realm"], ch.params["nonce"], uri, cn,
			hexHash("MD5", ha1+":"+ch.params["nonce"]+":00000001:"+cn+":auth:"+ha2))
	}
	code, _, err = r.request("DESCRIBE", path, authz)
	if err != nil {
		r.t.Fatalf("DESCRIBE with credentials: %v", err)
	}
	return code
}

// connClosed reports whether the peer closed c (read returns EOF/reset within the timeout).
func connClosed(c net.Conn, timeout time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	_, err := c.Read(make([]byte, 4096))
	for err == nil {
		_, err = c.Read(make([]byte, 4096))
	}
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

func refused(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return true
	}
	defer c.Close()
	// With nothing listening on a port of the ephemeral range, the kernel
	// can pick that very port as the dial's source and connect the socket
	// to itself: no listener accepted it.
	return c.LocalAddr().String() == c.RemoteAddr().String()
}

func TestRebootClosesEverythingAndComesBackOnSamePorts(t *testing.T) {
	d := start(t, sim.Config{})
	httpAddr, rtspAddr := d.HTTPAddr(), d.RTSPAddr()

	// an open ISAPI keep-alive connection and an open RTSP connection
	hc, err := net.Dial("tcp", httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Close()
	if _, err := io.WriteString(hc, "GET "+devInfo+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(hc), nil)
	if err != nil || res.StatusCode != 401 {
		t.Fatalf("keep-alive request: %v %v", res, err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	rc := dialRTSP(t, rtspAddr)
	if code := rc.describe("/Streaming/Channels/101", "admin", "hik12345"); code != 200 {
		t.Fatalf("RTSP DESCRIBE before reboot: %d", code)
	}
	if err := d.LockIP("127.0.0.1", 0); err != nil {
		t.Fatal(err)
	}

	if err := d.Reboot(time.Hour); err != nil {
		t.Fatalf("Reboot: %v", err)
	}
	if !d.Rebooting() {
		t.Fatal("Rebooting() = false after Reboot")
	}
	if !connClosed(hc, 5*time.Second) || !connClosed(rc.c, 5*time.Second) {
		t.Fatal("open connections survived the reboot")
	}
	if !refused(httpAddr) || !refused(rtspAddr) {
		t.Fatal("ports accept connections while rebooting")
	}
	select {
	case <-d.Up():
		t.Fatal("Up() closed while rebooting")
	default:
	}

	// a second Reboot moves the end: 0 = now
	if err := d.Reboot(0); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.Up():
	case <-time.After(5 * time.Second):
		t.Fatal("device not back 5s after the reboot ended")
	}
	if d.HTTPAddr() != httpAddr || d.RTSPAddr() != rtspAddr {
		t.Fatalf("addresses changed: %s %s, want %s %s", d.HTTPAddr(), d.RTSPAddr(), httpAddr, rtspAddr)
	}
	c := newClient(t, d)
	// the lock was forgotten by the reboot
	if status, _ := c.login(devInfo, "admin", "hik12345"); status != 200 {
		t.Fatalf("login after reboot: status %d", status)
	}
	rc2 := dialRTSP(t, rtspAddr)
	if code := rc2.describe("/Streaming/Channels/101", "admin", "hik12345"); code != 200 {
		t.Fatalf("RTSP DESCRIBE after reboot: %d", code)
	}
	if s := d.Stats(); s.Reboots != 2 {
		t.Fatalf("reboots %d, want 2", s.Reboots)
	}
}

func TestTimedReboot(t *testing.T) {
	d := start(t, sim.Config{})
	// long enough that the check below falls inside it on a loaded machine
	// (with 200 ms it once came after the device was back)
	if err := d.Reboot(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	if !refused(d.HTTPAddr()) {
		t.Fatal("HTTP port accepts while rebooting")
	}
	select {
	case <-d.Up():
	case <-time.After(10 * time.Second):
		t.Fatal("not back after 10s")
	}
	c := newClient(t, d)
	if status, _ := c.login(devInfo, "admin", "hik12345"); status != 200 {
		t.Fatalf("login after reboot: %d", status)
	}
}

func TestBadXML(t *testing.T) {
	d := start(t, sim.Config{})
	a := login(t, d, "admin", "hik12345")
	d.SetBadXML(2)
	// a 401 is not one of the N answers
	_, _, body := a.do("GET", devInfo, "")
	decode[userCheck](t, body)
	for i := 0; i < 2; i++ {
		status, body := a.get("GET", devInfo)
		var v deviceInfoXML
		if err := xml.Unmarshal(body, &v); status != 200 || err == nil {
			t.Fatalf("answer %d: status %d, parse error %v; want 200 and malformed XML", i+1, status, err)
		}
	}
	decode[deviceInfoXML](t, a.getOK(devInfo))
}

func TestStall(t *testing.T) {
	d := start(t, sim.Config{})
	d.SetStall(true)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 300 * time.Millisecond}
	res, err := hc.Get("http://" + d.HTTPAddr() + devInfo)
	if err == nil {
		res.Body.Close()
		t.Fatalf("stalled device answered %d", res.StatusCode)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("stalled request: %v, want a timeout", err)
	}
	d.SetStall(false)
	c := newClient(t, d)
	if status, _, _ := c.do("GET", devInfo, ""); status != 401 {
		t.Fatalf("after stall: %d", status)
	}
}

func TestLockIP(t *testing.T) {
	d := start(t, sim.Config{})
	if err := d.LockIP("not-an-ip", 0); err == nil {
		t.Fatal("LockIP(not-an-ip): no error")
	}
	if err := d.LockIP("127.0.0.1", 0); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, d)
	status, body := c.login(devInfo, "admin", "hik12345")
	if status != 401 {
		t.Fatalf("locked IP: %d", status)
	}
	wantLock(t, body, "lock", 1800, 0)
	d.UnlockIP("127.0.0.1")
	if status, _ := c.login(devInfo, "admin", "hik12345"); status != 200 {
		t.Fatalf("after unlock: %d", status)
	}
}

func TestRTSPSharesTheLoginLock(t *testing.T) {
	d := start(t, sim.Config{MaxFailures: 3})
	rc := dialRTSP(t, d.RTSPAddr())
	if code := rc.describe("/Streaming/Channels/101", "admin", "hik12345"); code != 200 {
		t.Fatalf("good RTSP login: %d", code)
	}
	for i := 0; i < 3; i++ {
		if code := rc.describe("/Streaming/Channels/101", "admin", "wrong"); code != 401 {
			t.Fatalf("wrong RTSP password: %d", code)
		}
	}
	locked, _, _ := d.LockStatus("127.0.0.1")
	if !locked {
		t.Fatal("3 wrong RTSP passwords did not lock the IP")
	}
	c := newClient(t, d)
	status, body := c.login(devInfo, "admin", "hik12345")
	if status != 401 {
		t.Fatalf("ISAPI while locked by RTSP failures: %d", status)
	}
	wantLock(t, body, "lock", 1800, 0)
	if code := rc.describe("/Streaming/Channels/101", "admin", "hik12345"); code != 401 {
		t.Fatalf("RTSP with the right password while locked: %d", code)
	}
	cs := d.Client("127.0.0.1")
	if cs.RTSPFailedLogins != 3 || cs.RTSPGoodLogins < 1 || cs.RTSPConnections != 1 || cs.LockEvents != 1 {
		t.Fatalf("stats %+v", cs)
	}
}

func TestRefuseRTSP(t *testing.T) {
	d := start(t, sim.Config{})
	d.SetRefuseRTSP(true)
	// the connection is reset at once: the dial itself or the first request fails
	if c, err := net.DialTimeout("tcp", d.RTSPAddr(), 5*time.Second); err == nil {
		rc := &rtspConn{t: t, addr: d.RTSPAddr(), c: c, br: bufio.NewReader(c)}
		_, _, err := rc.request("OPTIONS", "/Streaming/Channels/101", "")
		_ = c.Close()
		if err == nil {
			t.Fatal("refused RTSP answered")
		}
	}
	d.SetRefuseRTSP(false)
	rc2 := dialRTSP(t, d.RTSPAddr())
	if code, _, err := rc2.request("OPTIONS", "/Streaming/Channels/101", ""); err != nil || code != 200 {
		t.Fatalf("OPTIONS after refuse off: %d %v", code, err)
	}
	// ISAPI kept working
	c := newClient(t, d)
	if status, _, _ := c.do("GET", devInfo, ""); status != 401 {
		t.Fatalf("ISAPI: %d", status)
	}
}

func TestControlAPI(t *testing.T) {
	d := start(t, sim.Config{ControlAddr: "127.0.0.1:0"})
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	call := func(method, path string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+d.ControlAddr()+path, nil)
		res, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer res.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(res.Body).Decode(&m); err != nil {
			t.Fatalf("%s %s: JSON: %v", method, path, err)
		}
		return res.StatusCode, m
	}
	mustOK := func(path string) {
		t.Helper()
		if code, m := call("POST", path); code != 200 || m["ok"] != true {
			t.Fatalf("POST %s: %d %v", path, code, m)
		}
	}

	mustOK("/lock?ip=127.0.0.1&seconds=60")
	if locked, left, _ := d.LockStatus("127.0.0.1"); !locked || left != 60 {
		t.Fatalf("after /lock: locked=%v left=%d", locked, left)
	}
	mustOK("/unlock?ip=127.0.0.1")
	if locked, _, _ := d.LockStatus("127.0.0.1"); locked {
		t.Fatal("still locked after /unlock")
	}

	mustOK("/password?user=admin&password=changed")
	a := login(t, d, "admin", "changed")
	mustOK("/bad-xml?count=1")
	if status, body := a.get("GET", devInfo); status != 200 || xml.Unmarshal(body, new(deviceInfoXML)) == nil {
		t.Fatalf("after /bad-xml: status %d, body parses", status)
	}
	decode[deviceInfoXML](t, a.getOK(devInfo))

	mustOK("/stall?on=1")
	mustOK("/stall?on=0")
	mustOK("/refuse-rtsp?on=1")
	mustOK("/refuse-rtsp?on=0")
	mustOK("/drop-rtsp")

	code, st := call("GET", "/stats")
	clients, _ := st["clients"].(map[string]any)
	me, _ := clients["127.0.0.1"].(map[string]any)
	if code != 200 || me == nil || me["good_logins"] != float64(2) || me["lock_events"] != float64(1) {
		t.Fatalf("/stats: %d %v", code, st)
	}

	mustOK("/reboot?seconds=0.1")
	select {
	case <-d.Up():
	case <-time.After(5 * time.Second):
		t.Fatal("not up after /reboot?seconds=0.1")
	}
	if code, m := call("GET", "/status"); code != 200 || m["http"] != d.HTTPAddr() || m["rebooting"] != false {
		t.Fatalf("/status: %d %v", code, m)
	}

	for _, bad := range []struct{ method, path string }{
		{"POST", "/bad-xml?count=x"},
		{"POST", "/lock?ip=bogus"},
		{"POST", "/reboot"},
		{"POST", "/stall?on=maybe"},
		{"POST", "/password?password=x"},
	} {
		if code, m := call(bad.method, bad.path); code != 400 || m["error"] == nil {
			t.Errorf("%s %s: %d %v, want 400 with an error", bad.method, bad.path, code, m)
		}
	}
	if code, _ := call("GET", "/reboot?seconds=1"); code != 405 {
		t.Errorf("GET /reboot: %d, want 405", code)
	}
}

func TestNoGoroutineOutlivesClose(t *testing.T) {
	base := runtime.NumGoroutine()
	func() {
		cam, err := sim.Start(sim.Config{ControlAddr: "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		nvr, err := sim.Start(sim.Config{Personality: sim.PersonalityNVR})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range []*sim.Device{cam, nvr} {
			c := newClient(t, d)
			if status, _ := c.login(devInfo, "admin", "hik12345"); status != 200 {
				t.Fatalf("login: %d", status)
			}
			rc := dialRTSP(t, d.RTSPAddr())
			if code := rc.describe("/Streaming/Channels/101", "admin", "hik12345"); code != 200 {
				t.Fatalf("RTSP: %d", code)
			}
			c.tr.CloseIdleConnections()
			_ = rc.c.Close()
		}
		// a request stuck in a stall, and a reboot still pending at Close
		cam.SetStall(true)
		stuck := make(chan string, 1)
		go func() {
			res, err := http.Get("http://" + cam.HTTPAddr() + devInfo)
			if err != nil {
				stuck <- ""
				return
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			stuck <- fmt.Sprintf("%s %v %.300s", res.Status, res.Header, b)
		}()
		eventually(t, "the stalled request to arrive", 5*time.Second, func() bool {
			return cam.Client("127.0.0.1").Requests[devInfo] == 3 // login = 2, then the stalled one
		})
		if err := nvr.Reboot(time.Hour); err != nil {
			t.Fatal(err)
		}
		if err := cam.Close(); err != nil {
			t.Fatalf("Close camera: %v", err)
		}
		if status := <-stuck; status != "" {
			t.Fatalf("stalled request got an answer: %s", status)
		}
		if err := nvr.Close(); err != nil {
			t.Fatalf("Close NVR: %v", err)
		}
		if err := nvr.Reboot(time.Second); !errors.Is(err, sim.ErrClosed) {
			t.Fatalf("Reboot after Close: %v, want ErrClosed", err)
		}
		http.DefaultClient.CloseIdleConnections()
	}()
	eventually(t, "goroutines back to baseline", 5*time.Second, func() bool {
		return runtime.NumGoroutine() <= base
	})
}
