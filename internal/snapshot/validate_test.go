package snapshot_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/snapshot"
)

func reasonOf(t *testing.T, err error) snapshot.Reason {
	t.Helper()
	var fe *snapshot.FetchError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v (%T) is not a *FetchError", err, err)
	}
	return fe.Reason
}

func TestValidateAcceptsWholeJPEGs(t *testing.T) {
	f := frame(t)
	gen := makeJPEG(t, 3)
	padded := append(append([]byte{}, f...), make([]byte, 37)...)
	for name, tc := range map[string]struct{ in, want []byte }{
		"ffmpeg frame":     {f, f},
		"image/jpeg frame": {gen, gen},
		"zero padded":      {padded, f},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := snapshot.Validate(tc.in)
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("Validate returned %d bytes, want %d", len(got), len(tc.want))
			}
			if err := decodes(got); err != nil {
				t.Fatalf("result does not decode: %v", err)
			}
		})
	}
}

func TestValidateRejects(t *testing.T) {
	f := frame(t)
	xml := `<?xml version="1.0" encoding="UTF-8"?>
<ResponseStatus version="2.0" xmlns="http://www.hikvision.com/ver20/XMLSchema">
<requestURL>/ISAPI/Streaming/channels/101/picture</requestURL>
<statusCode>3</statusCode>
<statusString>Device Error</statusString>
<subStatusCode>deviceError</subStatusCode>
</ResponseStatus>`
	cases := []struct {
		name   string
		in     []byte
		reason snapshot.Reason
		detail string
	}{
		{"empty", nil, snapshot.ReasonEmpty, "0 bytes"},
		{"xml", []byte(xml), snapshot.ReasonXML, "statusCode 3 Device Error (deviceError)"},
		{"xml with BOM and blank", []byte("\xef\xbb\xbf\r\n<ResponseStatus><subStatusCode>notSupport</subStatusCode></ResponseStatus>"), snapshot.ReasonXML, "(notSupport)"},
		{"html", []byte("<!DOCTYPE html><html><body>502 Bad Gateway</body></html>"), snapshot.ReasonHTML, "HTML"},
		{"html lower", []byte("  <html><head></head></html>"), snapshot.ReasonHTML, "HTML"},
		{"png", []byte("\x89PNG\r\n\x1a\n0000"), snapshot.ReasonNotJPEG, "89 50 4E 47"},
		{"soi only", []byte{0xFF, 0xD8, 0xFF}, snapshot.ReasonTruncated, "cut"},
		{"soi eoi", []byte{0xFF, 0xD8, 0xFF, 0xD9}, snapshot.ReasonTruncated, "EOI before"},
		{"trailing garbage", append(append([]byte{}, f...), 'x', 'y'), snapshot.ReasonTruncated, "FF D9"},
		{"missing eoi", f[:len(f)-2], snapshot.ReasonTruncated, "FF D9"},
		{"half", f[:len(f)/2], snapshot.ReasonTruncated, ""},
		{"header only", f[:100], snapshot.ReasonTruncated, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := snapshot.Validate(tc.in)
			if err == nil {
				t.Fatalf("Validate accepted %d bytes", len(got))
			}
			if r := reasonOf(t, err); r != tc.reason {
				t.Fatalf("reason %q, want %q (%v)", r, tc.reason, err)
			}
			if !strings.Contains(err.Error(), tc.detail) {
				t.Fatalf("error %q does not say %q", err, tc.detail)
			}
		})
	}
}

// Every cut of a real frame must be rejected, and a cut that is zero padded
// back to full length too.
func TestValidateRejectsEveryTruncation(t *testing.T) {
	for _, f := range [][]byte{frame(t), makeJPEG(t, 9)} {
		for n := 0; n < len(f); n++ {
			if _, err := snapshot.Validate(f[:n]); err == nil {
				t.Fatalf("prefix of %d/%d bytes accepted", n, len(f))
			}
			padded := append(append([]byte{}, f[:n]...), make([]byte, len(f)-n)...)
			if _, err := snapshot.Validate(padded); err == nil {
				t.Fatalf("prefix of %d/%d bytes padded with zeros accepted", n, len(f))
			}
		}
	}
}

func TestPath(t *testing.T) {
	for _, tc := range []struct {
		ch   int
		nvr  bool
		w, h int
		want string
	}{
		{101, false, 0, 0, "/ISAPI/Streaming/channels/101/picture"},
		{102, true, 0, 0, "/ISAPI/ContentMgmt/StreamingProxy/channels/102/picture"},
		{101, false, 640, 360, "/ISAPI/Streaming/channels/101/picture?snapShotImageType=JPEG&videoResolutionWidth=640&videoResolutionHeight=360"},
		{1601, true, 1920, 1080, "/ISAPI/ContentMgmt/StreamingProxy/channels/1601/picture?snapShotImageType=JPEG&videoResolutionWidth=1920&videoResolutionHeight=1080"},
		{101, false, 640, 0, "/ISAPI/Streaming/channels/101/picture"},
	} {
		if got := snapshot.Path(tc.ch, tc.nvr, tc.w, tc.h); got != tc.want {
			t.Errorf("Path(%d, %v, %d, %d) = %q, want %q", tc.ch, tc.nvr, tc.w, tc.h, got, tc.want)
		}
	}
}
