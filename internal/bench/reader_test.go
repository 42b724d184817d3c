package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fakeRTSP is an in-test RTSP server that answers DESCRIBE (audio first, then
// video), SETUP and PLAY, then sends the frames it is given on send.
type fakeRTSP struct {
	ln       net.Listener
	send     chan []byte // raw bytes to write after PLAY
	describe string      // status of DESCRIBE answers ("200 OK")
	back     bool        // offer a sendonly (backchannel) PCMA media
	recv     chan []byte // interleaved frames from the client ('$' header included)
	wg       sync.WaitGroup
	mu       sync.Mutex
	methods  []string
	conns    []net.Conn
}

func newFakeRTSP(t *testing.T) *fakeRTSP {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRTSP{ln: ln, send: make(chan []byte, 16), describe: "200 OK", recv: make(chan []byte, 16)}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns = append(f.conns, c)
			f.mu.Unlock()
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				f.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		for _, c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
		f.wg.Wait()
	})
	return f
}

func (f *fakeRTSP) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		if b, err := br.Peek(1); err == nil && b[0] == '$' {
			var h [4]byte
			if _, err := io.ReadFull(br, h[:]); err != nil {
				return
			}
			p := make([]byte, 4+int(h[2])<<8+int(h[3]))
			copy(p, h[:])
			if _, err := io.ReadFull(br, p[4:]); err != nil {
				return
			}
			f.recv <- p
			continue
		}
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		method, _, _ := strings.Cut(line, " ")
		cseq := ""
		for {
			h, err := br.ReadString('\n')
			if err != nil {
				return
			}
			h = strings.TrimSpace(h)
			if h == "" {
				break
			}
			if v, ok := strings.CutPrefix(h, "CSeq: "); ok {
				cseq = v
			}
		}
		f.mu.Lock()
		f.methods = append(f.methods, method)
		f.mu.Unlock()
		switch method {
		case "DESCRIBE":
			if f.describe != "200 OK" {
				fmt.Fprintf(c, "RTSP/1.0 %s\r\nCSeq: %s\r\n\r\n", f.describe, cseq)
				return
			}
			sdp := "v=0\r\ns=-\r\nm=audio 0 RTP/AVP 0\r\na=control:trackID=0\r\nm=video 0 RTP/AVP 96\r\na=control:trackID=1\r\n"
			if f.back {
				sdp += "m=audio 0 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=control:trackID=2\r\na=sendonly\r\n"
			}
			fmt.Fprintf(c, "RTSP/1.0 200 OK\r\nCSeq: %s\r\nContent-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s", cseq, len(sdp), sdp)
		case "SETUP":
			fmt.Fprintf(c, "RTSP/1.0 200 OK\r\nCSeq: %s\r\nSession: abc;timeout=60\r\n\r\n", cseq)
		case "PLAY":
			fmt.Fprintf(c, "RTSP/1.0 200 OK\r\nCSeq: %s\r\n\r\n", cseq)
			go func() {
				for b := range f.send {
					if _, err := c.Write(b); err != nil {
						return
					}
				}
			}()
		case "OPTIONS":
			fmt.Fprintf(c, "RTSP/1.0 200 OK\r\nCSeq: %s\r\n\r\n", cseq)
		case "TEARDOWN":
			return
		}
	}
}

func (f *fakeRTSP) url() string { return "rtsp://" + f.ln.Addr().String() + "/cam" }

func frame(ch byte, payload string) []byte {
	return append([]byte{'$', ch, byte(len(payload) >> 8), byte(len(payload))}, payload...)
}

func waitGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("goroutines: %d, baseline %d\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond) // polling with a deadline
	}
}

func TestReaderPlaysAndTimesPackets(t *testing.T) {
	base := runtime.NumGoroutine()
	f := newFakeRTSP(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rd, err := DialReader(ctx, f.url())
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	methods := strings.Join(f.methods, ",")
	f.mu.Unlock()
	if methods != "DESCRIBE,SETUP,SETUP,PLAY" {
		t.Fatalf("requests %s", methods)
	}
	if rd.Packets() != 0 {
		t.Fatal("packets before any was sent")
	}

	// audio RTP (channel 0), an RTCP packet (1, not counted), an RTSP
	// message in between, then video RTP (channel 2)
	f.send <- frame(0, "audio")
	first, err := rd.WaitFirst(ctx)
	if err != nil || first <= 0 {
		t.Fatalf("WaitFirst = %v, %v", first, err)
	}
	videoCh := rd.NextVideo(time.Time{})
	// waiting for the next packet before it is sent: NextPacket wakes for
	// packets that arrive after it was called
	nextCh := rd.NextPacket(time.Now().Add(-time.Hour))
	f.send <- frame(1, "rtcp")
	f.send <- []byte("RTSP/1.0 200 OK\r\nCSeq: 9\r\n\r\n")
	f.send <- frame(0, "audio2")
	select {
	case <-videoCh:
		t.Fatal("audio packet woke a video waiter")
	case <-nextCh:
	case <-ctx.Done():
		t.Fatal("packet waiter not woken by the second audio packet")
	}
	f.send <- frame(2, "video")
	video, err := rd.WaitFirstVideo(ctx)
	if err != nil || video < first {
		t.Fatalf("WaitFirstVideo = %v, %v (first packet %v)", video, err, first)
	}
	select {
	case <-videoCh:
	case <-ctx.Done():
		t.Fatal("video waiter not woken")
	}
	// a video packet that came after t counts even when NextVideo(t) is
	// called later (a blip is measured from the device's thaw, an instant
	// the bench learns of after packets may already have arrived)
	select {
	case at := <-rd.NextVideo(rd.Start):
		if got := at.Sub(rd.Start); got != video {
			t.Errorf("NextVideo(start) = %v after start, want the video packet's %v", got, video)
		}
	default:
		t.Fatal("NextVideo(start) missed the video packet that arrived before it was called")
	}
	select {
	case at := <-rd.NextVideo(time.Now()):
		t.Fatalf("NextVideo(now) answered %v: no video packet came since", at)
	default:
	}
	if n := rd.Packets(); n != 3 {
		t.Fatalf("Packets = %d, want 3 (RTCP and RTSP messages are not RTP)", n)
	}
	if !rd.Alive() {
		t.Fatal("reader not alive")
	}
	close(f.send)
	rd.Close()
	rd.Close() // twice is fine
	if rd.Alive() {
		t.Fatal("alive after Close")
	}
	waitGoroutinesAfterServer(t, f, base)
}

// waitGoroutinesAfterServer closes the fake server (its goroutines count
// against the baseline) and checks that no goroutine is left.
func waitGoroutinesAfterServer(t *testing.T, f *fakeRTSP, base int) {
	t.Helper()
	f.ln.Close()
	f.mu.Lock()
	for _, c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
	waitGoroutines(t, base)
}

func TestReaderServerHangsUp(t *testing.T) {
	f := newFakeRTSP(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rd, err := DialReader(ctx, f.url())
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	f.mu.Lock()
	for _, c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	if _, err := rd.WaitFirst(ctx); err == nil || !strings.Contains(err.Error(), "ended before the first packet") {
		t.Fatalf("WaitFirst after hang-up: %v", err)
	}
	select {
	case <-rd.Done():
	case <-ctx.Done():
		t.Fatal("Done not closed")
	}
	if rd.Err() == nil {
		t.Fatal("Err nil after the server hung up")
	}
}

func TestReaderDescribeError(t *testing.T) {
	f := newFakeRTSP(t)
	f.describe = "404 Not Found"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := DialReader(ctx, f.url())
	var re *RTSPError
	if err == nil || !asRTSPError(err, &re) || re.Method != "DESCRIBE" || re.Status != "404 Not Found" {
		t.Fatalf("DialReader: %v", err)
	}
	status, err := Describe(ctx, f.url())
	if err != nil || status != "404 Not Found" {
		t.Fatalf("Describe = %q, %v", status, err)
	}
}

func asRTSPError(err error, target **RTSPError) bool {
	for err != nil {
		if e, ok := err.(*RTSPError); ok {
			*target = e
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

func TestReaderContextCancelsDial(t *testing.T) {
	// a server that accepts and never answers
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := DialReader(ctx, "rtsp://"+ln.Addr().String()+"/x"); err == nil {
		t.Fatal("DialReader to a silent server succeeded")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("DialReader took %v after its context ended", d)
	}
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("server never accepted")
	}
}

func TestReaderBackchannel(t *testing.T) {
	f := newFakeRTSP(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rd, err := DialReader(ctx, f.url())
	if err != nil {
		t.Fatal(err)
	}
	if rd.Backchannel() != "" {
		t.Fatalf("backchannel %q without a sendonly media", rd.Backchannel())
	}
	if err := rd.WriteAudio([]byte{1}, 1); err == nil {
		t.Fatal("WriteAudio without a backchannel: no error")
	}
	rd.Close()

	f.back = true
	if rd, err = DialReader(ctx, f.url()); err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	if rd.Backchannel() != "PCMA/8000" {
		t.Fatalf("backchannel %q, want PCMA/8000", rd.Backchannel())
	}
	payload := bytes.Repeat([]byte{0xD5}, 160)
	for i := 0; i < 2; i++ {
		if err := rd.WriteAudio(payload, 160); err != nil {
			t.Fatal(err)
		}
	}
	if err := rd.Keepalive(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		var p []byte
		select {
		case p = <-f.recv:
		case <-ctx.Done():
			t.Fatal("server got no audio")
		}
		// '$', channel 4 (third media), length; RTP v2, PT 8, seq i, ts 160*i
		if p[0] != '$' || p[1] != 4 || int(binary.BigEndian.Uint16(p[2:])) != 12+160 {
			t.Fatalf("frame header % x", p[:4])
		}
		h := p[4:]
		if h[0] != 0x80 || h[1] != 8 || binary.BigEndian.Uint16(h[2:]) != uint16(i) || binary.BigEndian.Uint32(h[4:]) != uint32(160*i) {
			t.Fatalf("RTP header % x", h[:12])
		}
		if !bytes.Equal(h[12:], payload) {
			t.Fatal("payload changed")
		}
	}
	f.mu.Lock()
	var ms []string
	for _, m := range f.methods {
		if m != "TEARDOWN" { // the first connection's, in any place
			ms = append(ms, m)
		}
	}
	f.mu.Unlock()
	if methods := strings.Join(ms, ","); methods != "DESCRIBE,SETUP,SETUP,PLAY,DESCRIBE,SETUP,SETUP,SETUP,PLAY,OPTIONS" {
		t.Fatalf("requests %s", methods)
	}
}
