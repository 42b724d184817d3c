package talk

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math/rand"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/AlexxIT/go2rtc/pkg/aac"
	"github.com/AlexxIT/go2rtc/pkg/core"
)

// rtpAAC builds an RFC 3640 AAC-hbr payload (16-bit AU-headers) carrying aus.
func rtpAAC(aus ...[]byte) []byte {
	p := binary.BigEndian.AppendUint16(nil, uint16(16*len(aus)))
	for _, au := range aus {
		p = binary.BigEndian.AppendUint16(p, uint16(len(au))<<3)
	}
	for _, au := range aus {
		p = append(p, au...)
	}
	return p
}

// splitLengthPrefixed parses the device framing: 4-byte big-endian length, frame.
func splitLengthPrefixed(t *testing.T, b []byte) [][]byte {
	t.Helper()
	var frames [][]byte
	for len(b) > 0 {
		if len(b) < 4 {
			t.Fatalf("%d trailing bytes, no length prefix", len(b))
		}
		n := int(binary.BigEndian.Uint32(b))
		b = b[4:]
		if n > len(b) {
			t.Fatalf("length prefix %d, %d bytes left", n, len(b))
		}
		frames = append(frames, b[:n])
		b = b[n:]
	}
	return frames
}

// splitADTS splits back-to-back ADTS frames by their frame_length.
func splitADTS(t *testing.T, b []byte) [][]byte {
	t.Helper()
	var frames [][]byte
	for len(b) > 0 {
		if !aac.IsADTS(b) {
			t.Fatalf("no ADTS sync at %x", b[:min(len(b), 8)])
		}
		n := int(aac.ReadADTSSize(b))
		frames = append(frames, b[:n])
		b = b[n:]
	}
	return frames
}

func randomAU(r *rand.Rand, n int) []byte {
	au := make([]byte, n)
	r.Read(au)
	au[0] = 0x21 // a raw AAC-LC element start, never the 0xFFF sync
	return au
}

func TestG711Framer(t *testing.T) {
	f := &G711Framer{Name: core.CodecPCMA}
	p := packet(3)
	out, d, err := f.Append([]byte{9}, p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, append([]byte{9}, p...)) {
		t.Error("G.711 bytes changed")
	}
	if d != 20*time.Millisecond {
		t.Errorf("duration of 160 bytes = %s, want 20ms", d)
	}
	if f.Codec() != "PCMA/8000" {
		t.Errorf("Codec() = %q", f.Codec())
	}
}

func TestAACFramerRoundTrip(t *testing.T) {
	f, err := NewAACFramerLC(16000, 1)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewSource(1))
	aus := [][]byte{randomAU(r, 1), randomAU(r, 187), randomAU(r, 400), randomAU(r, 8184-7)}
	var out []byte
	var total time.Duration
	// one AU per packet, then several per packet
	for _, payload := range [][]byte{rtpAAC(aus[0]), rtpAAC(aus[1], aus[2]), rtpAAC(aus[3])} {
		var d time.Duration
		out, d, err = f.Append(out, payload)
		if err != nil {
			t.Fatal(err)
		}
		total += d
	}
	if total != 4*64*time.Millisecond {
		t.Errorf("duration = %s, want 4 × 64ms", total)
	}
	frames := splitLengthPrefixed(t, out)
	if len(frames) != len(aus) {
		t.Fatalf("%d frames, want %d", len(frames), len(aus))
	}
	for i, fr := range frames {
		if !aac.IsADTS(fr) || aac.HasCRC(fr) {
			t.Fatalf("frame %d: not ADTS without CRC: % x", i, fr[:7])
		}
		if got := int(aac.ReadADTSSize(fr)); got != len(fr) {
			t.Errorf("frame %d: ADTS frame_length %d, length prefix %d", i, got, len(fr))
		}
		c := aac.ADTSToCodec(fr)
		if c.ClockRate != 16000 || c.Channels != 1 || !bytes.Contains([]byte(c.FmtpLine), []byte("config=1408")) {
			t.Errorf("frame %d: ADTS header decodes to %+v, want AAC-LC 16000 mono (config 1408)", i, c)
		}
		if fr[6]&3 != 0 {
			t.Errorf("frame %d: %d raw data blocks, want 1", i, fr[6]&3+1)
		}
		if !bytes.Equal(fr[7:], aus[i]) {
			t.Errorf("frame %d: AU bytes changed", i)
		}
	}
	if f.Codec() != "AAC/16000/1" {
		t.Errorf("Codec() = %q", f.Codec())
	}
}

// TestAACFramerMatchesFFmpeg: ffmpeg's ADTS stream (testdata/tone16k.aac, a
// 440 Hz tone, AAC-LC 16 kHz mono), split into RTP AUs, comes out of the
// framer byte for byte as ffmpeg wrote it.
func TestAACFramerMatchesFFmpeg(t *testing.T) {
	adts, err := os.ReadFile("testdata/tone16k.aac")
	if err != nil {
		t.Fatal(err)
	}
	src := splitADTS(t, adts)
	if len(src) < 10 {
		t.Fatalf("only %d frames in the fixture", len(src))
	}
	f, err := NewFramer(&core.Codec{Name: core.CodecAAC, ClockRate: 16000, Channels: 1,
		FmtpLine: "streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1408"})
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	for _, fr := range src {
		if out, _, err = f.Append(out, rtpAAC(fr[7:])); err != nil {
			t.Fatal(err)
		}
	}
	got := bytes.Join(splitLengthPrefixed(t, out), nil)
	if !bytes.Equal(got, adts) {
		t.Error("ADTS rebuilt from RTP differs from ffmpeg's")
	}

	// Already-ADTS input (several frames in one payload) passes as is.
	out, d, err := f.Append(out[:0], adts)
	if err != nil {
		t.Fatal(err)
	}
	if d != time.Duration(len(src))*64*time.Millisecond {
		t.Errorf("duration %s for %d frames", d, len(src))
	}
	frames := splitLengthPrefixed(t, out)
	if !slices.EqualFunc(frames, src, bytes.Equal) {
		t.Error("ADTS input not passed through frame by frame")
	}

	// An AU that is itself an ADTS frame is not given a second header.
	out, _, err = f.Append(out[:0], rtpAAC(src[0]))
	if err != nil {
		t.Fatal(err)
	}
	if frames := splitLengthPrefixed(t, out); len(frames) != 1 || !bytes.Equal(frames[0], src[0]) {
		t.Error("ADTS inside an AU got re-wrapped")
	}
}

func TestAACFramerMalformed(t *testing.T) {
	f, _ := NewAACFramerLC(16000, 1)
	au := bytes.Repeat([]byte{0x21}, 50)
	good := rtpAAC(au)
	cases := map[string][]byte{
		"empty":             {},
		"one byte":          {0},
		"zero header bits":  {0, 0, 1, 2},
		"13-bit headers":    {0, 13, 0, 0, 1},
		"headers past end":  {0, 64, 0, 8},
		"AU past end":       good[:len(good)-1],
		"second AU missing": append(rtpAAC(au, au)[:4+2+50], 0),
		"ADTS truncated":    {0xFF, 0xF1, 0x60, 0x40},
		"ADTS bad length":   {0xFF, 0xF1, 0x60, 0x40, 0xFF, 0xFF, 0xFC, 1},
	}
	for name, p := range cases {
		dst := []byte{1, 2, 3}
		out, d, err := f.Append(dst, p)
		if !errors.Is(err, ErrFrame) {
			t.Errorf("%s: err = %v, want ErrFrame", name, err)
		}
		if !bytes.Equal(out, dst) || d != 0 {
			t.Errorf("%s: output changed on error: %x, %s", name, out, d)
		}
	}
}

func TestNewFramer(t *testing.T) {
	for _, tc := range []struct {
		codec *core.Codec
		want  string // Codec(), or "" for ErrCodec
	}{
		{&core.Codec{Name: core.CodecPCMU, ClockRate: 8000}, "PCMU/8000"},
		{&core.Codec{Name: core.CodecPCMA, ClockRate: 8000, Channels: 1}, "PCMA/8000"},
		{&core.Codec{Name: core.CodecAAC, ClockRate: 16000, FmtpLine: "mode=AAC-hbr;config=1408"}, "AAC/16000/1"},
		{&core.Codec{Name: core.CodecAAC, ClockRate: 16000, Channels: 1}, "AAC/16000/1"},
		{&core.Codec{Name: core.CodecAAC, ClockRate: 8000, Channels: 1}, "AAC/8000/1"},
		{&core.Codec{Name: core.CodecAAC, ClockRate: 16000, FmtpLine: "config=zz"}, ""},
		{&core.Codec{Name: core.CodecAAC, ClockRate: 12345}, ""},
		{&core.Codec{Name: core.CodecAAC, FmtpLine: "config=2B08"}, ""}, // object type 5 (SBR)
		{&core.Codec{Name: core.CodecAAC, ClockRate: 32000, Channels: 1}, "AAC/32000/1"},
		{&core.Codec{Name: core.CodecAAC, FmtpLine: "config=1688"}, ""}, // reserved rate index 13
		// explicit 24-bit rate (index 15): ADTS cannot carry it
		{&core.Codec{Name: core.CodecAAC, FmtpLine: "config=" + hex.EncodeToString(aac.EncodeConfig(aac.TypeAACLC, 32000+1, 1, false))}, ""},
		{&core.Codec{Name: core.CodecPCMU, ClockRate: 16000}, ""},
		{&core.Codec{Name: core.CodecOpus, ClockRate: 48000, Channels: 2}, ""},
		{nil, ""},
	} {
		f, err := NewFramer(tc.codec)
		if tc.want == "" {
			if !errors.Is(err, ErrCodec) {
				t.Errorf("%v: err = %v, want ErrCodec", tc.codec, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", tc.codec, err)
			continue
		}
		if f.Codec() != tc.want {
			t.Errorf("%v: Codec() = %q, want %q", tc.codec, f.Codec(), tc.want)
		}
	}
}

// TestSessionAACEndToEnd: RTP AAC in, length-prefixed ADTS at the device.
func TestSessionAACEndToEnd(t *testing.T) {
	adts, err := os.ReadFile("testdata/tone16k.aac")
	if err != nil {
		t.Fatal(err)
	}
	src := splitADTS(t, adts)
	fr, _ := NewAACFramerLC(16000, 1)
	f := newFake()
	cfg := testConfig(f, nil)
	cfg.Framer = fr
	s := newSession(t, cfg)
	for _, a := range src {
		s.Write(rtpAAC(a[7:]))
	}
	want := len(adts) + 4*len(src)
	waitFor(t, "AAC at the device", func() bool { return len(f.received()) >= want })
	if got := bytes.Join(splitLengthPrefixed(t, f.received()), nil); !bytes.Equal(got, adts) {
		t.Error("device got other AAC than sent")
	}
}

func BenchmarkG711Append(b *testing.B) {
	f := &G711Framer{Name: core.CodecPCMU}
	p := packet(1)
	dst := make([]byte, 0, 2048)
	b.ReportAllocs()
	b.SetBytes(int64(len(p)))
	for i := 0; i < b.N; i++ {
		dst, _, _ = f.Append(dst[:0], p)
	}
}

func BenchmarkAACAppend(b *testing.B) {
	f, _ := NewAACFramerLC(16000, 1)
	p := rtpAAC(randomAU(rand.New(rand.NewSource(1)), 256))
	dst := make([]byte, 0, 2048)
	b.ReportAllocs()
	b.SetBytes(int64(len(p)))
	for i := 0; i < b.N; i++ {
		var err error
		if dst, _, err = f.Append(dst[:0], p); err != nil {
			b.Fatal(err)
		}
	}
}
