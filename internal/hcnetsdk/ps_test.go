//go:build hcnetsdk && linux && (amd64 || arm64)

package hcnetsdk

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/hcnetsdk/hcfake"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/ps"
)

// Two independent implementations meet: the PS the fake serves (written by
// hcfake from ISO 13818-1) goes through the binding into the project's
// demuxer, which must find every frame of the test media.
func TestPlayIntoDemuxer(t *testing.T) {
	media := filepath.Join("..", "..", "testdata", "media")
	aac, err := os.ReadFile(filepath.Join(media, "tone_1khz_16k.aac"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name         string
		o            hcfake.PSOptions
		kv           string
		audioUnits   int
		audioBytes   int
		videoFmt     uint16
		audioFmt     uint16
		audioRateHdr uint32
	}{
		{"h265-alaw", hcfake.PSOptions{Video: filepath.Join(media, "h265_main.h265"), H265: true,
			Audio: filepath.Join(media, "tone_1khz_8k.alaw"), AudioCodec: hcfake.G711A},
			"video_format=0x0005;audio_format=0x7111;audio_rate=8000", 200, 32000, 0x0005, 0x7111, 8000},
		{"h264-ulaw", hcfake.PSOptions{Video: filepath.Join(media, "h264_main.h264"),
			Audio: filepath.Join(media, "tone_1khz_8k.ulaw"), AudioCodec: hcfake.G711U},
			"video_format=0x0100;audio_format=0x7110;audio_rate=8000", 200, 32000, 0x0100, 0x7110, 8000},
		{"h264-aac", hcfake.PSOptions{Video: filepath.Join(media, "h264_sub.h264"),
			Audio: filepath.Join(media, "tone_1khz_16k.aac"), AudioCodec: hcfake.AAC},
			"video_format=0x0100;audio_format=0x2001;audio_rate=16000", adtsFrames(aac), len(aac), 0x0100, 0x2001, 16000},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), c.name+".ps")
			if err := hcfake.WritePS(file, c.o); err != nil {
				t.Fatal(err)
			}
			st, err := os.Stat(file)
			if err != nil {
				t.Fatal(err)
			}
			s := setup(t, "media="+file+";loop=0;speed=8;"+c.kv)
			ss := login(t, s)
			p, err := ss.RealPlay(context.Background(), PlayParams{Channel: 1, Queue: 4096})
			if err != nil {
				t.Fatal(err)
			}
			var hdr ps.MediaHeader
			var video, keys, audio, audioBytes int
			var errs []error
			d := &ps.Demuxer{
				OnHeader: func(h ps.MediaHeader) { hdr = h },
				OnUnit: func(u *ps.Unit) {
					if u.Type.IsVideo() {
						video++
						if u.Keyframe {
							keys++
						}
					} else {
						audio++
						audioBytes += len(u.Data)
					}
				},
				OnError: func(err error) { errs = append(errs, err) },
			}
			var streamBytes int64
			timeout := time.After(60 * time.Second)
			for streamBytes < st.Size() {
				select {
				case pkt := <-p.Data():
					if pkt.Type == DataStream {
						streamBytes += int64(len(pkt.Data))
					}
					if _, err := d.Write(pkt.Data); err != nil {
						t.Fatal(err)
					}
					p.Recycle(pkt.Data)
				case <-timeout:
					t.Fatalf("%d of %d bytes", streamBytes, st.Size())
				}
			}
			d.Flush()
			if hdr.VideoFormat != c.videoFmt || hdr.AudioFormat != c.audioFmt || hdr.AudioRate != c.audioRateHdr {
				t.Errorf("media header %+v", hdr)
			}
			if video != 100 || keys != 4 {
				t.Errorf("video: %d units, %d key; want 100 and 4", video, keys)
			}
			if audio != c.audioUnits || audioBytes != c.audioBytes {
				t.Errorf("audio: %d units, %d bytes; want %d and %d", audio, audioBytes, c.audioUnits, c.audioBytes)
			}
			if len(errs) > 0 {
				t.Errorf("demuxer errors: %v", errs)
			}
		})
	}
}

// adtsFrames counts the ADTS frames of an AAC file.
func adtsFrames(b []byte) int {
	n := 0
	for off := 0; off+7 <= len(b); n++ {
		l := int(b[off+3]&0x03)<<11 | int(b[off+4])<<3 | int(b[off+5])>>5
		if l < 7 {
			return -1
		}
		off += l
	}
	return n
}
