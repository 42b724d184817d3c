package hcfake

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func media(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "testdata", "media", name)
}

// ffprobe, an independent reader, finds the codecs the program stream map
// names and every video frame.
func TestWritePSReadByFFprobe(t *testing.T) {
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Skip("ffprobe not installed")
	}
	cases := []struct {
		name  string
		o     PSOptions
		codec []string
	}{
		{"h264-alaw", PSOptions{Video: media("h264_main.h264"), Audio: media("tone_1khz_8k.alaw"), AudioCodec: G711A}, []string{"h264", "pcm_alaw"}},
		{"h264-ulaw", PSOptions{Video: media("h264_sub.h264"), Audio: media("tone_1khz_8k.ulaw"), AudioCodec: G711U}, []string{"h264", "pcm_mulaw"}},
		{"h265-aac", PSOptions{Video: media("h265_main.h265"), H265: true, Audio: media("tone_1khz_16k.aac"), AudioCodec: AAC}, []string{"hevc", "aac"}},
		{"h264", PSOptions{Video: media("h264_main.h264")}, []string{"h264"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ps := filepath.Join(t.TempDir(), "x.ps")
			if err := WritePS(ps, c.o); err != nil {
				t.Fatal(err)
			}
			// As the SDK delivers it: the 40-byte "IMKH" header first, which
			// tells ffmpeg to read stream types 0x90/0x91 as G.711.
			body, err := os.ReadFile(ps)
			if err != nil {
				t.Fatal(err)
			}
			hdr := make([]byte, 40)
			copy(hdr, "IMKH")
			hdr[8] = 2
			out := filepath.Join(t.TempDir(), "x.hik")
			if err := os.WriteFile(out, append(hdr, body...), 0o644); err != nil {
				t.Fatal(err)
			}
			b, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-show_entries",
				"stream=codec_name,nb_read_frames", "-of", "csv=p=0", out).CombinedOutput()
			if err != nil {
				t.Fatalf("ffprobe: %v\n%s", err, b)
			}
			got := strings.Fields(strings.TrimSpace(string(b)))
			if len(got) != len(c.codec) {
				t.Fatalf("ffprobe streams %q, want codecs %v", got, c.codec)
			}
			for i, line := range got {
				parts := strings.Split(line, ",")
				if !contains(c.codec, parts[0]) {
					t.Errorf("stream %d: %s, want one of %v", i, line, c.codec)
				}
				if (parts[0] == "h264" || parts[0] == "hevc") && (len(parts) < 2 || parts[1] != "100") {
					t.Errorf("video stream %s: want 100 frames", line)
				}
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
