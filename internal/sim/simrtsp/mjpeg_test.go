package simrtsp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image"
	"image/jpeg"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim/simrtsp"
)

// testJPEGs encodes n distinct w×h pictures with image/jpeg (4:2:0, standard tables).
func testJPEGs(t *testing.T, n, w, h int) [][]byte {
	t.Helper()
	var out [][]byte
	for i := range n {
		img := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
		for j := range img.Y {
			img.Y[j] = uint8(j*7 + i*31)
		}
		for j := range img.Cb {
			img.Cb[j], img.Cr[j] = uint8(j+i), uint8(255-j)
		}
		var b bytes.Buffer
		if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 80}); err != nil {
			t.Fatal(err)
		}
		out = append(out, b.Bytes())
	}
	return out
}

func TestNewMJPEGRejects(t *testing.T) {
	good := testJPEGs(t, 1, 64, 48)[0]
	for name, img := range map[string][]byte{
		"empty":      {},
		"not a JPEG": []byte("GIF89a"),
		"size 60x48": testJPEGs(t, 1, 60, 48)[0],
		"cut":        good[:40],
	} {
		if _, err := simrtsp.NewMJPEG([][]byte{img}); !errors.Is(err, simrtsp.ErrBadMedia) {
			t.Errorf("%s: %v, want ErrBadMedia", name, err)
		}
	}
	if _, err := simrtsp.NewMJPEG(nil); !errors.Is(err, simrtsp.ErrBadMedia) {
		t.Errorf("no images: %v, want ErrBadMedia", err)
	}
	if v, err := simrtsp.NewMJPEG([][]byte{good}); err != nil || v.Frames() != 1 {
		t.Fatalf("good image: %v", err)
	}
}

// TestMJPEGFFmpeg: an RTP/JPEG stream (RFC 2435) is read by ffprobe as MJPEG
// of the pictures' size and decoded by ffmpeg without an error at 25 fps.
func TestMJPEGFFmpeg(t *testing.T) {
	ffprobe, ffmpeg := requireTool(t, "ffprobe"), requireTool(t, "ffmpeg")
	v, err := simrtsp.NewMJPEG(testJPEGs(t, 10, 640, 480))
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, simrtsp.Config{})
	if err := ts.AddStream(402, simrtsp.Stream{Video: v, FPS: 25}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, ffprobe, "-v", "error", "-rtsp_transport", "tcp",
		"-show_entries", "stream=codec_type,codec_name,width,height", "-of", "json",
		ts.url("/Streaming/Channels/402")).Output()
	if err != nil {
		t.Fatalf("ffprobe: %v", err)
	}
	var res struct{ Streams []probeStream }
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Streams) != 1 || res.Streams[0].CodecName != "mjpeg" || res.Streams[0].Width != 640 || res.Streams[0].Height != 480 {
		t.Fatalf("ffprobe: %+v, want one mjpeg 640x480 stream", res.Streams)
	}

	cmd := exec.CommandContext(ctx, ffmpeg, "-nostdin", "-v", "error", "-xerror", "-rtsp_transport", "tcp",
		"-i", ts.url("/Streaming/Channels/402"), "-t", "2", "-progress", "pipe:1", "-f", "null", "-")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	prog, err := cmd.Output()
	if err != nil || stderr.Len() != 0 {
		t.Fatalf("ffmpeg: %v\n%s", err, stderr.String())
	}
	m := regexp.MustCompile(`(?m)^frame=(\d+)$`).FindAllSubmatch(prog, -1)
	if len(m) == 0 {
		t.Fatalf("no frame count:\n%s", prog)
	}
	if n, _ := strconv.Atoi(string(m[len(m)-1][1])); n < 45 || n > 55 {
		t.Errorf("decoded %d frames in 2 s, want about 50", n)
	}
}
