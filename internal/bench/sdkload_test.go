package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim/simrtsp"
)

// padH264 pads the test media to the bitrate the simulator's own padding
// (simrtsp.Video.WithBitrate, a different implementation) reaches, and keeps
// every access unit.
func TestPadH264MatchesSimulator(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "testdata", "media", "h264_main.h264"))
	if err != nil {
		t.Fatal(err)
	}
	padded, err := padH264(raw, 2_000_000, 25)
	if err != nil {
		t.Fatal(err)
	}
	orig, err := simrtsp.NewVideo(simrtsp.CodecH264, raw)
	if err != nil {
		t.Fatal(err)
	}
	got, err := simrtsp.NewVideo(simrtsp.CodecH264, padded)
	if err != nil {
		t.Fatal(err)
	}
	if got.Frames() != orig.Frames() {
		t.Fatalf("padded media has %d access units, the original %d", got.Frames(), orig.Frames())
	}
	want := orig.WithBitrate(2_000_000, 25).Bitrate(25)
	if b := got.Bitrate(25); b < want*99/100 || b > want*101/100 {
		t.Errorf("padded bitrate %d bit/s, the simulator's padding %d", b, want)
	}
	if n := bytes.Count(padded, []byte{0, 0, 0, 1, 0x0C}); n != orig.Frames() {
		t.Errorf("%d filler NAL units, want one per access unit (%d)", n, orig.Frames())
	}
	if _, err := padH264([]byte{0, 0, 0, 1, 0x67, 1, 2}, 2_000_000, 25); err == nil {
		t.Error("media without access unit delimiters: no error")
	}
}

func TestParseFakeStats(t *testing.T) {
	c, err := parseFakeStats("logins 1\nplay_starts 3\ntalk_starts 2\nlogin_attempts 4\n")
	if err != nil {
		t.Fatal(err)
	}
	if c["play_starts"] != 3 || c["talk_starts"] != 2 || c["login_attempts"] != 4 {
		t.Errorf("parsed %v", c)
	}
	for _, bad := range []string{"talk_starts 1\nplay_starts 2\n", "talk_starts x\nplay_starts 1\nlogin_attempts 1", "talk_starts"} {
		if _, err := parseFakeStats(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
