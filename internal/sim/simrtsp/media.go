package simrtsp

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/AlexxIT/go2rtc/pkg/aac"
)

// MaxPayload is the largest RTP payload the packetizers produce (video is
// fragmented to fit; an AAC frame larger than this would be sent whole).
const MaxPayload = 1200

// Codec names as they appear in the SDP rtpmap.
const (
	CodecH264 = "H264"
	CodecH265 = "H265"
	CodecPCMU = "PCMU"
	CodecPCMA = "PCMA"
	CodecAAC  = "MPEG4-GENERIC"
)

// ErrBadMedia is wrapped by every media loading error.
var ErrBadMedia = errors.New("simrtsp: bad media")

// Video is an Annex B elementary stream split into access units, each already
// cut into RTP payloads (RFC 6184 / RFC 7798), so serving allocates nothing.
type Video struct {
	Codec     string   // CodecH264 or CodecH265
	ParamSets [][]byte // H.264: SPS, PPS; H.265: VPS, SPS, PPS (first seen, without start codes)
	frames    []videoFrame
}

type videoFrame struct {
	key     bool
	size    int      // bytes of the frame's NAL units without start codes (what Bitrate counts)
	packets [][]byte // RTP payloads; the last one carries the marker bit
}

// Frames is the number of access units (one loop of the media).
func (v *Video) Frames() int { return len(v.frames) }

// Audio is an audio elementary stream cut into RTP payloads of one frame each.
type Audio struct {
	Codec           string // CodecPCMU, CodecPCMA or CodecAAC
	ClockRate       int    // RTP clock: 8000 for G.711, the sample rate for AAC
	Channels        int
	Config          []byte // AAC AudioSpecificConfig (fmtp config=), nil for G.711
	SamplesPerFrame int    // RTP timestamp step per payload: 160 (20 ms G.711) or 1024 (AAC)
	frames          [][]byte
}

// Frames is the number of RTP payloads in one loop of the media.
func (a *Audio) Frames() int { return len(a.frames) }

// PayloadType is the static (0, 8) or dynamic (104, as Hikvision uses for AAC) RTP payload type.
func (a *Audio) PayloadType() uint8 {
	switch a.Codec {
	case CodecPCMU:
		return 0
	case CodecPCMA:
		return 8
	}
	return 104
}

// Media is the set of test files in testdata/media.
type Media struct {
	H264Main *Video // 640x360 25 fps
	H264Sub  *Video // 320x180 25 fps
	H265Main *Video // 640x360 25 fps
	PCMU     *Audio // 1 kHz tone, 8 kHz
	PCMA     *Audio // 1 kHz tone, 8 kHz
	AAC      *Audio // 1 kHz tone, 16 kHz mono AAC-LC
}

// File names inside the media directory.
const (
	FileH264Main = "h264_main.h264"
	FileH264Sub  = "h264_sub.h264"
	FileH265Main = "h265_main.h265"
	FilePCMU     = "tone_1khz_8k.ulaw"
	FilePCMA     = "tone_1khz_8k.alaw"
	FileAAC      = "tone_1khz_16k.aac"
)

// MediaDir finds the repository's testdata/media directory: next to this
// source file when the source is present (tests, go run), else by walking up
// from the working directory.
func MediaDir() (string, error) {
	var tried []string
	if _, file, _, ok := runtime.Caller(0); ok {
		dir := filepath.Join(filepath.Dir(file), "..", "..", "..", "testdata", "media")
		if _, err := os.Stat(filepath.Join(dir, FileH264Main)); err == nil {
			return filepath.Clean(dir), nil
		}
		tried = append(tried, dir)
	}
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			dir := filepath.Join(d, "testdata", "media")
			if _, err := os.Stat(filepath.Join(dir, FileH264Main)); err == nil {
				return dir, nil
			}
			if filepath.Dir(d) == d {
				break
			}
		}
		tried = append(tried, wd+" and its parents")
	}
	return "", fmt.Errorf("%w: testdata/media not found (tried %s)", ErrBadMedia, strings.Join(tried, ", "))
}

// LoadMedia reads and packetizes every file of the media directory.
func LoadMedia(dir string) (*Media, error) {
	m := &Media{}
	var err error
	load := func(name string, f func([]byte) error) {
		if err != nil {
			return
		}
		var b []byte
		if b, err = os.ReadFile(filepath.Join(dir, name)); err != nil {
			err = fmt.Errorf("%w: %w", ErrBadMedia, err)
			return
		}
		if e := f(b); e != nil {
			err = fmt.Errorf("%s: %w", name, e)
		}
	}
	load(FileH264Main, func(b []byte) (e error) { m.H264Main, e = NewVideo(CodecH264, b); return })
	load(FileH264Sub, func(b []byte) (e error) { m.H264Sub, e = NewVideo(CodecH264, b); return })
	load(FileH265Main, func(b []byte) (e error) { m.H265Main, e = NewVideo(CodecH265, b); return })
	load(FilePCMU, func(b []byte) (e error) { m.PCMU, e = NewAudio(CodecPCMU, b); return })
	load(FilePCMA, func(b []byte) (e error) { m.PCMA, e = NewAudio(CodecPCMA, b); return })
	load(FileAAC, func(b []byte) (e error) { m.AAC, e = NewAudio(CodecAAC, b); return })
	if err != nil {
		return nil, err
	}
	return m, nil
}

// splitAnnexB returns the NAL units of an Annex B byte stream (without start codes).
func splitAnnexB(b []byte) [][]byte {
	var nals [][]byte
	start := -1
	i := 0
	for i+3 <= len(b) {
		if b[i] == 0 && b[i+1] == 0 && b[i+2] == 1 {
			if start >= 0 {
				end := i
				for end > start && b[end-1] == 0 { // trailing zero of a 4-byte start code
					end--
				}
				if end > start {
					nals = append(nals, b[start:end])
				}
			}
			i += 3
			start = i
			continue
		}
		i++
	}
	if start >= 0 && start < len(b) {
		nals = append(nals, b[start:])
	}
	return nals
}

// NewVideo parses an Annex B stream (H.264 or H.265) into access units split on
// access unit delimiters. The first access unit must be a key frame so the
// media loops cleanly. AUD NAL units are not sent over RTP.
func NewVideo(codec string, annexB []byte) (*Video, error) {
	var nalType func(n []byte) byte
	var aud byte
	var isKey func(t byte) bool
	var psTypes []byte
	switch codec {
	case CodecH264:
		nalType = func(n []byte) byte { return n[0] & 0x1F }
		aud, psTypes = 9, []byte{7, 8}
		isKey = func(t byte) bool { return t == 5 }
	case CodecH265:
		nalType = func(n []byte) byte { return (n[0] >> 1) & 0x3F }
		aud, psTypes = 35, []byte{32, 33, 34}
		isKey = func(t byte) bool { return t >= 16 && t <= 21 }
	default:
		return nil, fmt.Errorf("%w: unknown video codec %q", ErrBadMedia, codec)
	}
	minLen := 1
	if codec == CodecH265 {
		minLen = 2
	}
	v := &Video{Codec: codec, ParamSets: make([][]byte, len(psTypes))}
	var cur *videoFrame
	for _, n := range splitAnnexB(annexB) {
		if len(n) < minLen {
			return nil, fmt.Errorf("%w: %s NAL unit of %d bytes", ErrBadMedia, codec, len(n))
		}
		t := nalType(n)
		if t == aud {
			v.frames = append(v.frames, videoFrame{})
			cur = &v.frames[len(v.frames)-1]
			continue
		}
		if cur == nil {
			return nil, fmt.Errorf("%w: %s stream does not start with an access unit delimiter", ErrBadMedia, codec)
		}
		for i, pt := range psTypes {
			if t == pt && v.ParamSets[i] == nil {
				v.ParamSets[i] = n
			}
		}
		if isKey(t) {
			cur.key = true
		}
		cur.size += len(n)
		if codec == CodecH264 {
			cur.packets = appendH264(cur.packets, n)
		} else {
			cur.packets = appendH265(cur.packets, n)
		}
	}
	if len(v.frames) == 0 {
		return nil, fmt.Errorf("%w: %s stream has no access unit delimiters", ErrBadMedia, codec)
	}
	for i, ps := range v.ParamSets {
		if ps == nil {
			return nil, fmt.Errorf("%w: %s stream lacks parameter set NAL type %d", ErrBadMedia, codec, psTypes[i])
		}
	}
	if !v.frames[0].key {
		return nil, fmt.Errorf("%w: %s stream does not start with a key frame", ErrBadMedia, codec)
	}
	for i := range v.frames {
		if len(v.frames[i].packets) == 0 {
			return nil, fmt.Errorf("%w: %s access unit %d is empty", ErrBadMedia, codec, i)
		}
	}
	return v, nil
}

// appendH264 packetizes one NAL unit: single NAL unit packet, or FU-A (RFC 6184 5.8).
func appendH264(pkts [][]byte, nal []byte) [][]byte {
	if len(nal) <= MaxPayload {
		return append(pkts, nal)
	}
	ind := nal[0]&0xE0 | 28
	typ := nal[0] & 0x1F
	rest := nal[1:]
	for first := true; len(rest) > 0; first = false {
		n := min(len(rest), MaxPayload-2)
		hdr := typ
		if first {
			hdr |= 0x80
		}
		if n == len(rest) {
			hdr |= 0x40
		}
		p := make([]byte, 0, 2+n)
		p = append(p, ind, hdr)
		pkts = append(pkts, append(p, rest[:n]...))
		rest = rest[n:]
	}
	return pkts
}

// appendH265 packetizes one NAL unit: single NAL unit packet, or FU (RFC 7798 4.4.3).
func appendH265(pkts [][]byte, nal []byte) [][]byte {
	if len(nal) <= MaxPayload {
		return append(pkts, nal)
	}
	h0 := nal[0]&0x81 | 49<<1
	h1 := nal[1]
	typ := (nal[0] >> 1) & 0x3F
	rest := nal[2:]
	for first := true; len(rest) > 0; first = false {
		n := min(len(rest), MaxPayload-3)
		hdr := typ
		if first {
			hdr |= 0x80
		}
		if n == len(rest) {
			hdr |= 0x40
		}
		p := make([]byte, 0, 3+n)
		p = append(p, h0, h1, hdr)
		pkts = append(pkts, append(p, rest[:n]...))
		rest = rest[n:]
	}
	return pkts
}

// Bitrate is the average video bitrate of one loop of the media in bits per
// second at fps frames per second, counting the NAL units sent (parameter sets,
// slices, filler; not the AUDs, which are not sent) as a byte stream without
// start codes or RTP headers.
func (v *Video) Bitrate(fps int) int {
	if len(v.frames) == 0 || fps <= 0 {
		return 0
	}
	var total int64
	for i := range v.frames {
		total += int64(v.frames[i].size)
	}
	return int(total * 8 * int64(fps) / int64(len(v.frames)))
}

// WithBitrate returns a copy of v padded to bitsPerSecond at fps the way a CBR
// encoder pads: every access unit gets one filler-data NAL unit appended
// (H.264 nal_unit_type 12, H.265 FD_NUT 38) whose payload is 0xFF bytes and the
// rbsp trailing byte 0x80, the deficit spread evenly over the frames, so the
// loop averages bitsPerSecond as Bitrate counts it. Decoders ignore filler
// data. The copy shares ParamSets and the original packets; everything is
// packetized here, so serving it allocates nothing. v is not modified; if v is
// already at or above the target (or an argument is not positive), v itself is
// returned.
func (v *Video) WithBitrate(bitsPerSecond, fps int) *Video {
	if bitsPerSecond <= 0 || fps <= 0 || len(v.frames) == 0 {
		return v
	}
	var have int64
	for i := range v.frames {
		have += int64(v.frames[i].size)
	}
	frames := int64(len(v.frames))
	// bytes per loop at the target: bits/s * (frames/fps) s / 8, rounded
	want := (int64(bitsPerSecond)*frames + 4*int64(fps)) / (8 * int64(fps))
	deficit := want - have
	if deficit <= 0 {
		return v
	}
	hdr := []byte{0x0C} // forbidden_zero_bit 0, nal_ref_idc 0, type 12
	pack := appendH264
	if v.Codec == CodecH265 {
		hdr = []byte{38 << 1, 0x01} // FD_NUT, nuh_layer_id 0, nuh_temporal_id_plus1 1
		pack = appendH265
	}
	minLen := int64(len(hdr) + 1) // header and the trailing byte, no 0xFF
	out := &Video{Codec: v.Codec, ParamSets: v.ParamSets, frames: make([]videoFrame, len(v.frames))}
	base, rem := deficit/frames, deficit%frames
	for i := range v.frames {
		n := base
		if int64(i) < rem {
			n++
		}
		n = max(n, minLen)
		filler := make([]byte, n)
		copy(filler, hdr)
		for j := len(hdr); j < len(filler)-1; j++ {
			filler[j] = 0xFF
		}
		filler[len(filler)-1] = 0x80
		f := v.frames[i]
		pkts := make([][]byte, len(f.packets), len(f.packets)+int(n)/(MaxPayload-3)+1)
		copy(pkts, f.packets)
		out.frames[i] = videoFrame{key: f.key, size: f.size + int(n), packets: pack(pkts, filler)}
	}
	return out
}

// NewAudio cuts raw G.711 (CodecPCMU/CodecPCMA, 8 kHz mono, into 160-byte
// 20 ms payloads) or AAC ADTS (CodecAAC, one RFC 3640 AAC-hbr payload per frame).
func NewAudio(codec string, data []byte) (*Audio, error) {
	switch codec {
	case CodecPCMU, CodecPCMA:
		a := &Audio{Codec: codec, ClockRate: 8000, Channels: 1, SamplesPerFrame: 160}
		for len(data) >= 160 {
			a.frames = append(a.frames, data[:160])
			data = data[160:]
		}
		if len(a.frames) == 0 {
			return nil, fmt.Errorf("%w: %s data shorter than one 20 ms frame", ErrBadMedia, codec)
		}
		return a, nil
	case CodecAAC:
		return newAAC(data)
	}
	return nil, fmt.Errorf("%w: unknown audio codec %q", ErrBadMedia, codec)
}

func newAAC(data []byte) (*Audio, error) {
	a := &Audio{Codec: CodecAAC, SamplesPerFrame: 1024}
	for off := 0; off < len(data); {
		h := data[off:]
		if len(h) < 7 || h[0] != 0xFF || h[1]&0xF6 != 0xF0 {
			return nil, fmt.Errorf("%w: no ADTS sync word at byte %d", ErrBadMedia, off)
		}
		hlen := 7
		if h[1]&1 == 0 { // CRC present
			hlen = 9
		}
		profile := h[2] >> 6 // object type - 1
		rateIdx := int(h[2]>>2) & 0x0F
		chans := int(h[2]&1)<<2 | int(h[3]>>6)
		flen := int(h[3]&3)<<11 | int(h[4])<<3 | int(h[5]>>5)
		// the AudioSpecificConfig this header stands for; pkg/aac names its rate
		config := []byte{(profile+1)<<3 | byte(rateIdx>>1), byte(rateIdx&1)<<7 | byte(chans)<<3}
		_, _, _, rate := aac.DecodeConfig(config)
		if rateIdx > 12 || rate == 0 || flen < hlen || flen > len(h) {
			return nil, fmt.Errorf("%w: bad ADTS header at byte %d", ErrBadMedia, off)
		}
		if h[6]&3 != 0 {
			return nil, fmt.Errorf("%w: ADTS frame at byte %d holds several raw blocks", ErrBadMedia, off)
		}
		if a.Config == nil {
			a.ClockRate, a.Channels, a.Config = int(rate), chans, config
		}
		raw := h[hlen:flen]
		// RFC 3640 3.2.1: AU-headers-length (16 bits) then one AU-header:
		// AU-size (13 bits, sizelength=13) and AU-Index (3 bits, indexlength=3).
		p := make([]byte, 4+len(raw))
		p[0], p[1] = 0, 16
		p[2] = byte(len(raw) >> 5)
		p[3] = byte(len(raw)<<3) & 0xF8
		copy(p[4:], raw)
		a.frames = append(a.frames, p)
		off += flen
	}
	if len(a.frames) == 0 {
		return nil, fmt.Errorf("%w: empty AAC stream", ErrBadMedia)
	}
	return a, nil
}

// fmtp returns the SDP a=fmtp parameters for the video track.
func (v *Video) fmtp() string {
	b64 := base64.StdEncoding.EncodeToString
	if v.Codec == CodecH264 {
		sps := v.ParamSets[0]
		pli := "42001F"
		if len(sps) >= 4 {
			pli = strings.ToUpper(hex.EncodeToString(sps[1:4]))
		}
		return "profile-level-id=" + pli + "; packetization-mode=1; sprop-parameter-sets=" +
			b64(v.ParamSets[0]) + "," + b64(v.ParamSets[1])
	}
	return "sprop-vps=" + b64(v.ParamSets[0]) + "; sprop-sps=" + b64(v.ParamSets[1]) +
		"; sprop-pps=" + b64(v.ParamSets[2])
}
