// Package redact masks passwords in URLs and in text that quotes them, so they
// can be logged or returned in errors.
package redact

import (
	"encoding/base64"
	"net/url"
	"sort"
	"strings"
)

// Mask replaces every password found: go2rtc's own mask for the secrets it
// knows (${VAR} values, its storage), so logs and API answers show one style.
const Mask = "***"

// secretParams are query parameter names whose values are masked.
var secretParams = []string{"password", "passwd", "pass", "pwd"}

// URL masks the password of a URL-ish string: the password of the userinfo
// (user:PASS@host, also with '@', '/', '?' or '#' left unencoded in the
// password) and the values of password=, passwd=, pass= and pwd= query
// parameters. The user name stays. A string without "://" only has its
// query-style parameters masked. URL never fails; when in doubt it masks more.
func URL(s string) string {
	if j := strings.Index(s, "://"); j >= 0 {
		s = maskUserinfo(s, j+3)
	}
	return maskParams(s)
}

// String masks, inside any text (an error message, a log line), the passwords
// of every URL it quotes (as URL does) and every given secret in its plain,
// percent-encoded and base64 forms. Empty secrets are ignored.
func String(s string, secrets ...string) string {
	s = replaceSecrets(s, secrets)
	var b strings.Builder
	rest := s
	for {
		j := strings.Index(rest, "://")
		if j < 0 {
			b.WriteString(rest)
			break
		}
		end := j + 3
		for end < len(rest) && !isTokenEnd(rest[end]) {
			end++
		}
		b.WriteString(maskUserinfo(rest[:end], j+3))
		rest = rest[end:]
	}
	return maskParams(b.String())
}

func isTokenEnd(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '"', '\'', '`', '<', '>':
		return true
	}
	return false
}

// maskUserinfo masks the password of the URL whose authority starts at
// start (just after "://") and which runs to the end of s.
func maskUserinfo(s string, start int) string {
	token := s[start:]
	// Authority normally ends at the first '/', '?' or '#'.
	authEnd := strings.IndexAny(token, "/?#")
	if authEnd < 0 {
		authEnd = len(token)
	}
	at := strings.LastIndexByte(token[:authEnd], '@')
	if at < 0 {
		// The password may hold an unencoded '/', '?' or '#': take the last
		// '@' of the token when a ':' comes before it.
		at = strings.LastIndexByte(token, '@')
		if at < 0 {
			return s
		}
	}
	userinfo := token[:at]
	colon := strings.IndexByte(userinfo, ':')
	if colon < 0 {
		return s // user name only, no password
	}
	return s[:start] + userinfo[:colon+1] + Mask + s[start+at:]
}

// maskParams masks the values of secret query-style parameters (name=value
// after '?', '&', ';', '#', whitespace or at the start).
func maskParams(s string) string {
	var b strings.Builder
	last := 0
	for i := 0; i < len(s); i++ {
		if i > 0 && !strings.ContainsRune("?&;# \t\n\"'", rune(s[i-1])) {
			continue
		}
		for _, name := range secretParams {
			if len(s)-i <= len(name) || !strings.EqualFold(s[i:i+len(name)+1], name+"=") {
				continue
			}
			v := i + len(name) + 1
			e := v
			for e < len(s) && s[e] != '&' && s[e] != '#' && s[e] != ';' && !isTokenEnd(s[e]) {
				e++
			}
			if e == v || s[v:e] == Mask {
				break
			}
			b.WriteString(s[last:v])
			b.WriteString(Mask)
			last = e
			i = e - 1
			break
		}
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// replaceSecrets replaces each secret and its encoded forms, longest first so
// that a secret containing another is replaced whole.
func replaceSecrets(s string, secrets []string) string {
	var forms []string
	seen := map[string]bool{}
	add := func(f string) {
		if f != "" && !seen[f] {
			seen[f] = true
			forms = append(forms, f)
		}
	}
	for _, sec := range secrets {
		if sec == "" {
			continue
		}
		add(sec)
		add(url.QueryEscape(sec))
		add(url.PathEscape(sec))
		add(url.UserPassword("u", sec).String()[2:]) // userinfo escaping
		add(base64.StdEncoding.EncodeToString([]byte(sec)))
		add(base64.RawStdEncoding.EncodeToString([]byte(sec)))
		add(base64.URLEncoding.EncodeToString([]byte(sec)))
		add(base64.RawURLEncoding.EncodeToString([]byte(sec)))
	}
	sort.Slice(forms, func(i, j int) bool { return len(forms[i]) > len(forms[j]) })
	for _, f := range forms {
		s = strings.ReplaceAll(s, f, Mask)
	}
	return s
}
