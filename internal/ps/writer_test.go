package ps_test

// An independent program stream writer for the tests, written from the
// structure in ISO/IEC 13818-1 2.5.3 (pack header, system header, program
// stream map) and 2.4.3.6 (PES packet), laid out the way Hikvision devices do
// it: the 40-byte media header first; every frame starts with a pack header;
// key frames also carry a system header and a program stream map; a frame is
// cut into several PES packets that all carry the frame's PTS.

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"
)

type psWriter struct {
	bytes.Buffer
	mpeg1 bool // MPEG-1 pack and PES headers instead of MPEG-2
}

func (w *psWriter) mediaHeader(video, audio uint16, channels, bits byte, rate, bitrate uint32) {
	b := make([]byte, 40)
	copy(b, "IMKH")
	binary.LittleEndian.PutUint16(b[4:], 0x0101)
	binary.LittleEndian.PutUint16(b[6:], 0x1234)
	binary.LittleEndian.PutUint16(b[8:], 2) // MPEG-2 PS
	binary.LittleEndian.PutUint16(b[10:], video)
	binary.LittleEndian.PutUint16(b[12:], audio)
	b[14], b[15] = channels, bits
	binary.LittleEndian.PutUint32(b[16:], rate)
	binary.LittleEndian.PutUint32(b[20:], bitrate)
	w.Write(b)
}

func (w *psWriter) pack(scr int64) {
	if w.mpeg1 {
		w.Write([]byte{0, 0, 1, 0xBA,
			0x21 | byte(scr>>29&0x0E), byte(scr >> 22), byte(scr>>14) | 1, byte(scr >> 7), byte(scr<<1) | 1,
			0x80, 0x00, 0x01})
		return
	}
	// '01' SCR[32..30] 1 SCR[29..15] 1 SCR[14..0] 1 ext(9) 1, mux rate, 2 stuffing bytes
	w.Write([]byte{0, 0, 1, 0xBA,
		0x44 | byte(scr>>27&0x38) | byte(scr>>28&0x03), byte(scr >> 20),
		byte(scr>>12&0xF8) | 0x04 | byte(scr>>13&0x03), byte(scr >> 5),
		byte(scr<<3) | 0x04, 0x01,
		0x01, 0x86, 0xA3, 0xF8 | 2, 0xFF, 0xFF})
}

func (w *psWriter) systemHeader() {
	body := []byte{0x80, 0xC3, 0x51, 0x04, 0xE1, 0xFF, 0xE0, 0xE0, 0x80, 0xC0, 0xC0, 0x08}
	w.Write([]byte{0, 0, 1, 0xBB, 0, byte(len(body))})
	w.Write(body)
}

type psmEntry struct {
	typ, id byte
	info    []byte
}

func (w *psWriter) psm(version byte, entries ...psmEntry) {
	var es []byte
	for _, e := range entries {
		es = append(es, e.typ, e.id, byte(len(e.info)>>8), byte(len(e.info)))
		es = append(es, e.info...)
	}
	body := []byte{0x80 | version&0x1F, 0x01, 0, 0, byte(len(es) >> 8), byte(len(es))}
	body = append(body, es...)
	n := len(body) + 4
	pkt := append([]byte{0, 0, 1, 0xBC, byte(n >> 8), byte(n)}, body...)
	pkt = binary.BigEndian.AppendUint32(pkt, crcMPEG(pkt))
	w.Write(pkt)
}

// crcMPEG is the CRC-32/MPEG-2 of ISO/IEC 13818-1 Annex A (no reflection,
// no final xor).
func crcMPEG(b []byte) uint32 {
	crc := uint32(0xFFFFFFFF)
	for _, c := range b {
		crc ^= uint32(c) << 24
		for i := 0; i < 8; i++ {
			if crc&0x80000000 != 0 {
				crc = crc<<1 ^ crc32.IEEE
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

func ptsBytes(flag byte, pts int64) []byte {
	return []byte{flag<<4 | byte(pts>>29&0x0E) | 1, byte(pts >> 22), byte(pts>>14) | 1, byte(pts >> 7), byte(pts<<1) | 1}
}

// pes writes one PES packet; pts < 0 writes none. stuffing adds header
// stuffing bytes.
func (w *psWriter) pes(id byte, pts int64, stuffing int, payload []byte) {
	var hdr []byte
	if w.mpeg1 {
		for i := 0; i < stuffing; i++ {
			hdr = append(hdr, 0xFF)
		}
		if pts >= 0 {
			hdr = append(hdr, ptsBytes(2, pts)...)
		} else {
			hdr = append(hdr, 0x0F)
		}
	} else {
		flags := byte(0)
		var opt []byte
		if pts >= 0 {
			flags = 0x80
			opt = ptsBytes(2, pts)
		}
		for i := 0; i < stuffing; i++ {
			opt = append(opt, 0xFF)
		}
		hdr = append([]byte{0x84, flags, byte(len(opt))}, opt...)
	}
	n := len(hdr) + len(payload)
	w.Write([]byte{0, 0, 1, id, byte(n >> 8), byte(n)})
	w.Write(hdr)
	w.Write(payload)
}

// media reads a file of testdata/media.
func media(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "media", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// splitAUD cuts an Annex B stream whose every access unit starts with an
// access unit delimiter behind a 4-byte start code.
func splitAUD(t testing.TB, es []byte, h265 bool) [][]byte {
	t.Helper()
	aud := []byte{0, 0, 0, 1, 9}
	if h265 {
		aud = []byte{0, 0, 0, 1, 0x46, 0x01}
	}
	if !bytes.HasPrefix(es, aud) {
		t.Fatal("test media does not start with an access unit delimiter")
	}
	var aus [][]byte
	for len(es) > 0 {
		i := bytes.Index(es[1:], aud)
		if i < 0 {
			aus = append(aus, es)
			break
		}
		aus = append(aus, es[:i+1])
		es = es[i+1:]
	}
	return aus
}

// nalsOf cuts an access unit at its start codes (each NAL keeps its start
// code), the way Hikvision gives each NAL unit its own PES packets.
func nalsOf(au []byte) [][]byte {
	var out [][]byte
	for len(au) > 0 {
		i := bytes.Index(au[4:], []byte{0, 0, 1})
		if i < 0 {
			out = append(out, au)
			break
		}
		end := 4 + i
		if au[end-1] == 0 {
			end--
		}
		out = append(out, au[:end])
		au = au[end:]
	}
	return out
}

type hikStream struct {
	video     []byte // Annex B with AUDs
	h265      bool
	audio     []byte // G.711 bytes or ADTS frames
	audioType byte   // 0x90, 0x91, 0x0F; 0 for none
	maxPES    int    // payload bytes per video PES
	noHeader  bool   // no 40-byte media header
	mpeg1     bool
	ptsBase   int64
}

type hikOut struct {
	ps       []byte
	aus      [][]byte
	ausPTS   []int64
	audio    [][]byte // audio units as written (G.711 blocks or ADTS frames)
	audioPTS []int64
	frameAt  []int // offset in ps of each frame's pack header
}

// build writes the stream at 25 fps with audio interleaved by time.
func (h hikStream) build(t testing.TB) hikOut {
	t.Helper()
	if h.maxPES == 0 {
		h.maxPES = 4096
	}
	w := &psWriter{mpeg1: h.mpeg1}
	vt := byte(0x1B)
	vf := uint16(0x0100)
	if h.h265 {
		vt, vf = 0x24, 0x0005
	}
	af, rate := uint16(0), uint32(0)
	switch h.audioType {
	case 0x90:
		af, rate = 0x7111, 8000
	case 0x91:
		af, rate = 0x7110, 8000
	case 0x0F:
		af, rate = 0x2001, 16000
	}
	if !h.noHeader {
		w.mediaHeader(vf, af, 1, 16, rate, 64000)
	}
	entries := []psmEntry{{typ: vt, id: 0xE0, info: []byte{0x42, 0x0E, 0x07, 0x10, 0x10, 0xEA, 0x02, 0x80, 0x01, 0x68, 0x11, 0x30, 0x00, 0x00, 0x1C, 0x21}}}
	if h.audioType != 0 {
		entries = append(entries, psmEntry{typ: h.audioType, id: 0xC0, info: []byte{0x03, 0x03, 0x04, 0x00}})
	}
	var out hikOut
	// audio units
	var aunits [][]byte
	var adur int64
	switch h.audioType {
	case 0x90, 0x91:
		for a := h.audio; len(a) > 0; {
			n := min(160, len(a))
			aunits = append(aunits, a[:n])
			a = a[n:]
		}
		adur = 1800
	case 0x0F:
		for a := h.audio; len(a) >= 7; {
			n := int(a[3]&3)<<11 | int(a[4])<<3 | int(a[5]>>5)
			aunits = append(aunits, a[:n])
			a = a[n:]
		}
		adur = 1024 * 90000 / 16000
	}
	aus := splitAUD(t, h.video, h.h265)
	ai := 0
	for i, au := range aus {
		pts := h.ptsBase + int64(i)*3600
		for ai < len(aunits) && h.ptsBase+int64(ai)*adur < pts {
			apts := h.ptsBase + int64(ai)*adur
			w.pack(apts)
			w.pes(0xC0, apts, 0, aunits[ai])
			out.audio = append(out.audio, aunits[ai])
			out.audioPTS = append(out.audioPTS, apts)
			ai++
		}
		out.frameAt = append(out.frameAt, w.Len())
		w.pack(pts)
		key := isKey(au, h.h265)
		if key {
			w.systemHeader()
			w.psm(1, entries...)
		}
		for _, nal := range nalsOf(au) {
			for len(nal) > 0 {
				n := min(h.maxPES, len(nal))
				w.pes(0xE0, pts, 2, nal[:n])
				nal = nal[n:]
			}
		}
		out.aus = append(out.aus, au)
		out.ausPTS = append(out.ausPTS, pts)
	}
	for ; ai < len(aunits); ai++ {
		apts := h.ptsBase + int64(ai)*adur
		w.pack(apts)
		w.pes(0xC0, apts, 0, aunits[ai])
		out.audio = append(out.audio, aunits[ai])
		out.audioPTS = append(out.audioPTS, apts)
	}
	out.ps = w.Bytes()
	return out
}

func isKey(au []byte, h265 bool) bool {
	for _, n := range nalsOf(au) {
		i := bytes.Index(n, []byte{0, 0, 1})
		b := n[i+3]
		if h265 {
			if t := b >> 1 & 0x3F; t >= 16 && t <= 23 {
				return true
			}
		} else if b&0x1F == 5 {
			return true
		}
	}
	return false
}
