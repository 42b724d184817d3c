package redact_test

import (
	"encoding/base64"
	"net/url"
	"strings"
	"testing"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/redact"
)

const M = redact.Mask

func TestURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"rtsp://admin:secret@10.0.0.1:554/Streaming/Channels/101", "rtsp://admin:" + M + "@10.0.0.1:554/Streaming/Channels/101"},
		{"hikvision://admin:p@ss@cam.local/?channel=1#backchannel=0", "hikvision://admin:" + M + "@cam.local/?channel=1#backchannel=0"},
		{"hikvision://admin:p%40ss%2Fw@cam/", "hikvision://admin:" + M + "@cam/"},
		{"rtsp://admin:pa/ss?#x@cam/path", "rtsp://admin:" + M + "@cam/path"},
		{"rtsp://admin@cam/path", "rtsp://admin@cam/path"},
		{"rtsp://cam:554/path", "rtsp://cam:554/path"},
		{"rtsp://:onlypass@cam/", "rtsp://:" + M + "@cam/"},
		{"http://cam/ISAPI?user=admin&password=hunter2&x=1", "http://cam/ISAPI?user=admin&password=" + M + "&x=1"},
		{"http://cam/?PASS=hunter2", "http://cam/?PASS=" + M},
		{"http://cam/?pwd=a#b", "http://cam/?pwd=" + M + "#b"},
		{"http://cam/?compass=north", "http://cam/?compass=north"},
		{"not a url", "not a url"},
		{"", ""},
		{"user:pass without scheme", "user:pass without scheme"},
	}
	for _, tt := range tests {
		if got := redact.URL(tt.in); got != tt.want {
			t.Errorf("URL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestString(t *testing.T) {
	pass := "p@ss w/rd"
	b64 := base64.StdEncoding.EncodeToString([]byte(pass))
	tests := []struct {
		name    string
		in      string
		secrets []string
		want    string
	}{
		{"url in error", `dial "rtsp://admin:s3cr3t@10.0.0.1:554/x": timeout`, nil,
			`dial "rtsp://admin:` + M + `@10.0.0.1:554/x": timeout`},
		{"two urls", "a rtsp://u:p1@h1/ b http://u:p2@h2/ c", nil,
			"a rtsp://u:" + M + "@h1/ b http://u:" + M + "@h2/ c"},
		{"plain secret", "wrong password " + pass + " given", []string{pass}, "wrong password " + M + " given"},
		{"query-escaped secret", "x=" + url.QueryEscape(pass), []string{pass}, "x=" + M},
		{"path-escaped secret", "/" + url.PathEscape(pass) + "/", []string{pass}, "/" + M + "/"},
		{"base64 secret", "Authorization: Basic " + b64, []string{pass}, "Authorization: Basic " + M},
		{"base64 user:pass", "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+pass)),
			[]string{pass, "admin:" + pass}, "Authorization: Basic " + M},
		{"empty secret ignored", "nothing here", []string{""}, "nothing here"},
		{"no secrets no urls", "plain text", nil, "plain text"},
		{"param in text", "login failed for password=abc&user=x", nil, "login failed for password=" + M + "&user=x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := redact.String(tt.in, tt.secrets...)
			if got != tt.want {
				t.Errorf("String(%q) = %q, want %q", tt.in, got, tt.want)
			}
			for _, s := range tt.secrets {
				if s != "" && strings.Contains(got, s) {
					t.Errorf("secret %q still in %q", s, got)
				}
			}
		})
	}
}
