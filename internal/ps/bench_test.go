package ps_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/AlexxIT/go2rtc/pkg/mpegts"
	"github.com/pion/rtp"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/ps"
)

// benchStream is 4 s of H.264 640x360 with G.711 A-law in the Hikvision
// layout.
func benchStream(b *testing.B) []byte {
	return hikStream{video: media(b, "h264_main.h264"), audio: media(b, "tone_1khz_8k.alaw"), audioType: 0x90}.build(b).ps
}

// report adds ns per MB and heap allocations per PES packet, counted over
// the timed loop.
func report(b *testing.B, start time.Time, m0 *runtime.MemStats, bytesPerOp int, pesPerOp int64) {
	elapsed := time.Since(start)
	var m1 runtime.MemStats
	runtime.ReadMemStats(&m1)
	b.ReportMetric(float64(elapsed.Nanoseconds())/(float64(b.N)*float64(bytesPerOp)/1e6), "ns/MB")
	if pesPerOp > 0 {
		b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/float64(int64(b.N)*pesPerOp), "allocs/PES")
	}
}

// BenchmarkDemux: the demuxer alone, in 4 KiB chunks, after one warm-up
// pass (buffers reach their size).
func BenchmarkDemux(b *testing.B) {
	stream := benchStream(b)
	units := 0
	d := &ps.Demuxer{OnUnit: func(*ps.Unit) { units++ }}
	feed := func() {
		for p := stream; len(p) > 0; {
			n := min(4096, len(p))
			_, _ = d.Write(p[:n])
			p = p[n:]
		}
	}
	feed()
	pes := d.Stats().PES
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	var m0 runtime.MemStats
	runtime.ReadMemStats(&m0)
	start := time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		feed()
	}
	b.StopTimer()
	report(b, start, &m0, len(stream), pes)
	if units == 0 {
		b.Fatal("no units")
	}
}

// BenchmarkSource: demuxer plus go2rtc packets (raw form). Each packet and
// payload is new, because go2rtc's senders queue them.
func BenchmarkSource(b *testing.B) {
	stream := benchStream(b)
	packets := 0
	s := ps.NewSource(ps.SourceConfig{OnPacket: func(int, *rtp.Packet) { packets++ }})
	_ = s.Write(stream)
	s.Medias()
	s.Start()
	pes := s.Stats().PES
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	var m0 runtime.MemStats
	runtime.ReadMemStats(&m0)
	start := time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for p := stream; len(p) > 0; {
			n := min(4096, len(p))
			_ = s.Write(p[:n])
			p = p[n:]
		}
	}
	b.StopTimer()
	report(b, start, &m0, len(stream), pes)
	b.ReportMetric(float64(packets)/float64(b.N+1), "packets/op")
}

// BenchmarkGo2rtcMPEGTS: stock go2rtc's MPEG-TS demuxer on the same video
// and audio muxed by ffmpeg as MPEG-TS (PCM A-law is not in TS, so the audio
// is AAC), for a ratio.
func BenchmarkGo2rtcMPEGTS(b *testing.B) {
	path := filepath.Join(b.TempDir(), "ts")
	src := filepath.Join("..", "..", "testdata", "media")
	out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-i", filepath.Join(src, "h264_main.h264"),
		"-i", filepath.Join(src, "tone_1khz_16k.aac"), "-c", "copy", "-f", "mpegts", path).CombinedOutput()
	if err != nil {
		b.Fatalf("ffmpeg: %v %s", err, out)
	}
	ts, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(ts)))
	b.ReportAllocs()
	var m0 runtime.MemStats
	runtime.ReadMemStats(&m0)
	start := time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d := mpegts.NewDemuxer()
		rd := bytes.NewReader(ts)
		for {
			if _, err := d.ReadPacket(rd); err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					b.Fatal(err)
				}
				break
			}
		}
	}
	b.StopTimer()
	report(b, start, &m0, len(ts), 0)
}
