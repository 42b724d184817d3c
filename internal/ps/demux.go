package ps

import (
	"bytes"
	"encoding/binary"
)

// DefaultMaxUnitSize caps one access unit when Demuxer.MaxUnitSize is 0.
const DefaultMaxUnitSize = 4 << 20

// maxPSM caps a program stream map; the standard allows 1018 bytes.
const maxPSM = 4096

// Stats counts what the demuxer saw. All counters only grow.
type Stats struct {
	Bytes        int64 // bytes written
	MediaHeaders int64 // 40-byte media headers
	Packs        int64 // pack headers
	PSMs         int64 // program stream maps
	PES          int64 // PES packets of any stream
	Units        int64 // units handed to OnUnit
	SyncLosses   int64 // times a start code was missing where one belonged
	SkippedBytes int64 // bytes skipped while resynchronising
	BadPackets   int64 // malformed packets
	Oversize     int64 // units dropped for exceeding MaxUnitSize
	Dropped      int64 // partial units dropped (lost sync, codec change, no picture start)
	CodecChanges int64 // a stream changed its stream type
}

// Demuxer reads an MPEG program stream pushed in chunks of any size,
// optionally preceded by the 40-byte media header, and hands complete units
// to OnUnit. Set the exported fields before the first Write. A Demuxer is not
// safe for concurrent use.
//
// Problems in the input never stop it: it reports them to OnError (typed
// errors: *SyncError, *PacketError, *UnitTooLargeError), counts them in
// Stats, and resumes at the next pack header.
type Demuxer struct {
	// OnUnit receives every complete unit. The Unit and its Data are reused
	// after the call returns.
	OnUnit func(*Unit)
	// OnHeader receives the media header when one is seen.
	OnHeader func(MediaHeader)
	// OnStreams receives the stream table when it changes: the first program
	// stream map, a map that changes a stream type, or a video stream whose
	// codec was recognised from its data because no map named it. The slice
	// is reused after the call.
	OnStreams func([]Stream)
	// OnError receives each problem found in the input.
	OnError func(error)
	// MaxUnitSize caps one unit; 0 means DefaultMaxUnitSize.
	MaxUnitSize int

	stats Stats

	state   int
	step    int
	sync    uint32
	scanned int
	strict  bool
	lostAt  int64
	skipped int64

	id     byte
	pktOff int64
	pktLen int
	hdr    []byte
	need   int
	left   int
	es     *elementary

	streams [256]*elementary
	table   []Stream
	unit    Unit
}

const (
	stScan = iota
	stNeed
	stPayload
	stSkip
)

const (
	stepMediaHeader = iota
	stepPack
	stepLength
	stepPSM
	stepPESFlags
	stepPESHeader
	stepMPEG1PES
)

// Stats returns the counters so far.
func (d *Demuxer) Stats() Stats { return d.stats }

// Write consumes p. It never fails: it returns len(p), nil, so a Demuxer is
// an io.Writer.
func (d *Demuxer) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		switch d.state {
		case stScan:
			p = d.scan(p)
		case stNeed:
			k := min(d.need-len(d.hdr), len(p))
			d.hdr = append(d.hdr, p[:k]...)
			d.stats.Bytes += int64(k)
			p = p[k:]
			if len(d.hdr) == d.need {
				d.header()
			}
		case stPayload:
			k := min(d.left, len(p))
			d.es.feed(d, p[:k])
			d.stats.Bytes += int64(k)
			d.left -= k
			p = p[k:]
			if d.left == 0 {
				d.es.pesEnd(d)
				d.next()
			}
		case stSkip:
			k := min(d.left, len(p))
			d.stats.Bytes += int64(k)
			d.left -= k
			p = p[k:]
			if d.left == 0 {
				d.next()
			}
		}
	}
	return n, nil
}

// Flush hands out the access units still being assembled (the demuxer
// otherwise emits a video unit only when the next one begins). Call it at
// the end of a stream.
func (d *Demuxer) Flush() {
	for _, es := range d.streams {
		if es != nil {
			es.flush(d)
		}
	}
}

// Reset forgets all stream state, as if the demuxer were new (counters and
// callbacks stay). Use it when the source restarts the stream.
func (d *Demuxer) Reset() {
	for _, es := range d.streams {
		if es != nil {
			es.reset(d, false)
			es.typ, es.fromPSM, es.havePTS = 0, false, false
		}
	}
	d.table = d.table[:0]
	d.state, d.strict = stScan, false
	d.next()
}

func (d *Demuxer) offset() int64 { return d.stats.Bytes }

func (d *Demuxer) report(err error) {
	if d.OnError != nil {
		d.OnError(err)
	}
}

func (d *Demuxer) maxUnit() int {
	if d.MaxUnitSize > 0 {
		return d.MaxUnitSize
	}
	return DefaultMaxUnitSize
}

// next expects a start code right at the current position.
func (d *Demuxer) next() {
	d.state = stScan
	d.sync = 0xFFFFFFFF
	d.scanned = 0
}

// lose drops partial units and searches for the next pack header.
func (d *Demuxer) lose(err error) {
	if err != nil {
		d.report(err)
	}
	if !d.strict {
		d.stats.SyncLosses++
		d.lostAt = d.offset()
		d.skipped = 0
		for _, es := range d.streams {
			if es != nil {
				es.reset(d, true)
			}
		}
	}
	d.strict = true
	d.state = stScan
	d.sync = 0xFFFFFFFF
	d.scanned = 0
}

// scan looks for the start code that must follow a complete packet (leading
// zero bytes allowed) or, at the start of a stream, the media header.
func (d *Demuxer) scan(p []byte) []byte {
	if d.strict {
		return d.resync(p)
	}
	for i := 0; i < len(p); i++ {
		b := p[i]
		d.sync = d.sync<<8 | uint32(b)
		d.scanned++
		d.stats.Bytes++
		if d.sync&0xFFFFFF00 == 0x100 && b >= 0xB9 {
			d.packet(b)
			return p[i+1:]
		}
		if d.sync == 0x494D4B48 { // "IMKH"
			d.pktOff = d.offset() - 4
			d.hdr = append(d.hdr[:0], mediaHeaderMagic...)
			d.need = MediaHeaderSize
			d.state, d.step = stNeed, stepMediaHeader
			return p[i+1:]
		}
		switch {
		case b == 0:
		case b == 1 && d.scanned >= 3 && d.sync&0xFFFF00 == 0:
		case d.scanned == 1 && b == 'I',
			d.scanned == 2 && d.sync&0xFFFF == 0x494D,
			d.scanned == 3 && d.sync&0xFFFFFF == 0x494D4B:
		default:
			d.lose(nil)
			d.skipped = int64(d.scanned)
			d.stats.SkippedBytes += int64(d.scanned)
			d.lostAt = d.offset() - int64(d.scanned)
			return d.resync(p[i+1:])
		}
	}
	return nil
}

var packStart = []byte{0, 0, 1, 0xBA}

// resync skips to the next pack header after a loss of sync.
func (d *Demuxer) resync(p []byte) []byte {
	// a start code prefix may be split over chunks: go byte by byte while one
	// is pending
	for len(p) > 0 && (d.sync&0xFF == 0 || d.sync&0xFFFFFF == 1) {
		b := p[0]
		p = p[1:]
		d.stats.Bytes++
		d.sync = d.sync<<8 | uint32(b)
		if d.sync == 0x1BA {
			d.skipped -= 3 // the prefix was counted as skipped
			d.stats.SkippedBytes -= 3
			d.found()
			return p
		}
		d.skipped++
		d.stats.SkippedBytes++
	}
	if len(p) == 0 {
		return nil
	}
	j := bytes.Index(p, packStart)
	if j < 0 {
		d.skipped += int64(len(p))
		d.stats.SkippedBytes += int64(len(p))
		d.stats.Bytes += int64(len(p))
		for _, c := range p[max(0, len(p)-3):] {
			d.sync = d.sync<<8 | uint32(c)
		}
		return nil
	}
	d.skipped += int64(j)
	d.stats.SkippedBytes += int64(j)
	d.stats.Bytes += int64(j + 4)
	d.found()
	return p[j+4:]
}

func (d *Demuxer) found() {
	d.report(&SyncError{Offset: d.lostAt, Skipped: d.skipped})
	d.strict = false
	d.packet(0xBA)
}

// packet starts the packet whose start code ends with id.
func (d *Demuxer) packet(id byte) {
	d.id = id
	d.pktOff = d.offset() - 4
	d.hdr = d.hdr[:0]
	switch id {
	case 0xB9: // program end
		d.next()
	case 0xBA:
		d.need = 8
		d.state, d.step = stNeed, stepPack
	default:
		d.need = 2
		d.state, d.step = stNeed, stepLength
	}
}

func (d *Demuxer) bad(reason string) {
	d.stats.BadPackets++
	d.lose(&PacketError{Offset: d.pktOff, StreamID: d.id, Reason: reason})
}

func (d *Demuxer) skip(n int) {
	if n == 0 {
		d.next()
		return
	}
	d.left = n
	d.state = stSkip
}

// header handles a completed d.hdr.
func (d *Demuxer) header() {
	h := d.hdr
	switch d.step {
	case stepMediaHeader:
		d.stats.MediaHeaders++
		if mh, err := ParseMediaHeader(h); err == nil && d.OnHeader != nil {
			d.OnHeader(mh)
		}
		d.next()

	case stepPack:
		switch {
		case h[0]>>6 == 1: // MPEG-2: 10 bytes, then stuffing
			if d.need == 8 {
				d.need = 10
				return
			}
			if h[0]&0xC4 != 0x44 || h[2]&0x04 == 0 || h[4]&0x04 == 0 || h[5]&0x01 == 0 || h[8]&0x03 != 0x03 {
				d.bad("pack header marker bits")
				return
			}
			d.stats.Packs++
			d.skip(int(h[9] & 7))
		case h[0]>>4 == 2: // MPEG-1
			if h[0]&0x01 == 0 || h[2]&0x01 == 0 || h[4]&0x01 == 0 || h[5]&0x80 == 0 || h[7]&0x01 == 0 {
				d.bad("pack header marker bits")
				return
			}
			d.stats.Packs++
			d.next()
		default:
			d.bad("pack header is neither MPEG-1 nor MPEG-2")
		}

	case stepLength:
		d.pktLen = int(binary.BigEndian.Uint16(h))
		d.hdr = d.hdr[:0]
		switch id := d.id; {
		case id == 0xBC:
			if d.pktLen < 10 || d.pktLen > maxPSM {
				d.bad("program stream map length out of range")
				return
			}
			d.need = d.pktLen
			d.step = stepPSM
		case id == 0xBB || id == 0xBE || id == 0xBF || id == 0xF0 || id == 0xF1 ||
			id == 0xF2 || id == 0xF8 || id == 0xFF:
			// system header, padding, private stream 2, and packets
			// without a PES header: not needed here
			d.skip(d.pktLen)
		default:
			d.stats.PES++
			es := d.stream(id)
			if es == nil {
				d.skip(d.pktLen)
				return
			}
			if d.pktLen == 0 {
				d.bad("PES of unbounded length")
				return
			}
			d.es = es
			d.need = min(3, d.pktLen)
			d.step = stepPESFlags
		}

	case stepPSM:
		d.stats.PSMs++
		d.psm(h)
		d.next()

	case stepPESFlags:
		if h[0]>>6 == 2 && len(h) == 3 { // MPEG-2 PES header
			n := 3 + int(h[2])
			if n > d.pktLen {
				d.bad("PES header longer than the packet")
				return
			}
			d.need = n
			d.step = stepPESHeader
			if n == 3 {
				d.header()
			}
			return
		}
		d.need = min(d.pktLen, 16+2+10)
		d.step = stepMPEG1PES
		if d.need == len(h) {
			d.header()
		}

	case stepPESHeader:
		var pts int64
		has := false
		switch h[1] >> 6 {
		case 2, 3:
			if len(h) < 8 || !ptsOK(h[3:]) {
				d.bad("PES PTS field")
				return
			}
			pts, has = readPTS(h[3:]), true
		case 1:
			d.bad("PES with DTS and no PTS")
			return
		}
		d.payload(pts, has, nil, d.pktLen-len(h))

	case stepMPEG1PES:
		i := 0
		for i < len(h) && i < 16 && h[i] == 0xFF {
			i++
		}
		if i < len(h) && h[i]>>6 == 1 { // STD buffer
			i += 2
		}
		var pts int64
		has := false
		switch {
		case i >= len(h):
			d.bad("MPEG-1 PES header truncated")
			return
		case h[i]>>4 == 2 || h[i]>>4 == 3:
			n := 5
			if h[i]>>4 == 3 {
				n = 10
			}
			if i+n > len(h) || !ptsOK(h[i:]) {
				d.bad("MPEG-1 PES PTS field")
				return
			}
			pts, has = readPTS(h[i:]), true
			i += n
		case h[i] == 0x0F:
			i++
		default:
			d.bad("MPEG-1 PES header")
			return
		}
		d.payload(pts, has, h[i:], d.pktLen-len(h))
	}
}

// payload starts the payload of a PES: first the bytes already read into
// the header buffer, then left more bytes from the input.
func (d *Demuxer) payload(pts int64, has bool, first []byte, left int) {
	es := d.es
	es.pesStart(d, pts, has)
	if len(first) > 0 {
		es.feed(d, first)
	}
	if left == 0 {
		es.pesEnd(d)
		d.next()
		return
	}
	d.left = left
	d.state = stPayload
}

func ptsOK(b []byte) bool {
	return b[0]&1 == 1 && b[2]&1 == 1 && b[4]&1 == 1
}

func readPTS(b []byte) int64 {
	return int64(b[0]>>1&7)<<30 | int64(b[1])<<22 | int64(b[2]>>1)<<15 | int64(b[3])<<7 | int64(b[4]>>1)
}

// stream returns the state of stream id if its payload is wanted: a
// supported type from the program stream map, or (with no map entry) a video
// stream id whose codec will be recognised from its data.
func (d *Demuxer) stream(id byte) *elementary {
	es := d.streams[id]
	if es == nil {
		if id < 0xE0 || id > 0xEF {
			return nil
		}
		es = &elementary{id: id}
		d.streams[id] = es
	}
	if es.typ == 0 {
		if es.fromPSM || id < 0xE0 || id > 0xEF {
			return nil
		}
		return es // codec to be recognised
	}
	if !es.typ.Supported() {
		return nil
	}
	return es
}

// psm reads a program stream map (without start code and length).
func (d *Demuxer) psm(h []byte) {
	// current_next_indicator, version, marker, then program_stream_info
	if h[0]&0x80 == 0 {
		return // describes a future map
	}
	infoLen := int(binary.BigEndian.Uint16(h[2:]))
	i := 4 + infoLen
	if i+2 > len(h) {
		d.stats.BadPackets++
		d.report(&PacketError{Offset: d.pktOff, StreamID: 0xBC, Reason: "program_stream_info_length past the end"})
		return
	}
	mapLen := int(binary.BigEndian.Uint16(h[i:]))
	i += 2
	end := i + mapLen
	if end+4 > len(h) {
		d.stats.BadPackets++
		d.report(&PacketError{Offset: d.pktOff, StreamID: 0xBC, Reason: "elementary_stream_map_length past the end"})
		return
	}
	changed := false
	for i+4 <= end {
		typ, id := StreamType(h[i]), h[i+1]
		i += 4 + int(binary.BigEndian.Uint16(h[i+2:]))
		if i > end {
			d.stats.BadPackets++
			d.report(&PacketError{Offset: d.pktOff, StreamID: 0xBC, Reason: "elementary_stream_info_length past the end"})
			break
		}
		es := d.streams[id]
		if es == nil {
			es = &elementary{id: id}
			d.streams[id] = es
		}
		if es.typ != typ {
			if es.typ != 0 {
				d.stats.CodecChanges++
			}
			// a new map comes with a new pack: the unit in progress is
			// complete
			es.flush(d)
			es.typ = typ
			changed = true
		}
		if !es.fromPSM {
			es.fromPSM = true
			changed = true
		}
	}
	if changed {
		d.publish()
	}
}

// publish hands the stream table to OnStreams.
func (d *Demuxer) publish() {
	d.table = d.table[:0]
	for _, es := range d.streams {
		if es != nil && es.typ != 0 {
			d.table = append(d.table, Stream{ID: es.id, Type: es.typ, FromPSM: es.fromPSM})
		}
	}
	if d.OnStreams != nil {
		d.OnStreams(d.table)
	}
}

func (d *Demuxer) emit(es *elementary, data []byte, pts int64, has, key bool) {
	d.stats.Units++
	if d.OnUnit == nil {
		return
	}
	d.unit = Unit{StreamID: es.id, Type: es.typ, PTS: pts, HasPTS: has, Keyframe: key, Data: data}
	d.OnUnit(&d.unit)
}
