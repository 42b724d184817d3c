package simrtsp

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"time"
)

// Digest access authentication (RFC 2617, MD5), written for this simulator
// from the RFC; it shares no code with the HTTP side or the client.

type authResult int

const (
	authNone  authResult = iota // no (usable) credentials: challenge, does not count
	authStale                   // unknown or expired nonce: challenge with stale=TRUE, does not count
	authBad                     // wrong user, password or response: counts as a failed login
	authOK
)

// newNonce makes a stateless nonce: hex(unix-nano) + hex(HMAC(secret, time)[:12]).
func (s *Server) newNonce(now time.Time) string {
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], uint64(now.UnixNano()))
	m := hmac.New(sha256.New, s.secret[:])
	m.Write(ts[:])
	return hex.EncodeToString(ts[:]) + hex.EncodeToString(m.Sum(nil)[:12])
}

func (s *Server) nonceValid(nonce string, now time.Time) bool {
	b, err := hex.DecodeString(nonce)
	if err != nil || len(b) != 20 {
		return false
	}
	m := hmac.New(sha256.New, s.secret[:])
	m.Write(b[:8])
	if !hmac.Equal(m.Sum(nil)[:12], b[8:]) {
		return false
	}
	issued := time.Unix(0, int64(binary.BigEndian.Uint64(b[:8])))
	return now.Sub(issued) <= s.cfg.NonceTTL
}

func (s *Server) challenge(stale bool) string {
	st := "FALSE"
	if stale {
		st = "TRUE"
	}
	h := `Digest realm="` + s.cfg.Realm + `", nonce="` + s.newNonce(time.Now()) + `", stale="` + st + `"`
	if s.cfg.DigestQOP {
		h = `Digest realm="` + s.cfg.Realm + `", qop="auth", nonce="` + s.newNonce(time.Now()) + `", stale="` + st + `"`
	}
	return h
}

// parseAuthParams parses `Digest k=v, k="v, with comma", ...` into a map with
// lower-case keys. ok is false when the scheme is not Digest.
func parseAuthParams(h string) (map[string]string, bool) {
	scheme, rest, _ := strings.Cut(strings.TrimSpace(h), " ")
	if !strings.EqualFold(scheme, "Digest") {
		return nil, false
	}
	p := map[string]string{}
	for {
		rest = strings.TrimLeft(rest, " \t,")
		if rest == "" {
			return p, true
		}
		eq := strings.IndexByte(rest, '=')
		if eq < 0 {
			return p, true
		}
		key := strings.ToLower(strings.TrimSpace(rest[:eq]))
		rest = strings.TrimLeft(rest[eq+1:], " \t")
		var val string
		if strings.HasPrefix(rest, `"`) {
			var sb strings.Builder
			i := 1
			for ; i < len(rest) && rest[i] != '"'; i++ {
				if rest[i] == '\\' && i+1 < len(rest) {
					i++
				}
				sb.WriteByte(rest[i])
			}
			val = sb.String()
			rest = rest[min(i+1, len(rest)):]
		} else {
			end := strings.IndexByte(rest, ',')
			if end < 0 {
				end = len(rest)
			}
			val = strings.TrimSpace(rest[:end])
			rest = rest[end:]
		}
		p[key] = val
	}
}

func md5hex(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

// checkDigest verifies an Authorization header for method.
func (s *Server) checkDigest(authz, method string) authResult {
	if authz == "" {
		return authNone
	}
	p, ok := parseAuthParams(authz)
	if !ok {
		return authNone // Basic or another scheme: this device only speaks digest
	}
	if alg := p["algorithm"]; alg != "" && !strings.EqualFold(alg, "MD5") {
		return authNone
	}
	user, nonce, uri, resp := p["username"], p["nonce"], p["uri"], p["response"]
	if user == "" || nonce == "" || uri == "" || resp == "" {
		return authNone
	}
	if !s.nonceValid(nonce, time.Now()) {
		return authStale
	}
	pass, found := s.cfg.Lookup(user)
	if !found || p["realm"] != s.cfg.Realm {
		return authBad
	}
	ha1 := md5hex(user + ":" + s.cfg.Realm + ":" + pass)
	ha2 := md5hex(method + ":" + uri)
	var want string
	switch qop := p["qop"]; qop {
	case "":
		want = md5hex(ha1 + ":" + nonce + ":" + ha2)
	case "auth":
		want = md5hex(ha1 + ":" + nonce + ":" + p["nc"] + ":" + p["cnonce"] + ":auth:" + ha2)
	default:
		return authBad
	}
	if subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(resp))) != 1 {
		return authBad
	}
	return authOK
}
