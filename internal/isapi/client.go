package isapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// idleProbeAfter: a cached challenge the device has not accepted an answer
// to for this long is answered by one request at a time until it does (see
// probe). Shorter than any device's reboot.
const idleProbeAfter = 10 * time.Second

// Defaults for Config fields left zero.
const (
	DefaultTimeout      = 10 * time.Second
	DefaultMaxBodyBytes = 1 << 20
)

// Config describes one device. Zero fields take defaults in New.
type Config struct {
	Host               string // "host" or "host:port" (HTTP port; default 80, or 443 with HTTPS)
	HTTPS              bool
	Username, Password string
	InsecureSkipVerify bool          // accept any certificate (self-signed devices)
	CertSHA256         string        // optional pin: hex SHA-256 of the leaf certificate (colons allowed)
	Timeout            time.Duration // per request (headers + body), default 10s
	MaxBodyBytes       int64         // cap for any body read, default 1 MiB
}

// Client talks ISAPI to one device. It is safe for concurrent use.
type Client struct {
	cfg      Config
	hostport string // with port
	scheme   string
	pin      []byte // nil: no pin
	tlsConf  *tls.Config
	tr       *http.Transport
	hc       *http.Client

	mu       sync.Mutex // guards auth, nc, accepted
	auth     *Challenge // cached challenge, set after it was accepted once
	nc       uint32
	accepted string // scheme of the last challenge the device accepted

	loginSem chan struct{} // capacity 1: the login lock, serialises fresh challenge exchanges
	loginGen uint64        // guarded by mu: count of finished fresh exchanges
	loginErr error         // guarded by mu: error of the last fresh exchange (auth failure or no answer); nil if it succeeded
	// maxTries is the highest retryLoginTime (tries left before the lock) an
	// unlocked userCheck body from the device has shown; 0 while none did.
	// Guarded by mu. See nonceLost.
	maxTries int
	// unanswered counts requests that got no answer at all (the device may
	// have been rebooting). Guarded by mu. See answerFreshLocked.
	unanswered uint64
	// lastOK is when the device last accepted an answer to the cached
	// challenge (guarded by mu); probeSem (capacity 1) lets one request at
	// a time answer a challenge not accepted within idleProbe. See probe.
	lastOK    time.Time
	probeSem  chan struct{}
	idleProbe time.Duration

	pre preconnect // connections opened ahead of a burst of requests (Preconnect)
}

// New validates cfg and builds a client. It does no network I/O.
func New(cfg Config) (*Client, error) {
	host := strings.TrimSpace(cfg.Host)
	if host == "" {
		return nil, errors.New("isapi: config: empty host")
	}
	if strings.ContainsAny(host, "/@?# ") {
		return nil, fmt.Errorf("isapi: config: host %q must be host or host:port", redactHost(host))
	}
	if cfg.Username == "" {
		return nil, errors.New("isapi: config: empty username")
	}
	if cfg.Timeout < 0 || cfg.MaxBodyBytes < 0 {
		return nil, errors.New("isapi: config: negative timeout or body cap")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	port := "80"
	scheme := "http"
	if cfg.HTTPS {
		port, scheme = "443", "https"
	}
	h, p, err := net.SplitHostPort(host)
	if err != nil {
		// no port (or a bare IPv6 literal)
		h = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		p = port
	}
	if n, err := strconv.Atoi(p); err != nil || n <= 0 || n > 65535 {
		return nil, fmt.Errorf("isapi: config: bad port %q", p)
	}
	if h == "" {
		return nil, errors.New("isapi: config: empty host")
	}
	c := &Client{cfg: cfg, hostport: net.JoinHostPort(h, p), scheme: scheme, loginSem: make(chan struct{}, 1),
		probeSem: make(chan struct{}, 1), idleProbe: idleProbeAfter}

	if cfg.CertSHA256 != "" {
		pin, err := hex.DecodeString(strings.ReplaceAll(strings.TrimSpace(cfg.CertSHA256), ":", ""))
		if err != nil || len(pin) != sha256.Size {
			return nil, errors.New("isapi: config: CertSHA256 must be 64 hex digits (colons allowed)")
		}
		c.pin = pin
	}
	c.tlsConf = &tls.Config{ServerName: h, MinVersion: tls.VersionTLS10}
	if cfg.InsecureSkipVerify || c.pin != nil {
		// devices use self-signed certificates: a pin replaces chain verification
		c.tlsConf.InsecureSkipVerify = true
	}
	if c.pin != nil {
		pin := c.pin
		c.tlsConf.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("no peer certificate")
			}
			sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if !bytes.Equal(sum[:], pin) {
				return &CertPinError{Got: hex.EncodeToString(sum[:])}
			}
			return nil
		}
	}
	dialer := &net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}
	c.pre.dial = dialer.DialContext
	c.tr = &http.Transport{
		DialContext:           c.pre.dialContext,
		TLSClientConfig:       c.tlsConf,
		TLSHandshakeTimeout:   cfg.Timeout,
		ResponseHeaderTimeout: cfg.Timeout,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       60 * time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
		Proxy:                 nil,
	}
	c.hc = &http.Client{
		Transport: c.tr,
		// Redirects are never followed: a digest answer is bound to its URI
		// and credentials must not travel to another host. The 3xx comes back
		// as a *StatusError.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c, nil
}

// CertPinError: the device's leaf certificate does not match Config.CertSHA256.
type CertPinError struct {
	Got string // hex SHA-256 of the certificate the device presented
}

func (e *CertPinError) Error() string {
	return "isapi: certificate SHA-256 " + e.Got + " does not match the pinned fingerprint"
}

// Close drops idle connections. Raw voice-talk connections are closed by
// their own writers.
func (c *Client) Close() {
	c.pre.close()
	c.tr.CloseIdleConnections()
}

// AuthScheme returns the authentication scheme the device accepted at the
// client's last login: "Digest" or "Basic"; "" before any accepted login (or
// when the device asked for no credentials).
func (c *Client) AuthScheme() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.accepted
}

// Host returns "host:port" of the device.
func (c *Client) Host() string { return c.hostport }

func redactHost(h string) string {
	if i := strings.LastIndex(h, "@"); i >= 0 {
		return "***@" + h[i+1:]
	}
	return h
}

// response is one HTTP exchange with the body read (capped).
type response struct {
	status int
	header http.Header
	body   []byte
}

// send performs one HTTP request with an optional Authorization header.
func (c *Client) send(ctx context.Context, method, path string, body []byte, authz string) (*response, error) {
	limit := c.cfg.Timeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < limit {
		limit = time.Until(dl)
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.scheme+"://"+c.hostport+path, rd)
	if err != nil {
		return nil, err
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	if len(body) > 0 {
		req.Header.Set("Content-Type", "application/xml; charset=UTF-8")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.noteUnanswered()
		return nil, asTimeout(parent, limit, unwrapURLError(err))
	}
	defer resp.Body.Close()
	b, err := readCapped(resp.Body, c.cfg.MaxBodyBytes)
	if err != nil {
		c.noteUnanswered()
		return nil, asTimeout(parent, limit, err)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// noteUnanswered counts a request that got no answer (see answerFreshLocked).
func (c *Client) noteUnanswered() {
	c.mu.Lock()
	c.unanswered++
	c.mu.Unlock()
}

// unansweredNow is the count of requests that got no answer so far.
func (c *Client) unansweredNow() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.unanswered
}

// asTimeout turns the ways a timer ends a request (the request context's
// deadline, the transport's header timeout, the dialer's timeout, a read
// deadline) into one *TimeoutError. A caller's cancellation stays as it is.
func asTimeout(parent context.Context, limit time.Duration, err error) error {
	if errors.Is(parent.Err(), context.Canceled) || errors.Is(err, ErrTooLarge) {
		return err
	}
	var ne net.Error
	if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, os.ErrDeadlineExceeded) &&
		!(errors.As(err, &ne) && ne.Timeout()) {
		return err
	}
	var oe *net.OpError
	return &TimeoutError{After: limit, Connecting: errors.As(err, &oe) && oe.Op == "dial", Err: err}
}

// unwrapURLError drops *url.Error's `Get "http://..."` prefix: the caller
// wraps with method and path already.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		return ue.Err
	}
	return err
}

func readCapped(r io.Reader, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%w (over %d bytes)", ErrTooLarge, max)
	}
	if err != nil {
		return nil, fmt.Errorf("reading body: %w", err)
	}
	return b, nil
}

// Do sends an authenticated request and returns the HTTP status and body.
// Non-2xx answers and non-OK ResponseStatus bodies are returned as
// *StatusError (with status and body still filled), a refused login as
// *AuthError.
func (c *Client) Do(ctx context.Context, method, path string, body []byte) (status int, respBody []byte, err error) {
	if !strings.HasPrefix(path, "/") || strings.HasPrefix(path, "//") {
		return 0, nil, fmt.Errorf("isapi %s %s: path must start with a single /", method, path)
	}
	// The digest answer covers the request-target exactly as sent: use the
	// form net/http will put on the wire.
	u, err := url.Parse(path)
	if err != nil {
		return 0, nil, fmt.Errorf("isapi %s %s: bad path: %w", method, path, err)
	}
	path = u.RequestURI()
	r, err := c.authedDo(ctx, method, path, body)
	if err != nil {
		return 0, nil, wrapOp(method, path, err)
	}
	if err := checkResponse(method, path, r); err != nil {
		return r.status, r.body, err
	}
	return r.status, r.body, nil
}

func wrapOp(method, path string, err error) error {
	var ae *AuthError
	var se *StatusError
	if errors.As(err, &ae) || errors.As(err, &se) {
		return err // already names method and path
	}
	return fmt.Errorf("isapi %s %s: %w", method, path, err)
}

// authedDo runs the authentication state machine (see the package doc):
// cached challenge with growing nc; stale=TRUE / invalidOperation →
// re-challenge once; a plain 401 to a cached challenge that the device says
// it did not count (a forgotten nonce) → answer the new challenge once; any
// other plain 401 to a cached or freshly answered challenge is a failed login.
func (c *Client) authedDo(ctx context.Context, method, path string, body []byte) (*response, error) {
	c.mu.Lock()
	if c.auth != nil && !c.confirmedLocked() {
		c.mu.Unlock()
		return c.probe(ctx, method, path, body)
	}
	ch, nc := c.nextAuthLocked()
	reserveLocked(ctx, c, ch)
	c.mu.Unlock()
	if ch != nil {
		return c.sendCached(ctx, method, path, body, ch, nc)
	}
	return c.freshExchange(ctx, method, path, body)
}

// confirmedLocked reports whether the device accepted an answer to the
// cached challenge within idleProbe. c.mu must be held.
func (c *Client) confirmedLocked() bool {
	return time.Since(c.lastOK) < c.idleProbe
}

// noteAccepted records that the device accepted an answer to ch.
func (c *Client) noteAccepted(ch *Challenge) {
	c.mu.Lock()
	if c.auth == ch {
		c.lastOK = time.Now()
	}
	c.mu.Unlock()
}

// probe sends a request on a cached challenge the device has not accepted
// an answer to lately, one request at a time. The device may have rebooted
// while the client sent nothing, forgetting the nonce, and some firmware
// counts each right answer to a forgotten nonce as a failed login: requests
// sent at once would each cost one, and five lock a camera out. The first
// request finds out (accepted: the others go on at once with the same
// challenge; refused: it drops the challenge and the others log in afresh).
// A reboot takes longer than idleProbe, so a challenge accepted within it is
// known to the device or the device is down (no answer, nothing counted).
func (c *Client) probe(ctx context.Context, method, path string, body []byte) (*response, error) {
	select {
	case c.probeSem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	c.mu.Lock()
	ch, nc := c.nextAuthLocked()
	reserveLocked(ctx, c, ch)
	held := ch != nil && !c.confirmedLocked()
	c.mu.Unlock()
	if !held {
		<-c.probeSem // another request's answer settled it
		if ch == nil {
			return c.freshExchange(ctx, method, path, body)
		}
		return c.sendCached(ctx, method, path, body, ch, nc)
	}
	defer func() { <-c.probeSem }()
	return c.sendCached(ctx, method, path, body, ch, nc)
}

// reservation receives, for a login done on behalf of a request sent outside
// authedDo (see loggedIn), the challenge the login answered and a nonce count
// of that challenge set aside for the request. It travels in the login's
// context.
type reservation struct {
	ch *Challenge
	nc uint32
}

type reservationKey struct{}

// reserveLocked sets the next nonce count of ch, the cached challenge a
// request of ctx is about to answer, aside for the reservation in ctx, if
// any. The last call of a login wins: it is the challenge the login ended
// with. c.mu must be held, and ch must be c.auth (or nil: nothing to do).
func reserveLocked(ctx context.Context, c *Client, ch *Challenge) {
	res, _ := ctx.Value(reservationKey{}).(*reservation)
	if res == nil || ch == nil {
		return
	}
	c.nc++
	res.ch, res.nc = ch, c.nc
}

// nextAuthLocked returns the cached challenge and the next nonce count for
// it (nil, 0 without one). c.mu must be held.
func (c *Client) nextAuthLocked() (*Challenge, uint32) {
	if c.auth == nil {
		return nil, 0
	}
	c.nc++
	return c.auth, c.nc
}

// sendCached answers the cached challenge ch (accepted before) with nonce
// count nc. It does not hold the login lock: requests on a logged-in client
// run concurrently.
func (c *Client) sendCached(ctx context.Context, method, path string, body []byte, ch *Challenge, nc uint32) (*response, error) {
	gen := c.unansweredNow()
	r, err := c.send(ctx, method, path, body, ch.Authorization(method, path, c.cfg.Username, c.cfg.Password, nc, ""))
	if err != nil {
		// No answer: the device may be rebooting, and a rebooted device has
		// forgotten its nonces (some firmware then answers a plain 401, which
		// would read as a failed login). Start the next request with a fresh
		// challenge: one extra round trip, never a wrong login.
		c.dropAuth(ch)
		return nil, err
	}
	switch {
	case r.status == http.StatusUnauthorized && !isNotActivated(r.body):
		c.dropAuth(ch)
		nch, ok, expired := nonceExpired(r)
		if ok && expired {
			// The nonce expired (stale=TRUE, or a ResponseStatus
			// invalidOperation: the answer itself was right): not a failed
			// login; answer the new nonce once.
			return c.answerFresh(ctx, method, path, body, &nch, gen)
		}
		if expired { // invalidOperation without a usable challenge
			return c.freshExchange(ctx, method, path, body)
		}
		ae := authErrorFromBody(method, path, r.body)
		if ok && c.nonceLost(ae) {
			// A plain 401, but the device says it did not count it: it no
			// longer knows the nonce (it rebooted). Answer the new
			// challenge once, like a stale one.
			return c.answerFresh(ctx, method, path, body, &nch, gen)
		}
		// A plain 401 (stale=FALSE or none) that the device counted (or
		// whose body does not say): the device refused the credentials
		// (e.g. the password was changed on the device). That was one
		// failed login; retrying with a new challenge would be a second one.
		return nil, ae
	case expiredOutside401(r):
		// Some firmware reports an expired nonce as ResponseStatus
		// invalidOperation: re-challenge once.
		c.dropAuth(ch)
		return c.freshExchange(ctx, method, path, body)
	}
	c.noteAccepted(ch)
	return r, nil
}

// nonceExpired reports whether r, a 401 to a right answer, says the device
// only refused the nonce: stale=TRUE in the new challenge, or a
// ResponseStatus invalidOperation body (some firmware's expired nonce, sent
// with a stale=FALSE challenge). nch is the new challenge, ok whether r
// carries a usable one.
func nonceExpired(r *response) (nch Challenge, ok, expired bool) {
	nch, ok = ChooseChallenge(ParseChallenges(r.header.Values("WWW-Authenticate")))
	return nch, ok, (ok && nch.Stale) || isInvalidOperation(r.body)
}

// expiredOutside401 reports an expired nonce told as a ResponseStatus
// invalidOperation under HTTP 200, as some firmware does. Under 403 or 404
// invalidOperation is the device's answer about the resource (a talk
// channel already in use, a channel it lacks), given after the login
// passed: the nonce was fine.
func expiredOutside401(r *response) bool {
	return r.status >= 200 && r.status <= 299 && isInvalidOperation(r.body)
}

// nonceRefusedError: the device refused the nonce of a right answer once
// more (see ErrNonceRefused).
func nonceRefusedError(method, path string) error {
	return fmt.Errorf("isapi %s %s: %w", method, path, ErrNonceRefused)
}

// nonceLost reports whether ae, the userCheck of a plain 401 to a challenge
// the device accepted before, shows the device did not count that answer as
// a failed login: not locked, and as many tries left as the most the client
// has seen from the device. A device that counted it shows one try fewer. A
// rebooted device that forgot its nonces and answers the old one with a plain
// 401 shows its full count (a reboot also clears its failure counts). Bodies
// without the lock fields never pass: then the 401 stays a failed login. It
// records ae's count for the next call.
func (c *Client) nonceLost(ae *AuthError) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	lost := !ae.Locked && c.maxTries > 0 && ae.RetryLoginTime >= c.maxTries
	c.noteTriesLocked(ae)
	return lost
}

// noteTries records the tries-left count of a 401 body.
func (c *Client) noteTries(body []byte) {
	ae := authErrorFromBody("", "", body)
	c.mu.Lock()
	c.noteTriesLocked(ae)
	c.mu.Unlock()
}

func (c *Client) noteTriesLocked(ae *AuthError) {
	if !ae.Locked && ae.RetryLoginTime > c.maxTries {
		c.maxTries = ae.RetryLoginTime
	}
}

func (c *Client) dropAuth(ch *Challenge) {
	c.mu.Lock()
	if c.auth == ch {
		c.auth = nil
	}
	c.mu.Unlock()
}

// lockLogin takes the login lock (it serialises fresh challenge exchanges),
// or gives up when ctx ends.
func (c *Client) lockLogin(ctx context.Context) error {
	select {
	case c.loginSem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *Client) unlockLogin() { <-c.loginSem }

// finishLogin records the end of a fresh exchange, holding the login lock:
// err is what the callers that waited behind it get instead of trying in
// turn (an auth failure, or a device that did not answer). A caller's own
// cancellation is not shared.
func (c *Client) finishLogin(ctx context.Context, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.loginGen++
	c.loginErr = nil
	if err != nil && ctx.Err() == nil {
		c.loginErr = err
	}
}

// freshExchange sends the request without credentials (never counted toward
// the login lock), reads the challenge and answers it. Concurrent callers are
// serialised so a client makes one challenge round trip and, on a wrong
// password or a device that does not answer, one attempt: the callers that
// waited get its error. Once a challenge is cached the waiters send their
// requests concurrently, without the lock.
func (c *Client) freshExchange(ctx context.Context, method, path string, body []byte) (*response, error) {
	c.mu.Lock()
	gen := c.loginGen
	c.mu.Unlock()

	if err := c.lockLogin(ctx); err != nil {
		return nil, err
	}
	c.mu.Lock()
	ch, nc := c.nextAuthLocked()
	reserveLocked(ctx, c, ch)
	lastErr := c.loginErr
	regen := c.loginGen != gen
	c.mu.Unlock()

	if ch != nil {
		// another caller logged in while we waited
		c.unlockLogin()
		return c.sendCached(ctx, method, path, body, ch, nc)
	}
	if regen && lastErr != nil {
		// another caller's login just failed: do not try again
		c.unlockLogin()
		var ae *AuthError
		if errors.As(lastErr, &ae) {
			cp := *ae
			cp.Method, cp.Path = method, path
			return nil, &cp
		}
		return nil, lastErr
	}
	defer c.unlockLogin()
	return c.exchangeLocked(ctx, method, path, body, false)
}

// exchangeLocked is freshExchange's challenge round trip and answer, with
// the login lock held. again: this is already the second round trip of the
// request (see answerFreshLocked).
func (c *Client) exchangeLocked(ctx context.Context, method, path string, body []byte, again bool) (*response, error) {
	gen := c.unansweredNow()
	r, err := c.send(ctx, method, path, body, "")
	if err != nil {
		c.finishLogin(ctx, err)
		return nil, err
	}
	if r.status != http.StatusUnauthorized {
		c.finishLogin(ctx, nil)
		return r, nil // the device did not ask for credentials
	}
	if isNotActivated(r.body) {
		c.finishLogin(ctx, nil)
		return r, nil // checkResponse turns it into ErrNotActivated; no login attempt
	}
	c.noteTries(r.body)
	nch, ok := ChooseChallenge(ParseChallenges(r.header.Values("WWW-Authenticate")))
	if !ok {
		c.finishLogin(ctx, nil)
		return nil, fmt.Errorf("%w: 401 without a usable WWW-Authenticate challenge (%s)",
			ErrProtocol, schemesOf(r.header.Values("WWW-Authenticate")))
	}
	return c.answerFreshLocked(ctx, method, path, body, &nch, gen, again)
}

// answerFresh answers a stale challenge just received, holding the login
// lock. If another caller refreshed the cached challenge meanwhile (several
// requests hit the same expired nonce), that one is used instead so the
// device sees one new nonce in use.
// gen is the count of unanswered requests when ch was asked for.
func (c *Client) answerFresh(ctx context.Context, method, path string, body []byte, ch *Challenge, gen uint64) (*response, error) {
	if err := c.lockLogin(ctx); err != nil {
		return nil, err
	}
	defer c.unlockLogin()
	c.mu.Lock()
	cached, nc := c.nextAuthLocked()
	reserveLocked(ctx, c, cached)
	c.mu.Unlock()
	if cached == nil {
		return c.answerFreshLocked(ctx, method, path, body, ch, gen, false)
	}
	gen = c.unansweredNow()
	r, err := c.send(ctx, method, path, body, cached.Authorization(method, path, c.cfg.Username, c.cfg.Password, nc, ""))
	if err != nil {
		return nil, err
	}
	if r.status == http.StatusUnauthorized && !isNotActivated(r.body) {
		// The cached challenge is in use by other requests too: its nonce
		// can have expired meanwhile, or (on a device that wants each nonce
		// count higher than the last) another request's higher count can
		// have arrived first. Judge the 401 as sendCached does.
		c.dropAuth(cached)
		nch, ok, expired := nonceExpired(r)
		ae := authErrorFromBody(method, path, r.body)
		if ok && (expired || c.nonceLost(ae)) {
			return c.answerFreshLocked(ctx, method, path, body, &nch, gen, false)
		}
		if expired {
			return nil, nonceRefusedError(method, path)
		}
		return nil, ae
	}
	c.noteAccepted(cached)
	return r, nil
}

// answerFreshLocked answers ch, a challenge just received, with the login
// lock held, and caches it once the device accepted it. gen is the count of
// unanswered requests when ch was asked for: if a request got no answer
// since, the device may have rebooted after it issued ch (the caller may
// have waited long for the login lock) and forgotten its nonce, and some
// firmware counts a right answer to a forgotten nonce as a failed login.
// Such a challenge is not answered: the request asks for a new one
// (once: again says it already did).
func (c *Client) answerFreshLocked(ctx context.Context, method, path string, body []byte, ch *Challenge, gen uint64, again bool) (*response, error) {
	if !again && c.unansweredNow() != gen {
		return c.exchangeLocked(ctx, method, path, body, true)
	}
	r, err := c.send(ctx, method, path, body, ch.Authorization(method, path, c.cfg.Username, c.cfg.Password, 1, ""))
	if err == nil && r.status == http.StatusUnauthorized {
		// stale=TRUE (or invalidOperation) says the answer was right but the
		// nonce outdated (it expired on its way, or another request got a
		// newer one meanwhile): not a failed login; answer the new nonce
		// once.
		if nch, ok, expired := nonceExpired(r); ok && expired {
			ch = &nch
			r, err = c.send(ctx, method, path, body, ch.Authorization(method, path, c.cfg.Username, c.cfg.Password, 1, ""))
		}
	}
	if err != nil {
		c.finishLogin(ctx, err)
		return nil, err
	}
	if r.status == http.StatusUnauthorized {
		if isNotActivated(r.body) {
			c.finishLogin(ctx, nil)
			return r, nil
		}
		if _, _, expired := nonceExpired(r); expired {
			// the new nonce was refused as outdated too: still no failed
			// login, and not one for the requests waiting behind this one
			c.finishLogin(ctx, nil)
			return nil, nonceRefusedError(method, path)
		}
		ae := authErrorFromBody(method, path, r.body)
		c.finishLogin(ctx, ae)
		return nil, ae
	}
	c.mu.Lock()
	c.auth, c.nc, c.accepted = ch, 1, ch.Scheme
	c.lastOK = time.Now()
	reserveLocked(ctx, c, ch)
	c.mu.Unlock()
	c.finishLogin(ctx, nil)
	return r, nil
}

func schemesOf(hs []string) string {
	var names []string
	for _, ch := range ParseChallenges(hs) {
		s := ch.Scheme
		if ch.Algorithm != "" {
			s += " " + ch.Algorithm
		}
		names = append(names, s)
	}
	if len(names) == 0 {
		return "none offered"
	}
	return "offered: " + strings.Join(names, ", ")
}

// loggedIn returns the cached challenge and the next nonce count for a
// request sent outside authedDo (the alert stream, voice talk audio),
// logging in first with one cheap userCheck when none is cached. That login
// sets a nonce count of the challenge it answered aside for the request
// (see reservation): another request can drop the cached challenge between
// the login and this request (it met an expired or refused nonce), and the
// request must not go out without credentials, whose 401 would read as a
// refused password. nil with a nil error: the device asks for no
// credentials.
func (c *Client) loggedIn(ctx context.Context) (*Challenge, uint32, error) {
	var ch *Challenge
	var nc uint32
	c.mu.Lock()
	if c.auth != nil && c.confirmedLocked() { // else the userCheck probes it
		ch, nc = c.nextAuthLocked()
	}
	c.mu.Unlock()
	if ch != nil {
		return ch, nc, nil
	}
	res := &reservation{}
	if _, _, err := c.Do(context.WithValue(ctx, reservationKey{}, res), http.MethodGet, PathUserCheck, nil); err != nil {
		var se *StatusError
		if !errors.As(err, &se) || errors.Is(err, ErrNotActivated) {
			return nil, 0, err
		}
	}
	return res.ch, res.nc, nil // nil: the login needed no credentials
}

// GetXML GETs path and decodes the XML body into v (elements matched by local
// name, so any namespace works).
func (c *Client) GetXML(ctx context.Context, path string, v any) error {
	_, b, err := c.Do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	if err := decodeXML(b, v); err != nil {
		return fmt.Errorf("isapi GET %s: %w: %v", path, ErrProtocol, err)
	}
	return nil
}
