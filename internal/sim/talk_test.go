package sim_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

const (
	talkBase   = "/ISAPI/System/TwoWayAudio/channels"
	talkOpen   = talkBase + "/1/open"
	talkClose  = talkBase + "/1/close"
	talkAudio  = talkBase + "/1/audioData"
	secondHost = "127.0.0.2" // a second client IP on the loopback
)

// talker is a hand-written voice-talk client: digest-authenticated requests from one source IP, and a raw
// audioData connection (headers, then raw bytes), as the package doc describes.
type talker struct {
	*authed
	d     *sim.Device
	local string // source IP
}

func newTalker(t *testing.T, d *sim.Device, srcIP string) *talker {
	t.Helper()
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(srcIP)}}
	tr := &http.Transport{DialContext: dialer.DialContext}
	c := &tclient{t: t, base: "http://" + d.HTTPAddr(), tr: tr, hc: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
	t.Cleanup(tr.CloseIdleConnections)
	return &talker{authed: &authed{tclient: c, ch: c.challengeFor(devInfo, "MD5"), user: "admin", pass: "hik12345"}, d: d, local: srcIP}
}

type talkSessionXML struct {
	XMLName   xml.Name
	SessionID string `xml:"sessionId"`
}

type talkChannelXML struct {
	XMLName xml.Name
	ID      string `xml:"id"`
	Enabled bool   `xml:"enabled"`
	Codec   struct {
		Opt   string `xml:"opt,attr"`
		Value string `xml:",chardata"`
	} `xml:"audioCompressionType"`
	Output string `xml:"audioOutputType"`
}

// open opens a session and returns its id.
func (tk *talker) open() string {
	tk.t.Helper()
	status, body := tk.get("PUT", talkOpen)
	if status != 200 {
		tk.t.Fatalf("PUT open: %d %s", status, body)
	}
	s := decode[talkSessionXML](tk.t, body)
	if s.XMLName.Local != "TwoWayAudioSession" || s.SessionID == "" {
		tk.t.Fatalf("open answer: %s", body)
	}
	return s.SessionID
}

func (tk *talker) close() {
	tk.t.Helper()
	status, body := tk.get("PUT", talkClose)
	if rs := decode[responseStatus](tk.t, body); status != 200 || rs.StatusCode != 1 {
		tk.t.Fatalf("PUT close: %d %s", status, body)
	}
}

// audioConn opens PUT audioData[?sessionId=] on its own connection with extra header lines, and returns
// the connection after the headers.
func (tk *talker) audioConn(query string, extra ...string) net.Conn {
	tk.t.Helper()
	path := talkAudio + query
	tk.nc++
	authz := digestAuthorization(tk.ch, "PUT", path, tk.user, tk.pass, tk.nc)
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(tk.local)}, Timeout: 5 * time.Second}
	conn, err := dialer.Dial("tcp", tk.d.HTTPAddr())
	if err != nil {
		tk.t.Fatal(err)
	}
	tk.t.Cleanup(func() { conn.Close() })
	hdr := "PUT " + path + " HTTP/1.1\r\nHost: " + tk.d.HTTPAddr() + "\r\nAuthorization: " + authz +
		"\r\nContent-Type: application/octet-stream\r\n"
	for _, e := range extra {
		hdr += e + "\r\n"
	}
	if _, err := io.WriteString(conn, hdr+"\r\n"); err != nil {
		tk.t.Fatal(err)
	}
	return conn
}

// answer reads an HTTP answer on a raw connection (within timeout).
func answer(t *testing.T, conn net.Conn, timeout time.Duration) (*http.Response, []byte, error) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(timeout))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return nil, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res, b, err
}

// closedByDevice waits until the device closed the connection (EOF), failing on data or timeout.
func closedByDevice(t *testing.T, conn net.Conn, timeout time.Duration) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(timeout))
	var b [64]byte
	n, err := conn.Read(b[:])
	if n > 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("want the device to close the audio connection: read %q, %v", b[:n], err)
	}
}

func talkEnabled(t *testing.T, a *talker) bool {
	t.Helper()
	twa := decode[twoWayAudioXML](t, a.getOK(talkBase))
	one := decode[talkChannelXML](t, a.getOK(talkBase+"/1"))
	if len(twa.Channels) != 1 || twa.Channels[0].Enabled != one.Enabled || one.ID != "1" {
		t.Fatalf("channel list %+v and channel %+v disagree", twa, one)
	}
	return one.Enabled
}

func tone(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	return b
}

func TestTalkSessionLifecycle(t *testing.T) {
	d := start(t, sim.Config{})
	a := newTalker(t, d, "127.0.0.1")
	b := newTalker(t, d, secondHost)

	caps := decode[talkChannelXML](t, a.getOK(talkBase+"/1/capabilities"))
	if !strings.Contains(caps.Codec.Opt, "G.711ulaw") || !strings.Contains(caps.Codec.Opt, "AAC") || caps.Output != "Speaker" {
		t.Fatalf("capabilities: %+v", caps)
	}
	if talkEnabled(t, a) {
		t.Fatal("enabled before any open")
	}
	sid := a.open()
	if !talkEnabled(t, a) {
		t.Fatal("enabled=false while a session is open")
	}
	// one session at a time: the second client is refused, the first keeps its session
	wantStatus(t, b.authed, "PUT", talkOpen, 403, 4, "invalidOperation")

	conn := a.audioConn("?sessionId=" + sid)
	audio := tone(3200)
	for i := 0; i < len(audio); i += 160 {
		if _, err := conn.Write(audio[i : i+160]); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "3200 bytes at the device", 5*time.Second, func() bool { return d.TalkClient("127.0.0.1").Bytes == 3200 })
	if got := d.TalkAudio(); !bytes.Equal(got, audio) {
		t.Fatalf("device kept %d bytes, not what was sent", len(got))
	}
	if s, ok := d.TalkSession(); !ok || s.ID != sid || s.Client != "127.0.0.1" || !s.Streaming {
		t.Fatalf("session %+v %v", s, ok)
	}
	// a second audioData for the same session is refused
	c2 := a.audioConn("")
	if res, _, err := answer(t, c2, 5*time.Second); err != nil || res.StatusCode != 403 {
		t.Fatalf("second audioData: %v %v", res, err)
	}

	a.close()
	closedByDevice(t, conn, 5*time.Second)
	if talkEnabled(t, a) {
		t.Fatal("enabled after close")
	}
	a.close() // close is accepted with nothing open
	b.open()  // the line is free again
	b.close()

	ca, cb := d.TalkClient("127.0.0.1"), d.TalkClient(secondHost)
	want := sim.TalkClientStats{Opens: 1, Closes: 2, ClosedSessions: 1, AudioConnections: 1, RefusedAudio: 1, Bytes: 3200}
	if ca != want {
		t.Errorf("client 1: %+v, want %+v", ca, want)
	}
	if want := (sim.TalkClientStats{Opens: 1, RefusedOpens: 1, Closes: 1, ClosedSessions: 1}); cb != want {
		t.Errorf("client 2: %+v, want %+v", cb, want)
	}
}

func TestTalkAudioRefusals(t *testing.T) {
	d := start(t, sim.Config{})
	a := newTalker(t, d, "127.0.0.1")
	check := func(what string, conn net.Conn, status, code int) {
		t.Helper()
		res, body, err := answer(t, conn, 5*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if rs := decode[responseStatus](t, body); res.StatusCode != status || rs.StatusCode != code {
			t.Fatalf("%s: HTTP %d statusCode %d, want %d %d", what, res.StatusCode, rs.StatusCode, status, code)
		}
	}
	check("audioData without a session", a.audioConn(""), 403, 4)
	sid := a.open()
	check("wrong sessionId", a.audioConn("?sessionId=x"+sid), 403, 4)
	check("chunked body", a.audioConn("?sessionId="+sid, "Transfer-Encoding: chunked"), 400, 6)
	// stock go2rtc sends Content-Length: 0 and then the audio: accepted, the bytes are audio
	conn := a.audioConn("?sessionId="+sid, "Content-Length: 0")
	if _, err := conn.Write(tone(800)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "audio after Content-Length: 0", 5*time.Second, func() bool { return d.TalkClient("127.0.0.1").Bytes == 800 })
	if got := d.TalkClient("127.0.0.1").RefusedAudio; got != 3 {
		t.Errorf("refused audio %d, want 3", got)
	}
}

func TestTalkIdleHangup(t *testing.T) {
	d := start(t, sim.Config{Talk: sim.TalkConfig{IdleHangup: 300 * time.Millisecond}})
	a := newTalker(t, d, "127.0.0.1")
	a.open()
	conn := a.audioConn("")
	// audio keeps the call up for longer than the idle time
	began := time.Now()
	var last time.Time
	for i := 0; i < 12; i++ {
		if _, err := conn.Write(tone(80)); err != nil {
			t.Fatal(err)
		}
		last = time.Now()
		time.Sleep(50 * time.Millisecond) // paces the audio (a slow talker); not synchronisation
	}
	if _, ok := d.TalkSession(); !ok {
		t.Fatalf("session ended while audio was coming (after %v)", time.Since(began))
	}
	// then silence: the device hangs up and plays its prompt
	closedByDevice(t, conn, 5*time.Second)
	if el := time.Since(last); el < 250*time.Millisecond {
		t.Fatalf("hung up %v after the last audio, want about 300 ms", el)
	}
	eventually(t, "prompt counted", 2*time.Second, func() bool { return d.TalkClient("127.0.0.1").Prompts == 1 })
	if _, ok := d.TalkSession(); ok || talkEnabled(t, a) {
		t.Fatal("session still open after the hang-up")
	}
	a.open() // the line is free
	a.close()
	if cs := d.TalkClient("127.0.0.1"); cs.Prompts != 1 || cs.Opens != 2 || cs.Bytes != 960 {
		t.Fatalf("%+v", cs)
	}
}

func TestTalkClientGoneKeepsLineBusy(t *testing.T) {
	clock := newFakeClock()
	d := start(t, sim.Config{Now: clock.Now, Talk: sim.TalkConfig{IdleHangup: 200 * time.Millisecond}})
	a := newTalker(t, d, "127.0.0.1")
	b := newTalker(t, d, secondHost)
	a.open()
	conn := a.audioConn("")
	if _, err := conn.Write(tone(320)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "audio", 5*time.Second, func() bool { return d.TalkClient("127.0.0.1").Bytes == 320 })
	conn.Close() // the client crashed: no close
	eventually(t, "audio connection gone", 5*time.Second, func() bool {
		s, ok := d.TalkSession()
		return ok && !s.Streaming
	})
	// no audio connection: no idle hang-up, the stale session blocks open for StaleTimeout (90 s)
	clock.Add(89 * time.Second)
	wantStatus(t, b.authed, "PUT", talkOpen, 403, 4, "invalidOperation")
	if !talkEnabled(t, b) {
		t.Fatal("stale session not reported as enabled")
	}
	clock.Add(2 * time.Second)
	b.open()
	if ca := d.TalkClient("127.0.0.1"); ca.StaleExpiries != 1 || ca.Prompts != 0 {
		t.Fatalf("%+v", ca)
	}
	b.close()
}

func TestTalkRefusalStyles(t *testing.T) {
	for _, tt := range []struct {
		style  string
		code   int
		sub    string
		noBody bool
	}{
		{"", 4, "invalidOperation", false},
		{sim.TalkRefuseInvalidOperation, 4, "invalidOperation", false},
		{sim.TalkRefuseDeviceBusy, 2, "deviceBusy", false},
		{sim.TalkRefusePlain403, 0, "", true},
	} {
		t.Run(tt.style, func(t *testing.T) {
			d := start(t, sim.Config{Talk: sim.TalkConfig{Refusal: tt.style}})
			a := newTalker(t, d, "127.0.0.1")
			a.open()
			status, body := a.get("PUT", talkOpen)
			if status != 403 {
				t.Fatalf("second open: %d", status)
			}
			if tt.noBody {
				if len(body) != 0 {
					t.Fatalf("body %s", body)
				}
			} else if rs := decode[responseStatus](t, body); rs.StatusCode != tt.code || rs.SubStatusCode != tt.sub {
				t.Fatalf("%+v", rs)
			}
			if cs := d.TalkClient("127.0.0.1"); cs.RefusedOpens != 1 || cs.Opens != 1 {
				t.Fatalf("%+v", cs)
			}
		})
	}
}

func TestTalkLocalCall(t *testing.T) {
	d := start(t, sim.Config{})
	a := newTalker(t, d, "127.0.0.1")
	if err := d.SetLocalTalk(true); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, a.authed, "PUT", talkOpen, 403, 4, "invalidOperation")
	if s, ok := d.TalkSession(); !ok || s.Client != sim.TalkLocalClient {
		t.Fatalf("%+v", s)
	}
	a.close() // "always close before open" cuts the door station's call
	if _, ok := d.TalkSession(); ok {
		t.Fatal("close did not end the local call")
	}
	a.open()
	if err := d.SetLocalTalk(true); err == nil {
		t.Fatal("local call started over a client's session")
	}
}

func TestTalkAnswerAudioData(t *testing.T) {
	d := start(t, sim.Config{Talk: sim.TalkConfig{AnswerAudioData: true}})
	a := newTalker(t, d, "127.0.0.1")
	a.open()
	conn := a.audioConn("")
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("%v %v", res, err)
	}
	if _, err := io.Copy(io.Discard, res.Body); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(tone(400)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "audio after the answer", 5*time.Second, func() bool { return d.TalkClient("127.0.0.1").Bytes == 400 })
}

// splitADTS splits an ADTS stream into frames.
func splitADTS(t *testing.T, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 7 || b[0] != 0xFF || b[1]&0xF0 != 0xF0 {
			t.Fatalf("fixture: lost ADTS sync with %d bytes left", len(b))
		}
		n := int(b[3]&0x03)<<11 | int(b[4])<<3 | int(b[5])>>5
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

func lengthPrefixed(frames ...[]byte) []byte {
	var out []byte
	for _, f := range frames {
		out = binary.BigEndian.AppendUint32(out, uint32(len(f)))
		out = append(out, f...)
	}
	return out
}

func TestTalkAACFraming(t *testing.T) {
	adts, err := os.ReadFile("../talk/testdata/tone16k.aac") // ffmpeg: 440 Hz, AAC-LC 16 kHz mono
	if err != nil {
		t.Fatal(err)
	}
	frames := splitADTS(t, adts)
	d := start(t, sim.Config{TalkCodec: "AAC"})
	a := newTalker(t, d, "127.0.0.1")
	a.open()
	conn := a.audioConn("")
	// length-prefixed frames, written in pieces that cut frames and prefixes
	stream := lengthPrefixed(frames...)
	for i := 0; i < len(stream); i += 37 {
		if _, err := conn.Write(stream[i:min(i+37, len(stream))]); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "AAC at the device", 5*time.Second, func() bool { return d.TalkClient("127.0.0.1").Bytes == len(stream) })
	if cs := d.TalkClient("127.0.0.1"); cs.FramingErrors != 0 {
		t.Fatalf("framing errors on ffmpeg's ADTS: %+v", cs)
	}
	if got := d.TalkAudio(); !bytes.Equal(got, adts) {
		t.Fatalf("device kept %d bytes of AAC, want the %d of the fixture", len(got), len(adts))
	}

	// Bare ADTS without the length prefix (a client that forgot it): one loss of sync, then good frames
	// are found again.
	d.ResetTalkAudio()
	bad := append(append([]byte(nil), frames[0]...), frames[1]...)
	good := lengthPrefixed(frames[2], frames[3])
	if _, err := conn.Write(append(bad, good...)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "framing error counted", 5*time.Second, func() bool { return d.TalkClient("127.0.0.1").FramingErrors >= 1 })
	eventually(t, "good frames after the bad ones", 5*time.Second, func() bool {
		return bytes.HasSuffix(d.TalkAudio(), append(append([]byte(nil), frames[2]...), frames[3]...))
	})
	if fe := d.TalkClient("127.0.0.1").FramingErrors; fe != 1 {
		t.Fatalf("framing errors %d, want 1 (one loss of sync)", fe)
	}

	// 8 kHz AAC is refused by the framing check (the device plays 16 kHz talk only)
	wrong := append([]byte(nil), frames[4]...)
	wrong[2] = wrong[2]&^0x3C | 11<<2 // sampling frequency index 11: 8000 Hz
	if _, err := conn.Write(append(lengthPrefixed(wrong), lengthPrefixed(frames[5])...)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "8 kHz frame refused", 5*time.Second, func() bool { return d.TalkClient("127.0.0.1").FramingErrors == 2 })
}

func TestTalkConnectionsEndWithDevice(t *testing.T) {
	base := runtime.NumGoroutine()
	for _, how := range []string{"reboot", "close"} {
		t.Run(how, func(t *testing.T) {
			d, err := sim.Start(sim.Config{})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			a := newTalker(t, d, "127.0.0.1")
			a.open()
			conn := a.audioConn("")
			if _, err := conn.Write(tone(160)); err != nil {
				t.Fatal(err)
			}
			eventually(t, "streaming", 5*time.Second, func() bool { return d.TalkClient("127.0.0.1").Bytes == 160 })
			switch how {
			case "reboot":
				if err := d.Reboot(50 * time.Millisecond); err != nil {
					t.Fatal(err)
				}
				closedByDevice(t, conn, 5*time.Second)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				select {
				case <-d.Up():
				case <-ctx.Done():
					t.Fatal("device did not come back")
				}
				if _, ok := d.TalkSession(); ok {
					t.Fatal("talk session survived the reboot")
				}
			case "close":
				if err := d.Close(); err != nil {
					t.Fatal(err)
				}
				closedByDevice(t, conn, 5*time.Second)
			}
		})
	}
	eventually(t, fmt.Sprintf("goroutines back to %d", base), 5*time.Second, func() bool {
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
		return runtime.NumGoroutine() <= base
	})
}
