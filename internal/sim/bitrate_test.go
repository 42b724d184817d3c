package sim_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

// TestMainKbps: a channel with MainKbps 2000 reports 2000 kbit/s for its main stream over ISAPI, and its
// RTSP main stream, read by ffmpeg (H.264 copied out as Annex B), carries about 2 Mbit/s of video.
func TestMainKbps(t *testing.T) {
	d := start(t, sim.Config{Channels: []sim.Channel{{ID: 1, Video: "H.264", Audio: "PCMA", MainKbps: 2000}}})
	a := login(t, d, "admin", "hik12345")
	type rate struct {
		CBR int `xml:"Video>constantBitRate"`
		VBR int `xml:"Video>vbrUpperCap"`
	}
	for path, want := range map[string]int{"/ISAPI/Streaming/channels/101": 2000, "/ISAPI/Streaming/channels/102": 512} {
		var r rate
		if err := xml.Unmarshal(a.getOK(path), &r); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if r.CBR != want || r.VBR != want {
			t.Errorf("%s: constantBitRate %d vbrUpperCap %d, want %d", path, r.CBR, r.VBR, want)
		}
	}

	// Config.MainKbps fills the channels that leave Channel.MainKbps 0.
	nvr := start(t, sim.Config{Personality: sim.PersonalityNVR, MainKbps: 1500, Channels: []sim.Channel{{ID: 1}, {ID: 2, MainKbps: 3000}}})
	if chs := nvr.Channels(); len(chs) != 2 || chs[0].MainKbps != 1500 || chs[1].MainKbps != 3000 {
		t.Errorf("channels %+v: want MainKbps 1500 (from Config) and 3000 (own)", chs)
	}

	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("ffmpeg not found in PATH: %v", err)
		}
		t.Skipf("ffmpeg not found in PATH: %v", err)
	}
	const secs = 2
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	url := "rtsp://admin:hik12345@" + d.RTSPAddr() + "/Streaming/Channels/101"
	cmd := exec.CommandContext(ctx, ffmpeg, "-nostdin", "-v", "error", "-xerror", "-rtsp_transport", "tcp", "-i", url,
		"-map", "0:v", "-t", "2", "-c:v", "copy", "-f", "h264", "pipe:1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, stderr.String())
	}
	if stderr.Len() != 0 {
		t.Errorf("ffmpeg reported errors:\n%s", stderr.String())
	}
	// Count filler NAL units (start code + 0x0C) and the bitrate of the copied stream.
	es := stdout.Bytes()
	fillers := bytes.Count(es, []byte{0, 0, 1, 0x0C})
	got := len(es) * 8 / secs
	t.Logf("main stream: %d bytes in %d s = %d bit/s, %d filler NAL units", len(es), secs, got, fillers)
	if got < 1_700_000 || got > 2_300_000 {
		t.Errorf("main stream %d bit/s over %d s, want 2000000 ± 15%%", got, secs)
	}
	if fillers < 25*secs-5 {
		t.Errorf("%d filler NAL units in %d s, want about one per frame (%d)", fillers, secs, 25*secs)
	}
}
