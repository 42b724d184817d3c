package talk

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/AlexxIT/go2rtc/pkg/aac"
	"github.com/AlexxIT/go2rtc/pkg/core"
)

// Framer turns the payload of one RTP packet from go2rtc into the bytes the
// device expects on the audioData connection.
//
// Append must not keep payload or dst. A Framer is used by one goroutine at a
// time (Session serialises its Writes).
type Framer interface {
	// Append appends the device bytes for one RTP payload to dst and returns
	// the extended slice and the duration of audio it carries.
	Append(dst, payload []byte) ([]byte, time.Duration, error)
	// Codec names the device codec, for logs ("PCMU/8000", "AAC/16000/1").
	Codec() string
}

// Framing errors. The packet is dropped and counted; the session goes on.
var (
	// ErrFrame: an RTP payload the framer cannot read (truncated AU headers,
	// an AU longer than the packet, a broken ADTS header).
	ErrFrame = errors.New("talk: malformed audio payload")
	// ErrCodec: a codec this package cannot send to a device.
	ErrCodec = errors.New("talk: unsupported talk codec")
)

// NewFramer picks the framer for the codec go2rtc hands to AddTrack:
// PCMU/8000, PCMA/8000 (raw G.711) or MPEG4-GENERIC (AAC; the AudioSpecificConfig
// comes from the fmtp config=, else from ClockRate/Channels as AAC-LC).
func NewFramer(codec *core.Codec) (Framer, error) {
	if codec == nil {
		return nil, fmt.Errorf("%w: no codec", ErrCodec)
	}
	switch codec.Name {
	case core.CodecPCMU, core.CodecPCMA:
		if codec.ClockRate != 0 && codec.ClockRate != 8000 {
			return nil, fmt.Errorf("%w: %s/%d (G.711 talk is 8000 Hz)", ErrCodec, codec.Name, codec.ClockRate)
		}
		return &G711Framer{Name: codec.Name}, nil
	case core.CodecAAC:
		if cfg := fmtpValue(codec.FmtpLine, "config"); cfg != "" {
			b, err := hex.DecodeString(cfg)
			if err != nil {
				return nil, fmt.Errorf("%w: AAC fmtp config=%q: %v", ErrCodec, cfg, err)
			}
			return NewAACFramer(b)
		}
		ch := codec.Channels
		if ch == 0 {
			ch = 1
		}
		return NewAACFramerLC(codec.ClockRate, ch)
	}
	return nil, fmt.Errorf("%w: %s/%d", ErrCodec, codec.Name, codec.ClockRate)
}

func fmtpValue(fmtp, key string) string {
	for _, kv := range strings.Split(fmtp, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if ok && strings.EqualFold(k, key) {
			return v
		}
	}
	return ""
}

// G711Framer passes 8 kHz G.711 (µ-law or A-law) bytes through unchanged:
// one byte is one sample, 125 µs of audio.
type G711Framer struct {
	Name string // core.CodecPCMU or core.CodecPCMA
}

func (f *G711Framer) Append(dst, payload []byte) ([]byte, time.Duration, error) {
	return append(dst, payload...), time.Duration(len(payload)) * (time.Second / 8000), nil
}

func (f *G711Framer) Codec() string { return f.Name + "/8000" }

// ADTS and RFC 3640 constants.
const (
	adtsHeaderLen  = 7
	adtsMaxFrame   = 1<<13 - 1 // 13-bit frame_length
	aacSamplesAU   = 1024      // samples per AAC-LC access unit
	lengthPrefixSz = 4
)

// AACFramer converts RTP mpeg4-generic payloads (RFC 3640, AAC-hbr:
// sizelength=13, indexlength=3, so 16-bit AU-headers) into ADTS frames, each
// prefixed by its length as a 4-byte big-endian integer (the length counts
// the whole ADTS frame, header included). A payload that already
// starts with the ADTS sync word 0xFFF is taken as back-to-back ADTS frames and
// each is prefixed as is.
type AACFramer struct {
	header     [adtsHeaderLen]byte // template; frame_length filled per frame
	sampleRate uint32
	channels   uint8
	auDur      time.Duration
}

// NewAACFramer builds the framer from an AudioSpecificConfig (RTP fmtp
// config=, e.g. 0x14 0x08 for AAC-LC 16 kHz mono).
func NewAACFramer(asc []byte) (*AACFramer, error) {
	if len(asc) < 2 {
		return nil, fmt.Errorf("%w: AAC config %x too short", ErrCodec, asc)
	}
	objType, freqIdx, channels, sampleRate := aac.DecodeConfig(asc)
	if objType == 0 || objType > 4 {
		// ADTS carries profile in 2 bits: object types 1..4 only.
		return nil, fmt.Errorf("%w: AAC object type %d cannot be sent as ADTS", ErrCodec, objType)
	}
	if sampleRate == 0 || freqIdx > 12 {
		// ADTS has no room for an explicit rate (index 15), and 13 and 14
		// are reserved.
		return nil, fmt.Errorf("%w: AAC sampling frequency index %d", ErrCodec, freqIdx)
	}
	if channels == 0 || channels > 7 {
		return nil, fmt.Errorf("%w: AAC channel configuration %d", ErrCodec, channels)
	}
	f := &AACFramer{sampleRate: sampleRate, channels: channels}
	f.auDur = time.Duration(aacSamplesAU) * time.Second / time.Duration(f.sampleRate)
	h := &f.header
	h[0] = 0xFF
	h[1] = 0xF1 // sync low nibble, MPEG-4, layer 0, protection_absent=1
	h[2] = (objType-1)<<6 | freqIdx<<2 | channels>>2
	h[3] = (channels & 3) << 6
	h[5] = 0x1F // buffer fullness 0x7FF (VBR)
	h[6] = 0xFC // buffer fullness low bits, one raw data block
	return f, nil
}

// NewAACFramerLC builds an AAC-LC framer for a sample rate and channel count
// (the device's talk format: 16000 Hz, 1 channel).
func NewAACFramerLC(sampleRate uint32, channels uint8) (*AACFramer, error) {
	asc := aac.EncodeConfig(aac.TypeAACLC, sampleRate, channels, false)
	if _, idx, _, _ := aac.DecodeConfig(asc); idx > 12 {
		// not one of the rates ADTS can name
		return nil, fmt.Errorf("%w: AAC sample rate %d", ErrCodec, sampleRate)
	}
	return NewAACFramer(asc)
}

func (f *AACFramer) Codec() string { return fmt.Sprintf("AAC/%d/%d", f.sampleRate, f.channels) }

// ADTSHeader writes the 7-byte ADTS header for a raw AU of auLen bytes.
func (f *AACFramer) ADTSHeader(dst []byte, auLen int) []byte {
	n := auLen + adtsHeaderLen
	h := f.header
	h[3] |= byte(n >> 11)
	h[4] = byte(n >> 3)
	h[5] |= byte(n << 5)
	return append(dst, h[:]...)
}

func isADTS(b []byte) bool { return len(b) >= 2 && b[0] == 0xFF && b[1]&0xF0 == 0xF0 }

// adtsFrameLen is the frame_length of the ADTS header at b; -1 when b is
// shorter than a header.
func adtsFrameLen(b []byte) int {
	if len(b) < adtsHeaderLen {
		return -1
	}
	return int(b[3]&0x03)<<11 | int(b[4])<<3 | int(b[5])>>5
}

func (f *AACFramer) Append(dst, payload []byte) ([]byte, time.Duration, error) {
	start := len(dst)
	if isADTS(payload) {
		var d time.Duration
		for len(payload) > 0 {
			if !isADTS(payload) || len(payload) < adtsHeaderLen {
				return dst[:start], 0, fmt.Errorf("%w: ADTS: lost sync", ErrFrame)
			}
			n := int(payload[3]&0x03)<<11 | int(payload[4])<<3 | int(payload[5])>>5
			if n < adtsHeaderLen || n > len(payload) {
				return dst[:start], 0, fmt.Errorf("%w: ADTS frame_length %d, %d bytes left", ErrFrame, n, len(payload))
			}
			dst = binary.BigEndian.AppendUint32(dst, uint32(n))
			dst = append(dst, payload[:n]...)
			payload = payload[n:]
			d += f.auDur
		}
		return dst, d, nil
	}

	if len(payload) < 2 {
		return dst, 0, fmt.Errorf("%w: AAC payload of %d bytes", ErrFrame, len(payload))
	}
	bits := int(binary.BigEndian.Uint16(payload))
	if bits == 0 || bits%16 != 0 {
		return dst, 0, fmt.Errorf("%w: AU-headers-length %d bits (want 16 per AU: sizelength=13, indexlength=3)", ErrFrame, bits)
	}
	hdrEnd := 2 + bits/8
	if hdrEnd > len(payload) {
		return dst, 0, fmt.Errorf("%w: AU headers (%d bytes) beyond payload (%d bytes)", ErrFrame, bits/8, len(payload))
	}
	headers := payload[2:hdrEnd]
	units := payload[hdrEnd:]
	var d time.Duration
	for len(headers) >= 2 {
		size := int(binary.BigEndian.Uint16(headers) >> 3)
		headers = headers[2:]
		if size > len(units) {
			return dst[:start], 0, fmt.Errorf("%w: AU of %d bytes, %d left (fragmented AUs are not supported)", ErrFrame, size, len(units))
		}
		unit := units[:size]
		units = units[size:]
		if isADTS(unit) {
			// Some senders put whole ADTS frames in AUs: pass them as they are
			// when the frame's own frame_length agrees with the AU size.
			if n := adtsFrameLen(unit); n != len(unit) {
				return dst[:start], 0, fmt.Errorf("%w: AU of %d bytes starts with an ADTS header of frame_length %d", ErrFrame, len(unit), n)
			}
			dst = binary.BigEndian.AppendUint32(dst, uint32(len(unit)))
			dst = append(dst, unit...)
		} else {
			if size+adtsHeaderLen > adtsMaxFrame {
				return dst[:start], 0, fmt.Errorf("%w: AU of %d bytes too large for ADTS", ErrFrame, size)
			}
			dst = binary.BigEndian.AppendUint32(dst, uint32(size+adtsHeaderLen))
			dst = f.ADTSHeader(dst, size)
			dst = append(dst, unit...)
		}
		d += f.auDur
	}
	return dst, d, nil
}
