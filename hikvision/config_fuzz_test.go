package hikvision

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/redact"
)

var urlSeeds = []string{
	"hikvision://admin:hik12345@192.168.1.64/",
	"hikvision://admin:hik12345@192.168.1.64:8080/?channel=2&stream=sub",
	"hikvision://admin:p%40ss%2Fw%3Fd%23@cam.local/?channel=1&stream=third&https=1&insecure=1#backchannel=0#timeout=5",
	"hikvision://admin:x@[fe80::1%25eth0]:80/?rtsp_port=10554&talk_channel=1",
	"hikvision://admin:x@[::1]/?https=1&cert_sha256=AB:CD:EF:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89",
	"hikvision://admin:hik12345@192.168.1.64/?channel=0",
	"hikvision://admin:hik/12345@192.168.1.64/",
	"hikvision://admin:hik12345@192.168.1.64:99999/",
	"hikvision://admin@192.168.1.64/",
	"HIKVISION://u:p@h/?stream=02#timeout=3600&backchannel=1",
	"rtsp://admin:hik12345@192.168.1.64/",
	"hikvision://admin:hik12345@192.168.1.64/Streaming/Channels/101",
	"hikvision://admin:hik 12345@192.168.1.64/",
	"hikvision://admin:%zz@192.168.1.64/",
	"hikvision://admin:hik12345@192.168.1.64/?channel=1&channel=2",
	"hikvision://admin:hik12345@192.168.1.64/#timeout=2#timeout=3",
}

// FuzzParseURL: ParseURL never panics; a parsed URL round-trips through
// Config.String (password masked); String does not depend on the password.
func FuzzParseURL(f *testing.F) {
	for _, s := range urlSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		c, err := ParseURL(src)
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %T, want *ConfigError: %v", err, err)
			}
			if c != nil {
				t.Fatalf("config with error")
			}
			return
		}
		if c.Password == "" || c.Username == "" || c.Host == "" {
			t.Fatalf("accepted %q without user, password or host: %+v", src, c)
		}
		s := c.String()
		other := *c
		other.Password = c.Password + "-other"
		if other.String() != s {
			t.Fatalf("String depends on the password: %q vs %q", s, other.String())
		}
		back, err := ParseURL(s)
		if err != nil {
			t.Fatalf("String() %q of %q does not parse: %v", s, src, err)
		}
		if back.Password != redact.Mask {
			t.Fatalf("String() %q carries password %q", s, back.Password)
		}
		back.Password = c.Password
		if *back != *c {
			t.Fatalf("round trip of %q via %q:\n got %+v\nwant %+v", src, s, *back, *c)
		}
		if back.String() != s {
			t.Fatalf("String not stable: %q then %q", s, back.String())
		}
		// the RTSP URL carries the credentials percent-encoded and parses back
		u, err := url.Parse(c.RTSPURL(554))
		if err != nil {
			t.Fatalf("RTSPURL %v", err)
		}
		if p, _ := u.User.Password(); p != c.Password || u.User.Username() != c.Username {
			t.Fatalf("RTSPURL credentials %q", u.User)
		}
	})
}

// pwMarker starts every fuzzed password; the other parts of the URL are
// skipped when they contain it.
const pwMarker = "Zq7"

// FuzzParseURLPassword: whatever surrounds a password, no ConfigError and no
// String() quotes any of it (raw or percent-decoded).
func FuzzParseURLPassword(f *testing.F) {
	f.Add("admin", "hik12345", "192.168.1.64", "/?channel=1")
	f.Add("admin", "a/b", "h", "/")
	f.Add("admin", "a?b", "h", "/?channel=x")
	f.Add("admin", "a#b", "h", "/#timeout=1")
	f.Add("admin", "a@b", "h:80", "/?stream=bad")
	f.Add("admin", "%41b", "h:0", "/")
	f.Add("admin", "a b", "h", "/")
	f.Add("ad:min", "p", "[::1", "/")
	f.Add("admin", "p", "h:abc", "/x")
	f.Add("", "p%", "h", "?%zz")
	f.Fuzz(func(t *testing.T, user, pass, host, rest string) {
		pw := pwMarker + pass
		src := "hikvision://" + user + ":" + pw + "@" + host + rest
		if strings.Count(src, pwMarker) != 1 {
			return
		}
		c, err := ParseURL(src)
		if err != nil {
			if strings.Contains(err.Error(), pwMarker) {
				t.Fatalf("error quotes the password %q: %v", pw, err)
			}
			return
		}
		if strings.Contains(c.String(), pwMarker) {
			t.Fatalf("String() quotes the password: %s", c.String())
		}
		if !strings.Contains(c.Password, pwMarker) {
			// the marker landed elsewhere: the split must not have put the
			// password into another field
			if strings.Contains(c.Username+c.Host+c.TalkChannel+c.CertSHA256, pwMarker) {
				t.Fatalf("password %q parsed into another field: %+v", pw, *c)
			}
		}
	})
}
