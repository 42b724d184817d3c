package isapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// OpenStream sends an authenticated GET for a response that does not end
// (the event alert stream) and returns it with its body unread; the caller
// closes the body. ctx bounds the whole stream: cancelling it aborts the
// request and the body. The answer's headers must come within the client's
// timeout; the body has no timeout. An answer other than 2xx is returned as
// *StatusError (the body read, capped, and closed), a refused login as
// *AuthError.
//
// The digest answer comes from the client's cached challenge. Without one,
// one cheap authenticated request (userCheck) logs in first, through the
// same login machinery as Do, so a wrong password costs one failed login. A
// 401 to the cached challenge is handled as Do handles it: stale=TRUE, or a
// device that says it did not count the answer (it forgot its nonces after a
// reboot), gets the new challenge answered once; any other 401 was a failed
// login and is returned as such.
func (c *Client) OpenStream(ctx context.Context, path string) (*http.Response, error) {
	const method = http.MethodGet
	if !strings.HasPrefix(path, "/") || strings.HasPrefix(path, "//") {
		return nil, fmt.Errorf("isapi %s %s: path must start with a single /", method, path)
	}
	u, err := url.Parse(path)
	if err != nil {
		return nil, fmt.Errorf("isapi %s %s: bad path: %w", method, path, err)
	}
	path = u.RequestURI()

	authz, ok := c.authorization(method, path)
	if !ok {
		if _, _, err := c.Do(ctx, method, PathUserCheck, nil); err != nil {
			var se *StatusError
			if !errors.As(err, &se) || errors.Is(err, ErrNotActivated) {
				return nil, err
			}
		}
		authz, _ = c.authorization(method, path) // still none: the device asks for no credentials
	}
	resp, err := c.streamRequest(ctx, path, authz)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusUnauthorized {
		body, _ := readCapped(resp.Body, c.cfg.MaxBodyBytes)
		resp.Body.Close()
		c.mu.Lock()
		cached := c.auth
		c.mu.Unlock()
		if cached != nil {
			c.dropAuth(cached)
		}
		nch, ok := ChooseChallenge(ParseChallenges(resp.Header.Values("WWW-Authenticate")))
		ae := authErrorFromBody(method, path, body)
		if isNotActivated(body) {
			return nil, checkResponse(method, path, &response{status: resp.StatusCode, header: resp.Header, body: body})
		}
		if !ok || authz == "" || !(nch.Stale || c.nonceLost(ae)) {
			return nil, ae
		}
		// answer the new challenge once, through the login lock
		if err := c.lockLogin(ctx); err != nil {
			return nil, err
		}
		resp, err = c.streamRequest(ctx, path, nch.Authorization(method, path, c.cfg.Username, c.cfg.Password, 1, ""))
		if err == nil && resp.StatusCode == http.StatusUnauthorized {
			body, _ := readCapped(resp.Body, c.cfg.MaxBodyBytes)
			resp.Body.Close()
			ae := authErrorFromBody(method, path, body)
			c.finishLogin(ctx, ae)
			c.unlockLogin()
			return nil, ae
		}
		if err == nil {
			c.mu.Lock()
			c.auth, c.nc, c.accepted = &nch, 1, nch.Scheme
			c.mu.Unlock()
		}
		c.finishLogin(ctx, err)
		c.unlockLogin()
		if err != nil {
			return nil, err
		}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		body, _ := readCapped(resp.Body, c.cfg.MaxBodyBytes)
		resp.Body.Close()
		return nil, checkResponse(method, path, &response{status: resp.StatusCode, header: resp.Header, body: body})
	}
	return resp, nil
}

// streamRequest sends one GET and returns the response with its body unread.
// Only the headers are bounded by the client's timeout (the transport's).
func (c *Client) streamRequest(ctx context.Context, path, authz string) (*http.Response, error) {
	const method = http.MethodGet
	req, err := http.NewRequestWithContext(ctx, method, c.scheme+"://"+c.hostport+path, nil)
	if err != nil {
		return nil, err
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if authz != "" {
			c.mu.Lock()
			cached := c.auth
			c.mu.Unlock()
			if cached != nil {
				c.dropAuth(cached) // no answer: the device may be rebooting (see sendCached)
			}
		}
		return nil, wrapOp(method, path, asTimeout(ctx, c.cfg.Timeout, unwrapURLError(err)))
	}
	return resp, nil
}
