package hcfake

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
)

// A small MPEG-2 program stream writer for the fake's media, shaped like
// the devices' real-play stream: every video frame in its own pack (pack
// header, then at key frames a system header and a program stream map),
// PES 0xE0 carrying the frame's PTS/DTS in its first packet and split at
// 65 000 bytes, audio frames in packs of their own as PES 0xC0 with a PTS,
// interleaved in PTS order with the SCR 40 ms ahead of the PTS. It is
// written from ISO/IEC 13818-1, independently of the project's demuxer.

// AudioCodec selects the audio of a PS file.
type AudioCodec int

const (
	NoAudio AudioCodec = iota
	G711U              // raw µ-law, 8 kHz mono, 160-byte (20 ms) frames
	G711A              // raw A-law, 8 kHz mono, 160-byte (20 ms) frames
	AAC                // ADTS frames, 1024 samples each
)

// PSOptions name the media of a PS file.
type PSOptions struct {
	Video string // Annex B H.264 or H.265 file, an access unit delimiter before each frame
	H265  bool
	FPS   int // default 25

	Audio      string // optional audio file in AudioCodec's format
	AudioCodec AudioCodec
}

// Stream types in the program stream map.
const (
	stH264  = 0x1B
	stH265  = 0x24
	stAAC   = 0x0F
	stG711A = 0x90
	stG711U = 0x91
)

// WritePS writes o's media as a program stream file at dst. The video is
// cut into frames at its access unit delimiters.
func WritePS(dst string, o PSOptions) error {
	if o.FPS <= 0 {
		o.FPS = 25
	}
	video, err := os.ReadFile(o.Video)
	if err != nil {
		return fmt.Errorf("hcfake: PS video: %w", err)
	}
	frames := splitAUs(video, o.H265)
	if len(frames) == 0 {
		return fmt.Errorf("hcfake: PS video %s: no access unit delimiters", o.Video)
	}
	type unit struct {
		pts   int64
		video bool
		key   bool
		data  []byte
	}
	var units []unit
	const start = 90000 // PTS of the first frame: 1 s
	for i, f := range frames {
		units = append(units, unit{pts: start + int64(i)*90000/int64(o.FPS), video: true, key: isKey(f, o.H265), data: f})
	}
	var audioType byte
	if o.Audio != "" {
		audio, err := os.ReadFile(o.Audio)
		if err != nil {
			return fmt.Errorf("hcfake: PS audio: %w", err)
		}
		var aframes [][]byte
		var dur []int64
		switch o.AudioCodec {
		case G711U, G711A:
			audioType = stG711U
			if o.AudioCodec == G711A {
				audioType = stG711A
			}
			for off := 0; off < len(audio); off += 160 {
				f := audio[off:min(off+160, len(audio))]
				aframes = append(aframes, f)
				dur = append(dur, int64(len(f))*90000/8000)
			}
		case AAC:
			audioType = stAAC
			for off := 0; off+7 <= len(audio); {
				if audio[off] != 0xFF || audio[off+1]&0xF0 != 0xF0 {
					return fmt.Errorf("hcfake: PS audio %s: no ADTS sync at byte %d", o.Audio, off)
				}
				n := int(audio[off+3]&0x03)<<11 | int(audio[off+4])<<3 | int(audio[off+5])>>5
				rates := []int64{96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350}
				ri := int(audio[off+2]>>2) & 0x0F
				if n < 7 || off+n > len(audio) || ri >= len(rates) {
					return fmt.Errorf("hcfake: PS audio %s: bad ADTS frame at byte %d", o.Audio, off)
				}
				aframes = append(aframes, audio[off:off+n])
				dur = append(dur, 1024*90000/rates[ri])
				off += n
			}
		default:
			return errors.New("hcfake: PS audio given without its codec")
		}
		pts := int64(start)
		for i, f := range aframes {
			units = append(units, unit{pts: pts, data: f})
			pts += dur[i]
		}
	}
	// Interleave in PTS order (stable: video first at equal PTS).
	sorted := make([]unit, 0, len(units))
	vi, ai := 0, len(frames)
	for vi < len(frames) || ai < len(units) {
		if ai >= len(units) || (vi < len(frames) && units[vi].pts <= units[ai].pts) {
			sorted = append(sorted, units[vi])
			vi++
		} else {
			sorted = append(sorted, units[ai])
			ai++
		}
	}
	videoType := byte(stH264)
	if o.H265 {
		videoType = stH265
	}
	var out bytes.Buffer
	for _, u := range sorted {
		writePack(&out, u.pts-3600)
		if u.video {
			if u.key {
				writeSystemHeader(&out, audioType != 0)
				writePSM(&out, videoType, audioType)
			}
			for off, first := 0, true; off < len(u.data); first = false {
				n := min(len(u.data)-off, 65000)
				writePES(&out, 0xE0, u.data[off:off+n], first, u.pts, true)
				off += n
			}
		} else {
			writePES(&out, 0xC0, u.data, true, u.pts, false)
		}
	}
	return os.WriteFile(dst, out.Bytes(), 0o644)
}

// splitAUs cuts an Annex B stream before each access unit delimiter.
func splitAUs(b []byte, h265 bool) [][]byte {
	var starts []int
	for i := 0; i+4 < len(b); i++ {
		if b[i] != 0 || b[i+1] != 0 {
			continue
		}
		sc := 0
		if b[i+2] == 1 {
			sc = 3
		} else if b[i+2] == 0 && b[i+3] == 1 {
			sc = 4
		}
		if sc == 0 || i+sc >= len(b) {
			continue
		}
		h := b[i+sc]
		aud := h&0x1F == 9
		if h265 {
			aud = (h>>1)&0x3F == 35
		}
		if aud {
			starts = append(starts, i)
		}
		i += sc - 1
	}
	var out [][]byte
	for k, s := range starts {
		e := len(b)
		if k+1 < len(starts) {
			e = starts[k+1]
		}
		out = append(out, b[s:e])
	}
	return out
}

// isKey reports whether an access unit holds an IDR (H.264 type 5, H.265
// types 16-21).
func isKey(au []byte, h265 bool) bool {
	for i := 0; i+3 < len(au); i++ {
		if au[i] == 0 && au[i+1] == 0 && au[i+2] == 1 {
			h := au[i+3]
			if h265 {
				if t := (h >> 1) & 0x3F; t >= 16 && t <= 21 {
					return true
				}
			} else if h&0x1F == 5 {
				return true
			}
		}
	}
	return false
}

const muxRate = 6106 // units of 50 bytes/s: about 2.4 Mbit/s, an upper bound

func writePack(w *bytes.Buffer, scr int64) {
	if scr < 0 {
		scr = 0
	}
	w.Write([]byte{0, 0, 1, 0xBA})
	w.WriteByte(0x44 | byte(scr>>27)&0x38 | byte(scr>>28)&0x03)
	w.WriteByte(byte(scr >> 20))
	w.WriteByte(byte(scr>>12)&0xF8 | 0x04 | byte(scr>>13)&0x03)
	w.WriteByte(byte(scr >> 5))
	w.WriteByte(byte(scr<<3)&0xF8 | 0x04) // SCR extension 0
	w.WriteByte(0x01)
	w.WriteByte(byte(muxRate >> 14))
	w.WriteByte(byte(muxRate >> 6))
	w.WriteByte(byte(muxRate&0x3F)<<2 | 0x03)
	w.WriteByte(0xF8) // no stuffing
}

func writeSystemHeader(w *bytes.Buffer, audio bool) {
	// stream_id, '11', P-STD buffer bound scale, 13-bit size bound
	streams := [][]byte{{0xE0, 0xC0 | 0x20 | 1024>>8, 1024 & 0xFF}} // video: 1024 x 1024 bytes
	if audio {
		streams = append(streams, []byte{0xC0, 0xC0, 32}) // audio: 32 x 128 bytes
	}
	n := 6 + 3*len(streams)
	w.Write([]byte{0, 0, 1, 0xBB, byte(n >> 8), byte(n)})
	w.WriteByte(0x80 | byte(muxRate>>15))
	w.WriteByte(byte(muxRate >> 7))
	w.WriteByte(byte(muxRate&0x7F)<<1 | 0x01)
	audioBound := byte(0)
	if audio {
		audioBound = 1
	}
	w.WriteByte(audioBound << 2) // not fixed, not CSPS
	w.WriteByte(0x20 | 0x01)     // marker, one video stream
	w.WriteByte(0x7F)            // no packet rate restriction
	for _, s := range streams {
		w.Write(s)
	}
}

func writePSM(w *bytes.Buffer, videoType, audioType byte) {
	var es []byte
	es = append(es, videoType, 0xE0, 0, 0)
	if audioType != 0 {
		es = append(es, audioType, 0xC0, 0, 0)
	}
	body := []byte{0x80, 0xFF, 0, 0, byte(len(es) >> 8), byte(len(es))} // current_next, version 0; reserved and marker; no program info
	body = append(body, es...)
	n := len(body) + 4
	pkt := append([]byte{0, 0, 1, 0xBC, byte(n >> 8), byte(n)}, body...)
	pkt = binary.BigEndian.AppendUint32(pkt, crc32MPEG(pkt))
	w.Write(pkt)
}

func writePES(w *bytes.Buffer, sid byte, payload []byte, withPTS bool, pts int64, withDTS bool) {
	var hdr []byte
	flags := byte(0)
	if withPTS {
		if withDTS {
			flags = 0xC0
			hdr = append(hdr, tsBytes(0x30, pts)...)
			hdr = append(hdr, tsBytes(0x10, pts)...)
		} else {
			flags = 0x80
			hdr = append(hdr, tsBytes(0x20, pts)...)
		}
	}
	n := 3 + len(hdr) + len(payload)
	first := byte(0x80)
	if withPTS {
		first |= 0x04 // data alignment: a frame starts here
	}
	w.Write([]byte{0, 0, 1, sid, byte(n >> 8), byte(n), first, flags, byte(len(hdr))})
	w.Write(hdr)
	w.Write(payload)
}

func tsBytes(prefix byte, ts int64) []byte {
	return []byte{
		prefix | byte(ts>>29)&0x0E | 0x01,
		byte(ts >> 22),
		byte(ts>>14)&0xFE | 0x01,
		byte(ts >> 7),
		byte(ts<<1) | 0x01,
	}
}

// crc32MPEG is CRC-32/MPEG-2 (polynomial 0x04C11DB7, not reflected,
// initial 0xFFFFFFFF, no final xor) over the whole section.
func crc32MPEG(b []byte) uint32 {
	crc := uint32(0xFFFFFFFF)
	for _, c := range b {
		crc ^= uint32(c) << 24
		for range 8 {
			if crc&0x80000000 != 0 {
				crc = crc<<1 ^ 0x04C11DB7
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
