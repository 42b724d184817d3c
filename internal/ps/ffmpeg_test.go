package ps_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/ps"
)

// ffmpeg's MPEG-PS muxers carry H.264 and H.265 but write no program stream
// map (the codec is recognised from the data), use stream id 0xE2 for H.264
// and 0xE0 for H.265, cut PES packets at the pack size regardless of frame
// boundaries, and accept none of G.711 or AAC. "mpeg" writes the MPEG-1
// system layer, "vob" and "svcd" the MPEG-2 one.
func TestFFmpegPS(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Fatal("ffmpeg not on PATH (CI installs it; apt-get install ffmpeg)")
	}
	for _, tc := range []struct {
		file, format string
		id           byte
		typ          ps.StreamType
		mp2          bool // interleave MPEG audio, which the demuxer skips
	}{
		{"h264_main.h264", "mpeg", 0xE2, ps.StreamH264, false},
		{"h264_main.h264", "vob", 0xE2, ps.StreamH264, false},
		{"h264_sub.h264", "svcd", 0xE2, ps.StreamH264, false},
		{"h265_main.h265", "vob", 0xE0, ps.StreamH265, false},
		{"h265_main.h265", "mpeg", 0xE0, ps.StreamH265, false},
		{"h264_main.h264", "vob", 0xE2, ps.StreamH264, true},
	} {
		name := tc.format + "/" + tc.file
		if tc.mp2 {
			name += "+mp2"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			src := filepath.Join("..", "..", "testdata", "media", tc.file)
			out := filepath.Join(dir, "out.ps")
			if tc.mp2 {
				ffmpeg(t, "-i", src, "-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000:duration=4",
					"-c:v", "copy", "-c:a", "mp2", "-f", tc.format, out)
			} else {
				ffmpeg(t, "-i", src, "-c", "copy", "-f", tc.format, out)
			}
			stream, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			c, st := demuxChunks(stream, func() int { return 1000 })
			units := c.of(tc.id)
			if len(units) != 100 {
				t.Fatalf("%d units from stream 0x%02X, want 100 (tables %v, stats %+v)", len(units), tc.id, c.tables, st)
			}
			if len(c.units) != len(units) {
				t.Fatalf("%d units of other streams", len(c.units)-len(units))
			}
			if tc.mp2 && st.PES < 41+20 { // 41 video PES without audio
				t.Fatalf("only %d PES: no audio interleaved?", st.PES)
			}
			if len(c.errs) != 0 || st.SyncLosses != 0 {
				t.Fatalf("errors %v, stats %+v", c.errs, st)
			}
			// the units are the source's access units, byte for byte
			withPTS := 0
			want := splitAUD(t, media(t, tc.file), tc.typ == ps.StreamH265)
			for i, u := range units {
				if u.Type != tc.typ || !bytes.Equal(u.Data, want[i]) {
					t.Fatalf("unit %d (%v): %d bytes, want the source's %d", i, u.Type, len(u.Data), len(want[i]))
				}
				// a PES holding several small frames has the PTS of the
				// first that starts in it: the others carry none
				if u.HasPTS {
					withPTS++
					if u.PTS != units[0].PTS+int64(i)*3600 {
						t.Fatalf("unit %d: PTS %d, want %d", i, u.PTS, units[0].PTS+int64(i)*3600)
					}
				}
			}
			if !units[0].HasPTS || withPTS < 10 {
				t.Fatalf("%d units with a PTS", withPTS)
			}
			t.Logf("%d units with a PTS", withPTS)
			// and ffprobe decodes what was demuxed: 100 frames
			es := filepath.Join(dir, "out.es")
			var all []byte
			for _, u := range units {
				all = append(all, u.Data...)
			}
			if err := os.WriteFile(es, all, 0o644); err != nil {
				t.Fatal(err)
			}
			format := "h264"
			if tc.typ == ps.StreamH265 {
				format = "hevc"
			}
			if n := countFrames(t, format, es); n != 100 {
				t.Fatalf("ffprobe counts %d frames in the demuxed stream, want 100", n)
			}
		})
	}
}

func ffmpeg(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command("ffmpeg", append([]string{"-hide_banner", "-loglevel", "error", "-y"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg %v: %v\n%s", args, err, out)
	}
}

// countFrames decodes an elementary stream with ffprobe and counts frames.
func countFrames(t *testing.T, format, path string) int {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-f", format, "-count_frames", "-select_streams", "v:0",
		"-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe: %v\n%s", err, out)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("ffprobe said %q", out)
	}
	return n
}

// What the Hikvision-layout writer makes decodes too, through the demuxer:
// ffprobe reads the demuxed H.265 and the demuxed G.711 A-law as the tone.
func TestHikvisionDecodes(t *testing.T) {
	want := hikStream{video: media(t, "h265_main.h265"), h265: true, audio: media(t, "tone_1khz_8k.alaw"), audioType: 0x90, maxPES: 1400}.build(t)
	c := demux(want.ps)
	dir := t.TempDir()
	var v, a []byte
	for _, u := range c.of(0xE0) {
		v = append(v, u.Data...)
	}
	for _, u := range c.of(0xC0) {
		a = append(a, u.Data...)
	}
	vp, ap := filepath.Join(dir, "v.hevc"), filepath.Join(dir, "a.alaw")
	if err := os.WriteFile(vp, v, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ap, a, 0o644); err != nil {
		t.Fatal(err)
	}
	if n := countFrames(t, "hevc", vp); n != 100 {
		t.Fatalf("ffprobe counts %d frames, want 100", n)
	}
	if !bytes.Equal(a, media(t, "tone_1khz_8k.alaw")) {
		t.Fatalf("demuxed A-law (%d bytes) differs from the source", len(a))
	}
	// ffmpeg decodes the A-law: 4 s at 8 kHz
	out, err := exec.Command("ffprobe", "-v", "error", "-f", "alaw", "-ar", "8000", "-ac", "1", "-show_entries", "format=duration", "-of", "csv=p=0", ap).CombinedOutput()
	if err != nil || !strings.HasPrefix(strings.TrimSpace(string(out)), "4.0") {
		t.Fatalf("ffprobe on the A-law: %v %s", err, out)
	}
}

// The test writer's Hikvision-layout streams are valid program streams:
// ffprobe (a demuxer written by others) reads all 100 video frames and every
// AAC frame from them, with the media header in front too. ffmpeg 5.1 does
// not know stream types 0x90/0x91, so G.711 is checked by this package only.
func TestWriterReadByFFprobe(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    hikStream
		want string
	}{
		{"h264+aac", hikStream{video: media(t, "h264_main.h264"), audio: media(t, "tone_1khz_16k.aac"), audioType: 0x0F, noHeader: true}, "h264,100\naac,16000,64"},
		{"h264+aac+header", hikStream{video: media(t, "h264_main.h264"), audio: media(t, "tone_1khz_16k.aac"), audioType: 0x0F}, "h264,100\naac,16000,64"},
		{"h265", hikStream{video: media(t, "h265_main.h265"), h265: true, maxPES: 1000, noHeader: true}, "hevc,100"},
		{"h264 mpeg1", hikStream{video: media(t, "h264_sub.h264"), mpeg1: true, noHeader: true}, "h264,100"},
	} {
		out := tc.h.build(t)
		path := filepath.Join(t.TempDir(), "hik.ps")
		if err := os.WriteFile(path, out.ps, 0o644); err != nil {
			t.Fatal(err)
		}
		probe, err := exec.Command("ffprobe", "-v", "quiet", "-count_frames", "-show_entries",
			"stream=codec_name,sample_rate,nb_read_frames", "-of", "csv=p=0", path).Output()
		if err != nil {
			t.Fatalf("%s: ffprobe: %v", tc.name, err)
		}
		if got := strings.TrimSpace(string(probe)); got != tc.want {
			t.Fatalf("%s: ffprobe reads\n%s\nwant\n%s", tc.name, got, tc.want)
		}
		// and the demuxer agrees on the frame counts
		c := demux(out.ps)
		if len(c.of(0xE0)) != 100 || len(c.of(0xC0)) != len(out.audio) {
			t.Fatalf("%s: demuxer %d video, %d audio units", tc.name, len(c.of(0xE0)), len(c.of(0xC0)))
		}
	}
}
