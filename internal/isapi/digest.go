package isapi

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"strings"
)

// Challenge is one authentication challenge from a WWW-Authenticate header.
type Challenge struct {
	Scheme    string // "Digest" or "Basic" (as canonicalised by ParseChallenges)
	Realm     string
	Nonce     string
	Opaque    string
	HasOpaque bool   // opaque was present (Hikvision sends opaque="")
	Algorithm string // upper case: "MD5", "SHA-256", "MD5-SESS", "SHA-256-SESS"; "" means MD5
	QOP       string // "auth" if offered, "" for RFC 2069 digest, "unsupported" if only auth-int
	Stale     bool
	Params    map[string]string // every parameter, lower-case names
}

// ParseChallenges parses the values of one or several WWW-Authenticate
// headers. One value may hold several challenges ("Digest ..., Basic ...").
// Unknown schemes are returned too; parameters may be quoted or not.
func ParseChallenges(headers []string) []Challenge {
	var out []Challenge
	for _, h := range headers {
		out = append(out, parseChallengeHeader(h)...)
	}
	return out
}

func parseChallengeHeader(s string) []Challenge {
	var out []Challenge
	var cur *Challenge
	var lastParam string
	i := 0
	skipSpaceComma := func() {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == ',') {
			i++
		}
	}
	for {
		skipSpaceComma()
		if i >= len(s) {
			break
		}
		// read a token
		start := i
		for i < len(s) && s[i] != ' ' && s[i] != '\t' && s[i] != ',' && s[i] != '=' {
			i++
		}
		tok := s[start:i]
		// look ahead for '=' (parameter) after optional spaces
		j := i
		for j < len(s) && (s[j] == ' ' || s[j] == '\t') {
			j++
		}
		if j < len(s) && s[j] == '=' && cur != nil && !isToken68Tail(s, j) {
			i = j + 1
			for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
				i++
			}
			var val string
			if i < len(s) && s[i] == '"' {
				i++
				var b strings.Builder
				for i < len(s) && s[i] != '"' {
					if s[i] == '\\' && i+1 < len(s) {
						i++
					}
					b.WriteByte(s[i])
					i++
				}
				i++ // closing quote
				val = b.String()
			} else {
				vs := i
				for i < len(s) && s[i] != ',' && s[i] != ' ' && s[i] != '\t' {
					i++
				}
				val = s[vs:i]
			}
			lastParam = strings.ToLower(tok)
			cur.setParam(lastParam, val)
			continue
		}
		if cur != nil && j < len(s) && s[j] == '=' {
			// token68 (e.g. "Negotiate abc==") — keep as a parameter-less value
			for i < len(s) && s[i] != ',' {
				i++
			}
			continue
		}
		if cur != nil && lastParam != "" && !knownScheme(tok) && !paramFollows(s, i) {
			// a list value left unquoted: qop=auth,auth-int
			cur.setParam(lastParam, cur.Params[lastParam]+","+tok)
			continue
		}
		// a new scheme
		out = append(out, Challenge{Scheme: canonScheme(tok), Params: map[string]string{}})
		cur = &out[len(out)-1]
		lastParam = ""
	}
	return out
}

func knownScheme(tok string) bool {
	switch strings.ToLower(tok) {
	case "digest", "basic", "bearer", "negotiate", "ntlm", "hoba", "mutual":
		return true
	}
	return false
}

// paramFollows reports whether s[i:] is whitespace then "token=" (the
// first parameter of a new challenge).
func paramFollows(s string, i int) bool {
	j := i
	for j < len(s) && (s[j] == ' ' || s[j] == '\t') {
		j++
	}
	if j == i {
		return false
	}
	k := j
	for k < len(s) && s[k] != ' ' && s[k] != '\t' && s[k] != ',' && s[k] != '=' {
		k++
	}
	for k < len(s) && (s[k] == ' ' || s[k] == '\t') {
		k++
	}
	return k > j && k < len(s) && s[k] == '='
}

// isToken68Tail reports whether the '=' at j is trailing padding of a token68
// ("abc==") rather than a parameter separator.
func isToken68Tail(s string, j int) bool {
	k := j
	for k < len(s) && s[k] == '=' {
		k++
	}
	return k-j > 1
}

func canonScheme(s string) string {
	switch strings.ToLower(s) {
	case "digest":
		return "Digest"
	case "basic":
		return "Basic"
	}
	return s
}

func (c *Challenge) setParam(name, val string) {
	c.Params[name] = val
	switch name {
	case "realm":
		c.Realm = val
	case "nonce":
		c.Nonce = val
	case "opaque":
		c.Opaque, c.HasOpaque = val, true
	case "algorithm":
		c.Algorithm = strings.ToUpper(strings.TrimSpace(val))
	case "qop":
		c.QOP = ""
		for _, q := range strings.Split(val, ",") {
			if strings.EqualFold(strings.TrimSpace(q), "auth") {
				c.QOP = "auth"
			}
		}
		if c.QOP == "" {
			// only auth-int (or garbage) offered: we cannot hash bodies of
			// streamed requests, mark it unusable
			c.QOP = "unsupported"
		}
	case "stale":
		c.Stale = strings.EqualFold(strings.TrimSpace(val), "true")
	}
}

// digestRank orders the digest algorithms we can answer; 0 means unusable.
func digestRank(c *Challenge) int {
	if c.Scheme != "Digest" || c.Nonce == "" || c.QOP == "unsupported" {
		return 0
	}
	switch c.Algorithm {
	case "SHA-256":
		return 4
	case "SHA-256-SESS":
		return 3
	case "", "MD5":
		return 2
	case "MD5-SESS":
		return 1
	}
	return 0
}

// ChooseChallenge picks the challenge to answer: the strongest usable Digest
// (SHA-256 over MD5), Basic only when no usable Digest is offered. ok is false
// when nothing usable was offered.
func ChooseChallenge(cs []Challenge) (Challenge, bool) {
	best, bestRank := -1, 0
	basic := -1
	for i := range cs {
		if r := digestRank(&cs[i]); r > bestRank {
			best, bestRank = i, r
		}
		if cs[i].Scheme == "Basic" && basic < 0 {
			basic = i
		}
	}
	if best >= 0 {
		return cs[best], true
	}
	if basic >= 0 {
		return cs[basic], true
	}
	return Challenge{}, false
}

func (c *Challenge) newHash() hash.Hash {
	if strings.HasPrefix(c.Algorithm, "SHA-256") {
		return sha256.New()
	}
	return md5.New()
}

func (c *Challenge) h(parts ...string) string {
	hh := c.newHash()
	hh.Write([]byte(strings.Join(parts, ":")))
	return hex.EncodeToString(hh.Sum(nil))
}

// Authorization computes the Authorization header value answering c for one
// request. nc is the nonce count (1 for the first use of a nonce); cnonce is
// the client nonce (random when empty).
func (c *Challenge) Authorization(method, uri, username, password string, nc uint32, cnonce string) string {
	if c.Scheme == "Basic" {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(username+":"+password))
	}
	if cnonce == "" {
		cnonce = newCnonce()
	}
	ha1 := c.h(username, c.Realm, password)
	if strings.HasSuffix(c.Algorithm, "-SESS") {
		ha1 = c.h(ha1, c.Nonce, cnonce)
	}
	ha2 := c.h(method, uri)
	ncs := fmt.Sprintf("%08x", nc)
	var resp string
	if c.QOP == "auth" {
		resp = c.h(ha1, c.Nonce, ncs, cnonce, c.QOP, ha2)
	} else {
		resp = c.h(ha1, c.Nonce, ha2)
	}
	var b strings.Builder
	b.WriteString("Digest ")
	fmt.Fprintf(&b, `username="%s", realm="%s", nonce="%s", uri="%s"`,
		quoteEscape(username), quoteEscape(c.Realm), quoteEscape(c.Nonce), quoteEscape(uri))
	if c.Algorithm != "" {
		// echo the algorithm in the device's spelling class
		alg := c.Params["algorithm"]
		if alg == "" {
			alg = c.Algorithm
		}
		fmt.Fprintf(&b, `, algorithm=%s`, alg)
	}
	fmt.Fprintf(&b, `, response="%s"`, resp)
	if c.QOP == "auth" {
		fmt.Fprintf(&b, `, qop=auth, nc=%s, cnonce="%s"`, ncs, cnonce)
	}
	if c.HasOpaque {
		fmt.Fprintf(&b, `, opaque="%s"`, quoteEscape(c.Opaque))
	}
	return b.String()
}

func quoteEscape(s string) string {
	if !strings.ContainsAny(s, `"\`) {
		return s
	}
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s)
}

func newCnonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}
