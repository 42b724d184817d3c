package hikvision

import (
	"encoding/hex"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/redact"
)

// The one parser of hikvision:// URLs: query parameters (channel, stream,
// https, ...) and the options after '#' (backchannel, timeout, the snapshot
// options), with the same rules wherever a URL is read (Dial, the registry,
// snapshots).

// ParseURL parses and checks a hikvision:// URL without any network traffic.
// Errors are *ConfigError.
func ParseURL(source string) (*Config, error) {
	main, frag, _ := strings.Cut(source, "#")

	scheme, _, ok := strings.Cut(main, "://")
	if !ok {
		return nil, &ConfigError{Param: "url", Value: redact.URL(source), Reason: "not a hikvision:// URL"}
	}
	if !strings.EqualFold(scheme, "hikvision") {
		return nil, &ConfigError{Param: "scheme", Value: scheme, Reason: "want hikvision"}
	}

	// A '/', '?' or '#' left unencoded in the password splits the URL in the
	// wrong place: catch it before the parser quotes parts of the password.
	// (An '@' after the first '/' or '?' can only be the end of such a
	// password: the path is "/" and no parameter value holds an '@'.)
	rest := main[len(scheme)+3:]
	if cut := strings.IndexAny(rest, "/?"); strings.Contains(frag, "@") ||
		(cut >= 0 && strings.LastIndexByte(rest, '@') > cut) {
		return nil, &ConfigError{Param: "password", Reason: "'/', '?' and '#' in the password must be percent-encoded (%2F, %3F, %23)"}
	}

	u, err := url.Parse(main)
	if err != nil {
		// url.Error quotes the whole URL: never return it.
		var perr *url.Error
		reason := "cannot parse"
		if errors.As(err, &perr) {
			reason = strings.TrimSpace(perr.Err.Error())
		}
		if strings.Contains(reason, "invalid port") {
			if !strings.Contains(cutAny(rest, "/?"), "@") {
				// no user@: "hikvision://admin:PASS" puts the password there
				return nil, &ConfigError{Param: "port", Reason: "not a port number (or USER:PASS@ is missing)"}
			}
			return nil, &ConfigError{Param: "port", Value: badPort(reason), Reason: "not a port number"}
		}
		return nil, &ConfigError{Param: "url", Value: redact.URL(main), Reason: redact.String(reason, userPassGuess(main)...)}
	}

	c := &Config{Channel: 1, Stream: StreamMain, Backchannel: true}

	c.Host = u.Hostname()
	if c.Host == "" {
		return nil, &ConfigError{Param: "host", Reason: "missing"}
	}
	if strings.Contains(c.Host, ":") && !strings.HasPrefix(u.Host, "[") {
		// "h::" parses as host "h:" with an empty port
		return nil, &ConfigError{Param: "host", Value: c.Host, Reason: "an IPv6 address must be in brackets, e.g. [fe80::1]"}
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, &ConfigError{Param: "port", Value: p, Reason: "want 1-65535"}
		}
		c.HTTPPort = n
	}

	if u.User == nil || u.User.Username() == "" {
		return nil, &ConfigError{Param: "user", Reason: "missing (hikvision://USER:PASS@HOST/)"}
	}
	c.Username = u.User.Username()
	c.Password, _ = u.User.Password()
	if c.Password == "" {
		return nil, &ConfigError{Param: "password", Reason: "missing (hikvision://USER:PASS@HOST/)"}
	}

	if u.Path != "" && u.Path != "/" {
		return nil, &ConfigError{Param: "path", Value: u.Path, Reason: "want / (choose the stream with ?channel=N&stream=main|sub|third|fourth)"}
	}
	if u.Opaque != "" {
		return nil, &ConfigError{Param: "url", Value: redact.URL(main), Reason: "want hikvision://USER:PASS@HOST/"}
	}

	query, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, &ConfigError{Param: "query", Value: u.RawQuery, Reason: "cannot parse"}
	}
	for name, values := range query {
		if len(values) > 1 {
			return nil, &ConfigError{Param: name, Value: strings.Join(values, ","), Reason: "given more than once"}
		}
		if err := c.setParam(name, values[0]); err != nil {
			return nil, err
		}
	}
	if (c.Insecure || c.CertSHA256 != "") && !c.HTTPS {
		p := "insecure"
		if c.CertSHA256 != "" {
			p = "cert_sha256"
		}
		return nil, &ConfigError{Param: p, Reason: "only with https=1"}
	}
	if c.Insecure && c.CertSHA256 != "" {
		return nil, &ConfigError{Param: "insecure", Value: "1", Reason: "conflicts with cert_sha256 (the pin already accepts that certificate)"}
	}

	// go2rtc-style options after '#': #backchannel=0#timeout=5 (or '&' separated)
	if frag != "" {
		seen := map[string]bool{}
		for _, opt := range strings.FieldsFunc(frag, func(r rune) bool { return r == '#' || r == '&' }) {
			name, value, _ := strings.Cut(opt, "=")
			if seen[name] {
				return nil, &ConfigError{Param: name, Value: value, Reason: "given more than once"}
			}
			seen[name] = true
			if err := c.setOption(name, value); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}

func (c *Config) setParam(name, value string) error {
	switch name {
	case "channel":
		n, err := strconv.Atoi(value)
		if err != nil || n < 1 || n > 999 {
			return &ConfigError{Param: name, Value: value, Reason: "want a channel number 1-999"}
		}
		c.Channel = n
	case "stream":
		switch strings.ToLower(value) {
		case "main", "1", "01":
			c.Stream = StreamMain
		case "sub", "2", "02":
			c.Stream = StreamSub
		case "third", "3", "03":
			c.Stream = StreamThird
		case "fourth", "4", "04":
			c.Stream = StreamFourth
		default:
			return &ConfigError{Param: name, Value: value, Reason: "want main, sub, third or fourth (or 1-4)"}
		}
	case "https":
		b, err := parseBool(name, value)
		if err != nil {
			return err
		}
		c.HTTPS = b
	case "insecure":
		b, err := parseBool(name, value)
		if err != nil {
			return err
		}
		c.Insecure = b
	case "cert_sha256":
		h := strings.ToLower(strings.ReplaceAll(value, ":", ""))
		if b, err := hex.DecodeString(h); err != nil || len(b) != 32 {
			return &ConfigError{Param: name, Value: value, Reason: "want 64 hex digits (colons allowed)"}
		}
		c.CertSHA256 = h
	case "rtsp_port":
		n, err := strconv.Atoi(value)
		if err != nil || n < 1 || n > 65535 {
			return &ConfigError{Param: name, Value: value, Reason: "want 1-65535"}
		}
		c.RTSPPort = n
	case "talk_channel":
		if value == "" || strings.IndexFunc(value, func(r rune) bool {
			return !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '-' || r == '_')
		}) >= 0 {
			return &ConfigError{Param: name, Value: value, Reason: "want a two-way audio channel id such as 1"}
		}
		c.TalkChannel = value
	case "talk_takeover":
		b, err := parseBool(name, value)
		if err != nil {
			return err
		}
		c.TalkTakeover = b
	case "transport", "sdk_port":
		// the real-play backend (backend.go; the SDK's in sdk.go)
		return c.setSDKParam(name, value)
	default:
		return &ConfigError{Param: name, Value: value, Reason: "unknown parameter (known: channel, stream, https, rtsp_port, insecure, cert_sha256, talk_channel, talk_takeover, transport, sdk_port)"}
	}
	return nil
}

func (c *Config) setOption(name, value string) error {
	switch name {
	case "backchannel":
		b, err := parseBool(name, value)
		if err != nil {
			return err
		}
		c.Backchannel = b
	case "timeout":
		n, err := strconv.Atoi(value)
		if err != nil || n < 1 || n > 3600 {
			return &ConfigError{Param: name, Value: value, Reason: "want seconds 1-3600"}
		}
		c.Timeout = time.Duration(n) * time.Second
	case optSnapshotMaxStale:
		n, err := strconv.Atoi(value)
		if err != nil || n < 1 || n > 7*24*3600 {
			return &ConfigError{Param: "#" + name, Value: value, Reason: "want seconds 1-604800"}
		}
		c.Snapshot.MaxStale = time.Duration(n) * time.Second
	case optSnapshotMinIvl:
		f, err := strconv.ParseFloat(value, 64)
		if err != nil || f < 0.001 || f > 3600 {
			return &ConfigError{Param: "#" + name, Value: value, Reason: "want seconds 0.001-3600"}
		}
		c.Snapshot.MinInterval = time.Duration(f * float64(time.Second))
	case optSnapshotLastGood:
		b, err := parseBool("#"+name, value)
		if err != nil {
			return err
		}
		c.Snapshot.NoLastGood = !b
	default:
		return &ConfigError{Param: "#" + name, Value: value, Reason: "unknown option (known: #backchannel, #timeout, #snapshot_max_stale, #snapshot_last_good, #snapshot_min_interval)"}
	}
	return nil
}

func parseBool(name, value string) (bool, error) {
	switch strings.ToLower(value) {
	case "1", "true", "yes", "on":
		return true, nil
	case "0", "false", "no", "off":
		return false, nil
	}
	return false, &ConfigError{Param: name, Value: value, Reason: "want 1 or 0"}
}

// cutAny returns s up to the first of chars.
func cutAny(s, chars string) string {
	if i := strings.IndexAny(s, chars); i >= 0 {
		return s[:i]
	}
	return s
}

// badPort extracts the port from url's `invalid port ":abc" after host`.
func badPort(reason string) string {
	if i := strings.IndexByte(reason, '"'); i >= 0 {
		if j := strings.IndexByte(reason[i+1:], '"'); j >= 0 {
			return strings.TrimPrefix(reason[i+1:i+1+j], ":")
		}
	}
	return ""
}

// userPassGuess returns the raw password-looking part of a URL that url.Parse
// refused, so that it can be masked from the parser's message.
func userPassGuess(s string) []string {
	_, rest, _ := strings.Cut(s, "://")
	at := strings.LastIndexByte(rest, '@')
	if at < 0 {
		return nil
	}
	_, pass, ok := strings.Cut(rest[:at], ":")
	if !ok {
		return nil
	}
	return []string{pass}
}
