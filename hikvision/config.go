package hikvision

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/redact"
)

// Stream is the stream of a channel: main, sub, third or fourth. Its number
// is the last two digits of the RTSP/ISAPI streaming channel id (101, 102,
// 103, 104).
type Stream int

const (
	StreamMain   Stream = 1
	StreamSub    Stream = 2
	StreamThird  Stream = 3
	StreamFourth Stream = 4
)

func (s Stream) String() string {
	switch s {
	case StreamMain:
		return "main"
	case StreamSub:
		return "sub"
	case StreamThird:
		return "third"
	case StreamFourth:
		return "fourth"
	}
	return "stream(" + strconv.Itoa(int(s)) + ")"
}

// Config is a parsed hikvision:// URL:
//
//	hikvision://USER:PASS@HOST[:HTTP_PORT]/?channel=1&stream=main[&https=1][&rtsp_port=N]
//	    [&insecure=1|&cert_sha256=HEX][&talk_channel=ID][&talk_takeover=1][&transport=rtsp|sdk|auto][&sdk_port=N]
//	    [#backchannel=0][#timeout=SECONDS][#snapshot_max_stale=S][#snapshot_last_good=0][#snapshot_min_interval=S]
type Config struct {
	Host     string // host name or IP, without port
	HTTPPort int    // 0: default (80, or 443 with HTTPS)
	Username string
	Password string

	HTTPS      bool
	Insecure   bool   // skip TLS certificate verification
	CertSHA256 string // pinned leaf certificate SHA-256, lower-case hex without colons

	Channel  int    // 1-based channel number (camera: 1; NVR: the channel)
	Stream   Stream // main (default), sub, third, fourth
	RTSPPort int    // 0: ask the device (adminAccesses), 554 if it does not say

	TalkChannel string // two-way audio channel id; "" = choose automatically
	Backchannel bool   // #backchannel=0 turns the talk media off (default on)
	Timeout     time.Duration

	// TalkTakeover (talk_takeover=1): close the device's talk session before
	// each open (the old go2rtc behaviour), cutting off whoever is talking.
	// Default off: a busy line is reported, not taken.
	TalkTakeover bool

	// Transport (transport=rtsp|sdk|auto) chooses the real-play backend;
	// "" is the default, rtsp. SDKPort (sdk_port=) is the vendor SDK's
	// service port, 0 for the default 8000.
	Transport string
	SDKPort   int

	// Snapshot are the #snapshot_* options (the source's snapshot cache).
	Snapshot SnapshotOptions
}

// Snapshot option names (URL fragment).
const (
	optSnapshotMaxStale = "snapshot_max_stale"
	optSnapshotLastGood = "snapshot_last_good"
	optSnapshotMinIvl   = "snapshot_min_interval"
)

// SnapshotOptions are a source's snapshot options, after '#' in the URL:
//
//	#snapshot_max_stale=SECONDS     oldest last good image served when the device fails (1-604800, default 600)
//	#snapshot_last_good=0           never serve a last good image: a failed fetch is an error at once
//	#snapshot_min_interval=SECONDS  least time between two device requests (0.001-3600, default 1)
type SnapshotOptions struct {
	MaxStale    time.Duration // 0: snapshot.DefaultMaxStale
	NoLastGood  bool
	MinInterval time.Duration // 0: the module's default (snapshot.DefaultMinInterval)
}

// ConfigError is a hikvision:// URL that cannot be used. It is returned before
// any network traffic. Value never holds a password.
type ConfigError struct {
	Param  string // "url", "scheme", "host", "port", "user", "password", "path", or the parameter name
	Value  string
	Reason string
}

func (e *ConfigError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("hikvision: bad URL: %s: %s", e.Param, e.Reason)
	}
	return fmt.Sprintf("hikvision: bad URL: %s=%q: %s", e.Param, e.Value, e.Reason)
}

// StreamID is the streaming channel id: channel*100 + stream (101, 102, 201...).
func (c *Config) StreamID() int { return c.Channel*100 + int(c.Stream) }

// HTTPAddr is host[:port] for ISAPI; the port only when one was given.
func (c *Config) HTTPAddr() string {
	if c.HTTPPort == 0 {
		return hostPort(c.Host, "")
	}
	return hostPort(c.Host, strconv.Itoa(c.HTTPPort))
}

func hostPort(host, port string) string {
	if port == "" {
		if strings.Contains(host, ":") { // IPv6
			return "[" + host + "]"
		}
		return host
	}
	return net.JoinHostPort(host, port)
}

// RTSPURL is rtsp://USER:PASS@HOST:PORT/Streaming/Channels/<id> with
// percent-encoded credentials. It holds the password: never log it.
//
// On NVRs, IP channels use this same path. (Snapshots of NVR IP channels
// need /ISAPI/ContentMgmt/StreamingProxy/channels/<id>/picture instead of
// /ISAPI/Streaming/channels/<id>/picture.)
func (c *Config) RTSPURL(port int) string {
	u := url.URL{
		Scheme: "rtsp",
		User:   url.UserPassword(c.Username, c.Password),
		Host:   hostPort(c.Host, strconv.Itoa(port)),
		Path:   "/Streaming/Channels/" + strconv.Itoa(c.StreamID()),
	}
	return u.String()
}

// String is the URL in canonical form with the password masked.
func (c *Config) String() string {
	u := url.URL{
		Scheme: "hikvision",
		User:   url.UserPassword(c.Username, redact.Mask),
		Host:   c.HTTPAddr(),
		Path:   "/",
	}
	q := url.Values{}
	q.Set("channel", strconv.Itoa(c.Channel))
	q.Set("stream", c.Stream.String())
	if c.HTTPS {
		q.Set("https", "1")
	}
	if c.Insecure {
		q.Set("insecure", "1")
	}
	if c.CertSHA256 != "" {
		q.Set("cert_sha256", c.CertSHA256)
	}
	if c.RTSPPort != 0 {
		q.Set("rtsp_port", strconv.Itoa(c.RTSPPort))
	}
	if c.TalkChannel != "" {
		q.Set("talk_channel", c.TalkChannel)
	}
	if c.TalkTakeover {
		q.Set("talk_takeover", "1")
	}
	c.sdkQuery(q)
	u.RawQuery = q.Encode()
	// url.URL escapes the mask's '*' ("%2A"): print the mask as go2rtc does.
	s := strings.Replace(u.String(), url.UserPassword("", redact.Mask).String()+"@", ":"+redact.Mask+"@", 1)
	if !c.Backchannel {
		s += "#backchannel=0"
	}
	if c.Timeout != 0 {
		s += "#timeout=" + strconv.Itoa(int(c.Timeout/time.Second))
	}
	return s
}

// isapiConfig is the ISAPI client configuration of the URL's device.
func (c *Config) isapiConfig() isapi.Config {
	return isapi.Config{
		Host: c.HTTPAddr(), HTTPS: c.HTTPS, Username: c.Username, Password: c.Password,
		InsecureSkipVerify: c.Insecure, CertSHA256: c.CertSHA256, Timeout: c.Timeout,
	}
}
