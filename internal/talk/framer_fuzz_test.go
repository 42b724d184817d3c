package talk_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/talk"
)

// FuzzG711: G.711 passes through unchanged, 125 µs per byte, after dst.
func FuzzG711(f *testing.F) {
	f.Add([]byte{}, []byte{0xFF, 0x7F, 0x00})
	if b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "media", "tone_1khz_8k.ulaw")); err == nil {
		f.Add([]byte("prefix"), b[:min(len(b), 160)])
	}
	f.Fuzz(func(t *testing.T, dst, payload []byte) {
		for _, fr := range []*talk.G711Framer{{Name: "PCMU"}, {Name: "PCMA"}} {
			d0 := append([]byte(nil), dst...)
			out, d, err := fr.Append(d0, payload)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, append(append([]byte(nil), dst...), payload...)) {
				t.Fatalf("G.711 output %x, want %x + %x", out, dst, payload)
			}
			if d != time.Duration(len(payload))*125*time.Microsecond {
				t.Fatalf("duration %v for %d bytes", d, len(payload))
			}
		}
	})
}

// adtsFrames reads the ADTS test tone into frames.
func adtsFrames(f *testing.F) [][]byte {
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "media", "tone_1khz_16k.aac"))
	if err != nil {
		f.Fatal(err)
	}
	var frames [][]byte
	for len(b) >= 7 && len(frames) < 8 {
		n := int(b[3]&3)<<11 | int(b[4])<<3 | int(b[5])>>5
		if n < 7 || n > len(b) {
			f.Fatalf("bad ADTS fixture at frame %d", len(frames))
		}
		frames = append(frames, b[:n])
		b = b[n:]
	}
	return frames
}

// rfc3640 builds an AAC-hbr payload (16-bit AU-headers) of the raw AUs.
func rfc3640(aus ...[]byte) []byte {
	p := binary.BigEndian.AppendUint16(nil, uint16(16*len(aus)))
	for _, au := range aus {
		p = binary.BigEndian.AppendUint16(p, uint16(len(au))<<3)
	}
	for _, au := range aus {
		p = append(p, au...)
	}
	return p
}

// FuzzAAC: an RTP AAC payload (RFC 3640 AU or ADTS) becomes 4-byte
// length-prefixed ADTS frames that parse back: every prefix covers one whole
// ADTS frame whose own frame_length agrees; the duration is one AU per frame.
// An error leaves dst as it was.
func FuzzAAC(f *testing.F) {
	fr := adtsFrames(f)
	asc := []byte{0x14, 0x08} // AAC-LC 16 kHz mono, the device's talk format
	f.Add(asc, fr[0])
	f.Add(asc, bytes.Join(fr[:3], nil))
	f.Add(asc, rfc3640(fr[0][7:]))
	f.Add(asc, rfc3640(fr[1][7:], fr[2][7:], fr[3][7:]))
	f.Add(asc, rfc3640(fr[1]))
	f.Add([]byte{0x11, 0x90}, rfc3640(fr[0][7:]))
	f.Add(asc, []byte{0x00, 0x10, 0xFF, 0xF8})
	f.Add(asc, []byte{0x00, 0x20, 0x00, 0x08, 0x00, 0x08, 0xFF, 0xF1})
	f.Add(asc, []byte{0xFF, 0xF1, 0x50, 0x80, 0x01})
	f.Fuzz(func(t *testing.T, asc, payload []byte) {
		framer, err := talk.NewAACFramer(asc)
		if err != nil {
			if !errors.Is(err, talk.ErrCodec) {
				t.Fatalf("NewAACFramer error %v does not match ErrCodec", err)
			}
			return
		}
		if h := framer.ADTSHeader(nil, 0); len(h) != 7 || h[0] != 0xFF || h[1] != 0xF1 {
			t.Fatalf("ADTS header template %x", h)
		}
		dst := []byte("keep")
		out, d, err := framer.Append(dst, payload)
		if !bytes.Equal(out[:min(4, len(out))], []byte("keep")) {
			t.Fatalf("dst prefix changed: %x", out)
		}
		if err != nil {
			if !errors.Is(err, talk.ErrFrame) {
				t.Fatalf("Append error %v does not match ErrFrame", err)
			}
			if len(out) != 4 || d != 0 {
				t.Fatalf("error %v but output %x, duration %v", err, out, d)
			}
			return
		}
		b := out[4:]
		frames := 0
		var bodies int
		for len(b) > 0 {
			if len(b) < 4 {
				t.Fatalf("%d trailing bytes, no length prefix", len(b))
			}
			n := int(binary.BigEndian.Uint32(b))
			b = b[4:]
			if n > len(b) {
				t.Fatalf("length prefix %d, %d bytes left", n, len(b))
			}
			frame := b[:n]
			b = b[n:]
			frames++
			if n < 7 || frame[0] != 0xFF || frame[1]&0xF0 != 0xF0 {
				t.Fatalf("frame %d (%d bytes) is not ADTS: %x", frames, n, frame[:min(n, 8)])
			}
			if fl := int(frame[3]&3)<<11 | int(frame[4])<<3 | int(frame[5])>>5; fl != n {
				t.Fatalf("frame %d: length prefix %d, ADTS frame_length %d", frames, n, fl)
			}
			bodies += n
		}
		if bodies > 7*frames+len(payload) {
			t.Fatalf("%d frame bytes from a %d-byte payload (%d frames)", bodies, len(payload), frames)
		}
		if want := time.Duration(frames) * (1024 * time.Second / time.Duration(sampleRate(asc))); d != want {
			t.Fatalf("duration %v for %d frames, want %v", d, frames, want)
		}
		if payload[0] == 0xFF && payload[1]&0xF0 == 0xF0 {
			// back-to-back ADTS: passed through whole
			var whole []byte
			for r := out[4:]; len(r) > 0; {
				n := int(binary.BigEndian.Uint32(r))
				whole = append(whole, r[4:4+n]...)
				r = r[4+n:]
			}
			if !bytes.Equal(whole, payload) {
				t.Fatalf("ADTS payload not passed through:\n got %x\nwant %x", whole, payload)
			}
		}
	})
}

func sampleRate(asc []byte) uint32 {
	rates := []uint32{96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350}
	return rates[(asc[0]&0x07)<<1|asc[1]>>7]
}
