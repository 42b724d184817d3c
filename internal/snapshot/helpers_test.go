package snapshot_test

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/testclock"
)

// newClock is a settable clock moved by the test only.
func newClock() *testclock.Clock {
	return testclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
}

// frame is the 64x36 JPEG made with ffmpeg (testsrc) in testdata/.
func frame(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/frame_64x36.jpg")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// makeJPEG encodes a small image whose colour depends on n, so that images
// from different fetches differ.
func makeJPEG(t testing.TB, n int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 64, 36))
	for y := 0; y < 36; y++ {
		for x := 0; x < 64; x++ {
			img.Set(x, y, color.RGBA{uint8(n * 37), uint8(x * 4), uint8(y*7 + n), 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 80}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// decodes reports whether b decodes as a JPEG image of 64x36.
func decodes(b []byte) error {
	img, err := jpeg.Decode(bytes.NewReader(b))
	if err != nil {
		return err
	}
	if s := img.Bounds().Size(); s.X != 64 || s.Y != 36 {
		return &sizeErr{s}
	}
	return nil
}

type sizeErr struct{ s image.Point }

func (e *sizeErr) Error() string { return "unexpected size " + e.s.String() }

// checkGoroutines polls until the goroutine count is back to base, or fails.
func checkGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			n := runtime.Stack(buf, true)
			t.Fatalf("goroutines: %d, want <= %d\n%s", runtime.NumGoroutine(), base, buf[:n])
		}
		time.Sleep(5 * time.Millisecond)
	}
}
