package sim_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

// httpExchange sends a GET without credentials on c and returns the status
// line of the answer, or the read error (a timeout while frozen).
func httpExchange(c net.Conn, br *bufio.Reader, addr string, timeout time.Duration) (string, error) {
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := fmt.Fprintf(c, "GET /ISAPI/System/deviceInfo HTTP/1.1\r\nHost: %s\r\n\r\n", addr); err != nil {
		return "", err
	}
	status, err := br.ReadString('\n')
	if err != nil {
		return "", err
	}
	for { // headers and body (Content-Length)
		line, err := br.ReadString('\n')
		if err != nil {
			return "", err
		}
		var n int
		if _, perr := fmt.Sscanf(strings.ToLower(line), "content-length: %d", &n); perr == nil && n > 0 {
			defer func() { _, _ = io.CopyN(io.Discard, br, int64(n)) }()
		}
		if line == "\r\n" {
			return strings.TrimSpace(status), nil
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// playRTSP plays channel 101 on a new connection and returns it once PLAY
// is answered.
func playRTSP(t *testing.T, d *sim.Device) (*rtspConn, func(method, path string) string) {
	t.Helper()
	r := dialRTSP(t, d.RTSPAddr())
	path := "/Streaming/Channels/101"
	code, h, err := r.request("DESCRIBE", path, "")
	if err != nil || code != 401 {
		t.Fatalf("DESCRIBE without credentials: %d, %v; want 401", code, err)
	}
	ch := parseChallenge(t, h.Get("WWW-Authenticate"))
	authz := func(method, p string) string {
		uri := "rtsp://" + r.addr + p
		ha1 := hexHash("MD5", "admin:"+ch.params["realm"]+":hik12345")
		ha2 := hexHash("MD5", method+":"+uri)
		return fmt.Sprintf(`Digest username="admin", realm=%q, nonce=%q, uri=%q, response=%q`, ch.params["realm"], ch.params["nonce"], uri,
			hexHash("MD5", ha1+":"+ch.params["nonce"]+":"+ha2))
	}
	if code, _, err = r.request("DESCRIBE", path, authz("DESCRIBE", path)); err != nil || code != 200 {
		t.Fatalf("DESCRIBE: %d, %v", code, err)
	}
	setup := path + "/trackID=1"
	r.cseq++
	req := fmt.Sprintf("SETUP rtsp://%s%s RTSP/1.0\r\nCSeq: %d\r\nAuthorization: %s\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n", r.addr, setup, r.cseq, authz("SETUP", setup))
	if _, err := io.WriteString(r.c, req); err != nil {
		t.Fatal(err)
	}
	status, err := r.br.ReadString('\n')
	if err != nil || !strings.Contains(status, " 200 ") {
		t.Fatalf("SETUP: %q, %v", status, err)
	}
	session := ""
	for {
		line, err := r.br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if v, ok := strings.CutPrefix(line, "Session: "); ok {
			session, _, _ = strings.Cut(strings.TrimSpace(v), ";")
		}
		if line == "\r\n" {
			break
		}
	}
	r.cseq++
	req = fmt.Sprintf("PLAY rtsp://%s%s RTSP/1.0\r\nCSeq: %d\r\nAuthorization: %s\r\nSession: %s\r\n\r\n", r.addr, path, r.cseq, authz("PLAY", path), session)
	if _, err := io.WriteString(r.c, req); err != nil {
		t.Fatal(err)
	}
	if status, err = r.br.ReadString('\n'); err != nil || !strings.Contains(status, " 200 ") {
		t.Fatalf("PLAY: %q, %v", status, err)
	}
	for {
		line, err := r.br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "\r\n" {
			break
		}
	}
	return r, authz
}

// readInterleavedFor reads interleaved packets for d and returns how many
// came, and the first error other than the deadline.
func readInterleavedFor(r *rtspConn, d time.Duration) (int, error) {
	_ = r.c.SetReadDeadline(time.Now().Add(d))
	n := 0
	for {
		var h [4]byte
		if _, err := io.ReadFull(r.br, h[:]); err != nil {
			if isTimeout(err) {
				return n, nil
			}
			return n, err
		}
		if h[0] != '$' {
			return n, fmt.Errorf("not an interleaved packet: %q", h[:])
		}
		if _, err := io.CopyN(io.Discard, r.br, int64(h[2])<<8|int64(h[3])); err != nil {
			if isTimeout(err) {
				return n, nil
			}
			return n, err
		}
		n++
	}
}

// While frozen the device answers nothing on an open ISAPI connection, a new
// connection is accepted but not answered, and a playing RTSP session gets
// no packets; nothing is closed. When the freeze ends the waiting requests
// are answered and RTP flows again, on the same connections.
func TestFreezeSilentThenResumesOnSameConnections(t *testing.T) {
	d := start(t, sim.Config{})
	addr := d.HTTPAddr()
	old, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	oldBR := bufio.NewReader(old)
	if status, err := httpExchange(old, oldBR, addr, 5*time.Second); err != nil || !strings.Contains(status, "401") {
		t.Fatalf("before the freeze: %q, %v; want 401", status, err)
	}
	rtsp, _ := playRTSP(t, d)
	if n, err := readInterleavedFor(rtsp, 500*time.Millisecond); err != nil || n == 0 {
		t.Fatalf("before the freeze: %d packets, %v", n, err)
	}

	const freeze = 1500 * time.Millisecond
	if at := d.ThawedAt(); !at.IsZero() {
		t.Fatalf("ThawedAt before any freeze: %v, want zero", at)
	}
	if err := d.Freeze(freeze); err != nil {
		t.Fatal(err)
	}
	frozenAt := time.Now()
	if frozen, _ := d.Frozen(); !frozen {
		t.Fatal("Frozen() = false right after Freeze")
	}
	// what was already on its way may still arrive; then nothing
	if _, err := readInterleavedFor(rtsp, 100*time.Millisecond); err != nil {
		t.Fatalf("RTSP during the freeze: %v (want the connection open)", err)
	}
	if n, err := readInterleavedFor(rtsp, 500*time.Millisecond); err != nil || n != 0 {
		t.Fatalf("RTSP during the freeze: %d packets, %v; want none, connection open", n, err)
	}
	if _, err := httpExchange(old, oldBR, addr, 200*time.Millisecond); !isTimeout(err) {
		t.Fatalf("ISAPI on the open connection during the freeze: %v, want no answer (timeout)", err)
	}
	fresh, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("connect during the freeze: %v (the device accepts, it does not answer)", err)
	}
	defer fresh.Close()
	freshBR := bufio.NewReader(fresh)
	if _, err := httpExchange(fresh, freshBR, addr, 200*time.Millisecond); !isTimeout(err) {
		t.Fatalf("ISAPI on a new connection during the freeze: %v, want no answer (timeout)", err)
	}

	// the freeze ends: the request sent on the new connection is answered,
	// RTP resumes on the same RTSP connection
	_, thawed := d.Frozen()
	select {
	case <-thawed:
	case <-time.After(10 * time.Second):
		t.Fatal("freeze did not end")
	}
	if el := time.Since(frozenAt); el < freeze-50*time.Millisecond {
		t.Errorf("freeze ended after %v, want %v", el, freeze)
	}
	if at := d.ThawedAt(); at.Before(frozenAt.Add(freeze-50*time.Millisecond)) || at.After(time.Now()) {
		t.Errorf("ThawedAt %v after the freeze began, want about %v (and not after the channel closed)", at.Sub(frozenAt), freeze)
	}
	_ = fresh.SetDeadline(time.Now().Add(5 * time.Second))
	status, err := freshBR.ReadString('\n')
	if err != nil || !strings.Contains(status, "401") {
		t.Fatalf("answer after the freeze on the connection opened during it: %q, %v", status, err)
	}
	if n, err := readInterleavedFor(rtsp, time.Second); err != nil || n == 0 {
		t.Fatalf("RTSP after the freeze: %d packets, %v; want packets on the same connection", n, err)
	}
	// the old ISAPI connection got its answer late; it still works
	_ = old.SetDeadline(time.Now().Add(5 * time.Second))
	if status, err := oldBR.ReadString('\n'); err != nil || !strings.Contains(status, "401") {
		t.Fatalf("late answer on the old connection: %q, %v", status, err)
	}
}

func TestFreezeRejectsNegativeAndAfterClose(t *testing.T) {
	d, err := sim.Start(sim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Freeze(-time.Second); err == nil {
		t.Error("Freeze(-1s) = nil, want an error")
	}
	if err := d.Freeze(time.Hour); err != nil {
		t.Fatal(err)
	}
	// Close during a freeze returns (nothing waits for the thaw)
	done := make(chan error, 1)
	go func() { done <- d.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close during a freeze did not return")
	}
	if err := d.Freeze(time.Second); !errors.Is(err, sim.ErrClosed) {
		t.Errorf("Freeze after Close = %v, want ErrClosed", err)
	}
}
