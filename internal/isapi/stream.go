package isapi

import (
	"context"
	"fmt"
	"net/http"
	"strings"
)

// OpenStream GETs a resource that answers with a body that does not end (the event alert stream,
// /ISAPI/Event/notification/alertStream) and returns the response with its body unread: the caller
// reads and closes it, and cancelling ctx ends it. Only the response headers are bounded by
// Config.Timeout. It authenticates like Do: the cached challenge if there is one (an expired nonce is
// answered once more, not counted as a failed login), else one cheap userCheck exchange first. A non-2xx
// answer is read (capped) and returned as *AuthError or *StatusError.
func (c *Client) OpenStream(ctx context.Context, path string) (*http.Response, error) {
	const method = http.MethodGet
	if !strings.HasPrefix(path, "/") || strings.HasPrefix(path, "//") {
		return nil, fmt.Errorf("isapi %s %s: path must start with a single /", method, path)
	}
	var next *Challenge // the device's new challenge after a refused nonce
	for try := 0; ; try++ {
		ch, nc, err := next, uint32(1), error(nil)
		if next == nil {
			ch, nc, err = c.loggedIn(ctx)
		}
		if err != nil {
			return nil, err
		}
		req, err := http.NewRequestWithContext(ctx, method, c.scheme+"://"+c.hostport+path, nil)
		if err != nil {
			return nil, fmt.Errorf("isapi %s %s: %w", method, path, err)
		}
		if ch != nil {
			req.Header.Set("Authorization", ch.Authorization(method, path, c.cfg.Username, c.cfg.Password, nc, ""))
		}
		resp, err := c.hc.Do(req)
		if err != nil {
			c.noteUnanswered()
			if ch != nil {
				c.dropAuth(ch) // the device may have rebooted and forgotten its nonces
			}
			return nil, wrapOp(method, path, asTimeout(ctx, c.cfg.Timeout, unwrapURLError(err)))
		}
		if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
			if ch != nil {
				c.noteAccepted(ch)
			}
			return resp, nil
		}
		b, rerr := readCapped(resp.Body, c.cfg.MaxBodyBytes)
		resp.Body.Close()
		if rerr != nil {
			return nil, wrapOp(method, path, rerr)
		}
		r := &response{status: resp.StatusCode, header: resp.Header, body: b}
		if r.status == http.StatusUnauthorized && !isNotActivated(b) {
			ae := authErrorFromBody(method, path, b)
			if ch != nil {
				// judged as for any request (see sendCached): an expired
				// nonce, or a plain 401 the device says it did not count
				c.dropAuth(ch)
				nch, ok, expired := nonceExpired(r)
				if expired || (ok && c.nonceLost(ae)) {
					if try == 0 {
						// Log in again once, answering the new challenge
						// itself: no other request uses its nonce, so
						// neither its expiry by another's hand nor another's
						// nonce count can get in the way.
						if ok {
							next = &nch
						}
						continue
					}
					return nil, nonceRefusedError(method, path)
				}
			}
			return nil, ae
		}
		// Not 401: the device answered about the resource after the login
		// passed (an invalidOperation under 403 or 404 is not an expired
		// nonce, see expiredOutside401; a 2xx was returned above).
		if err := checkResponse(method, path, r); err != nil {
			return nil, err
		}
		return nil, &StatusError{Method: method, Path: path, HTTPStatus: r.status}
	}
}
