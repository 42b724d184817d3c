package simrtsp

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func testMedia(t *testing.T) (string, *Media) {
	t.Helper()
	dir, err := MediaDir()
	if err != nil {
		t.Fatal(err)
	}
	m, err := LoadMedia(dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, m
}

// depacketize rebuilds the NAL units of one access unit from its RTP payloads
// (RFC 6184 single/FU-A, RFC 7798 single/FU), independently of the packetizer.
func depacketize(t *testing.T, codec string, pkts [][]byte) [][]byte {
	t.Helper()
	var nals [][]byte
	var fu []byte
	for i, p := range pkts {
		if len(p) > MaxPayload {
			t.Fatalf("packet %d: %d bytes > MaxPayload", i, len(p))
		}
		var isFU, start, end bool
		var hdr, body []byte
		if codec == CodecH264 {
			if p[0]&31 == 28 {
				isFU, start, end = true, p[1]&0x80 != 0, p[1]&0x40 != 0
				hdr, body = []byte{p[0]&0xE0 | p[1]&31}, p[2:]
			}
		} else if p[0]>>1&63 == 49 {
			isFU, start, end = true, p[2]&0x80 != 0, p[2]&0x40 != 0
			hdr, body = []byte{p[0]&0x81 | (p[2]&63)<<1, p[1]}, p[3:]
		}
		switch {
		case !isFU:
			if fu != nil {
				t.Fatalf("packet %d: single NAL inside an FU", i)
			}
			nals = append(nals, p)
		case start:
			if fu != nil {
				t.Fatalf("packet %d: FU start inside an FU", i)
			}
			fu = append(append([]byte{}, hdr...), body...)
		default:
			if fu == nil {
				t.Fatalf("packet %d: FU continuation without start", i)
			}
			fu = append(fu, body...)
		}
		if isFU && end {
			nals = append(nals, fu)
			fu = nil
		}
	}
	if fu != nil {
		t.Fatal("unterminated FU")
	}
	return nals
}

func TestVideoPacketization(t *testing.T) {
	dir, m := testMedia(t)
	for _, tc := range []struct {
		file  string
		v     *Video
		isAUD func(n []byte) bool
	}{
		{FileH264Main, m.H264Main, func(n []byte) bool { return n[0]&31 == 9 }},
		{FileH264Sub, m.H264Sub, func(n []byte) bool { return n[0]&31 == 9 }},
		{FileH265Main, m.H265Main, func(n []byte) bool { return n[0]>>1&63 == 35 }},
	} {
		raw, err := os.ReadFile(filepath.Join(dir, tc.file))
		if err != nil {
			t.Fatal(err)
		}
		var want [][]byte
		auds := 0
		for _, n := range splitAnnexB(raw) {
			if tc.isAUD(n) {
				auds++
			} else {
				want = append(want, n)
			}
		}
		if tc.v.Frames() != 100 || auds != 100 {
			t.Errorf("%s: %d frames, %d AUDs, want 100 (4 s at 25 fps)", tc.file, tc.v.Frames(), auds)
		}
		var got [][]byte
		keys := 0
		fus := 0
		for i, f := range tc.v.frames {
			if f.key {
				keys++
				if i%25 != 0 {
					t.Errorf("%s: key frame at %d, want GOP 25", tc.file, i)
				}
			}
			for _, p := range f.packets {
				if len(p) == MaxPayload || (tc.v.Codec == CodecH264 && p[0]&31 == 28) || (tc.v.Codec == CodecH265 && p[0]>>1&63 == 49) {
					fus++
				}
			}
			got = append(got, depacketize(t, tc.v.Codec, f.packets)...)
		}
		if keys != 4 {
			t.Errorf("%s: %d key frames, want 4", tc.file, keys)
		}
		if fus == 0 {
			t.Errorf("%s: no fragmented packets: the FU path is untested", tc.file)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d NAL units after depacketizing, want %d", tc.file, len(got), len(want))
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("%s: NAL %d differs after depacketizing (%d vs %d bytes)", tc.file, i, len(got[i]), len(want[i]))
			}
		}
	}
	if got := m.H264Main.fmtp(); !bytes.Contains([]byte(got), []byte("profile-level-id=4D")) {
		t.Errorf("H.264 Main fmtp %q: want profile-level-id 4Dxxxx", got)
	}
}

func TestAudioPacketization(t *testing.T) {
	dir, m := testMedia(t)
	for _, a := range []*Audio{m.PCMU, m.PCMA} {
		if a.Frames() != 200 || a.ClockRate != 8000 || a.SamplesPerFrame != 160 {
			t.Errorf("%s: %d frames at %d Hz, want 200 x 160 samples at 8000", a.Codec, a.Frames(), a.ClockRate)
		}
	}
	raw, err := os.ReadFile(filepath.Join(dir, FileAAC))
	if err != nil {
		t.Fatal(err)
	}
	a := m.AAC
	if a.ClockRate != 16000 || a.Channels != 1 || !bytes.Equal(a.Config, []byte{0x14, 0x08}) {
		t.Errorf("AAC: %d Hz %d ch config % x, want 16000 1 14 08", a.ClockRate, a.Channels, a.Config)
	}
	// Rebuild the ADTS payloads from the RFC 3640 AU headers and compare.
	var rebuilt int
	for i, p := range a.frames {
		if p[0] != 0 || p[1] != 16 {
			t.Fatalf("frame %d: AU-headers-length %d bits, want 16", i, int(p[0])<<8|int(p[1]))
		}
		size := int(p[2])<<5 | int(p[3])>>3
		if p[3]&7 != 0 || size != len(p)-4 {
			t.Fatalf("frame %d: AU-size %d index %d, payload %d", i, size, p[3]&7, len(p)-4)
		}
		rebuilt += 7 + size
		if !bytes.Contains(raw, p[4:]) {
			t.Fatalf("frame %d not found in the ADTS file", i)
		}
	}
	if rebuilt != len(raw) {
		t.Errorf("frames + 7-byte ADTS headers = %d bytes, file has %d", rebuilt, len(raw))
	}
}

func TestBadMedia(t *testing.T) {
	for name, f := range map[string]func() error{
		"no AUD": func() error { _, err := NewVideo(CodecH264, []byte{0, 0, 0, 1, 0x67, 1, 2, 3}); return err },
		"empty":  func() error { _, err := NewVideo(CodecH265, nil); return err },
		"no key": func() error {
			_, err := NewVideo(CodecH264, []byte{0, 0, 1, 9, 0xF0, 0, 0, 1, 0x67, 1, 0, 0, 1, 0x68, 1, 0, 0, 1, 0x41, 1})
			return err
		},
		"codec":       func() error { _, err := NewVideo("VP8", []byte{0, 0, 1, 9}); return err },
		"short G.711": func() error { _, err := NewAudio(CodecPCMU, make([]byte, 100)); return err },
		"not ADTS":    func() error { _, err := NewAudio(CodecAAC, make([]byte, 100)); return err },
		"dir":         func() error { _, err := LoadMedia(t.TempDir()); return err },
	} {
		if err := f(); !errors.Is(err, ErrBadMedia) {
			t.Errorf("%s: %v, want ErrBadMedia", name, err)
		}
	}
}

func TestParseAuthParams(t *testing.T) {
	p, ok := parseAuthParams(`Digest username="ad\"min", realm="IP Camera(K2195)", nonce="abc", uri="rtsp://h/a?x=1,y=2", response="f00", qop=auth, nc=00000001`)
	if !ok || p["username"] != `ad"min` || p["realm"] != "IP Camera(K2195)" || p["uri"] != "rtsp://h/a?x=1,y=2" ||
		p["qop"] != "auth" || p["nc"] != "00000001" || p["response"] != "f00" {
		t.Errorf("parsed %v", p)
	}
	if _, ok := parseAuthParams("Basic YWRtaW46eA=="); ok {
		t.Error("Basic parsed as digest")
	}
}
