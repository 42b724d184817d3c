package hikvision

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want Config
	}{
		{"hikvision://admin:secret@192.168.1.64/?channel=1&stream=main",
			Config{Host: "192.168.1.64", Username: "admin", Password: "secret", Channel: 1, Stream: StreamMain, Backchannel: true}},
		{"hikvision://admin:secret@cam", // no path, defaults
			Config{Host: "cam", Username: "admin", Password: "secret", Channel: 1, Stream: StreamMain, Backchannel: true}},
		{"HIKVISION://admin:secret@cam:8080/?channel=3&stream=sub",
			Config{Host: "cam", HTTPPort: 8080, Username: "admin", Password: "secret", Channel: 3, Stream: StreamSub, Backchannel: true}},
		{"hikvision://op%40x:p%40ss%2F%3F%23w@nvr/?channel=12&stream=third&rtsp_port=10554",
			Config{Host: "nvr", Username: "op@x", Password: "p@ss/?#w", Channel: 12, Stream: StreamThird, RTSPPort: 10554, Backchannel: true}},
		{"hikvision://admin:p@ss@cam/", // unencoded '@' in the password: last '@' ends userinfo
			Config{Host: "cam", Username: "admin", Password: "p@ss", Channel: 1, Stream: StreamMain, Backchannel: true}},
		{"hikvision://admin:x@cam:443/?https=1&insecure=1&talk_channel=2",
			Config{Host: "cam", HTTPPort: 443, Username: "admin", Password: "x", HTTPS: true, Insecure: true, TalkChannel: "2", Channel: 1, Stream: StreamMain, Backchannel: true}},
		{"hikvision://admin:x@cam/?https=1&cert_sha256=AA:bb" + strings.Repeat("00", 30) + "#backchannel=0#timeout=7",
			Config{Host: "cam", Username: "admin", Password: "x", HTTPS: true, CertSHA256: "aabb" + strings.Repeat("00", 30), Channel: 1, Stream: StreamMain, Backchannel: false, Timeout: 7 * time.Second}},
		{"hikvision://admin:x@[fe80::1]:81/?stream=2#timeout=3&backchannel=1",
			Config{Host: "fe80::1", HTTPPort: 81, Username: "admin", Password: "x", Channel: 1, Stream: StreamSub, Backchannel: true, Timeout: 3 * time.Second}},
		{"hikvision://admin:x@nvr/?channel=2&stream=fourth",
			Config{Host: "nvr", Username: "admin", Password: "x", Channel: 2, Stream: StreamFourth, Backchannel: true}},
		{"hikvision://admin:x@nvr/?channel=2&stream=04",
			Config{Host: "nvr", Username: "admin", Password: "x", Channel: 2, Stream: StreamFourth, Backchannel: true}},
		{"hikvision://admin:x@cam/?transport=RTSP",
			Config{Host: "cam", Username: "admin", Password: "x", Channel: 1, Stream: StreamMain, Backchannel: true, Transport: TransportRTSP}},
		// snapshot options: parsed with the rest (one parser for every option)
		{"hikvision://admin:x@cam/#snapshot_max_stale=60#snapshot_last_good=0#snapshot_min_interval=0.5",
			Config{Host: "cam", Username: "admin", Password: "x", Channel: 1, Stream: StreamMain, Backchannel: true,
				Snapshot: SnapshotOptions{MaxStale: time.Minute, NoLastGood: true, MinInterval: 500 * time.Millisecond}}},
	}
	for _, tt := range tests {
		got, err := ParseURL(tt.in)
		if err != nil {
			t.Errorf("ParseURL(%q): %v", tt.in, err)
			continue
		}
		if *got != tt.want {
			t.Errorf("ParseURL(%q) =\n %+v\nwant\n %+v", tt.in, *got, tt.want)
		}
	}
}

func TestParseURLErrors(t *testing.T) {
	t.Parallel()
	const pass = "Sup3rS3cret"
	tests := []struct {
		in    string
		param string
		value string
	}{
		{"rtsp://admin:" + pass + "@cam/", "scheme", "rtsp"},
		{"hikvision:admin", "url", "hikvision:admin"},
		{"hikvision://admin:" + pass + "@/", "host", ""},
		{"hikvision://:" + pass + "@cam/", "user", ""},
		{"hikvision://cam/", "user", ""},
		{"hikvision://admin@cam/", "password", ""},
		{"hikvision://admin:" + pass + "@cam:0/", "port", "0"},
		{"hikvision://admin:" + pass + "@cam:70000/", "port", "70000"},
		{"hikvision://admin:" + pass + "@cam:http/", "port", "http"},
		{"hikvision://admin:" + pass + "@cam/?channel=0", "channel", "0"},
		{"hikvision://admin:" + pass + "@cam/?channel=one", "channel", "one"},
		{"hikvision://admin:" + pass + "@cam/?channel=", "channel", ""},
		{"hikvision://admin:" + pass + "@cam/?stream=fifth", "stream", "fifth"},
		{"hikvision://admin:" + pass + "@cam/?stream=5", "stream", "5"},
		{"hikvision://admin:" + pass + "@cam/?chanel=1", "chanel", "1"},
		{"hikvision://admin:" + pass + "@cam/?channel=1&channel=2", "channel", "1,2"},
		{"hikvision://admin:" + pass + "@cam/?https=maybe", "https", "maybe"},
		{"hikvision://admin:" + pass + "@cam/?rtsp_port=-1", "rtsp_port", "-1"},
		{"hikvision://admin:" + pass + "@cam/?insecure=1", "insecure", ""},
		{"hikvision://admin:" + pass + "@cam/?https=1&cert_sha256=abcd", "cert_sha256", "abcd"},
		{"hikvision://admin:" + pass + "@cam/?talk_channel=a/b", "talk_channel", "a/b"},
		{"hikvision://admin:" + pass + "@cam/Streaming/Channels/101", "path", "/Streaming/Channels/101"},
		{"hikvision://admin:" + pass + "@cam/#timeout=0", "timeout", "0"},
		{"hikvision://admin:" + pass + "@cam/#backchannel=2", "backchannel", "2"},
		{"hikvision://admin:" + pass + "@cam/#media=video", "#media", "video"},
		{"hikvision://admin:" + pass + "@cam/?transport=dvrip", "transport", "dvrip"},
		{"hikvision://admin:" + pass + "@cam/#snapshot_max_stale=soon", "#snapshot_max_stale", "soon"},
		{"hikvision://admin:" + pass + "@cam/#snapshot_max_stale=1.5", "#snapshot_max_stale", "1.5"},
		{"hikvision://admin:" + pass + "@cam/#snapshot_max_stale=0", "#snapshot_max_stale", "0"},
		{"hikvision://admin:" + pass + "@cam/#snapshot_min_interval=100000", "#snapshot_min_interval", "100000"},
		{"hikvision://admin:" + pass + "@cam/#snapshot_last_good=maybe", "#snapshot_last_good", "maybe"},
		// unencoded '/', '?' or '#' in the password
		{"hikvision://admin:Sup3r/S3cret@cam/", "password", ""},
		{"hikvision://admin:Sup3r?S3cret@cam/", "password", ""},
		{"hikvision://admin:Sup3r#S3cret@cam/", "password", ""},
		{"hikvision://admin:Sup3r%ZZS3cret@cam/", "url", "hikvision://admin:***@cam/"},
	}
	for _, tt := range tests {
		_, err := ParseURL(tt.in)
		var ce *ConfigError
		if !errors.As(err, &ce) {
			t.Errorf("ParseURL(%q) = %v, want *ConfigError", tt.in, err)
			continue
		}
		if ce.Param != tt.param || ce.Value != tt.value {
			t.Errorf("ParseURL(%q) = %#v, want Param %q Value %q", tt.in, ce, tt.param, tt.value)
		}
		for _, part := range []string{pass, "Sup3r", "S3cret"} {
			if strings.Contains(err.Error(), part) {
				t.Errorf("ParseURL(%q) error shows the password: %v", tt.in, err)
			}
		}
	}
}

func TestConfigURLs(t *testing.T) {
	t.Parallel()
	c, err := ParseURL("hikvision://ad%3Amin:p%40ss%2Fw@cam:8080/?channel=2&stream=sub&https=1&insecure=1#backchannel=0")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.StreamID(), 202; got != want {
		t.Errorf("StreamID = %d, want %d", got, want)
	}
	if got, want := c.RTSPURL(554), "rtsp://ad%3Amin:p%40ss%2Fw@cam:554/Streaming/Channels/202"; got != want {
		t.Errorf("RTSPURL = %q, want %q", got, want)
	}
	s := c.String()
	if strings.Contains(s, "p%40ss") || strings.Contains(s, "p@ss") {
		t.Errorf("String shows the password: %s", s)
	}
	// The redacted form parses back to the same settings except the password.
	c2, err := ParseURL(s)
	if err != nil {
		t.Fatalf("ParseURL(String()) %q: %v", s, err)
	}
	c2.Password = c.Password
	if *c2 != *c {
		t.Errorf("round trip: %+v != %+v", *c2, *c)
	}
}

func TestFourthStream(t *testing.T) {
	t.Parallel()
	c, err := ParseURL("hikvision://admin:x@nvr/?channel=3&stream=fourth")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.StreamID(), 304; got != want {
		t.Errorf("StreamID = %d, want %d", got, want)
	}
	if got, want := c.RTSPURL(554), "rtsp://admin:x@nvr:554/Streaming/Channels/304"; got != want {
		t.Errorf("RTSPURL = %q, want %q", got, want)
	}
	c2, err := ParseURL(c.String())
	if err != nil || c2.Stream != StreamFourth {
		t.Errorf("ParseURL(%q) = %+v, %v: want the fourth stream back", c.String(), c2, err)
	}
}
