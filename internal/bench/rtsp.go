package bench

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"time"
)

// KeepaliveInterval is how often a Reader sends an OPTIONS keepalive while
// packets arrive. Like ffmpeg, it sends nothing while no packet arrives (its
// read blocks), so go2rtc's 60 s consumer read timeout applies in an outage.
var KeepaliveInterval = 25 * time.Second

// RTSPError is an RTSP answer other than 200 to one of the Reader's requests.
type RTSPError struct {
	Method string
	URL    string
	Status string // "404 Not Found"
}

func (e *RTSPError) Error() string {
	return fmt.Sprintf("bench: RTSP %s %s: %s", e.Method, e.URL, e.Status)
}

// Reader is a minimal RTSP client (TCP interleaved) that plays every media a
// server offers in DESCRIBE and records when RTP packets arrive. It is the
// "plain consumer" of the bench: one per stream on go2rtc's RTSP output.
type Reader struct {
	URL string

	// Start is when Dial began (before the TCP connect).
	Start time.Time

	conn  net.Conn
	br    *bufio.Reader
	wmu   sync.Mutex // guards writes to conn and cseq after PLAY
	cseq  int
	video int // interleaved channel of the first video media, -1 if none

	// backchannel: the first sendonly media of the SDP (go2rtc offers one
	// with ?backchannel=1); back is its interleaved channel, -1 if none.
	back      int
	backPT    uint8
	backCodec string // "PCMU/8000", ...
	rtpSeq    uint16
	rtpTS     uint32

	mu         sync.Mutex
	packets    uint64
	last       time.Time
	first      time.Time // first RTP packet, any media
	firstVideo time.Time // first RTP packet of the first video media
	// arrival times of the latest video packets (a ring; videoN counts
	// them all): NextVideo answers from them when the packet it asks for
	// came before it was called
	videoAt [videoHistory]time.Time
	videoN  uint64
	waiters []waiter
	err     error

	done      chan struct{}
	closeOnce sync.Once
}

// videoHistory is how many video packet arrivals a Reader remembers (over
// 5 s of the simulator's 25 fps video).
const videoHistory = 256

type waiter struct {
	after time.Time
	video bool // only a packet of the first video media
	ch    chan time.Time
}

// DialReader connects to url (rtsp://host:port/name), does DESCRIBE, SETUP of
// every media (TCP interleaved) and PLAY, then reads in a goroutine until
// Close or the connection ends. It returns once PLAY is answered; the first
// packet time is then available through WaitFirst.
func DialReader(ctx context.Context, url string) (*Reader, error) {
	r := &Reader{URL: url, Start: time.Now(), video: -1, back: -1, done: make(chan struct{})}
	hostport, err := rtspHostPort(url)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	if r.conn, err = d.DialContext(ctx, "tcp", hostport); err != nil {
		return nil, fmt.Errorf("bench: RTSP connect %s: %w", hostport, err)
	}
	r.br = bufio.NewReaderSize(r.conn, 64<<10)
	stop := context.AfterFunc(ctx, func() { _ = r.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	hdr, body, err := r.request("DESCRIBE", url, "Accept: application/sdp\r\n")
	if err != nil {
		r.conn.Close()
		return nil, err
	}
	base := url
	if cb := hdr.Get("Content-Base"); cb != "" {
		base = cb
	}
	medias := parseSDP(body)
	if len(medias) == 0 {
		r.conn.Close()
		return nil, fmt.Errorf("bench: RTSP DESCRIBE %s: no media in SDP", url)
	}
	session := ""
	for i, m := range medias {
		extra := fmt.Sprintf("Transport: RTP/AVP/TCP;unicast;interleaved=%d-%d\r\n", 2*i, 2*i+1)
		if session != "" {
			extra += "Session: " + session + "\r\n"
		}
		hdr, _, err = r.request("SETUP", trackURL(base, m.control), extra)
		if err != nil {
			r.conn.Close()
			return nil, err
		}
		if s := hdr.Get("Session"); s != "" {
			session, _, _ = strings.Cut(s, ";")
		}
		if r.video < 0 && m.kind == "video" && !m.sendonly {
			r.video = 2 * i
		}
		if r.back < 0 && m.sendonly {
			r.back, r.backPT, r.backCodec = 2*i, m.payloadType, m.codec
		}
	}
	extra := ""
	if session != "" {
		extra = "Session: " + session + "\r\n"
	}
	if _, _, err = r.request("PLAY", url, extra); err != nil {
		r.conn.Close()
		return nil, err
	}
	_ = r.conn.SetDeadline(time.Time{})
	go r.readLoop()
	return r, nil
}

func rtspHostPort(url string) (string, error) {
	rest, ok := strings.CutPrefix(url, "rtsp://")
	if !ok {
		return "", fmt.Errorf("bench: %q is not an rtsp:// URL", url)
	}
	host, _, _ := strings.Cut(rest, "/")
	if _, _, err := net.SplitHostPort(host); err != nil {
		host += ":554"
	}
	return host, nil
}

func trackURL(base, control string) string {
	if strings.HasPrefix(control, "rtsp://") {
		return control
	}
	if control == "" || control == "*" {
		return base
	}
	return strings.TrimSuffix(base, "/") + "/" + control
}

// sdpMedia is what the Reader needs of one SDP media section.
type sdpMedia struct {
	kind        string // "video", "audio", ...
	control     string // a=control value
	sendonly    bool   // a=sendonly: the client sends (a backchannel)
	payloadType uint8  // first format of the m= line
	codec       string // its a=rtpmap, "PCMU/8000"; "" if none
}

// parseSDP returns the media sections of an SDP in order.
func parseSDP(sdp []byte) []sdpMedia {
	var out []sdpMedia
	for _, line := range strings.Split(string(sdp), "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.HasPrefix(line, "m=") {
			f := strings.Fields(line[2:])
			m := sdpMedia{}
			if len(f) > 0 {
				m.kind = f[0]
			}
			if len(f) > 3 {
				if pt, err := strconv.Atoi(f[3]); err == nil && pt >= 0 && pt < 128 {
					m.payloadType = uint8(pt)
				}
			}
			out = append(out, m)
			continue
		}
		if len(out) == 0 {
			continue
		}
		m := &out[len(out)-1]
		switch {
		case strings.HasPrefix(line, "a=control:"):
			m.control = strings.TrimPrefix(line, "a=control:")
		case line == "a=sendonly":
			m.sendonly = true
		case strings.HasPrefix(line, "a=rtpmap:"):
			pt, enc, _ := strings.Cut(strings.TrimPrefix(line, "a=rtpmap:"), " ")
			if n, err := strconv.Atoi(pt); err == nil && n == int(m.payloadType) && m.codec == "" {
				m.codec = enc
			}
		}
	}
	return out
}

// request sends one RTSP request and reads its answer (skipping interleaved
// data, which cannot arrive before PLAY anyway).
func (r *Reader) request(method, url, extra string) (textproto.MIMEHeader, []byte, error) {
	r.wmu.Lock()
	r.cseq++
	msg := fmt.Sprintf("%s %s RTSP/1.0\r\nCSeq: %d\r\nUser-Agent: hikvision-bench\r\n%s\r\n", method, url, r.cseq, extra)
	_, err := io.WriteString(r.conn, msg)
	r.wmu.Unlock()
	if err != nil {
		return nil, nil, fmt.Errorf("bench: RTSP %s %s: %w", method, url, err)
	}
	status, hdr, body, err := readResponse(r.br)
	if err != nil {
		return nil, nil, fmt.Errorf("bench: RTSP %s %s: %w", method, url, err)
	}
	if !strings.HasPrefix(status, "200") {
		return hdr, body, &RTSPError{Method: method, URL: url, Status: status}
	}
	return hdr, body, nil
}

// readResponse reads "RTSP/1.0 <status>", headers and a Content-Length body.
func readResponse(br *bufio.Reader) (status string, hdr textproto.MIMEHeader, body []byte, err error) {
	tp := textproto.NewReader(br)
	line, err := tp.ReadLine()
	if err != nil {
		return "", nil, nil, err
	}
	proto, status, ok := strings.Cut(line, " ")
	if !ok || !strings.HasPrefix(proto, "RTSP/") {
		return "", nil, nil, fmt.Errorf("not an RTSP response: %q", truncate(line, 40))
	}
	if hdr, err = tp.ReadMIMEHeader(); err != nil && !errors.Is(err, io.EOF) {
		return "", nil, nil, err
	}
	if cl := hdr.Get("Content-Length"); cl != "" {
		n, err := strconv.Atoi(cl)
		if err != nil || n < 0 || n > 1<<20 {
			return "", nil, nil, fmt.Errorf("bad Content-Length %q", cl)
		}
		body = make([]byte, n)
		if _, err = io.ReadFull(br, body); err != nil {
			return "", nil, nil, err
		}
	}
	return status, hdr, body, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// readInterleaved reads one '$' frame (channel, payload) or, when the next
// byte is not '$', one RTSP message, which it discards (channel -1).
func readInterleaved(br *bufio.Reader, buf []byte) (channel int, payload []byte, err error) {
	b, err := br.Peek(1)
	if err != nil {
		return 0, nil, err
	}
	if b[0] != '$' {
		if _, _, _, err = readResponse(br); err != nil {
			return 0, nil, err
		}
		return -1, nil, nil
	}
	var h [4]byte
	if _, err = io.ReadFull(br, h[:]); err != nil {
		return 0, nil, err
	}
	n := int(binary.BigEndian.Uint16(h[2:]))
	if n > len(buf) {
		buf = make([]byte, n)
	}
	if _, err = io.ReadFull(br, buf[:n]); err != nil {
		return 0, nil, err
	}
	return int(h[1]), buf[:n], nil
}

func (r *Reader) readLoop() {
	defer close(r.done)
	buf := make([]byte, 64<<10)
	lastKeepalive := time.Now()
	for {
		ch, _, err := readInterleaved(r.br, buf)
		now := time.Now()
		if err != nil {
			r.mu.Lock()
			r.err = err
			r.mu.Unlock()
			return
		}
		if ch < 0 || ch%2 == 1 { // RTSP answer or RTCP
			continue
		}
		r.mu.Lock()
		r.packets++
		r.last = now
		if r.first.IsZero() {
			r.first = now
		}
		if ch == r.video {
			if r.firstVideo.IsZero() {
				r.firstVideo = now
			}
			r.videoAt[r.videoN%videoHistory] = now
			r.videoN++
		}
		kept := r.waiters[:0]
		for _, w := range r.waiters {
			if now.After(w.after) && (!w.video || ch == r.video) {
				w.ch <- now
			} else {
				kept = append(kept, w)
			}
		}
		r.waiters = kept
		r.mu.Unlock()
		if now.Sub(lastKeepalive) >= KeepaliveInterval {
			lastKeepalive = now
			_ = r.Keepalive()
		}
	}
}

// Keepalive sends an OPTIONS request (its answer is skipped by the read
// loop).
func (r *Reader) Keepalive() error {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	r.cseq++
	_ = r.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := fmt.Fprintf(r.conn, "OPTIONS %s RTSP/1.0\r\nCSeq: %d\r\nUser-Agent: hikvision-bench\r\n\r\n", r.URL, r.cseq)
	return err
}

// Backchannel is the codec of the backchannel media ("PCMU/8000"), "" if the
// server offered none.
func (r *Reader) Backchannel() string {
	if r.back < 0 {
		return ""
	}
	return r.backCodec
}

// WriteAudio sends one RTP packet with payload on the backchannel; samples
// advances the RTP timestamp.
func (r *Reader) WriteAudio(payload []byte, samples uint32) error {
	if r.back < 0 {
		return fmt.Errorf("bench: %s: no backchannel media", r.URL)
	}
	r.wmu.Lock()
	defer r.wmu.Unlock()
	n := 12 + len(payload)
	pkt := make([]byte, 4+n)
	pkt[0], pkt[1] = '$', byte(r.back)
	binary.BigEndian.PutUint16(pkt[2:], uint16(n))
	h := pkt[4:]
	h[0], h[1] = 0x80, r.backPT
	binary.BigEndian.PutUint16(h[2:], r.rtpSeq)
	binary.BigEndian.PutUint32(h[4:], r.rtpTS)
	binary.BigEndian.PutUint32(h[8:], 0x42454e43) // SSRC "BENC"
	copy(h[12:], payload)
	r.rtpSeq++
	r.rtpTS += samples
	_ = r.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := r.conn.Write(pkt)
	return err
}

// NextPacket returns a channel that receives the arrival time of the first
// RTP packet that arrives after t.
func (r *Reader) NextPacket(after time.Time) <-chan time.Time {
	ch := make(chan time.Time, 1)
	r.mu.Lock()
	r.waiters = append(r.waiters, waiter{after: after, ch: ch})
	r.mu.Unlock()
	return ch
}

// NextVideo is NextPacket for packets of the first video media only, with
// one difference: a video packet that arrived after t before NextVideo was
// called counts too (the reader remembers the latest arrivals), so a
// measurement from an instant taken elsewhere (a device's thaw) does not
// depend on how soon its caller got to ask.
func (r *Reader) NextVideo(after time.Time) <-chan time.Time {
	ch := make(chan time.Time, 1)
	r.mu.Lock()
	defer r.mu.Unlock()
	n := min(r.videoN, videoHistory)
	for i := r.videoN - n; i < r.videoN; i++ {
		if t := r.videoAt[i%videoHistory]; t.After(after) {
			ch <- t
			return ch
		}
	}
	r.waiters = append(r.waiters, waiter{after: after, video: true, ch: ch})
	return ch
}

// WaitFirst waits for the first RTP packet and returns the time from Start to
// it.
func (r *Reader) WaitFirst(ctx context.Context) (time.Duration, error) {
	return r.waitFirst(ctx, false)
}

// WaitFirstVideo waits for the first video RTP packet and returns the time
// from Start to it.
func (r *Reader) WaitFirstVideo(ctx context.Context) (time.Duration, error) {
	if r.video < 0 {
		return 0, fmt.Errorf("bench: %s: no video media", r.URL)
	}
	return r.waitFirst(ctx, true)
}

func (r *Reader) waitFirst(ctx context.Context, video bool) (time.Duration, error) {
	first := func() time.Time {
		if video {
			return r.firstVideo
		}
		return r.first
	}
	r.mu.Lock()
	if t := first(); !t.IsZero() {
		r.mu.Unlock()
		return t.Sub(r.Start), nil
	}
	ch := make(chan time.Time, 1)
	r.waiters = append(r.waiters, waiter{video: video, ch: ch})
	r.mu.Unlock()
	what := "packet"
	if video {
		what = "video packet"
	}
	select {
	case <-ch:
		r.mu.Lock()
		defer r.mu.Unlock()
		return first().Sub(r.Start), nil
	case <-r.done:
		return 0, fmt.Errorf("bench: %s: connection ended before the first %s: %v", r.URL, what, r.Err())
	case <-ctx.Done():
		return 0, fmt.Errorf("bench: %s: no %s: %w", r.URL, what, ctx.Err())
	}
}

// Packets is the number of RTP packets received so far.
func (r *Reader) Packets() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.packets
}

// Done is closed when the read loop has ended (connection closed by either
// side).
func (r *Reader) Done() <-chan struct{} { return r.done }

// Alive reports whether the connection is still being read.
func (r *Reader) Alive() bool {
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}

// Err is why the read loop ended (nil while it runs).
func (r *Reader) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// Close sends TEARDOWN (best effort), closes the connection and waits for the
// read loop.
func (r *Reader) Close() {
	r.closeOnce.Do(func() {
		r.wmu.Lock()
		_ = r.conn.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = fmt.Fprintf(r.conn, "TEARDOWN %s RTSP/1.0\r\nCSeq: %d\r\n\r\n", r.URL, 1000000)
		r.wmu.Unlock()
		_ = r.conn.Close()
		<-r.done
	})
}

// Describe connects, sends one DESCRIBE and closes: the "client asking
// go2rtc for the stream" of the failed-login test. It returns the status line
// ("200 OK", "404 Not Found", ...).
func Describe(ctx context.Context, url string) (string, error) {
	hostport, err := rtspHostPort(url)
	if err != nil {
		return "", err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", hostport)
	if err != nil {
		return "", fmt.Errorf("bench: RTSP connect %s: %w", hostport, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err = fmt.Fprintf(conn, "DESCRIBE %s RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\n\r\n", url); err != nil {
		return "", fmt.Errorf("bench: RTSP DESCRIBE %s: %w", url, err)
	}
	status, _, _, err := readResponse(bufio.NewReader(conn))
	if err != nil {
		return "", fmt.Errorf("bench: RTSP DESCRIBE %s: %w", url, err)
	}
	return status, nil
}
