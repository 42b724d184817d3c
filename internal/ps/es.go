package ps

import "bytes"

// elementary assembles the units of one stream.
type elementary struct {
	id      byte
	typ     StreamType // 0: video whose codec is not known yet
	fromPSM bool

	buf []byte

	// PTS unwrapping
	lastRaw int64
	lastPTS int64
	havePTS bool

	// PTS of the PES whose payload is arriving, and of the one before (a
	// start code may straddle two PES packets). A PES's PTS belongs to the
	// first unit that starts in its payload.
	pesAt     int // offset in buf where the current PES payload began
	pesPTS    int64
	pesHas    bool
	prevPTS   int64
	prevHas   bool
	oversized bool

	// video access unit in progress
	scan     int  // start codes before scan have been looked at
	started  bool // buf begins with the AU's first start code
	hasVCL   bool
	key      bool
	broken   bool // the first slice did not start a picture
	auPTS    int64
	auHasPTS bool

	// AAC
	nextPTS int64
	nextHas bool
}

// unwrap extends a 33-bit PTS into a running count.
func (es *elementary) unwrap(raw int64) int64 {
	if !es.havePTS {
		es.havePTS = true
		es.lastRaw, es.lastPTS = raw, raw
		return raw
	}
	diff := (raw - es.lastRaw) & (1<<33 - 1)
	if diff >= 1<<32 {
		diff -= 1 << 33
	}
	es.lastRaw = raw
	es.lastPTS += diff
	return es.lastPTS
}

// reset drops the unit in progress (counted if dropped is set and there was
// one).
func (es *elementary) reset(d *Demuxer, dropped bool) {
	if dropped && (len(es.buf) > 0 && (es.started || !es.typ.IsVideo())) {
		d.stats.Dropped++
	}
	es.buf = es.buf[:0]
	es.pesAt, es.pesHas, es.prevHas = 0, false, false
	es.scan, es.started, es.hasVCL, es.key, es.broken = 0, false, false, false, false
	es.auHasPTS, es.nextHas, es.oversized = false, false, false
}

func (es *elementary) pesStart(d *Demuxer, pts int64, has bool) {
	if has {
		pts = es.unwrap(pts)
	}
	es.prevPTS, es.prevHas = es.pesPTS, es.pesHas
	es.pesPTS, es.pesHas = pts, has
	es.pesAt = len(es.buf)
}

// takePTS gives the PTS for a unit that starts at offset at of buf.
func (es *elementary) takePTS(at int) (int64, bool) {
	if at >= es.pesAt {
		if es.pesHas {
			es.pesHas = false
			return es.pesPTS, true
		}
		return 0, false
	}
	if es.prevHas {
		es.prevHas = false
		return es.prevPTS, true
	}
	return 0, false
}

// grow appends p to buf within the unit cap; false if the unit is too big.
func (es *elementary) grow(d *Demuxer, p []byte) bool {
	if len(es.buf)+len(p) > d.maxUnit() {
		es.tooLarge(d)
		return false
	}
	es.buf = append(es.buf, p...)
	return true
}

func (es *elementary) feed(d *Demuxer, p []byte) {
	switch {
	case es.typ == 0 || es.typ.IsVideo():
		es.video(d, p)
	case es.typ == StreamAAC:
		es.aac(d, p)
	default:
		if !es.oversized {
			es.grow(d, p)
		}
	}
}

func (es *elementary) pesEnd(d *Demuxer) {
	switch {
	case es.typ == 0 || es.typ.IsVideo() || es.typ == StreamAAC:
	default:
		// G.711 and other raw audio: one unit per PES
		if !es.oversized && len(es.buf) > 0 {
			pts, has := es.takePTS(0)
			d.emit(es, es.buf, pts, has, false)
		}
		es.buf = es.buf[:0]
		es.oversized = false
		es.pesAt = 0
	}
}

func (es *elementary) flush(d *Demuxer) {
	if (es.typ == 0 || es.typ.IsVideo()) && es.started && es.hasVCL && !es.broken {
		if es.oversized || len(es.buf) > d.maxUnit() {
			es.tooLarge(d)
			d.stats.Dropped++
		} else {
			d.emit(es, es.buf, es.auPTS, es.auHasPTS, es.key)
		}
	}
	es.reset(d, false)
}

// video appends PES payload to the access unit and splits access units at
// the NAL units that begin one (ISO/IEC 14496-10 7.4.1.2.3, ISO/IEC 23008-2
// 7.4.2.4.4): an access unit delimiter, parameter sets, SEI and the first
// slice of a picture, once the current unit holds a slice.
func (es *elementary) video(d *Demuxer, p []byte) {
	es.buf = append(es.buf, p...)
	for {
		i := bytes.Index(es.buf[es.scan:], startCode3)
		if i < 0 {
			es.scan = max(es.scan, len(es.buf)-2)
			break
		}
		s := es.scan + i
		h := s + 3 // NAL header
		if es.typ == 0 {
			if h+2 > len(es.buf) {
				es.scan = s
				break
			}
			es.typ = guessVideo(es.buf[h], es.buf[h+1])
			if es.typ == 0 {
				es.scan = h
				continue
			}
			d.publish()
		}
		need := h + 2 // H.264: header and the first byte of the slice header
		if es.typ == StreamH265 {
			need = h + 3
		}
		if need > len(es.buf) {
			es.scan = s
			break
		}
		start := s
		if s > 0 && es.buf[s-1] == 0 {
			start = s - 1
		}
		begins, vcl, first, key := nalInfo(es.typ, es.buf[h:])
		switch {
		case !es.started:
			if !begins && !(vcl && first) {
				es.scan = h
				continue // no unit can start here
			}
			es.beginAU(start)
			h -= start
		case es.hasVCL && (begins || vcl && first):
			switch {
			case es.oversized || start > d.maxUnit():
				es.tooLarge(d)
				d.stats.Dropped++
			case es.broken:
				d.stats.Dropped++
			default:
				d.emit(es, es.buf[:start], es.auPTS, es.auHasPTS, es.key)
			}
			es.beginAU(start)
			h -= start
		}
		if vcl {
			if !es.hasVCL && !first {
				es.broken = true
			}
			es.hasVCL = true
			es.key = es.key || key
		}
		es.scan = h
	}
	if es.started && es.scan-1 > d.maxUnit() {
		// the bytes before scan-1 certainly belong to the unit: it is too
		// large already. Keep its NAL structure, drop the bytes.
		es.tooLarge(d)
		es.trim()
	}
	if !es.started {
		es.trim()
	}
}

// tooLarge marks the access unit in progress as too large, reporting it
// once.
func (es *elementary) tooLarge(d *Demuxer) {
	if !es.oversized {
		es.oversized = true
		d.stats.Oversize++
		d.report(&UnitTooLargeError{StreamID: es.id, Max: d.maxUnit()})
	}
}

// trim drops the bytes before the first place a start code may begin.
func (es *elementary) trim() {
	k := max(es.scan-1, 0)
	if k == 0 {
		return
	}
	n := copy(es.buf, es.buf[k:])
	es.buf = es.buf[:n]
	es.scan -= k
	es.pesAt -= k
}

var startCode3 = []byte{0, 0, 1}

// beginAU makes buf[start:] the new access unit.
func (es *elementary) beginAU(start int) {
	es.auPTS, es.auHasPTS = es.takePTS(start)
	if start > 0 {
		n := copy(es.buf, es.buf[start:])
		es.buf = es.buf[:n]
		es.pesAt -= start
	}
	es.started, es.oversized = true, false
	es.hasVCL, es.key, es.broken = false, false, false
}

// guessVideo recognises H.265 or H.264 from the first NAL header of a stream
// that no program stream map described.
func guessVideo(b0, b1 byte) StreamType {
	if b0&0x80 != 0 {
		return 0
	}
	if b0&0x81 == 0 && b1 == 1 { // H.265 header: layer 0, temporal id 0
		switch b0 >> 1 & 0x3F {
		case 32, 33, 34, 35, 39, 19, 20, 1:
			return StreamH265
		}
	}
	switch b0 & 0x1F {
	case 1, 5, 6, 7, 8, 9:
		return StreamH264
	}
	return 0
}

// nalInfo classifies a NAL unit (b starts at its header and holds at least
// the header and one more byte): begins an access unit by its type, is a
// slice, is the first slice of a picture, is a key picture.
func nalInfo(typ StreamType, b []byte) (begins, vcl, first, key bool) {
	if typ == StreamH265 {
		t := b[0] >> 1 & 0x3F
		switch {
		case t <= 31:
			return false, true, b[2]&0x80 != 0, t >= 16 && t <= 23
		case t >= 32 && t <= 35, t == 39, t >= 41 && t <= 44, t >= 48 && t <= 55:
			return true, false, false, false
		}
		return false, false, false, false
	}
	switch t := b[0] & 0x1F; {
	case t >= 1 && t <= 5:
		// first_mb_in_slice is ue(v); it is 0 exactly when its first bit is 1
		return false, true, b[1]&0x80 != 0, t == 5
	case t == 6, t == 7, t == 8, t == 9, t >= 14 && t <= 18:
		return true, false, false, false
	}
	return false, false, false, false
}

// aac splits ADTS frames.
func (es *elementary) aac(d *Demuxer, p []byte) {
	// no cap needed: what stays in buf is less than one ADTS frame (at most
	// 8191 bytes)
	es.buf = append(es.buf, p...)
	pos := 0
	for len(es.buf)-pos >= 7 {
		b := es.buf[pos:]
		if b[0] != 0xFF || b[1]&0xF6 != 0xF0 {
			// not a sync word: skip to the next 0xFF
			j := bytes.IndexByte(b[1:], 0xFF)
			if j < 0 {
				pos = len(es.buf)
			} else {
				pos += 1 + j
			}
			continue
		}
		n := int(b[3]&3)<<11 | int(b[4])<<3 | int(b[5]>>5)
		if n < 7 {
			pos++
			continue
		}
		if n > len(b) {
			break
		}
		rate := adtsRates[b[2]>>2&0x0F]
		pts, has := es.takePTS(pos)
		if !has && es.nextHas {
			pts, has = es.nextPTS, true
		}
		d.emit(es, b[:n], pts, has, false)
		if has && rate > 0 {
			es.nextPTS, es.nextHas = pts+int64(1024*90000/rate), true
		}
		pos += n
	}
	if pos > 0 {
		n := copy(es.buf, es.buf[pos:])
		es.buf = es.buf[:n]
		es.pesAt -= pos
	}
}

var adtsRates = [16]int{96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350}
