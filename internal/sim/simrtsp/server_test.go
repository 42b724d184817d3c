package simrtsp_test

import (
	"encoding/base64"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim/simrtsp"
)

func TestOptionsNeedsNoAuth(t *testing.T) {
	ts := startServer(t, simrtsp.Config{})
	c := dial(t, ts.addr)
	r := c.do("OPTIONS", c.base+"/Streaming/Channels/101")
	if r.code != 200 {
		t.Fatalf("OPTIONS: %d", r.code)
	}
	for _, m := range []string{"DESCRIBE", "SETUP", "PLAY", "TEARDOWN", "GET_PARAMETER", "SET_PARAMETER"} {
		if !strings.Contains(r.header.Get("Public"), m) {
			t.Errorf("Public %q lacks %s", r.header.Get("Public"), m)
		}
	}
}

func TestDigest(t *testing.T) {
	ts := startServer(t, simrtsp.Config{})
	c := dial(t, ts.addr)
	path := "/Streaming/Channels/101"

	r := c.do("DESCRIBE", c.base+path)
	ch := r.header.Get("WWW-Authenticate")
	if r.code != 401 || !strings.HasPrefix(ch, "Digest ") || c.realm != "IP Camera(K2195)" || c.nonce == "" {
		t.Fatalf("unauthenticated DESCRIBE: %d %q", r.code, ch)
	}
	if strings.Contains(ch, "qop") {
		t.Errorf("challenge offers qop by default: %q", ch)
	}
	if n := len(ts.auth.calls); n != 0 {
		t.Fatalf("OnAuth called %d times for a request without credentials", n)
	}

	c.pass = "wrong"
	if r := c.do("DESCRIBE", c.base+path); r.code != 401 {
		t.Fatalf("wrong password: %d, want 401", r.code)
	}
	if got := ts.auth.count("fail"); got != 1 {
		t.Errorf("OnAuth(false) called %d times, want 1", got)
	}
	if ts.auth.calls[0] != "127.0.0.1 fail" {
		t.Errorf("OnAuth got %q, want remote IP 127.0.0.1", ts.auth.calls[0])
	}
	c.user = "nobody"
	if r := c.do("DESCRIBE", c.base+path); r.code != 401 {
		t.Fatalf("unknown user: %d, want 401", r.code)
	}
	if st := ts.Stats(); st.AuthFailures != 2 {
		t.Errorf("AuthFailures = %d, want 2", st.AuthFailures)
	}

	c.user, c.pass = testUser, testPass
	good := c.nonce
	c.nonce = "00" + good[2:] // forged nonce: stale, not a failed login
	r = c.do("DESCRIBE", c.base+path)
	if r.code != 401 || !strings.Contains(r.header.Get("WWW-Authenticate"), `stale="TRUE"`) {
		t.Errorf("forged nonce: %d %q, want 401 stale=TRUE", r.code, r.header.Get("WWW-Authenticate"))
	}
	if st := ts.Stats(); st.AuthFailures != 2 {
		t.Errorf("a stale nonce counted as a failed login: AuthFailures = %d", st.AuthFailures)
	}
	r = c.do("DESCRIBE", c.base+path) // fresh nonce from the stale challenge
	if r.code != 200 {
		t.Fatalf("good credentials: %d", r.code)
	}
	if ts.auth.count("ok") != 1 {
		t.Errorf("OnAuth(true) called %d times, want 1", ts.auth.count("ok"))
	}
}

func TestDigestQOP(t *testing.T) {
	ts := startServer(t, simrtsp.Config{DigestQOP: true, Realm: "IP Camera(C6251)"})
	c := dial(t, ts.addr)
	r := c.do("DESCRIBE", c.base+"/Streaming/Channels/101")
	if !strings.Contains(r.header.Get("WWW-Authenticate"), `qop="auth"`) || c.realm != "IP Camera(C6251)" {
		t.Fatalf("challenge %q", r.header.Get("WWW-Authenticate"))
	}
	// Answer with qop=auth, computed here from RFC 2617 3.2.2.1.
	uri := c.base + "/Streaming/Channels/101"
	ha1 := md5hex(testUser + ":" + c.realm + ":" + testPass)
	resp := md5hex(ha1 + ":" + c.nonce + ":00000001:abcdef:auth:" + md5hex("DESCRIBE:"+uri))
	nonce := c.nonce
	c.nonce = "" // send the header by hand
	r = c.do("DESCRIBE", uri, `Authorization: Digest username="admin", realm="IP Camera(C6251)", nonce="`+nonce+
		`", uri="`+uri+`", qop=auth, nc=00000001, cnonce="abcdef", response="`+resp+`", algorithm="MD5"`)
	if r.code != 200 {
		t.Fatalf("qop=auth answer: %d", r.code)
	}
}

func TestAllowRefusesLockedIP(t *testing.T) {
	locked := make(chan bool, 1)
	locked <- true
	isLocked := func() bool { v := <-locked; locked <- v; return v }
	ts := startServer(t, simrtsp.Config{Allow: func(ip string) bool { return !isLocked() }})
	c := dial(t, ts.addr)
	c.authenticate("/Streaming/Channels/101")
	if r := c.do("DESCRIBE", c.base+"/Streaming/Channels/101"); r.code != 401 {
		t.Fatalf("locked IP with good credentials: %d, want 401", r.code)
	}
	if n := len(ts.auth.calls); n != 0 {
		t.Errorf("OnAuth called %d times for a locked IP", n)
	}
	<-locked
	locked <- false
	if r := c.do("DESCRIBE", c.base+"/Streaming/Channels/101"); r.code != 200 {
		t.Fatalf("unlocked: %d, want 200", r.code)
	}
}

var b64re = regexp.MustCompile(`sprop-[a-z-]+=([A-Za-z0-9+/=,]+)`)

func TestSDP(t *testing.T) {
	ts := startServer(t, simrtsp.Config{})
	c := dial(t, ts.addr)
	c.authenticate("/Streaming/Channels/101")
	cases := []struct {
		path    string
		want    []string
		nalType func(b []byte) byte
		types   []byte
	}{
		{"/Streaming/Channels/101", []string{"m=video 0 RTP/AVP 96", "a=rtpmap:96 H264/90000", "packetization-mode=1",
			"m=audio 0 RTP/AVP 0", "a=rtpmap:0 PCMU/8000"}, func(b []byte) byte { return b[0] & 31 }, []byte{7, 8}},
		{"/Streaming/Channels/102", []string{"a=rtpmap:8 PCMA/8000", "m=audio 0 RTP/AVP 8"},
			func(b []byte) byte { return b[0] & 31 }, []byte{7, 8}},
		{"/Streaming/Channels/201", []string{"a=rtpmap:96 H265/90000", "a=rtpmap:104 mpeg4-generic/16000/1",
			"config=1408", "sizelength=13", "indexlength=3", "indexdeltalength=3", "mode=AAC-hbr"},
			func(b []byte) byte { return b[0] >> 1 & 63 }, []byte{32, 33, 34}},
	}
	for _, tc := range cases {
		r := c.do("DESCRIBE", c.base+tc.path, "Accept: application/sdp")
		if r.code != 200 || r.header.Get("Content-Type") != "application/sdp" {
			t.Fatalf("DESCRIBE %s: %d %q", tc.path, r.code, r.header.Get("Content-Type"))
		}
		if cb := r.header.Get("Content-Base"); cb != c.base+tc.path+"/" {
			t.Errorf("Content-Base %q", cb)
		}
		for _, w := range append([]string{"v=0\r\n", "s=Media Presentation\r\n", "a=control:trackID=1\r\n"}, tc.want...) {
			if !strings.Contains(r.body, w) {
				t.Errorf("%s: SDP lacks %q:\n%s", tc.path, w, r.body)
			}
		}
		var got []byte
		for _, m := range b64re.FindAllStringSubmatch(r.body, -1) {
			for _, p := range strings.Split(m[1], ",") {
				b, err := base64.StdEncoding.DecodeString(p)
				if err != nil || len(b) < 2 {
					t.Fatalf("%s: bad parameter set %q: %v", tc.path, p, err)
				}
				got = append(got, tc.nalType(b))
			}
		}
		if string(got) != string(tc.types) {
			t.Errorf("%s: parameter set NAL types %v, want %v", tc.path, got, tc.types)
		}
	}
	r := c.do("DESCRIBE", c.base+"/Streaming/Channels/301")
	if strings.Contains(r.body, "m=audio") || !strings.Contains(r.body, "a=control:trackID=1") {
		t.Errorf("video-only stream SDP:\n%s", r.body)
	}
}

func TestPaths(t *testing.T) {
	ts := startServer(t, simrtsp.Config{})
	c := dial(t, ts.addr)
	c.authenticate("/Streaming/Channels/101")
	for path, want := range map[string]int{
		"/Streaming/Channels/101":                              200,
		"/Streaming/Channels/101/":                             200,
		"/streaming/channels/101?transportmode=unicast":        200,
		"/ISAPI/Streaming/channels/101":                        200,
		"/ISAPI/Streaming/Channels/201?profile=Profile_1":      200,
		"/Streaming/Channels/102":                              200,
		"/Streaming/Channels/103":                              404,
		"/Streaming/Channels/1011":                             404,
		"/Streaming/Channels":                                  404,
		"/ISAPI/Streaming/channels/101/trackID=1":              404,
		"/Streaming/Channels/101/../../Streaming/Channels/999": 404,
	} {
		if r := c.do("DESCRIBE", c.base+path); r.code != want {
			t.Errorf("DESCRIBE %s: %d, want %d", path, r.code, want)
		}
	}
}

func TestSetupErrors(t *testing.T) {
	ts := startServer(t, simrtsp.Config{MaxSessions: 1})
	c := dial(t, ts.addr)
	c.authenticate("/Streaming/Channels/101")
	base := c.base + "/Streaming/Channels/101"
	if r := c.do("SETUP", base+"/trackID=1", "Transport: RTP/AVP;unicast;client_port=5000-5001"); r.code != 461 {
		t.Errorf("UDP-only SETUP: %d, want 461", r.code)
	}
	if r := c.do("SETUP", c.base+"/Streaming/Channels/301/trackID=2", "Transport: RTP/AVP/TCP;unicast;interleaved=2-3"); r.code != 404 {
		t.Errorf("SETUP of a missing audio track: %d, want 404", r.code)
	}
	c.session = "12345"
	if r := c.do("PLAY", base); r.code != 454 {
		t.Errorf("PLAY with an unknown session: %d, want 454", r.code)
	}
	c.session = ""
	// First transport UDP, second TCP: the TCP one is chosen.
	r := c.do("SETUP", base+"/trackID=1", "Transport: RTP/AVP;unicast;client_port=5000-5001,RTP/AVP/TCP;unicast;interleaved=4-5")
	if r.code != 200 || !strings.HasPrefix(r.header.Get("Transport"), "RTP/AVP/TCP;unicast;interleaved=4-5") {
		t.Fatalf("SETUP: %d %q", r.code, r.header.Get("Transport"))
	}
	if !regexp.MustCompile(`^\d+;timeout=60$`).MatchString(r.header.Get("Session")) {
		t.Errorf("Session header %q, want <id>;timeout=60", r.header.Get("Session"))
	}
	if st := ts.Stats(); st.ActiveSessions != 1 || st.TotalSessions != 1 {
		t.Errorf("stats after SETUP: %+v", st)
	}

	c2 := dial(t, ts.addr)
	c2.authenticate("/Streaming/Channels/101")
	if r := c2.do("SETUP", base+"/trackID=1", "Transport: RTP/AVP/TCP;unicast;interleaved=0-1"); r.code != 453 {
		t.Errorf("SETUP beyond MaxSessions: %d, want 453", r.code)
	}

	c.session, _, _ = strings.Cut(r.header.Get("Session"), ";")
	if r := c.do("GET_PARAMETER", base); r.code != 200 || !strings.HasPrefix(r.header.Get("Session"), c.session) {
		t.Errorf("GET_PARAMETER keep-alive: %d %q", r.code, r.header.Get("Session"))
	}
	if r := c.do("TEARDOWN", base); r.code != 200 {
		t.Errorf("TEARDOWN: %d", r.code)
	}
	if st := ts.Stats(); st.ActiveSessions != 0 {
		t.Errorf("ActiveSessions after TEARDOWN = %d", st.ActiveSessions)
	}
	if r := c2.do("SETUP", base+"/trackID=1", "Transport: RTP/AVP/TCP;unicast;interleaved=0-1"); r.code != 200 {
		t.Errorf("SETUP after the other session ended: %d, want 200", r.code)
	}
}

// TestPlay checks the RTP a client receives: PLAY headers, payload types,
// sequence continuity, 90 kHz timestamps stepping one frame, marker bits, FU-A.
func TestPlay(t *testing.T) {
	ts := startServer(t, simrtsp.Config{})
	c := dial(t, ts.addr)
	r := c.play("/Streaming/Channels/101", 2)
	if r.header.Get("Range") != "npt=now-" {
		t.Errorf("Range %q", r.header.Get("Range"))
	}
	info := r.header.Get("RTP-Info")
	m := regexp.MustCompile(`^url=[^;]+/trackID=1;seq=(\d+);rtptime=(\d+),url=[^;]+/trackID=2;seq=(\d+);rtptime=(\d+)$`).FindStringSubmatch(info)
	if m == nil {
		t.Fatalf("RTP-Info %q", info)
	}
	var video, audio []rtp.Packet
	var fuStarts, fuEnds int
	units := 0
	for units < 30 || fuStarts < 2 || len(audio) < 20 {
		ch, b, err := c.readFrame()
		if err != nil {
			t.Fatal(err)
		}
		if ch == 1 || ch == 3 {
			continue // RTCP
		}
		var p rtp.Packet
		if err := p.Unmarshal(b); err != nil {
			t.Fatalf("channel %d: %v", ch, err)
		}
		if len(p.Payload) > simrtsp.MaxPayload {
			t.Fatalf("payload of %d bytes", len(p.Payload))
		}
		switch ch {
		case 0:
			if p.PayloadType != 96 {
				t.Fatalf("video PT %d", p.PayloadType)
			}
			if p.Payload[0]&31 == 28 {
				if p.Payload[1]&0x80 != 0 {
					fuStarts++
				}
				if p.Payload[1]&0x40 != 0 {
					fuEnds++
				}
			}
			if p.Marker {
				units++
			}
			video = append(video, p)
		case 2:
			if p.PayloadType != 0 || len(p.Payload) != 160 {
				t.Fatalf("audio PT %d, %d bytes", p.PayloadType, len(p.Payload))
			}
			audio = append(audio, p)
		default:
			t.Fatalf("frame on channel %d", ch)
		}
	}
	if got := video[0].SequenceNumber; m[1] != itoa(int(got)) || m[2] != itoa(int(video[0].Timestamp)) {
		t.Errorf("first video packet seq %d ts %d, RTP-Info %q", got, video[0].Timestamp, info)
	}
	if m[3] != itoa(int(audio[0].SequenceNumber)) || m[4] != itoa(int(audio[0].Timestamp)) {
		t.Errorf("first audio packet seq %d ts %d, RTP-Info %q", audio[0].SequenceNumber, audio[0].Timestamp, info)
	}
	if fuStarts == 0 || fuStarts != fuEnds {
		t.Errorf("FU-A starts %d, ends %d", fuStarts, fuEnds)
	}
	checkTrack(t, "video", video, 3600)
	checkTrack(t, "audio", audio, 160)
	if st := ts.Stats(); st.PacketsSent < uint64(len(video)+len(audio)) || st.ActiveSessions != 1 {
		t.Errorf("stats %+v after %d packets", st, len(video)+len(audio))
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// checkTrack: consecutive sequence numbers; timestamps step by step between
// marker-terminated access units and stay the same within one.
func checkTrack(t *testing.T, name string, ps []rtp.Packet, step uint32) {
	t.Helper()
	var units int
	for i := 1; i < len(ps); i++ {
		prev, p := ps[i-1], ps[i]
		if p.SequenceNumber != prev.SequenceNumber+1 {
			t.Fatalf("%s: seq %d after %d", name, p.SequenceNumber, prev.SequenceNumber)
		}
		if p.SSRC != prev.SSRC {
			t.Fatalf("%s: SSRC changed", name)
		}
		newUnit := name == "audio" || prev.Marker
		switch {
		case newUnit && p.Timestamp != prev.Timestamp+step:
			t.Fatalf("%s: packet %d ts %d after %d (marker %v), want +%d", name, i, p.Timestamp, prev.Timestamp, prev.Marker, step)
		case !newUnit && p.Timestamp != prev.Timestamp:
			t.Fatalf("%s: ts changed inside an access unit at packet %d", name, i)
		}
		if newUnit {
			units++
		}
	}
	if units < 10 {
		t.Errorf("%s: only %d units", name, units)
	}
}

// TestStallKeepsRTCP: while stalled the TCP connection stays open and RTCP
// sender reports keep coming with a frozen packet count, but no RTP arrives.
// After the stall, video resumes at a key frame with the next sequence number.
func TestStallKeepsRTCP(t *testing.T) {
	ts := startServer(t, simrtsp.Config{RTCPInterval: 100 * time.Millisecond})
	c := dial(t, ts.addr)
	c.play("/Streaming/Channels/101", 2)
	var lastVideo rtp.Packet
	srs := 0
	for srs < 2 { // some RTP and RTCP before the stall
		ch, b, err := c.readFrame()
		if err != nil {
			t.Fatal(err)
		}
		switch ch {
		case 0:
			if err := lastVideo.Unmarshal(b); err != nil {
				t.Fatal(err)
			}
		case 1:
			srs++
		}
	}
	ts.SetStall(true)
	before := ts.Stats().PacketsSent
	// Skip until the first SR after the stall (RTP in flight may precede it),
	// then require 4 more SRs with no RTP between them.
	srs = 0
	var frozen uint32
	for srs < 5 {
		ch, b, err := c.readFrame()
		if err != nil {
			t.Fatal(err)
		}
		switch ch {
		case 0, 2:
			if srs > 0 {
				t.Fatalf("RTP on channel %d during the stall after %d sender reports", ch, srs)
			}
			if ch == 0 {
				if err := lastVideo.Unmarshal(b); err != nil {
					t.Fatal(err)
				}
			}
		case 1:
			if len(b) != 28 || b[1] != 200 {
				t.Fatalf("RTCP on channel 1 is not a sender report: % x", b)
			}
			count := uint32(b[20])<<24 | uint32(b[21])<<16 | uint32(b[22])<<8 | uint32(b[23])
			if srs > 0 && count != frozen {
				t.Fatalf("SR packet count moved during the stall: %d -> %d", frozen, count)
			}
			frozen = count
			srs++
		}
	}
	if after := ts.Stats().PacketsSent; after-before > 200 {
		t.Errorf("PacketsSent grew by %d during the stall", after-before)
	}
	ts.SetStall(false)
	for {
		ch, b, err := c.readFrame()
		if err != nil {
			t.Fatal(err)
		}
		if ch != 0 {
			continue
		}
		var p rtp.Packet
		if err := p.Unmarshal(b); err != nil {
			t.Fatal(err)
		}
		if p.SequenceNumber != lastVideo.SequenceNumber+1 {
			t.Errorf("video seq after stall %d, want %d", p.SequenceNumber, lastVideo.SequenceNumber+1)
		}
		if typ := p.Payload[0] & 31; typ != 7 {
			t.Errorf("video resumed with NAL type %d, want SPS (7) of a key frame", typ)
		}
		if p.Timestamp <= lastVideo.Timestamp {
			t.Errorf("video ts after stall %d, not after %d", p.Timestamp, lastVideo.Timestamp)
		}
		break
	}
}

// TestLoop serves a 1 s clip at 50 fps, so it loops every 0.5 s, and checks
// that sequence numbers and timestamps run on across the loops.
func TestLoop(t *testing.T) {
	dir, err := simrtsp.MediaDir()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, simrtsp.FileH264Sub))
	if err != nil {
		t.Fatal(err)
	}
	// Cut after the first GOP: at the 26th AUD (00 00 00 01 09).
	aud := []byte{0, 0, 0, 1, 9}
	cut, n := 0, 0
	for i := 0; i+len(aud) <= len(data); i++ {
		if string(data[i:i+len(aud)]) == string(aud) {
			if n++; n == 26 {
				cut = i
				break
			}
		}
	}
	if cut == 0 {
		t.Fatalf("found only %d AUDs", n)
	}
	v, err := simrtsp.NewVideo(simrtsp.CodecH264, data[:cut])
	if err != nil {
		t.Fatal(err)
	}
	if v.Frames() != 25 {
		t.Fatalf("clip has %d frames, want 25", v.Frames())
	}
	ts := startServer(t, simrtsp.Config{})
	if err := ts.AddPath("/clip", simrtsp.Stream{Video: v, FPS: 50}); err != nil {
		t.Fatal(err)
	}
	c := dial(t, ts.addr)
	c.play("/clip", 1)
	var ps []rtp.Packet
	units := 0
	for units < 60 { // 2.4 loops
		ch, b, err := c.readFrame()
		if err != nil {
			t.Fatal(err)
		}
		if ch != 0 {
			continue
		}
		var p rtp.Packet
		if err := p.Unmarshal(b); err != nil {
			t.Fatal(err)
		}
		if p.Marker {
			units++
		}
		ps = append(ps, p)
	}
	checkTrack(t, "video", ps, 1800)
}

func TestDropAllAndRefuse(t *testing.T) {
	ts := startServer(t, simrtsp.Config{})
	c := dial(t, ts.addr)
	c.play("/Streaming/Channels/102", 2)
	if _, _, err := c.readFrame(); err != nil {
		t.Fatal(err)
	}
	ts.DropAll()
	var err error
	for deadline := time.Now().Add(5 * time.Second); err == nil && time.Now().Before(deadline); {
		_, _, err = c.readFrame()
	}
	if err == nil {
		t.Fatal("connection still open 5 s after DropAll")
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection not closed by DropAll: %v", err)
	}
	waitFor(t, 5*time.Second, "sessions to end", func() bool {
		st := ts.Stats()
		return st.ActiveSessions == 0 && st.Connections == 0
	})

	ts.SetRefuse(true)
	// The reset may even reach the client before its connect completes.
	if nc, err := net.Dial("tcp", ts.addr); err == nil {
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.WriteString(nc, "OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n")
		if _, err := nc.Read(make([]byte, 1)); err == nil || (errors.As(err, &ne) && ne.Timeout()) {
			t.Fatalf("refused connection read: %v, want EOF or reset", err)
		}
	} else if !strings.Contains(err.Error(), "reset") {
		t.Fatalf("dial while refusing: %v, want connection reset", err)
	}

	ts.SetRefuse(false)
	c2 := dial(t, ts.addr)
	if r := c2.do("OPTIONS", "*"); r.code != 200 {
		t.Errorf("OPTIONS after refuse ended: %d", r.code)
	}
	if st := ts.Stats(); st.TotalSessions != 1 {
		t.Errorf("TotalSessions = %d, want 1", st.TotalSessions)
	}
}

// TestCloseEndsGoroutines: with sessions playing, Close returns only when
// every goroutine the server started has ended, and Serve returns.
func TestCloseEndsGoroutines(t *testing.T) {
	loadMedia(t)
	base := runtime.NumGoroutine()
	func() {
		m := loadMedia(t)
		s := simrtsp.NewServer(simrtsp.Config{})
		if err := s.AddStream(101, simrtsp.Stream{Video: m.H264Main, Audio: m.AAC}); err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- s.Serve(l) }()
		var clients []*client
		for range 3 {
			c := dial(t, l.Addr().String())
			c.nonce = ""
			d := c.do("DESCRIBE", c.base+"/Streaming/Channels/101")
			if d.code != 200 {
				t.Fatalf("DESCRIBE without Lookup: %d", d.code)
			}
			c.play2("/Streaming/Channels/101")
			clients = append(clients, c)
		}
		for _, c := range clients {
			if _, _, err := c.readFrame(); err != nil {
				t.Fatal(err)
			}
		}
		idle := dial(t, l.Addr().String()) // a connection without a session
		_ = idle
		waitFor(t, 5*time.Second, "4 connections", func() bool { return s.Stats().Connections == 4 })
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-served; !errors.Is(err, simrtsp.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
		if err := s.Serve(l); !errors.Is(err, simrtsp.ErrServerClosed) {
			t.Errorf("Serve after Close: %v", err)
		}
		for _, c := range clients {
			_ = c.nc.Close()
		}
		_ = idle.nc.Close()
	}()
	waitFor(t, 5*time.Second, "goroutines back to baseline", func() bool { return runtime.NumGoroutine() <= base })
}

// play2 sets up both tracks without authentication.
func (c *client) play2(path string) {
	c.t.Helper()
	for i := 1; i <= 2; i++ {
		r := c.do("SETUP", c.base+path+"/trackID="+itoa(i), "Transport: RTP/AVP/TCP;unicast;interleaved="+itoa(2*i-2)+"-"+itoa(2*i-1))
		if r.code != 200 {
			c.t.Fatalf("SETUP: %d", r.code)
		}
		c.session, _, _ = strings.Cut(r.header.Get("Session"), ";")
	}
	if r := c.do("PLAY", c.base+path); r.code != 200 {
		c.t.Fatalf("PLAY: %d", r.code)
	}
}

// TestSessionTimeout: a client that sends nothing is dropped after the
// session timeout; one that sends GET_PARAMETER keep-alives is not.
func TestSessionTimeout(t *testing.T) {
	ts := startServer(t, simrtsp.Config{SessionTimeout: time.Second})
	silent := dial(t, ts.addr)
	silent.play("/Streaming/Channels/301", 1)
	alive := dial(t, ts.addr)
	r := alive.play("/Streaming/Channels/301", 1)
	if got := r.header.Get("Session"); !strings.HasSuffix(got, ";timeout=1") {
		t.Errorf("Session header %q, want ;timeout=1", got)
	}
	start := time.Now()
	for time.Since(start) < 2500*time.Millisecond {
		if r := alive.do("GET_PARAMETER", alive.base+"/Streaming/Channels/301"); r.code != 200 {
			t.Fatalf("keep-alive: %d", r.code)
		}
		deadline := time.Now().Add(300 * time.Millisecond)
		for time.Now().Before(deadline) { // consume RTP meanwhile
			if _, _, err := alive.readFrame(); err != nil {
				t.Fatalf("kept-alive session dropped after %v: %v", time.Since(start), err)
			}
		}
	}
	var err error
	for err == nil && time.Since(start) < 6*time.Second {
		_, _, err = silent.readFrame()
	}
	if err == nil {
		t.Fatal("silent session still open after 6 s")
	}
	if el := time.Since(start); el > 4*time.Second {
		t.Errorf("silent session closed after %v, want about 1 s", el)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("silent session not closed by the server: %v", err)
	}
	waitFor(t, 5*time.Second, "one session left", func() bool { return ts.Stats().ActiveSessions == 1 })
}
