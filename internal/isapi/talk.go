package isapi

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrTalkEnded: the device ended the voice-talk audio stream (closed or reset
// the connection). It does so by itself after a few seconds without audio.
// A success answer to the audioData request does not end
// the talk: some firmware answers "200 OK" at once and then reads the audio.
var ErrTalkEnded = errors.New("isapi: voice talk ended by device")

func talkPath(ch, op string) (string, error) {
	if ch == "" {
		return "", errors.New("isapi: voice talk: empty channel id")
	}
	for _, r := range ch {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '-' || r == '_') {
			return "", fmt.Errorf("isapi: voice talk: bad channel id %q", ch)
		}
	}
	return PathTwoWayAudioChannels + "/" + ch + "/" + op, nil
}

// TalkOpen opens a voice-talk session: PUT .../channels/<ch>/open with an
// empty body. sessionID is "" when the device answers a plain OK
// ResponseStatus instead of a TwoWayAudioSession.
func (c *Client) TalkOpen(ctx context.Context, ch string) (sessionID string, err error) {
	path, err := talkPath(ch, "open")
	if err != nil {
		return "", err
	}
	_, b, err := c.Do(ctx, http.MethodPut, path, nil)
	if err != nil {
		return "", err
	}
	switch rootName(b) {
	case "TwoWayAudioSession":
		var x struct {
			SessionID string `xml:"sessionId"`
		}
		if err := decodeXML(b, &x); err != nil {
			return "", protocolError(http.MethodPut, path, "decoding <TwoWayAudioSession>: %v", err)
		}
		return strings.TrimSpace(x.SessionID), nil
	case "ResponseStatus": // OK (Do returned the non-OK ones as errors)
		return "", nil
	case "":
		if len(bytes.TrimSpace(b)) == 0 {
			return "", nil
		}
		return "", protocolError(http.MethodPut, path, "answer is not XML")
	default:
		return "", protocolError(http.MethodPut, path, "want <TwoWayAudioSession>, got <%s>", rootName(b))
	}
}

// TalkClose ends the voice-talk session: PUT .../channels/<ch>/close. The
// device accepts it even when nothing is open.
func (c *Client) TalkClose(ctx context.Context, ch string) error {
	path, err := talkPath(ch, "close")
	if err != nil {
		return err
	}
	_, _, err = c.Do(ctx, http.MethodPut, path, nil)
	return err
}

// TalkAudioData opens PUT .../channels/<ch>/audioData[?sessionId=] on its own
// TCP (or TLS) connection, sends digest-authenticated request headers with
// Content-Type: application/octet-stream and no Content-Length or chunking,
// and returns a writer for raw audio bytes. ctx bounds connecting and sending
// the headers only. A 2xx answer (some firmware sends one at once) means the
// audio is accepted and writing goes on. If the device refuses (any other
// answer), the next Write returns that answer as *AuthError / *StatusError;
// when it closes or resets the connection, an error matching ErrTalkEnded. Close closes the connection and waits for the
// writer's reader goroutine.
func (c *Client) TalkAudioData(ctx context.Context, ch, sessionID string) (io.WriteCloser, error) {
	path, err := talkPath(ch, "audioData")
	if err != nil {
		return nil, err
	}
	if sessionID != "" {
		path += "?sessionId=" + url.QueryEscape(sessionID)
	}
	const method = http.MethodPut

	auth, nc, err := c.loggedIn(ctx)
	if err != nil {
		return nil, err
	}
	var authz string
	if auth != nil { // else the device asks for no credentials
		authz = auth.Authorization(method, path, c.cfg.Username, c.cfg.Password, nc, "")
	}

	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	d := net.Dialer{KeepAlive: 30 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", c.hostport)
	if err != nil {
		c.noteUnanswered()
		return nil, fmt.Errorf("isapi %s %s: %w", method, path, err)
	}
	if c.scheme == "https" {
		tc := tls.Client(conn, c.tlsConf.Clone())
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("isapi %s %s: %w", method, path, err)
		}
		conn = tc
	}

	var hb strings.Builder
	fmt.Fprintf(&hb, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, path, c.hostport)
	if authz != "" {
		hb.WriteString("Authorization: " + authz + "\r\n")
	}
	hb.WriteString("Content-Type: application/octet-stream\r\nConnection: keep-alive\r\n\r\n")
	dl, _ := ctx.Deadline()
	_ = conn.SetWriteDeadline(dl)
	if _, err := io.WriteString(conn, hb.String()); err != nil {
		conn.Close()
		return nil, fmt.Errorf("isapi %s %s: sending headers: %w", method, path, err)
	}
	_ = conn.SetWriteDeadline(time.Time{})

	tw := &talkWriter{
		c: c, auth: auth,
		conn: conn, method: method, path: path,
		timeout: c.cfg.Timeout, maxBody: c.cfg.MaxBodyBytes,
		done: make(chan struct{}),
	}
	go tw.readAnswer()
	return tw, nil
}

type talkWriter struct {
	c            *Client
	auth         *Challenge // the challenge the request answered; nil: none
	conn         net.Conn
	method, path string
	timeout      time.Duration
	maxBody      int64
	done         chan struct{} // closed when readAnswer returns

	mu     sync.Mutex
	answer error // the device's answer, once it came
	closed bool

	closeOnce sync.Once
	closeErr  error
}

func (tw *talkWriter) setAnswer(err error) {
	tw.mu.Lock()
	if !tw.closed {
		tw.answer = err
	}
	tw.mu.Unlock()
}

func (tw *talkWriter) getAnswer() error {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	return tw.answer
}

// readAnswer waits for the device to answer the audioData request and
// records the answer that ends the talk. Firmware differs: most devices answer
// nothing while the talk lasts, others (and stock go2rtc expects this) answer
// "200 OK" at once and then read the audio. A 2xx answer (with an OK body)
// therefore means accepted: the reader keeps watching the connection, and
// only the connection closing or resetting, or an answer that is not a
// success, ends the talk.
func (tw *talkWriter) readAnswer() {
	defer close(tw.done)
	br := bufio.NewReader(tw.conn)
	for {
		resp, err := http.ReadResponse(br, &http.Request{Method: tw.method})
		if err != nil {
			tw.connEnded(err)
			return
		}
		status := resp.StatusCode
		switch {
		case status < 200: // 1xx: informational, the answer is still to come
			resp.Body.Close()
			continue
		case status <= 299 && resp.ContentLength < 0 && len(resp.TransferEncoding) == 0:
			// Accepted, with a body that runs to the end of the connection:
			// nothing more can be parsed; watch for the hang-up.
			_, err := io.Copy(io.Discard, resp.Body)
			tw.connEnded(err)
			return
		}
		if tw.answered(resp) {
			return
		}
		_ = tw.conn.SetReadDeadline(time.Time{}) // accepted: wait for a later answer or the hang-up
	}
}

// connEnded records the end of the audioData connection (err nil: clean EOF).
func (tw *talkWriter) connEnded(err error) {
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
		tw.setAnswer(fmt.Errorf("isapi %s %s: %w (connection closed)", tw.method, tw.path, ErrTalkEnded))
		return
	}
	tw.setAnswer(fmt.Errorf("isapi %s %s: voice talk connection: %w", tw.method, tw.path, err))
}

// answered records resp (status 200 or more, with a framed body) and reports
// whether it ended the talk: an answer that is not a success does; a 2xx
// with an OK (or no) ResponseStatus is the device accepting the audio.
func (tw *talkWriter) answered(resp *http.Response) (ended bool) {
	status := resp.StatusCode
	// the body refines the answer; bounded in size and time
	_ = tw.conn.SetReadDeadline(time.Now().Add(tw.timeout))
	body, err := readCapped(resp.Body, tw.maxBody)
	resp.Body.Close()
	if err != nil && len(body) == 0 {
		if status <= 299 {
			// an accepting answer cut short: the connection is no use any more
			tw.setAnswer(fmt.Errorf("isapi %s %s: %w (HTTP %d answer cut short: %w)", tw.method, tw.path, ErrTalkEnded, status, err))
		} else {
			tw.setAnswer(&StatusError{Method: tw.method, Path: tw.path, HTTPStatus: status})
		}
		return true
	}
	if status == http.StatusUnauthorized && !isNotActivated(body) {
		ae := authErrorFromBody(tw.method, tw.path, body)
		if tw.auth != nil {
			// The cached nonce can expire (or, on a device that wants
			// growing nonce counts, be overtaken by another request) between
			// the login and this request, which cannot be sent again: the
			// talk ends without a failed login, and the next one logs in
			// afresh. Judged as for any request (see sendCached).
			tw.c.dropAuth(tw.auth)
			r := &response{status: status, header: resp.Header, body: body}
			if _, ok, expired := nonceExpired(r); expired || (ok && tw.c.nonceLost(ae)) {
				tw.setAnswer(fmt.Errorf("isapi %s %s: %w (%w)", tw.method, tw.path, ErrTalkEnded, ErrNonceRefused))
				return true
			}
		}
		tw.setAnswer(ae)
		return true
	}
	// non-2xx, and 2xx with a ResponseStatus that is not OK
	if e := checkResponse(tw.method, tw.path, &response{status: status, header: resp.Header, body: body}); e != nil {
		tw.setAnswer(e)
		return true
	}
	return false
}

// Write sends raw audio bytes. After the device answered, it returns that
// answer (see TalkAudioData).
func (tw *talkWriter) Write(p []byte) (int, error) {
	if err := tw.getAnswer(); err != nil {
		return 0, err
	}
	_ = tw.conn.SetWriteDeadline(time.Now().Add(tw.timeout))
	n, err := tw.conn.Write(p)
	if err == nil {
		return n, nil
	}
	// A failed write usually means the device answered and hung up: give the
	// reader a moment to record the answer.
	t := time.NewTimer(time.Second)
	select {
	case <-tw.done:
	case <-t.C:
	}
	t.Stop()
	if a := tw.getAnswer(); a != nil {
		return n, a
	}
	return n, fmt.Errorf("isapi %s %s: voice talk write: %w", tw.method, tw.path, err)
}

// Close closes the connection and waits for the reader goroutine.
func (tw *talkWriter) Close() error {
	tw.closeOnce.Do(func() {
		tw.mu.Lock()
		tw.closed = true
		tw.mu.Unlock()
		tw.closeErr = tw.conn.Close()
		<-tw.done
	})
	return tw.closeErr
}
