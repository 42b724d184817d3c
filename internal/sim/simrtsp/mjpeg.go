package simrtsp

import (
	"errors"
	"fmt"
)

// CodecJPEG is the RTP/JPEG video codec (RFC 2435, static payload type 26): the MJPEG sub stream of
// older cameras.
const CodecJPEG = "JPEG"

// payloadTypeJPEG is RTP/JPEG's static payload type.
const payloadTypeJPEG = 26

// NewMJPEG cuts baseline JPEG images into RTP/JPEG payloads (RFC 2435), one image per frame, every frame
// a key frame. The images must be YCbCr with 4:2:0 or 4:2:2 sampling, two 8-bit quantization tables
// (luma 0, chroma 1), the standard Huffman tables (as image/jpeg and most encoders write them), no
// restart interval, and a size in multiples of 8 up to 2040×2040. The tables travel in-band (Q=255) in
// the first packet of each frame.
func NewMJPEG(images [][]byte) (*Video, error) {
	v := &Video{Codec: CodecJPEG}
	for i, img := range images {
		f, err := jpegFrame(img)
		if err != nil {
			return nil, fmt.Errorf("%w: JPEG image %d: %v", ErrBadMedia, i, err)
		}
		v.frames = append(v.frames, f)
	}
	if len(v.frames) == 0 {
		return nil, fmt.Errorf("%w: no JPEG images", ErrBadMedia)
	}
	return v, nil
}

func jpegFrame(b []byte) (videoFrame, error) {
	if len(b) < 4 || b[0] != 0xFF || b[1] != 0xD8 {
		return videoFrame{}, errors.New("no SOI")
	}
	var (
		qt            [4][]byte
		width, height int
		typ           = -1
		scan          []byte
	)
	for i := 2; scan == nil; {
		if i+4 > len(b) || b[i] != 0xFF {
			return videoFrame{}, fmt.Errorf("no marker at byte %d", i)
		}
		m := b[i+1]
		n := int(b[i+2])<<8 | int(b[i+3])
		if n < 2 || i+2+n > len(b) {
			return videoFrame{}, fmt.Errorf("segment FF %02X runs past the end", m)
		}
		seg := b[i+4 : i+2+n]
		switch m {
		case 0xDB: // DQT: one or more tables
			for len(seg) > 0 {
				if seg[0]>>4 != 0 || len(seg) < 65 {
					return videoFrame{}, errors.New("quantization table not 8-bit")
				}
				qt[seg[0]&3] = seg[1:65]
				seg = seg[65:]
			}
		case 0xC0: // SOF0 baseline
			if len(seg) < 15 || seg[5] != 3 {
				return videoFrame{}, errors.New("not a 3-component baseline frame")
			}
			height, width = int(seg[1])<<8|int(seg[2]), int(seg[3])<<8|int(seg[4])
			y, cb, cr := seg[6:9], seg[9:12], seg[12:15]
			if y[2] != 0 || cb[2] != 1 || cr[2] != 1 || cb[1] != 0x11 || cr[1] != 0x11 {
				return videoFrame{}, errors.New("tables or chroma sampling not as RTP/JPEG expects")
			}
			switch y[1] {
			case 0x21:
				typ = 0 // 4:2:2
			case 0x22:
				typ = 1 // 4:2:0
			default:
				return videoFrame{}, fmt.Errorf("luma sampling %02X", y[1])
			}
		case 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF:
			return videoFrame{}, errors.New("not a baseline JPEG")
		case 0xDD: // DRI
			if len(seg) >= 2 && (seg[0] != 0 || seg[1] != 0) {
				return videoFrame{}, errors.New("restart markers are not supported")
			}
		case 0xDA: // SOS: entropy-coded data up to EOI
			scan = b[i+2+n:]
			if k := len(scan); k >= 2 && scan[k-2] == 0xFF && scan[k-1] == 0xD9 {
				scan = scan[:k-2]
			}
		}
		i += 2 + n
	}
	if typ < 0 || qt[0] == nil || qt[1] == nil {
		return videoFrame{}, errors.New("no frame header or quantization tables before the scan")
	}
	if width%8 != 0 || height%8 != 0 || width > 2040 || height > 2040 || width == 0 || height == 0 {
		return videoFrame{}, fmt.Errorf("size %dx%d (want multiples of 8 up to 2040)", width, height)
	}
	f := videoFrame{key: true, size: len(b)}
	for off := 0; off < len(scan) || off == 0; {
		// RFC 2435 3.1: type-specific, fragment offset (24 bits), type, Q, width/8, height/8
		p := []byte{0, byte(off >> 16), byte(off >> 8), byte(off), byte(typ), 255, byte(width / 8), byte(height / 8)}
		if off == 0 {
			// 3.1.8: quantization table header (MBZ, precision 0 = 8-bit, length) and the tables
			p = append(p, 0, 0, 0, 128)
			p = append(p, qt[0]...)
			p = append(p, qt[1]...)
		}
		n := min(MaxPayload-len(p), len(scan)-off)
		p = append(p, scan[off:off+n]...)
		f.packets = append(f.packets, p)
		off += n
		if n == 0 {
			break
		}
	}
	return f, nil
}
