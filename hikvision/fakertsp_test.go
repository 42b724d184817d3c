package hikvision

import (
	"bufio"
	"encoding/binary"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

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
	// hangUpOn401: the next 401 the server answers is followed by a
	// hang-up (a device that closes after its first answer).
	hangUpOn401 atomic.Bool

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
		if strings.HasPrefix(res, "RTSP/1.0 401") && s.hangUpOn401.CompareAndSwap(true, false) {
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
