package sim

import "testing"

// TestMainVideoShared: devices with the same (codec, kbps, fps) share one padded Video; kbps 0 is the media.
func TestMainVideoShared(t *testing.T) {
	m, err := loadMedia()
	if err != nil {
		t.Fatal(err)
	}
	a, b := mainVideo(m.H264Main, 2000, 25), mainVideo(m.H264Main, 2000, 25)
	if a != b || a == m.H264Main {
		t.Errorf("same setting: %p and %p (media %p), want one shared padded Video", a, b, m.H264Main)
	}
	if c := mainVideo(m.H264Main, 2000, 30); c == a {
		t.Error("another fps got the 25 fps Video")
	}
	if h := mainVideo(m.H265Main, 2000, 25); h == a || h.Codec != m.H265Main.Codec {
		t.Errorf("H.265 got %p codec %s", h, h.Codec)
	}
	if v := mainVideo(m.H264Main, 0, 25); v != m.H264Main {
		t.Error("kbps 0 did not return the media as is")
	}
	if got := a.Bitrate(25); got < 1_960_000 || got > 2_040_000 {
		t.Errorf("padded Bitrate(25) = %d, want 2000000 ± 2%%", got)
	}
}
