package simrtsp

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// fillerNAL reports whether n is a filler-data NAL unit of the codec with the
// expected shape: header, 0xFF bytes, rbsp trailing byte 0x80.
func fillerNAL(codec string, n []byte) (ok bool, why string) {
	hdr := []byte{0x0C}
	if codec == CodecH265 {
		hdr = []byte{0x4C, 0x01}
	}
	if len(n) < len(hdr)+1 || !bytes.Equal(n[:len(hdr)], hdr) {
		return false, "header is not the filler-data NAL header"
	}
	if n[len(n)-1] != 0x80 {
		return false, "does not end with the rbsp trailing byte 0x80"
	}
	for _, b := range n[len(hdr) : len(n)-1] {
		if b != 0xFF {
			return false, "payload is not all 0xFF"
		}
	}
	return true, ""
}

// loopBits counts the NAL bytes of depacketized frames independently of the
// Video's own bookkeeping: bits per second at fps.
func loopBits(nals [][][]byte, fps int) int {
	total := 0
	for _, f := range nals {
		for _, n := range f {
			total += len(n)
		}
	}
	return total * 8 * fps / len(nals)
}

func within(got, want int, frac float64) bool {
	d := float64(got - want)
	return d <= frac*float64(want) && -d <= frac*float64(want)
}

func TestWithBitrate(t *testing.T) {
	_, m := testMedia(t)
	for _, tc := range []struct {
		name     string
		v        *Video
		bps, fps int
	}{
		{"H.264 main 2M@25", m.H264Main, 2_000_000, 25},
		{"H.265 main 2M@25", m.H265Main, 2_000_000, 25},
		{"H.264 sub 1M@30", m.H264Sub, 1_000_000, 30},
		{"H.264 main 8M@25", m.H264Main, 8_000_000, 25},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := tc.v
			// Snapshot the original before padding: its NAL units and packet headers.
			orig := make([][][]byte, len(v.frames))
			origPkts := make([]int, len(v.frames))
			for i, f := range v.frames {
				orig[i] = depacketize(t, v.Codec, f.packets)
				origPkts[i] = len(f.packets)
			}
			origRate := v.Bitrate(tc.fps)
			if got := loopBits(orig, tc.fps); got != origRate {
				t.Fatalf("Bitrate(%d) = %d, counted from the packets %d", tc.fps, origRate, got)
			}
			if origRate >= tc.bps/2 {
				t.Fatalf("media already at %d bit/s: the test needs a target well above it", origRate)
			}

			p := v.WithBitrate(tc.bps, tc.fps)
			if p == v {
				t.Fatal("WithBitrate returned the original Video")
			}
			if p.Codec != v.Codec || p.Frames() != v.Frames() {
				t.Fatalf("padded: %s %d frames, want %s %d", p.Codec, p.Frames(), v.Codec, v.Frames())
			}
			if len(p.ParamSets) != len(v.ParamSets) || &p.ParamSets[0] != &v.ParamSets[0] {
				t.Error("padded Video does not share ParamSets")
			}

			padded := make([][][]byte, len(p.frames))
			var fillers []int
			for i, f := range p.frames {
				for j, pk := range f.packets {
					if len(pk) > MaxPayload {
						t.Fatalf("frame %d packet %d: %d bytes > MaxPayload %d", i, j, len(pk), MaxPayload)
					}
				}
				if f.key != v.frames[i].key {
					t.Errorf("frame %d: key %v, original %v", i, f.key, v.frames[i].key)
				}
				nals := depacketize(t, p.Codec, f.packets)
				padded[i] = nals
				if len(nals) != len(orig[i])+1 {
					t.Fatalf("frame %d: %d NAL units, want the %d original + 1 filler", i, len(nals), len(orig[i]))
				}
				for j := range orig[i] {
					if !bytes.Equal(nals[j], orig[i][j]) {
						t.Fatalf("frame %d NAL %d differs from the original", i, j)
					}
				}
				last := nals[len(nals)-1]
				if ok, why := fillerNAL(p.Codec, last); !ok {
					t.Fatalf("frame %d last NAL (%d bytes, % x...): %s", i, len(last), last[:min(len(last), 4)], why)
				}
				fillers = append(fillers, len(last))
			}

			got := p.Bitrate(tc.fps)
			counted := loopBits(padded, tc.fps)
			if got != counted {
				t.Errorf("Bitrate(%d) = %d, counted from the packets %d", tc.fps, got, counted)
			}
			if !within(counted, tc.bps, 0.02) {
				t.Errorf("padded bitrate %d bit/s, want %d ± 2%%", counted, tc.bps)
			}
			lo, hi := fillers[0], fillers[0]
			for _, n := range fillers {
				lo, hi = min(lo, n), max(hi, n)
			}
			if hi-lo > 1 {
				t.Errorf("filler sizes range %d..%d bytes: deficit not spread evenly", lo, hi)
			}
			t.Logf("%s: %d -> %d bit/s at %d fps, filler %d..%d bytes/frame", v.Codec, origRate, counted, tc.fps, lo, hi)

			// The original is unchanged.
			if v.Bitrate(tc.fps) != origRate {
				t.Errorf("original Bitrate changed: %d, was %d", v.Bitrate(tc.fps), origRate)
			}
			for i, f := range v.frames {
				if len(f.packets) != origPkts[i] {
					t.Fatalf("original frame %d: %d packets, was %d", i, len(f.packets), origPkts[i])
				}
				nals := depacketize(t, v.Codec, f.packets)
				if len(nals) != len(orig[i]) {
					t.Fatalf("original frame %d: %d NAL units, was %d", i, len(nals), len(orig[i]))
				}
				for j := range nals {
					if !bytes.Equal(nals[j], orig[i][j]) {
						t.Fatalf("original frame %d NAL %d changed", i, j)
					}
				}
			}
		})
	}
}

func TestWithBitrateNoPadding(t *testing.T) {
	_, m := testMedia(t)
	v := m.H264Main
	rate := v.Bitrate(25)
	if rate <= 0 {
		t.Fatalf("Bitrate(25) = %d", rate)
	}
	for _, c := range []struct{ bps, fps int }{{rate, 25}, {rate / 2, 25}, {0, 25}, {2_000_000, 0}} {
		if p := v.WithBitrate(c.bps, c.fps); p != v {
			t.Errorf("WithBitrate(%d, %d) on %d bit/s media: got a new Video, want the original", c.bps, c.fps, rate)
		}
	}
	// Just above: a new Video at the target.
	p := v.WithBitrate(rate+rate/10, 25)
	if p == v || !within(p.Bitrate(25), rate+rate/10, 0.02) {
		t.Errorf("WithBitrate(%d, 25): %d bit/s", rate+rate/10, p.Bitrate(25))
	}
}

func fillerTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not found in PATH (install ffmpeg, e.g. apt-get install ffmpeg): %v", name, err)
		}
		t.Skipf("%s not found in PATH: %v", name, err)
	}
	return p
}

// TestWithBitrateFFmpeg serves a 2 Mbit/s H.264 + PCMU stream and has ffmpeg
// read 3 s of it: decoding reports no error, and the H.264 elementary stream
// it copies out (Annex B, filler NAL units included) is about 2 Mbit/s.
func TestWithBitrateFFmpeg(t *testing.T) {
	ffmpeg := fillerTool(t, "ffmpeg")
	_, m := testMedia(t)
	const bps, secs = 2_000_000, 3
	s := NewServer(Config{})
	if err := s.AddStream(101, Stream{Video: m.H264Main.WithBitrate(bps, 25), Audio: m.PCMU, FPS: 25}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	defer func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	}()

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	url := "rtsp://" + ln.Addr().String() + "/Streaming/Channels/101"
	dur := strconv.Itoa(secs)
	progressFile := t.TempDir() + "/progress"
	cmd := exec.CommandContext(ctx, ffmpeg, "-nostdin", "-v", "error", "-xerror", "-rtsp_transport", "tcp", "-i", url,
		"-map", "0:v", "-t", dur, "-c:v", "copy", "-f", "h264", "pipe:1",
		"-map", "0", "-t", dur, "-f", "null", "-progress", progressFile, "-")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, stderr.String())
	}
	if stderr.Len() != 0 {
		t.Errorf("ffmpeg reported errors:\n%s", stderr.String())
	}
	pb, err := os.ReadFile(progressFile)
	if err != nil {
		t.Fatal(err)
	}
	progress := string(pb)
	fm := regexp.MustCompile(`(?m)^frame=(\d+)$`).FindAllStringSubmatch(progress, -1)
	if len(fm) == 0 {
		t.Fatalf("no frame count in ffmpeg progress output:\n%s", progress)
	}
	frames, _ := strconv.Atoi(fm[len(fm)-1][1])
	if frames < 25*secs-5 || frames > 25*secs+5 {
		t.Errorf("decoded %d frames in %d s, want about %d", frames, secs, 25*secs)
	}

	// The copied stream: count filler NAL units and the bitrate.
	es := stdout.Bytes()
	nals := splitAnnexB(es)
	fillers, total := 0, 0
	for _, n := range nals {
		if n[0]&31 == 9 { // an AUD ffmpeg may insert is not what the server sent
			continue
		}
		total += len(n)
		if n[0]&31 == 12 {
			if ok, why := fillerNAL(CodecH264, n); !ok {
				t.Fatalf("filler NAL as ffmpeg received it: %s", why)
			}
			fillers++
		}
	}
	got := total * 8 / secs
	t.Logf("ffmpeg: %d frames decoded; copied %d bytes (%d NAL bytes, %d filler NAL units) = %d bit/s over %d s",
		frames, len(es), total, fillers, got, secs)
	if fillers < 25*secs-5 {
		t.Errorf("%d filler NAL units in %d s, want one per frame (about %d)", fillers, secs, 25*secs)
	}
	if !within(got, bps, 0.15) {
		t.Errorf("measured %d bit/s over %d s, want %d ± 15%%", got, secs, bps)
	}
}
