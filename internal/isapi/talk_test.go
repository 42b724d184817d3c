package isapi_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
)

type talkSeen struct {
	query, contentType, connection string
	contentLength                  []string
	transferEncoding               []string
	data                           []byte
	err                            error
}

// audioDataHandler hijacks the audioData request and reads n raw bytes
// after the headers, as a device does.
func audioDataHandler(n int, seen chan<- talkSeen) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := talkSeen{
			query: r.URL.RawQuery, contentType: r.Header.Get("Content-Type"),
			connection: r.Header.Get("Connection"), contentLength: r.Header.Values("Content-Length"),
			transferEncoding: r.TransferEncoding,
		}
		conn, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			s.err = err
			seen <- s
			return
		}
		defer conn.Close()
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		s.data = make([]byte, n)
		_, s.err = io.ReadFull(brw, s.data)
		seen <- s
	}
}

func audioPattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	return b
}

func TestTalkAudioDataSendsRawBytes(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", tlsOn), func(t *testing.T) {
			base := runtime.NumGoroutine()
			d := newFakeDevice(t)
			const chunk, chunks = 160, 3
			seen := make(chan talkSeen, 1)
			d.handle("/ISAPI/System/TwoWayAudio/channels/1/open", serveFile(t, 200, "twoWayAudioSession.xml"))
			d.handle("/ISAPI/System/TwoWayAudio/channels/1/audioData", audioDataHandler(chunk*chunks, seen))
			d.handle("/ISAPI/System/TwoWayAudio/channels/1/close", serveFile(t, 200, "responseStatus_ok.xml"))
			var srv *httptest.Server
			cfg := isapi.Config{Username: d.user, Password: d.pass}
			if tlsOn {
				srv = httptest.NewTLSServer(d)
				cfg.Host, cfg.HTTPS, cfg.InsecureSkipVerify = strings.TrimPrefix(srv.URL, "https://"), true, true
			} else {
				srv = httptest.NewServer(d)
				cfg.Host = strings.TrimPrefix(srv.URL, "http://")
			}
			c, err := isapi.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			sid, err := c.TalkOpen(ctxT(t), "1")
			if err != nil || sid != "1844674407" {
				t.Fatalf("TalkOpen: %q %v", sid, err)
			}
			wc, err := c.TalkAudioData(ctxT(t), "1", sid)
			if err != nil {
				t.Fatal(err)
			}
			want := audioPattern(chunk * chunks)
			for i := 0; i < chunks; i++ {
				if _, err := wc.Write(want[i*chunk : (i+1)*chunk]); err != nil {
					t.Fatalf("write %d: %v", i, err)
				}
			}
			s := <-seen
			if s.err != nil {
				t.Fatalf("device read: %v", s.err)
			}
			if !bytes.Equal(s.data, want) {
				t.Fatal("device received different audio bytes")
			}
			if s.query != "sessionId=1844674407" || s.contentType != "application/octet-stream" ||
				!strings.EqualFold(s.connection, "keep-alive") || len(s.contentLength) != 0 || len(s.transferEncoding) != 0 {
				t.Fatalf("audioData request: %+v", s)
			}
			if err := wc.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if err := c.TalkClose(ctxT(t), "1"); err != nil {
				t.Fatalf("TalkClose: %v", err)
			}
			ch, wrong, _, _ := d.counts()
			if ch != 1 || wrong != 0 {
				t.Fatalf("challenges %d wrong %d; want 1 0", ch, wrong)
			}
			c.Close()
			srv.Close()
			waitGoroutines(t, base)
		})
	}
}

func TestTalkAudioDataWithoutCachedChallenge(t *testing.T) {
	d := newFakeDevice(t)
	seen := make(chan talkSeen, 1)
	d.handle("/ISAPI/Security/userCheck", serveFile(t, 200, "userCheck_ok.xml"))
	d.handle("/ISAPI/System/TwoWayAudio/channels/1/audioData", audioDataHandler(320, seen))
	c, _ := start(t, d, nil)
	wc, err := c.TalkAudioData(ctxT(t), "1", "")
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	if _, err := wc.Write(audioPattern(320)); err != nil {
		t.Fatal(err)
	}
	s := <-seen
	if s.err != nil || s.query != "" {
		t.Fatalf("device saw %+v", s)
	}
	ch, wrong, _, reqs := d.counts()
	// challenge + userCheck answer + audioData with the cached challenge
	if ch != 1 || wrong != 0 || reqs != 3 {
		t.Fatalf("challenges %d wrong %d requests %d; want 1 0 3", ch, wrong, reqs)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if got := d.ncs[d.nonce]; len(got) != 2 || got[1] != 2 {
		t.Fatalf("nc values %v, want [1 2]", got)
	}
}

// earlyAnswer hijacks the audioData request, answers at once and hangs up.
func earlyAnswer(t *testing.T, status string, body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		if status == "" {
			return // hang up without an answer
		}
		fmt.Fprintf(brw, "HTTP/1.1 %s\r\nContent-Type: application/xml\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", status, len(body))
		_, _ = brw.Write(body)
		_ = brw.Flush()
	}
}

func writeUntilError(t *testing.T, w io.Writer) error {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	chunk := audioPattern(160)
	for time.Now().Before(deadline) {
		if _, err := w.Write(chunk); err != nil {
			return err
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("writes kept succeeding after the device answered")
	return nil
}

func TestTalkAudioDataEarlyAnswer(t *testing.T) {
	cases := []struct {
		name   string
		status string
		body   string
		check  func(error) bool
	}{
		{"403 deviceBusy", "403 Forbidden", "responseStatus_deviceBusy.xml", func(err error) bool {
			var se *isapi.StatusError
			return errors.As(err, &se) && se.HTTPStatus == 403 && errors.Is(err, isapi.ErrDeviceBusy)
		}},
		{"401 userCheck", "401 Unauthorized", "userCheck_unlock.xml", func(err error) bool {
			var ae *isapi.AuthError
			return errors.As(err, &ae) && ae.RetryLoginTime == 4 && ae.Method == "PUT"
		}},
		{"200 then hang up", "200 OK", "responseStatus_ok.xml", func(err error) bool {
			return errors.Is(err, isapi.ErrTalkEnded)
		}},
		{"hang up", "", "", func(err error) bool { return errors.Is(err, isapi.ErrTalkEnded) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			base := runtime.NumGoroutine()
			d := newFakeDevice(t)
			var body []byte
			if tc.body != "" {
				body = fixture(t, tc.body)
			}
			d.handle("/ISAPI/Security/userCheck", serveFile(t, 200, "userCheck_ok.xml"))
			d.handle("/ISAPI/System/TwoWayAudio/channels/1/audioData", earlyAnswer(t, tc.status, body))
			srv := httptest.NewServer(d)
			c, err := isapi.New(isapi.Config{Host: strings.TrimPrefix(srv.URL, "http://"), Username: d.user, Password: d.pass})
			if err != nil {
				t.Fatal(err)
			}
			wc, err := c.TalkAudioData(ctxT(t), "1", "")
			if err != nil {
				t.Fatal(err)
			}
			err = writeUntilError(t, wc)
			noSecret(t, err)
			if !tc.check(err) {
				t.Fatalf("write error %v (%T) is not the device's answer", err, err)
			}
			if err := wc.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Close: %v", err)
			}
			c.Close()
			srv.Close()
			waitGoroutines(t, base)
		})
	}
}

// acceptingDevice answers the audioData request with "200 OK" at once (as
// stock go2rtc expects and some firmware does), then reads the audio one
// chunk at a time, acknowledging each on acks, and hangs up after n bytes.
func acceptingDevice(t *testing.T, header string, body []byte, chunk, n int, acks chan<- []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		defer close(acks)
		conn, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		fmt.Fprintf(brw, "HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\n%s\r\n", header)
		_, _ = brw.Write(body)
		if err := brw.Flush(); err != nil {
			t.Error(err)
			return
		}
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		for got := 0; got < n; got += chunk {
			b := make([]byte, chunk)
			if _, err := io.ReadFull(brw, b); err != nil {
				t.Errorf("device read after %d bytes: %v", got, err)
				return
			}
			acks <- b
		}
	}
}

// A device that answers the audioData request with 2xx right away has
// accepted the audio: writing goes on (it used to end the talk, and talk
// looped: one open per 40 ms of audio). Only the hang-up ends it.
func TestTalkAudioDataAcceptedAnswer(t *testing.T) {
	const chunk, chunks = 160, 25
	cases := []struct {
		name   string
		header func(body []byte) string
		body   string
	}{
		{"ResponseStatus OK with length", func(b []byte) string { return fmt.Sprintf("Content-Length: %d\r\n", len(b)) }, "responseStatus_ok.xml"},
		{"empty with length", func([]byte) string { return "Content-Length: 0\r\n" }, ""},
		{"no length (body to the end of the connection)", func([]byte) string { return "Connection: keep-alive\r\n" }, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			base := runtime.NumGoroutine()
			d := newFakeDevice(t)
			var body []byte
			if tc.body != "" {
				body = fixture(t, tc.body)
			}
			acks := make(chan []byte, 1)
			d.handle("/ISAPI/Security/userCheck", serveFile(t, 200, "userCheck_ok.xml"))
			d.handle("/ISAPI/System/TwoWayAudio/channels/1/audioData", acceptingDevice(t, tc.header(body), body, chunk, chunk*chunks, acks))
			srv := httptest.NewServer(d)
			c, err := isapi.New(isapi.Config{Host: strings.TrimPrefix(srv.URL, "http://"), Username: d.user, Password: d.pass})
			if err != nil {
				t.Fatal(err)
			}
			wc, err := c.TalkAudioData(ctxT(t), "1", "")
			if err != nil {
				t.Fatal(err)
			}
			want := audioPattern(chunk * chunks)
			var got []byte
			for i := 0; i < chunks; i++ {
				// each write after the device acknowledged the previous chunk,
				// so the 200 answer has long been read by then
				if _, err := wc.Write(want[i*chunk : (i+1)*chunk]); err != nil {
					t.Fatalf("write %d after the device's 200 answer: %v", i, err)
				}
				b, ok := <-acks
				if !ok {
					t.Fatalf("device stopped reading after %d bytes", len(got))
				}
				got = append(got, b...)
			}
			if !bytes.Equal(got, want) {
				t.Fatal("device received different audio bytes")
			}
			// the device hangs up (after the last chunk): that ends the talk
			err = writeUntilError(t, wc)
			if !errors.Is(err, isapi.ErrTalkEnded) {
				t.Fatalf("write after the hang-up: %v, want ErrTalkEnded", err)
			}
			if err := wc.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Close: %v", err)
			}
			c.Close()
			srv.Close()
			waitGoroutines(t, base)
		})
	}
}

// A 2xx whose ResponseStatus is not OK is a refusal, not an acceptance.
func TestTalkAudioDataAnswer200NotOK(t *testing.T) {
	d := newFakeDevice(t)
	body := fixture(t, "responseStatus_deviceBusy.xml")
	d.handle("/ISAPI/Security/userCheck", serveFile(t, 200, "userCheck_ok.xml"))
	d.handle("/ISAPI/System/TwoWayAudio/channels/1/audioData", func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		fmt.Fprintf(brw, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(body))
		_, _ = brw.Write(body)
		_ = brw.Flush()
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.Copy(io.Discard, brw) // keeps reading: only the answer says no
	})
	c, _ := start(t, d, nil)
	wc, err := c.TalkAudioData(ctxT(t), "1", "")
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	err = writeUntilError(t, wc)
	var se *isapi.StatusError
	if !errors.As(err, &se) || !errors.Is(err, isapi.ErrDeviceBusy) || errors.Is(err, isapi.ErrTalkEnded) {
		t.Fatalf("write error %v (%T), want the device's deviceBusy answer", err, err)
	}
}

func TestTalkChannelValidated(t *testing.T) {
	c, err := isapi.New(isapi.Config{Host: "192.0.2.1", Username: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range []string{"", "1/../../System", "1?x=y", "1 2"} {
		if _, err := c.TalkOpen(ctxT(t), ch); err == nil {
			t.Fatalf("channel %q accepted", ch)
		}
		if _, err := c.TalkAudioData(ctxT(t), ch, ""); err == nil {
			t.Fatalf("channel %q accepted", ch)
		}
	}
}
