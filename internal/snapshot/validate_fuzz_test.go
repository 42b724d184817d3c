package snapshot_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/snapshot"
)

// FuzzValidate: Validate never panics; an accepted body is a prefix of the
// input from SOI to EOI with only zero bytes cut, and validates again as
// itself; a rejected body gives a *FetchError with a body reason whose
// detail quotes no free text from the body.
func FuzzValidate(f *testing.F) {
	jpg, err := os.ReadFile(filepath.Join("testdata", "frame_64x36.jpg"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(jpg)
	f.Add(append(append([]byte(nil), jpg...), 0, 0, 0))
	f.Add(jpg[:len(jpg)/2])
	f.Add(jpg[:20])
	f.Add([]byte{0xFF, 0xD8, 0xFF, 0xD9})
	f.Add([]byte{0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02, 0x01, 0xFF, 0xD9})
	f.Add([]byte("<!DOCTYPE html><html><body>secret-page</body></html>"))
	f.Add([]byte(`<?xml version="1.0"?><ResponseStatus><statusCode>4</statusCode><statusString>Invalid Operation</statusString><subStatusCode>notSupport</subStatusCode><errorMsg>free text</errorMsg></ResponseStatus>`))
	for _, name := range []string{"responseStatus_notSupport.xml", "deviceInfo_camera.xml"} {
		if b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "isapi", name)); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte{})
	// only the ResponseStatus codes are quoted from XML, never other text
	xmlDetail := regexp.MustCompile(`^device answered XML(?:: statusCode [0-9]{1,3})?(?: [A-Za-z0-9 ]{1,40})?(?: \([A-Za-z0-9_]{1,40}\))?$`)
	f.Fuzz(func(t *testing.T, body []byte) {
		in := append([]byte(nil), body...)
		out, err := snapshot.Validate(body)
		if !bytes.Equal(in, body) {
			t.Fatal("Validate changed its input")
		}
		if err != nil {
			var fe *snapshot.FetchError
			if !errors.As(err, &fe) {
				t.Fatalf("error %T: %v", err, err)
			}
			switch fe.Reason {
			case snapshot.ReasonEmpty, snapshot.ReasonXML, snapshot.ReasonHTML, snapshot.ReasonNotJPEG, snapshot.ReasonTruncated:
			default:
				t.Fatalf("reason %q for a body", fe.Reason)
			}
			if out != nil {
				t.Fatalf("image with error %v", err)
			}
			if fe.Reason == snapshot.ReasonXML && !xmlDetail.MatchString(fe.Detail) {
				t.Fatalf("XML detail %q quotes more than the status codes", fe.Detail)
			}
			return
		}
		if len(out) < 4 || !bytes.HasPrefix(out, []byte{0xFF, 0xD8, 0xFF}) || !bytes.HasSuffix(out, []byte{0xFF, 0xD9}) {
			t.Fatalf("accepted % X", out)
		}
		if !bytes.HasPrefix(body, out) || len(bytes.Trim(body[len(out):], "\x00")) != 0 {
			t.Fatalf("accepted image is not the body minus trailing zeros")
		}
		again, err := snapshot.Validate(out)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("accepted image does not validate again: %v", err)
		}
	})
}
