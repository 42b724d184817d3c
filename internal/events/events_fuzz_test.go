package events_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/events"
)

// FuzzAlertStream feeds arbitrary bodies (and Content-Type headers) to the decoder, whole and one byte
// at a time: it must never panic or loop, must end with io.EOF or a boundary error, must give the same
// alerts either way, and every alert must be well-formed.
func FuzzAlertStream(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "events", "*.txt"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		head, body, _ := bytes.Cut(b, []byte("\r\n\r\n"))
		f.Add(string(bytes.TrimPrefix(head, []byte("Content-Type: "))), body)
	}
	f.Add("multipart/mixed; boundary=x", []byte("--x\r\n\r\n{\"eventType\":\"duration\",\"DurationList\":{\"relationEvent\":\"VMD\"}}\r\n--x--"))
	f.Add("", []byte("--b\r\nContent-Type: image/jpeg\r\nContent-Length: 3\r\n\r\n\xff\xd8\xff\r\n--b"))
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		if len(body) > 1<<14 {
			return
		}
		run := func(r io.Reader) ([]events.Alert, error) {
			dec := events.NewDecoder(r, ct, nil)
			var out []events.Alert
			for i := 0; ; i++ {
				if i > len(body)+1 {
					t.Fatalf("more alerts (%d) than input bytes", i)
				}
				a, err := dec.Next()
				if err != nil {
					st := dec.Stats()
					if st.Alerts+st.Heartbeats != len(out) {
						t.Fatalf("stats %+v for %d alerts", st, len(out))
					}
					return out, err
				}
				out = append(out, a)
			}
		}
		whole, err1 := run(bytes.NewReader(body))
		bytewise, err2 := run(iotest.OneByteReader(bytes.NewReader(body)))
		for _, err := range []error{err1, err2} {
			if !errors.Is(err, io.EOF) && !errors.Is(err, events.ErrNoBoundary) {
				t.Fatalf("error %v, want io.EOF or ErrNoBoundary", err)
			}
		}
		if len(whole) != len(bytewise) {
			t.Fatalf("%d alerts whole, %d byte by byte", len(whole), len(bytewise))
		}
		for i, a := range whole {
			b := bytewise[i]
			if a.Type != b.Type || a.Active != b.Active || a.Channel != b.Channel || !bytes.Equal(a.Picture, b.Picture) {
				t.Fatalf("alert %d differs: %+v / %+v", i, a, b)
			}
			if a.Type == "" || a.Channel < 0 || strings.ContainsAny(a.Type, " \r\n<>&") {
				t.Fatalf("bad alert %+v", a)
			}
			if a.Heartbeat && a.Active && a.Type == events.TypeVideoLoss {
				t.Fatalf("an active videoloss taken for a heartbeat")
			}
			if utf8.ValidString(a.Raw) && strings.Contains(a.Raw, "\x00") {
				t.Fatalf("raw with NUL %q", a.Raw)
			}
		}
	})
}
