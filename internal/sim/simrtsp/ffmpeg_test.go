package simrtsp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim/simrtsp"
)

type probeStream struct {
	CodecType  string `json:"codec_type"`
	CodecName  string `json:"codec_name"`
	Width      int    `json:"width"`
	Height     int    `json:"height"`
	SampleRate string `json:"sample_rate"`
	Channels   int    `json:"channels"`
}

// TestFFprobe probes each stream with a real RTSP client (ffprobe over TCP,
// credentials in the URL, digest on its side).
func TestFFprobe(t *testing.T) {
	ffprobe := requireTool(t, "ffprobe")
	ts := startServer(t, simrtsp.Config{})
	cases := []struct {
		path       string
		video      string
		w, h       int
		audio      string
		sampleRate string
	}{
		{"/Streaming/Channels/101", "h264", 640, 360, "pcm_mulaw", "8000"},
		{"/Streaming/Channels/102", "h264", 320, 180, "pcm_alaw", "8000"},
		{"/ISAPI/Streaming/channels/201?transportmode=unicast", "hevc", 640, 360, "aac", "16000"},
		{"/Streaming/Channels/301", "h264", 320, 180, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, ffprobe, "-v", "error", "-rtsp_transport", "tcp",
				"-show_entries", "stream=codec_type,codec_name,width,height,sample_rate,channels",
				"-of", "json", ts.url(tc.path))
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("ffprobe: %v\n%s", err, stderr.String())
			}
			var res struct{ Streams []probeStream }
			if err := json.Unmarshal(out, &res); err != nil {
				t.Fatalf("ffprobe output %q: %v", out, err)
			}
			want := 1
			if tc.audio != "" {
				want = 2
			}
			if len(res.Streams) != want {
				t.Fatalf("ffprobe found %d streams, want %d: %+v", len(res.Streams), want, res.Streams)
			}
			v := res.Streams[0]
			if v.CodecType != "video" || v.CodecName != tc.video || v.Width != tc.w || v.Height != tc.h {
				t.Errorf("video = %+v, want %s %dx%d", v, tc.video, tc.w, tc.h)
			}
			if tc.audio != "" {
				a := res.Streams[1]
				if a.CodecType != "audio" || a.CodecName != tc.audio || a.SampleRate != tc.sampleRate || a.Channels != 1 {
					t.Errorf("audio = %+v, want %s %s Hz mono", a, tc.audio, tc.sampleRate)
				}
			}
		})
	}
	if n := ts.auth.count("fail"); n != 0 {
		t.Errorf("OnAuth reported %d failures for good credentials", n)
	}
	if ts.auth.count("ok") == 0 {
		t.Error("OnAuth never reported a good login")
	}
}

// TestFFmpegDecode decodes 2 s of each codec pair with ffmpeg and checks that
// it reports no error and decodes about real-time worth of frames.
func TestFFmpegDecode(t *testing.T) {
	ffmpeg := requireTool(t, "ffmpeg")
	ts := startServer(t, simrtsp.Config{})
	frameRe := regexp.MustCompile(`(?m)^frame=(\d+)$`)
	for _, path := range []string{"/Streaming/Channels/101", "/Streaming/Channels/102", "/Streaming/Channels/201"} {
		t.Run(path, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, ffmpeg, "-nostdin", "-v", "error", "-xerror",
				"-rtsp_transport", "tcp", "-i", ts.url(path), "-t", "2", "-progress", "pipe:1", "-f", "null", "-")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("ffmpeg: %v\n%s", err, stderr.String())
			}
			if stderr.Len() != 0 {
				t.Errorf("ffmpeg reported errors:\n%s", stderr.String())
			}
			m := frameRe.FindAllSubmatch(out, -1)
			if len(m) == 0 {
				t.Fatalf("no frame count in ffmpeg progress output:\n%s", out)
			}
			frames, _ := strconv.Atoi(string(m[len(m)-1][1]))
			if frames < 45 || frames > 55 {
				t.Errorf("decoded %d frames in 2 s, want about 50", frames)
			}
		})
	}
}

// TestFFprobeWrongPassword: a real client with a wrong password gets 401 and
// the device hears about the failed login.
func TestFFprobeWrongPassword(t *testing.T) {
	ffprobe := requireTool(t, "ffprobe")
	ts := startServer(t, simrtsp.Config{})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, ffprobe, "-v", "error", "-rtsp_transport", "tcp",
		"rtsp://admin:wrong@"+ts.addr+"/Streaming/Channels/101").CombinedOutput()
	if err == nil {
		t.Fatalf("ffprobe succeeded with a wrong password:\n%s", out)
	}
	if !bytes.Contains(out, []byte("401")) {
		t.Errorf("ffprobe output does not mention 401:\n%s", out)
	}
	if n := ts.auth.count("fail"); n < 1 {
		t.Errorf("OnAuth(ok=false) called %d times, want >= 1", n)
	}
	if st := ts.Stats(); st.AuthFailures < 1 || st.TotalSessions != 0 {
		t.Errorf("stats %+v: want AuthFailures >= 1 and no session", st)
	}
}
