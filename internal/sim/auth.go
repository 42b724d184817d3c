package sim

// Server side of HTTP Digest (RFC 7616, formerly RFC 2617) and Basic (RFC 7617) as Hikvision devices
// answer it, plus the per-client-IP illegal login lock. Written here from the RFCs, independent of the
// client's digest code, so that a mistake on one side shows up as a failing test.

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// authOutcome is the result of checking one request's credentials.
type authOutcome int

const (
	authNone     authOutcome = iota // no (usable) credentials: challenge, never counts
	authOK                          // good credentials
	authFailed                      // wrong user/password: counts toward the lock
	authStale                       // right password, expired or unknown nonce: stale challenge
	authRejected                    // malformed, replayed nc, wrong uri/realm/algorithm: challenge, no count
	authLocked                      // the client IP is locked: nothing else was checked
	authUnknown                     // right password, nonce unknown (Config.UnknownNonce plain): plain 401, no count
)

func (o authOutcome) String() string {
	switch o {
	case authNone:
		return "none"
	case authOK:
		return "ok"
	case authFailed:
		return "failed"
	case authStale:
		return "stale"
	case authRejected:
		return "rejected"
	case authLocked:
		return "locked"
	case authUnknown:
		return "unknown nonce"
	}
	return "outcome(" + strconv.Itoa(int(o)) + ")"
}

// nonceState is what the device remembers about a nonce it issued.
type nonceState struct {
	issued time.Time
	maxNC  uint64
	seen   map[uint64]bool
}

// lockState is the illegal-login state of one client IP.
type lockState struct {
	failures    int
	lockedUntil time.Time
}

const maxNonces = 4096

// newNonce issues and remembers a nonce. Caller holds d.mu.
func (d *Device) newNonceLocked() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	now := d.cfg.Now()
	n := hex.EncodeToString(b[:])
	if !d.cfg.PlainNonce {
		n += ":" + strconv.FormatInt(now.Unix(), 10)
	}
	if len(d.nonces) >= maxNonces {
		// drop expired nonces; if still full, drop the oldest
		var oldest string
		var oldestT time.Time
		for k, v := range d.nonces {
			if now.Sub(v.issued) > d.cfg.NonceLifetime {
				delete(d.nonces, k)
				continue
			}
			if oldest == "" || v.issued.Before(oldestT) {
				oldest, oldestT = k, v.issued
			}
		}
		if len(d.nonces) >= maxNonces {
			delete(d.nonces, oldest)
		}
	}
	d.nonces[n] = &nonceState{issued: now, seen: map[uint64]bool{}}
	return n
}

// lockInfo returns lockStatus, unlockTime (seconds left) and retryLoginTime (tries left). Caller holds d.mu.
func (d *Device) lockInfoLocked(ip string) (locked bool, unlockSec, retries int) {
	ls := d.locks[ip]
	now := d.cfg.Now()
	if ls != nil && now.Before(ls.lockedUntil) {
		left := ls.lockedUntil.Sub(now)
		return true, int((left + time.Second - 1) / time.Second), 0
	}
	if ls != nil && !ls.lockedUntil.IsZero() {
		// lock expired: forget it
		delete(d.locks, ip)
		ls = nil
	}
	retries = d.cfg.MaxFailures
	if ls != nil {
		retries -= ls.failures
	}
	return false, 0, retries
}

// isLocked reports whether a client IP is locked now.
func (d *Device) isLocked(ip string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	locked, _, _ := d.lockInfoLocked(ip)
	return locked
}

// loginResult records a checked login for the lock and the counters. Caller holds d.mu.
func (d *Device) loginResultLocked(ip string, ok bool, rtsp bool) {
	cs := d.clientLocked(ip)
	if ok {
		if rtsp {
			cs.RTSPGoodLogins++
		} else {
			cs.GoodLogins++
		}
		delete(d.locks, ip)
		return
	}
	if rtsp {
		cs.RTSPFailedLogins++
	} else {
		cs.FailedLogins++
	}
	if d.cfg.LockDisabled {
		return
	}
	if locked, _, _ := d.lockInfoLocked(ip); locked {
		return
	}
	ls := d.locks[ip]
	if ls == nil {
		ls = &lockState{}
		d.locks[ip] = ls
	}
	ls.failures++
	if ls.failures >= d.cfg.MaxFailures {
		ls.failures = 0
		ls.lockedUntil = d.cfg.Now().Add(d.cfg.LockDuration)
		cs.LockEvents++
	}
}

// lockIPLocked locks a client IP at once (fault injection). Caller holds d.mu.
func (d *Device) lockIPLocked(ip string, dur time.Duration) {
	if dur <= 0 {
		dur = d.cfg.LockDuration
	}
	d.locks[ip] = &lockState{lockedUntil: d.cfg.Now().Add(dur)}
	d.clientLocked(ip).LockEvents++
}

// checkAuth checks the credentials of r from client ip. Caller holds d.mu.
func (d *Device) checkAuthLocked(r *http.Request, ip string) authOutcome {
	if locked, _, _ := d.lockInfoLocked(ip); locked {
		return authLocked
	}
	h := r.Header.Get("Authorization")
	scheme, rest, _ := strings.Cut(h, " ")
	switch {
	case strings.EqualFold(scheme, "Digest") && d.cfg.Auth != AuthBasic:
		return d.checkDigestLocked(r, ip, rest)
	case strings.EqualFold(scheme, "Basic") && d.cfg.Auth != AuthDigest:
		return d.checkBasicLocked(ip, rest)
	}
	return authNone
}

func (d *Device) checkBasicLocked(ip, token string) authOutcome {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(token))
	if err != nil {
		return authRejected
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok {
		return authRejected
	}
	want, known := d.users[user]
	if !known || subtle.ConstantTimeCompare([]byte(want), []byte(pass)) != 1 {
		d.loginResultLocked(ip, false, false)
		return authFailed
	}
	d.loginResultLocked(ip, true, false)
	return authOK
}

func (d *Device) checkDigestLocked(r *http.Request, ip, params string) authOutcome {
	p, err := parseAuthParams(params)
	if err != nil {
		return authRejected
	}
	alg := p["algorithm"]
	if alg == "" {
		alg = AlgorithmMD5
	}
	offered := false
	for _, a := range d.cfg.DigestAlgorithms {
		if strings.EqualFold(a, alg) {
			alg, offered = a, true
		}
	}
	if !offered {
		return authRejected
	}
	user, realm, nonce, uri, resp := p["username"], p["realm"], p["nonce"], p["uri"], p["response"]
	qop, nc, cnonce := p["qop"], p["nc"], p["cnonce"]
	if user == "" || nonce == "" || uri == "" || resp == "" || realm != d.cfg.Realm {
		return authRejected
	}
	if uri != r.RequestURI && uri != r.URL.Path {
		return authRejected
	}
	// the device offers qop="auth": the client must use it
	if qop != "auth" || cnonce == "" || len(nc) != 8 {
		return authRejected
	}
	ncv, err := strconv.ParseUint(nc, 16, 32)
	if err != nil || ncv == 0 {
		return authRejected
	}

	newHash := md5.New
	if alg == AlgorithmSHA256 {
		newHash = sha256.New
	}
	pass, known := d.users[user]
	if !known {
		d.loginResultLocked(ip, false, false)
		return authFailed
	}
	ha1 := hashHex(newHash, user+":"+realm+":"+pass)
	ha2 := hashHex(newHash, r.Method+":"+uri)
	want := hashHex(newHash, ha1+":"+nonce+":"+nc+":"+cnonce+":"+qop+":"+ha2)
	if subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(resp))) != 1 {
		d.loginResultLocked(ip, false, false)
		return authFailed
	}

	ns := d.nonces[nonce]
	if ns == nil {
		switch d.cfg.UnknownNonce {
		case UnknownNoncePlain:
			return authUnknown
		case UnknownNonceCounted:
			d.loginResultLocked(ip, false, false)
			return authFailed
		}
		return authStale
	}
	if d.cfg.Now().Sub(ns.issued) > d.cfg.NonceLifetime {
		// Kept, not forgotten: several requests can be on their way with the
		// same nonce when it expires, and each must read as expired (stale),
		// never as a nonce the device does not know (UnknownNonce, which may
		// count as a failed login). newNonceLocked drops expired nonces
		// when the table is full.
		return authStale
	}
	// replay protection
	switch {
	case ns.seen[ncv]:
		return authRejected
	case d.cfg.StrictNC && ncv <= ns.maxNC:
		return authRejected
	case ns.maxNC > 64 && ncv < ns.maxNC-64:
		return authRejected
	}
	ns.seen[ncv] = true
	if ncv > ns.maxNC {
		ns.maxNC = ncv
	}
	for k := range ns.seen {
		if ns.maxNC > 64 && k < ns.maxNC-64 {
			delete(ns.seen, k)
		}
	}
	d.loginResultLocked(ip, true, false)
	return authOK
}

func hashHex(newHash func() hash.Hash, s string) string {
	h := newHash()
	h.Write([]byte(s))
	return hex.EncodeToString(h.Sum(nil))
}

// challengeHeaders returns the WWW-Authenticate values for a new challenge. Caller holds d.mu.
func (d *Device) challengeHeadersLocked(stale bool) []string {
	var out []string
	if d.cfg.Auth != AuthBasic {
		nonce := d.newNonceLocked()
		st := "FALSE"
		if stale {
			st = "TRUE"
		}
		for _, alg := range d.cfg.DigestAlgorithms {
			out = append(out, fmt.Sprintf(`Digest realm=%q, domain="::", qop="auth", nonce=%q, opaque="", algorithm=%q, stale=%q`,
				d.cfg.Realm, nonce, alg, st))
		}
	}
	if d.cfg.Auth != AuthDigest {
		out = append(out, fmt.Sprintf(`Basic realm=%q`, d.cfg.Realm))
	}
	return out
}

// parseAuthParams parses the comma-separated auth-param list of an Authorization header
// (token=token or token="quoted-string" with backslash escapes).
func parseAuthParams(s string) (map[string]string, error) {
	out := map[string]string{}
	i := 0
	for {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == ',') {
			i++
		}
		if i >= len(s) {
			return out, nil
		}
		start := i
		for i < len(s) && s[i] != '=' && s[i] != ',' && s[i] != ' ' {
			i++
		}
		key := strings.ToLower(s[start:i])
		for i < len(s) && s[i] == ' ' {
			i++
		}
		if i >= len(s) || s[i] != '=' || key == "" {
			return nil, fmt.Errorf("auth param %q without value", key)
		}
		i++
		for i < len(s) && s[i] == ' ' {
			i++
		}
		var val strings.Builder
		if i < len(s) && s[i] == '"' {
			i++
			closed := false
			for i < len(s) {
				c := s[i]
				i++
				if c == '\\' && i < len(s) {
					val.WriteByte(s[i])
					i++
					continue
				}
				if c == '"' {
					closed = true
					break
				}
				val.WriteByte(c)
			}
			if !closed {
				return nil, fmt.Errorf("auth param %q: unterminated quoted string", key)
			}
		} else {
			start := i
			for i < len(s) && s[i] != ',' && s[i] != ' ' {
				i++
			}
			val.WriteString(s[start:i])
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("auth param %q repeated", key)
		}
		out[key] = val.String()
	}
}
