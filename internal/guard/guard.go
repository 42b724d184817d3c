package guard

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
)

// Config sets a guard's rules. Zero fields take the defaults.
type Config struct {
	// MaxFailedLogins per Window. Default 2.
	MaxFailedLogins int
	// Window over which failed logins are counted. Default 30 min.
	Window time.Duration
	// ReserveTries: the guard never uses a device's last ReserveTries login
	// tries (from RetryLoginTime). Default 1. Negative means 0.
	ReserveTries int
	// LockMargin is added to the device's unlockTime. Default 5 s.
	LockMargin time.Duration
	// LockHold is how long to hold after a lock without unlockTime. Default 30 min.
	LockHold time.Duration
	// PendingTimeout: a login allowed but never reported is forgotten after
	// this long. Default 1 min.
	PendingTimeout time.Duration
	// PendingRetry: how long a hold for logins in flight lasts. Default 1 s.
	PendingRetry time.Duration
	// PeerReserve: when the guard reads the device's tries left before a
	// login (see Peek), it logs in only if more than ReserveTries+PeerReserve
	// tries are left, so that PeerReserve other processes logging in at the
	// same moment still leave ReserveTries unused. Default 2. Negative means 0.
	PeerReserve int
	// PeekHold: how long a hold decided from a peeked count lasts before the
	// guard reads the count again. Default 1 min.
	PeekHold time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Defaults of Config.
const (
	DefaultMaxFailedLogins = 2
	DefaultWindow          = 30 * time.Minute
	DefaultReserveTries    = 1
	DefaultLockMargin      = 5 * time.Second
	DefaultLockHold        = 30 * time.Minute
	DefaultPendingTimeout  = time.Minute
	DefaultPendingRetry    = time.Second
	DefaultPeerReserve     = 2
	DefaultPeekHold        = time.Minute
)

func (c Config) withDefaults() Config {
	if c.MaxFailedLogins <= 0 {
		c.MaxFailedLogins = DefaultMaxFailedLogins
	}
	if c.Window <= 0 {
		c.Window = DefaultWindow
	}
	if c.ReserveTries == 0 {
		c.ReserveTries = DefaultReserveTries
	} else if c.ReserveTries < 0 {
		c.ReserveTries = 0
	}
	if c.LockMargin <= 0 {
		c.LockMargin = DefaultLockMargin
	}
	if c.LockHold <= 0 {
		c.LockHold = DefaultLockHold
	}
	if c.PendingTimeout <= 0 {
		c.PendingTimeout = DefaultPendingTimeout
	}
	if c.PendingRetry <= 0 {
		c.PendingRetry = DefaultPendingRetry
	}
	if c.PeerReserve == 0 {
		c.PeerReserve = DefaultPeerReserve
	} else if c.PeerReserve < 0 {
		c.PeerReserve = 0
	}
	if c.PeekHold <= 0 {
		c.PeekHold = DefaultPeekHold
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Registry hands out one Guard per device key (host + user).
type Registry struct {
	cfg    Config
	mu     sync.Mutex
	guards map[string]*Guard
}

// NewRegistry returns an empty registry whose guards use cfg.
func NewRegistry(cfg Config) *Registry {
	return &Registry{cfg: cfg.withDefaults(), guards: map[string]*Guard{}}
}

// Get returns the guard of the device at host for user, creating it. host may
// carry a port, which is ignored (all services of a device share its lock);
// it is compared case-insensitively. secret identifies the password (use
// Secret; never pass the password itself): when it differs from the one the
// guard was last given, the guard's history is reset, because a changed
// password deserves a fresh try. The same *Guard is returned for a key
// whatever the secret, so every session of the device shares it.
func (r *Registry) Get(host, user, secret string) *Guard {
	host = normalizeHost(host)
	key := host + "\x00" + user

	r.mu.Lock()
	g := r.guards[key]
	if g == nil {
		g = &Guard{cfg: r.cfg, host: host, user: user, secret: secret, retryLeft: -1, peekLeft: -1}
		r.guards[key] = g
	}
	r.mu.Unlock()

	g.mu.Lock()
	if g.secret != secret {
		g.secret = secret
		g.reset()
	}
	g.mu.Unlock()
	return g
}

// normalizeHost keys a device by host and port: two devices behind one
// address (port forwarding, an NVR and a camera on one router) each get
// their own budget, as each device keeps its own login lock.
func normalizeHost(host string) string {
	if h, p, err := net.SplitHostPort(host); err == nil {
		return net.JoinHostPort(strings.ToLower(h), p)
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	return strings.ToLower(host)
}

var (
	secretKeyOnce sync.Once
	secretKey     []byte
)

// Secret returns a value that identifies password within this process (an
// HMAC-SHA256 under a random per-process key), for Registry.Get. It cannot
// be used to recover or check the password outside the process.
func Secret(password string) string {
	secretKeyOnce.Do(func() {
		secretKey = make([]byte, 32)
		if _, err := rand.Read(secretKey); err != nil {
			panic(err) // crypto/rand does not fail on supported platforms
		}
	})
	m := hmac.New(sha256.New, secretKey)
	m.Write([]byte(password))
	return hex.EncodeToString(m.Sum(nil))
}

// Guard is the login guard of one device. It is safe for concurrent use.
type Guard struct {
	cfg    Config
	host   string
	user   string
	secret string

	mu          sync.Mutex
	failures    []time.Time // failed logins, oldest first
	pending     []time.Time // logins allowed and not yet reported, oldest first
	verified    bool        // the last authenticated outcome was a success
	lockedUntil time.Time
	retryLeft   int // tries left the device last reported; -1 unknown
	retryAt     time.Time
	refused     bool      // the device refused these credentials since they last worked
	peekLeft    int       // tries left a peek read; -1 unknown
	peekAt      time.Time // last peek
	lastErr     error
	lastKind    Kind
	lastErrAt   time.Time
	consecutive int

	allowed       int
	held          int
	successes     int
	failed        int
	loginFailures int
	peeks         int

	// changed is closed (and replaced) whenever a login in flight is
	// reported, so Wait can wake up the callers held by it.
	changed chan struct{}
}

// Host and User name the device the guard protects.
func (g *Guard) Host() string { return g.host }
func (g *Guard) User() string { return g.user }

func (g *Guard) reset() {
	g.failures = nil
	g.pending = nil
	g.verified = false
	g.lockedUntil = time.Time{}
	g.retryLeft = -1
	g.retryAt = time.Time{}
	g.refused = false
	g.peekLeft = -1
	g.peekAt = time.Time{}
	g.lastErr = nil
	g.lastKind = KindNone
	g.lastErrAt = time.Time{}
	g.consecutive = 0
}

// HoldError is Do's answer while the guard holds logins.
type HoldError struct {
	Host string
	User string
	// Reason is why: KindWrongCredentials (budget spent), KindLocked,
	// KindLoginPending, or the kind of the failure that spent the budget.
	Reason Kind
	// Until is the earliest time the next login may be tried.
	Until time.Time
	// Detail says what the guard saw, e.g. "wrong credentials twice in 30m0s".
	Detail string
	// LastErr is the last failure reported to the guard, if any.
	LastErr error
}

func (e *HoldError) Error() string {
	return fmt.Sprintf("hikvision: %s (%s): holding logins: %s; next try after %s",
		e.Host, e.User, e.Detail, e.Until.Format("15:04:05"))
}

// Unwrap returns the last failure, so errors.Is(err, isapi.ErrUnauthorized)
// works on a hold.
func (e *HoldError) Unwrap() error { return e.LastErr }

// Permanent reports whether redialling before Until is useless. It matches
// the Permanent() method the patched go2rtc checks before redialling.
func (e *HoldError) Permanent() bool { return Permanent(e.Reason) }

// Do runs req as one authenticated attempt on the device and returns req's
// error, or a *HoldError without running req when the guard holds logins
// (see the package rules). It is the only way this module sends an
// authenticated request: everything that can spend a login (probe, RTSP
// DESCRIBE/SETUP, talk, snapshots) is a req of Do, so every outcome is
// classified by one rule (Outcome) and no attempt is left unfinished.
//
// While the only reason to hold is a first login still in flight
// (KindLoginPending), Do waits for that login's outcome (or ctx).
//
// peek, if not nil, reads the device's login state without credentials; Do
// calls it before a login when the device has refused this user before and
// the credentials have not worked since, and holds if the device would be
// left with too few tries (Config.PeerReserve). It may be nil.
func (g *Guard) Do(ctx context.Context, peek Peek, req func(ctx context.Context) error) error {
	if peek != nil && g.wantPeek() {
		st, err := peek(ctx)
		if err == nil {
			g.peeked(st)
		}
	}
	if err := g.wait(ctx); err != nil {
		return err
	}
	err := req(ctx)
	g.finish(err)
	return err
}

// ErrNotVerified is DoVerified's answer when the credentials are not known
// to be good: the request was not sent.
var ErrNotVerified = errors.New("guard: credentials not verified; request not sent")

// DoVerified runs a best-effort request whose answer is never read (an RTSP
// TEARDOWN written as a session closes) only while the device's last
// authenticated answer was a success; otherwise it answers ErrNotVerified
// without running req. A nil error from req records nothing (there was no
// answer to learn from); a failed login it reports is recorded like Do's.
func (g *Guard) DoVerified(ctx context.Context, req func(ctx context.Context) error) error {
	g.mu.Lock()
	ok := g.verified
	g.mu.Unlock()
	if !ok {
		return ErrNotVerified
	}
	err := req(ctx)
	if Outcome(err) == ResultFailedLogin {
		g.ReportLate(err)
	}
	return err
}

// Peek reads the device's login state for this client without sending
// credentials (a request without credentials never counts as a login).
type Peek func(ctx context.Context) (Peeked, error)

// Peeked is the device's login state for this client, as it tells it to a
// request without credentials.
type Peeked struct {
	// Locked: the device locks this client now, for UnlockTime (0: not said).
	Locked     bool
	UnlockTime time.Duration
	// TriesLeft before the device locks this client; -1 if it did not say.
	TriesLeft int
}

// wantPeek: a login would be made now, the device refused this user before
// and nothing proved the credentials since, and the last peek is older than
// PeekHold.
func (g *Guard) wantPeek() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.cfg.Now()
	g.prune(now)
	if g.verified || !g.refused || g.holdLocked(now) != nil {
		return false // no reason to read, or no login would be made anyway
	}
	return g.peekAt.IsZero() || !now.Before(g.peekAt.Add(g.cfg.PeekHold))
}

// peeked records what a peek read.
func (g *Guard) peeked(st Peeked) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.cfg.Now()
	g.peekAt = now
	g.peeks++
	if st.Locked {
		lockFor := g.cfg.LockHold
		if st.UnlockTime > 0 {
			lockFor = st.UnlockTime + g.cfg.LockMargin
		}
		if until := now.Add(lockFor); until.After(g.lockedUntil) {
			g.lockedUntil = until
		}
		return
	}
	if st.TriesLeft >= 0 {
		g.peekLeft = st.TriesLeft
	}
}

// finish records the outcome of an attempt Do allowed.
func (g *Guard) finish(err error) {
	switch Outcome(err) {
	case ResultOK, ResultAccepted:
		g.success()
	case ResultAbandoned:
		g.release()
	default:
		g.report(err)
	}
}

// ReportLate records a device's refusal that arrives after the request Do
// ran has returned (the device refusing the credentials on a connection the
// request opened, e.g. talk audio). Only failed logins are recorded; it
// does not touch the logins in flight.
func (g *Guard) ReportLate(err error) {
	if !countsAsLogin(Classify(err)) {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.recordLocked(err, Classify(err), g.cfg.Now())
}

// release forgets a login in flight whose request was abandoned before the
// device answered (the caller stopped): nothing is recorded.
func (g *Guard) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.popPending()
}

// allow returns nil if an authenticated request to the device may be made
// now, or a *HoldError saying why not and until when. A nil answer reserves
// a login in flight until report, success or release is called (or
// PendingTimeout passes).
func (g *Guard) allow() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.allowLocked(); err != nil {
		return err
	}
	return nil
}

// allowLocked is Allow with g.mu held.
func (g *Guard) allowLocked() *HoldError {
	now := g.cfg.Now()
	g.prune(now)

	if err := g.holdLocked(now); err != nil {
		g.held++
		return err
	}
	g.allowed++
	g.pending = append(g.pending, now)
	return nil
}

func (g *Guard) prune(now time.Time) {
	cut := now.Add(-g.cfg.Window)
	i := 0
	for i < len(g.failures) && !g.failures[i].After(cut) {
		i++
	}
	g.failures = g.failures[i:]

	cut = now.Add(-g.cfg.PendingTimeout)
	i = 0
	for i < len(g.pending) && !g.pending[i].After(cut) {
		i++
	}
	g.pending = g.pending[i:]

	if g.retryLeft >= 0 && !g.retryAt.Add(g.cfg.Window).After(now) {
		g.retryLeft = -1
	}
	if g.peekLeft >= 0 && !g.peekAt.Add(g.cfg.PeekHold).After(now) {
		g.peekLeft = -1
	}
}

func (g *Guard) hold(reason Kind, until time.Time, detail string) *HoldError {
	return &HoldError{Host: g.host, User: g.user, Reason: reason, Until: until, Detail: detail, LastErr: g.lastErr}
}

// holdLocked returns the hold in force at now, if any; g.mu held, pruned.
func (g *Guard) holdLocked(now time.Time) *HoldError {
	if now.Before(g.lockedUntil) {
		return g.hold(KindLocked, g.lockedUntil, "device locked this client")
	}
	if n := len(g.failures); n >= g.cfg.MaxFailedLogins {
		return g.hold(g.lastLoginKind(), g.failures[n-g.cfg.MaxFailedLogins].Add(g.cfg.Window),
			fmt.Sprintf("%s %s in %s", g.lastLoginKind(), times(n), g.cfg.Window))
	}
	if g.retryLeft >= 0 && g.retryLeft <= g.cfg.ReserveTries {
		return g.hold(g.lastLoginKind(), g.retryAt.Add(g.cfg.Window),
			fmt.Sprintf("%s; device allows %d more login tries before it locks, kept for manual logins",
				g.lastLoginKind(), g.retryLeft))
	}
	if g.peekLeft >= 0 && !g.verified && g.peekLeft <= g.cfg.ReserveTries+g.cfg.PeerReserve {
		return g.hold(g.lastLoginKind(), g.peekAt.Add(g.cfg.PeekHold),
			fmt.Sprintf("%s; device allows %d more login tries before it locks (other clients count too), "+
				"kept for manual logins and other clients", g.lastLoginKind(), g.peekLeft))
	}
	if !g.verified && len(g.failures)+len(g.pending) >= g.cfg.MaxFailedLogins {
		return g.hold(KindLoginPending, now.Add(g.cfg.PendingRetry),
			fmt.Sprintf("%d logins in flight with the budget at %d of %d failed",
				len(g.pending), len(g.failures), g.cfg.MaxFailedLogins))
	}
	return nil
}

// lastLoginKind is the kind of the last failure that counted as a login.
func (g *Guard) lastLoginKind() Kind {
	if countsAsLogin(g.lastKind) {
		return g.lastKind
	}
	return KindWrongCredentials
}

func times(n int) string {
	switch n {
	case 1:
		return "once"
	case 2:
		return "twice"
	}
	return fmt.Sprintf("%d times", n)
}

// report records a failure and returns its kind. Only failed logins (wrong
// credentials, locked) count toward the budget; a lock answer also holds
// until the device's unlockTime; a RetryLoginTime in an *isapi.AuthError is
// remembered. A *HoldError (the guard's own answer) is not recorded. A nil
// err is the same as success.
func (g *Guard) report(err error) Kind {
	kind := Classify(err)
	if kind == KindNone {
		g.success()
		return kind
	}
	var hold *HoldError
	if errors.As(err, &hold) {
		return kind
	}

	g.mu.Lock()
	defer g.mu.Unlock()

	now := g.cfg.Now()
	g.prune(now)
	g.popPending()
	g.recordLocked(err, kind, now)
	return kind
}

// recordLocked records a failure of kind; g.mu held.
func (g *Guard) recordLocked(err error, kind Kind, now time.Time) {
	g.failed++
	g.consecutive++
	g.lastErr = err
	g.lastKind = kind
	g.lastErrAt = now

	if !countsAsLogin(kind) {
		return
	}

	g.verified = false
	g.refused = true
	g.loginFailures++
	g.failures = append(g.failures, now)

	var auth *isapi.AuthError
	hasAuth := errors.As(err, &auth)
	if hasAuth && auth.RetryLoginTime >= 0 && !auth.Locked {
		g.retryLeft = auth.RetryLoginTime
		g.retryAt = now
	}
	if kind == KindLocked {
		lockFor := g.cfg.LockHold
		if hasAuth && auth.UnlockTime > 0 {
			lockFor = auth.UnlockTime + g.cfg.LockMargin
		}
		if until := now.Add(lockFor); until.After(g.lockedUntil) {
			g.lockedUntil = until
		}
	}
}

func (g *Guard) popPending() {
	if len(g.pending) > 0 {
		g.pending = g.pending[1:]
	}
	if g.changed != nil {
		close(g.changed)
		g.changed = nil
	}
}

// wait is allow for callers that may wait: while the only reason to hold is
// a first login still in flight (KindLoginPending: several streams of one
// device dialled at once, before any login succeeded), it waits for that
// login's outcome, then asks again. Any other hold is returned at once, as
// is the pending hold when ctx ends first.
func (g *Guard) wait(ctx context.Context) error {
	for {
		g.mu.Lock()
		err := g.allowLocked()
		if err == nil || err.Reason != KindLoginPending {
			g.mu.Unlock()
			if err == nil {
				return nil
			}
			return err
		}
		if g.changed == nil {
			g.changed = make(chan struct{})
		}
		ch := g.changed
		g.mu.Unlock()

		// The pending login may never be reported (a caller that died):
		// PendingTimeout forgets it, so asking again later is bounded too.
		t := time.NewTimer(g.cfg.PendingRetry)
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
		t.Stop()
	}
}

// success records an authenticated request that succeeded: the credentials
// are good and the device is not locked, so failure history, lock and
// RetryLoginTime are cleared (the device resets its own count on a good
// login).
func (g *Guard) success() {
	g.mu.Lock()
	defer g.mu.Unlock()

	g.popPending()
	g.successes++
	g.verified = true
	g.failures = nil
	g.lockedUntil = time.Time{}
	g.retryLeft = -1
	g.retryAt = time.Time{}
	g.refused = false
	g.peekLeft = -1
	g.peekAt = time.Time{}
	g.lastErr = nil
	g.lastKind = KindNone
	g.consecutive = 0
}

// State is the guard's state word for status pages.
type State string

const (
	StateIdle    State = "idle"    // nothing known yet
	StateOK      State = "ok"      // last authenticated request succeeded
	StateFailing State = "failing" // failures, but logins allowed
	StateHolding State = "holding" // Allow holds (budget, tries left, in flight)
	StateLocked  State = "locked"  // device lock; Allow holds until LockedUntil
)

// Snapshot is a snapshot of a guard.
type Snapshot struct {
	Host  string `json:"host"`
	User  string `json:"user"`
	State State  `json:"state"`
	// Reason is the hold's reason or the last failure's kind.
	Reason Kind `json:"reason"`
	// HoldUntil is when the hold ends; zero if not holding.
	HoldUntil time.Time `json:"hold_until,omitzero"`
	// LockedUntil is when the device's lock ends (plus margin); zero if none.
	LockedUntil time.Time `json:"locked_until,omitzero"`
	// FailedLogins in the current window, of Budget allowed per Window.
	FailedLogins int           `json:"failed_logins"`
	Budget       int           `json:"budget"`
	Window       time.Duration `json:"window"`
	// RetryLoginTime is the tries left the device last reported; -1 unknown.
	RetryLoginTime int `json:"retry_login_time"`
	// LastError is the last failure's message (no passwords: the guard only
	// sees errors, and callers must not put passwords in errors).
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// ConsecutiveFailures since the last success (any kind): the attempt
	// number for Backoff.
	ConsecutiveFailures int `json:"consecutive_failures"`
	// Totals since the guard was created (not reset by a password change).
	Allowed   int `json:"allowed"`
	Held      int `json:"held"`
	Successes int `json:"successes"`
	Failures  int `json:"failures"`
	// LoginFailures: failed logins recorded since the guard was created;
	// Peeks: reads of the device's login state without credentials.
	LoginFailures int `json:"login_failures"`
	Peeks         int `json:"peeks"`
}

// Snapshot returns a snapshot of the guard.
func (g *Guard) Snapshot() Snapshot {
	g.mu.Lock()
	defer g.mu.Unlock()

	now := g.cfg.Now()
	g.prune(now)

	s := Snapshot{
		Host:                g.host,
		User:                g.user,
		Reason:              g.lastKind,
		FailedLogins:        len(g.failures),
		Budget:              g.cfg.MaxFailedLogins,
		Window:              g.cfg.Window,
		RetryLoginTime:      g.retryLeft,
		LastErrorAt:         g.lastErrAt,
		ConsecutiveFailures: g.consecutive,
		Allowed:             g.allowed,
		Held:                g.held,
		Successes:           g.successes,
		Failures:            g.failed,
		LoginFailures:       g.loginFailures,
		Peeks:               g.peeks,
	}
	if g.lastErr != nil {
		s.LastError = g.lastErr.Error()
	}
	if now.Before(g.lockedUntil) {
		s.LockedUntil = g.lockedUntil
	}

	switch hold := g.holdLocked(now); {
	case hold != nil && hold.Reason == KindLocked:
		s.State, s.Reason, s.HoldUntil = StateLocked, hold.Reason, hold.Until
	case hold != nil:
		s.State, s.Reason, s.HoldUntil = StateHolding, hold.Reason, hold.Until
	case g.lastErr != nil:
		s.State = StateFailing
	case g.verified:
		s.State = StateOK
	default:
		s.State = StateIdle
	}
	return s
}
