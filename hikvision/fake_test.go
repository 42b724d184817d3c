package hikvision

import (
	"bufio"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Test credentials: the password needs percent-encoding in a URL.
const (
	testUser = "admin"
	testPass = "p@ss/w?rd#1:x"
)

func md5hex(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

// parseDigest reads the fields of an "Authorization: Digest ..." header.
func parseDigest(h string) map[string]string {
	out := map[string]string{}
	h, ok := strings.CutPrefix(h, "Digest ")
	if !ok {
		return nil
	}
	for h != "" {
		h = strings.TrimLeft(h, " ,")
		k, rest, ok := strings.Cut(h, "=")
		if !ok {
			break
		}
		var v string
		if strings.HasPrefix(rest, `"`) {
			end := strings.IndexByte(rest[1:], '"')
			if end < 0 {
				break
			}
			v, h = rest[1:1+end], rest[2+end:]
		} else {
			v, h, _ = strings.Cut(rest, ",")
		}
		out[strings.TrimSpace(k)] = v
	}
	return out
}

// digestOK checks a digest answer (with or without qop) for user/pass.
func digestOK(header, method, user, pass, realm, nonce string) bool {
	f := parseDigest(header)
	if f == nil || f["username"] != user || f["nonce"] != nonce {
		return false
	}
	ha1 := md5hex(user + ":" + realm + ":" + pass)
	ha2 := md5hex(method + ":" + f["uri"])
	var want string
	if f["qop"] != "" {
		want = md5hex(ha1 + ":" + nonce + ":" + f["nc"] + ":" + f["cnonce"] + ":" + f["qop"] + ":" + ha2)
	} else {
		want = md5hex(ha1 + ":" + nonce + ":" + ha2)
	}
	return f["response"] == want
}

// fakeISAPI is a Hikvision-like ISAPI server with digest auth that counts
// requests.
type fakeISAPI struct {
	*httptest.Server
	pass       string
	deviceType string
	rtspPort   atomic.Int32
	channels   map[int]string // stream id -> video codec

	// talkCodec, when set, is the audioCompressionType of the one
	// TwoWayAudio channel the fake lists; empty: TwoWayAudio answers 404.
	talkCodec string
	// round, when set, lets the first authenticated request through (the
	// isapi client makes its first login alone), then holds the next ones
	// until round.n of them are in flight at once (released together), or
	// round.wait passes (then they answer 503): requests that are not
	// concurrent never all get through.
	round *roundBarrier

	mu          sync.Mutex
	requests    []string // "METHOD path auth|noauth|badauth"
	failedLogin int
}

type roundBarrier struct {
	n    int
	wait time.Duration

	mu      sync.Mutex
	first   bool
	arrived int
	full    chan struct{}
}

func newRoundBarrier(n int, wait time.Duration) *roundBarrier {
	return &roundBarrier{n: n, wait: wait, full: make(chan struct{})}
}

// enter reports whether n requests were in flight together before wait.
func (b *roundBarrier) enter() bool {
	b.mu.Lock()
	if !b.first {
		b.first = true
		b.mu.Unlock()
		return true
	}
	b.arrived++
	if b.arrived == b.n {
		close(b.full)
	}
	b.mu.Unlock()
	t := time.NewTimer(b.wait)
	defer t.Stop()
	select {
	case <-b.full:
		return true
	case <-t.C:
		return false
	}
}

const isapiNonce = "4e6a49324d6a55354d7a6b364e7a67794e6a4131:1700000000"

func newFakeISAPI(t *testing.T) *fakeISAPI {
	f := &fakeISAPI{pass: testPass, deviceType: "IPCamera", channels: map[int]string{101: "H.264", 102: "H.265"}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeISAPI) hostPort() string { return strings.TrimPrefix(f.URL, "http://") }

func (f *fakeISAPI) serve(w http.ResponseWriter, r *http.Request) {
	const realm = "IP Camera(K2195)"
	auth := r.Header.Get("Authorization")
	state := "auth"
	switch {
	case auth == "":
		state = "noauth"
	case !digestOK(auth, r.Method, testUser, f.pass, realm, isapiNonce):
		state = "badauth"
	}
	f.mu.Lock()
	f.requests = append(f.requests, r.Method+" "+r.URL.Path+" "+state)
	if state == "badauth" {
		f.failedLogin++
	}
	left := 7 - f.failedLogin
	f.mu.Unlock()

	if state != "auth" {
		w.Header().Set("WWW-Authenticate", `Digest qop="auth", realm="`+realm+`", nonce="`+isapiNonce+`", stale="FALSE"`)
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusUnauthorized)
		retry := ""
		if state == "badauth" {
			retry = "<retryLoginTime>" + strconv.Itoa(left) + "</retryLoginTime>"
		}
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><userCheck><statusValue>401</statusValue><statusString>Unauthorized</statusString><lockStatus>unlock</lockStatus><unlockTime>0</unlockTime>%s</userCheck>`, retry)
		return
	}

	if f.round != nil && !f.round.enter() {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}

	const ns = `xmlns="http://www.hikvision.com/ver20/XMLSchema" version="2.0"`
	w.Header().Set("Content-Type", "application/xml")
	switch {
	case r.URL.Path == "/ISAPI/System/TwoWayAudio/channels" && f.talkCodec != "":
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><TwoWayAudioChannelList %s><TwoWayAudioChannel><id>1</id><enabled>false</enabled><audioCompressionType>%s</audioCompressionType><audioInputType>MicIn</audioInputType><speakerVolume>50</speakerVolume><noisereduce>false</noisereduce><audioOutputType>Speaker</audioOutputType></TwoWayAudioChannel></TwoWayAudioChannelList>`, ns, f.talkCodec)
	case r.URL.Path == "/ISAPI/System/deviceInfo":
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><DeviceInfo %s><deviceName>Front</deviceName><deviceID>x</deviceID><model>DS-2CD2143G2-I</model><serialNumber>DS-2CD2143G2-I20230101AAWRJ00000000</serialNumber><macAddress>bc:ad:28:00:00:01</macAddress><firmwareVersion>V5.7.18</firmwareVersion><firmwareReleasedDate>build 240826</firmwareReleasedDate><deviceType>%s</deviceType><manufacturer>Hikvision</manufacturer></DeviceInfo>`, ns, f.deviceType)
	case r.URL.Path == "/ISAPI/Security/adminAccesses":
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><AdminAccessProtocolList %s><AdminAccessProtocol><id>1</id><enabled>true</enabled><protocol>HTTP</protocol><portNo>80</portNo></AdminAccessProtocol><AdminAccessProtocol><id>4</id><enabled>true</enabled><protocol>RTSP</protocol><portNo>%d</portNo></AdminAccessProtocol></AdminAccessProtocolList>`, ns, f.rtspPort.Load())
	case strings.HasPrefix(r.URL.Path, "/ISAPI/Streaming/channels/"):
		id, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/ISAPI/Streaming/channels/"))
		codec, ok := f.channels[id]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><ResponseStatus %s><requestURL>%s</requestURL><statusCode>4</statusCode><statusString>Invalid Operation</statusString><subStatusCode>notSupport</subStatusCode></ResponseStatus>`, ns, r.URL.Path)
			return
		}
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><StreamingChannel %s><id>%d</id><channelName>Front</channelName><enabled>true</enabled><Video><enabled>true</enabled><videoCodecType>%s</videoCodecType><videoResolutionWidth>2688</videoResolutionWidth><videoResolutionHeight>1520</videoResolutionHeight><maxFrameRate>2500</maxFrameRate></Video><Audio><enabled>true</enabled><audioCompressionType>G.711alaw</audioCompressionType></Audio></StreamingChannel>`, ns, id, codec)
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

func (f *fakeISAPI) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

// fakeRTSP is a minimal Hikvision-like RTSP server: digest auth without qop,
// DESCRIBE with the configured SDP, SETUP over TCP interleaved, PLAY streams
// an RTP packet per track every 10 ms until the client goes or the test ends.
type fakeRTSP struct {
	ln    net.Listener
	pass  string
	sdp   string
	wg    sync.WaitGroup
	quit  chan struct{}
	conns atomic.Int32

	mu        sync.Mutex
	teardowns int
	methods   []string
	open      map[net.Conn]bool
}

const rtspNonce = "a3f9e1"

const sdpH264PCMA = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=Media Presentation\r\nt=0 0\r\n" +
	"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 profile-level-id=420029; packetization-mode=1; sprop-parameter-sets=Z00AKpWoHgCJ+WEAAAMD6AAAw1AQ,aO48gA==\r\na=control:trackID=1\r\n" +
	"m=audio 0 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=control:trackID=2\r\n" +
	"m=application 0 RTP/AVP 107\r\na=rtpmap:107 isapi.metadata/90000\r\na=control:trackID=4\r\n"

func newFakeRTSP(t *testing.T, sdp string) *fakeRTSP {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeRTSP{ln: ln, pass: testPass, sdp: sdp, quit: make(chan struct{}), open: map[net.Conn]bool{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			s.mu.Lock()
			s.open[c] = true
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.handle(c)
				s.mu.Lock()
				delete(s.open, c)
				s.mu.Unlock()
			}()
		}
	}()
	t.Cleanup(s.close)
	return s
}

func (s *fakeRTSP) port() int { return s.ln.Addr().(*net.TCPAddr).Port }

func (s *fakeRTSP) close() {
	select {
	case <-s.quit:
		return
	default:
	}
	close(s.quit)
	_ = s.ln.Close()
	s.mu.Lock()
	for c := range s.open {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// dropClients closes every client connection (a device dropping the stream).
func (s *fakeRTSP) dropClients() {
	s.mu.Lock()
	for c := range s.open {
		_ = c.Close()
	}
	s.mu.Unlock()
}

func (s *fakeRTSP) stats() (teardowns int, methods []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.teardowns, append([]string(nil), s.methods...)
}

func (s *fakeRTSP) handle(c net.Conn) {
	defer c.Close()
	const realm = "IP Camera(K2195)"
	r := textproto.NewReader(bufio.NewReader(c))
	var wmu sync.Mutex
	write := func(b []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		_ = c.SetWriteDeadline(time.Now().Add(2 * time.Second))
		_, err := c.Write(b)
		return err
	}
	var channels []byte
	playing := make(chan struct{})
	played := false
	stopStream := make(chan struct{})
	var streamWG sync.WaitGroup
	defer func() {
		close(stopStream)
		streamWG.Wait()
	}()

	for {
		line, err := r.ReadLine()
		if err != nil {
			return
		}
		if line == "" {
			continue
		}
		parts := strings.Fields(line)
		if len(parts) != 3 {
			return
		}
		method, uri := parts[0], parts[1]
		h, err := r.ReadMIMEHeader()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.methods = append(s.methods, method)
		s.mu.Unlock()

		res := "RTSP/1.0 200 OK\r\nCSeq: " + h.Get("CSeq") + "\r\n"
		body := ""
		if method != "OPTIONS" && !digestOK(h.Get("Authorization"), method, testUser, s.pass, realm, rtspNonce) {
			res = "RTSP/1.0 401 Unauthorized\r\nCSeq: " + h.Get("CSeq") + "\r\n" +
				`WWW-Authenticate: Digest realm="` + realm + `", nonce="` + rtspNonce + `", stale="FALSE"` + "\r\n"
			_ = uri
		} else {
			switch method {
			case "DESCRIBE":
				res += "Content-Type: application/sdp\r\nContent-Base: " + uri + "/\r\n"
				body = s.sdp
			case "SETUP":
				tr := h.Get("Transport")
				i := strings.Index(tr, "interleaved=")
				if i < 0 {
					res = "RTSP/1.0 461 Unsupported Transport\r\nCSeq: " + h.Get("CSeq") + "\r\n"
					break
				}
				ch, _ := strconv.Atoi(strings.Split(tr[i+12:], "-")[0])
				channels = append(channels, byte(ch))
				res += "Session: 1234567;timeout=60\r\nTransport: " + tr + ";ssrc=1234\r\n"
			case "PLAY":
				res += "Session: 1234567\r\nRTP-Info: url=" + uri + "\r\n"
			case "TEARDOWN":
				s.mu.Lock()
				s.teardowns++
				s.mu.Unlock()
			case "OPTIONS":
				res += "Public: OPTIONS, DESCRIBE, PLAY, PAUSE, SETUP, TEARDOWN, SET_PARAMETER, GET_PARAMETER\r\n"
			}
		}
		if body != "" {
			res += "Content-Length: " + strconv.Itoa(len(body)) + "\r\n"
		}
		if write([]byte(res+"\r\n"+body)) != nil {
			return
		}
		if method == "PLAY" && !played {
			played = true
			close(playing)
			chs := append([]byte(nil), channels...)
			streamWG.Add(1)
			go func() {
				defer streamWG.Done()
				s.stream(write, chs, stopStream)
			}()
		}
		if method == "TEARDOWN" {
			return
		}
	}
}

func (s *fakeRTSP) stream(write func([]byte) error, channels []byte, stop chan struct{}) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	var seq uint16
	for {
		select {
		case <-stop:
			return
		case <-s.quit:
			return
		case <-t.C:
		}
		seq++
		for _, ch := range channels {
			pkt := make([]byte, 12+4)
			pkt[0] = 0x80
			pkt[1] = 96
			binary.BigEndian.PutUint16(pkt[2:], seq)
			binary.BigEndian.PutUint32(pkt[4:], uint32(seq)*3600)
			binary.BigEndian.PutUint32(pkt[8:], 0x1234+uint32(ch))
			copy(pkt[12:], []byte{0x65, 0x88, 0x84, 0x00}) // an IDR NAL unit fragment
			frame := []byte{'$', ch, 0, 0}
			binary.BigEndian.PutUint16(frame[2:], uint16(len(pkt)))
			if write(append(frame, pkt...)) != nil {
				return
			}
		}
	}
}
