package ps

import (
	"encoding/binary"
	"fmt"
)

// MediaHeaderSize is the size of the media header the SDK sends before the
// program stream.
const MediaHeaderSize = 40

// mediaHeaderMagic is the first four bytes of the media header.
const mediaHeaderMagic = "IMKH"

// System formats of the media header.
const (
	SystemRaw     = 0 // no system layer
	SystemHik     = 1 // the vendor's old file format
	SystemMPEG2PS = 2 // MPEG-2 program stream: what this package reads
	SystemMPEG2TS = 3
	SystemRTP     = 4
)

// Video formats of the media header.
const (
	VideoNone   = 0x0000
	VideoHik264 = 0x0001
	VideoMPEG4  = 0x0003
	VideoMJPEG  = 0x0004
	VideoH265   = 0x0005
	VideoH264   = 0x0100
)

// Audio formats of the media header.
const (
	AudioNone  = 0x0000
	AudioADPCM = 0x1000
	AudioMPEG  = 0x2000
	AudioAAC   = 0x2001
	AudioPCM8  = 0x7000
	AudioPCM16 = 0x7001
	AudioG711U = 0x7110
	AudioG711A = 0x7111
	AudioG7221 = 0x7221
	AudioG7231 = 0x7231
	AudioG726U = 0x7260
	AudioG726A = 0x7261
	AudioG729  = 0x7290
	AudioAMRNB = 0x3000
)

// MediaHeader is the decoded 40-byte media header. All fields are little
// endian on the wire.
type MediaHeader struct {
	Version       uint16
	DeviceID      uint16
	SystemFormat  uint16 // SystemMPEG2PS for real-play
	VideoFormat   uint16 // VideoH264, VideoH265...
	AudioFormat   uint16 // AudioG711U, AudioG711A, AudioAAC...
	AudioChannels uint8
	AudioBits     uint8  // bits per sample
	AudioRate     uint32 // samples per second
	AudioBitrate  uint32 // bits per second
}

// ParseMediaHeader decodes a media header. b must hold at least
// MediaHeaderSize bytes and start with "IMKH".
func ParseMediaHeader(b []byte) (MediaHeader, error) {
	if len(b) < MediaHeaderSize {
		return MediaHeader{}, fmt.Errorf("ps: media header: %d bytes, want %d", len(b), MediaHeaderSize)
	}
	if string(b[:4]) != mediaHeaderMagic {
		return MediaHeader{}, fmt.Errorf("ps: media header: starts with %q, want %q", b[:4], mediaHeaderMagic)
	}
	le := binary.LittleEndian
	return MediaHeader{
		Version:       le.Uint16(b[4:]),
		DeviceID:      le.Uint16(b[6:]),
		SystemFormat:  le.Uint16(b[8:]),
		VideoFormat:   le.Uint16(b[10:]),
		AudioFormat:   le.Uint16(b[12:]),
		AudioChannels: b[14],
		AudioBits:     b[15],
		AudioRate:     le.Uint32(b[16:]),
		AudioBitrate:  le.Uint32(b[20:]),
	}, nil
}

// Video is the stream type the header's video format stands for (0 if none
// or not one this package reads).
func (h MediaHeader) Video() StreamType {
	switch h.VideoFormat {
	case VideoH264, VideoHik264:
		return StreamH264
	case VideoH265:
		return StreamH265
	}
	return 0
}

// Audio is the stream type the header's audio format stands for (0 if none
// or not one this package reads).
func (h MediaHeader) Audio() StreamType {
	switch h.AudioFormat {
	case AudioG711A:
		return StreamG711A
	case AudioG711U:
		return StreamG711U
	case AudioAAC:
		return StreamAAC
	}
	return 0
}
