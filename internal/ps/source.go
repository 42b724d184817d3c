package ps

import (
	"bytes"
	"encoding/binary"
	"sync"

	"github.com/AlexxIT/go2rtc/pkg/aac"
	"github.com/AlexxIT/go2rtc/pkg/core"
	"github.com/AlexxIT/go2rtc/pkg/h264"
	"github.com/AlexxIT/go2rtc/pkg/h265"
	"github.com/pion/rtp"
)

// SourceConfig configures a Source.
type SourceConfig struct {
	// OnPacket receives every packet of track (an index into Medias()).
	// The packet and its payload are new for each call: the receiver may
	// keep them. It is called with the Source's lock held, from Write or
	// Start: it must not call the Source.
	OnPacket func(track int, pkt *rtp.Packet)
	// MTU 0 (the default) gives go2rtc's in-process form, as its own
	// producers (mpegts, dvrip) hand to receivers: codecs with
	// core.PayloadTypeRAW, one packet per H.264/H.265 access unit in AVCC
	// form, one per AAC frame without its ADTS header; go2rtc's consumers
	// packetise. MTU > 0 gives RTP packets of at most MTU bytes, made by
	// go2rtc's h264/h265 payloaders, RFC 3640 for AAC.
	MTU uint16
	// MaxUnitSize caps one access unit; 0 means DefaultMaxUnitSize.
	MaxUnitSize int
	// MaxBacklog caps the packets held between the probe and Start; 0 means
	// 256.
	MaxBacklog int
	// OnError receives the demuxer's reports (optional), with the lock
	// held, like OnPacket.
	OnError func(error)
}

// Track is one described elementary stream.
type Track struct {
	StreamID byte
	Type     StreamType
	Media    *core.Media
	Codec    *core.Codec
}

// Source turns the SDK's real-play data (media header, then program stream)
// into go2rtc medias and packets. Write it with each data chunk; once Ready
// (or when the probe time is up) take Medias, then Start. It is safe for
// concurrent use.
type Source struct {
	cfg SourceConfig

	mu      sync.Mutex
	d       Demuxer
	table   []Stream
	header  MediaHeader
	hasHdr  bool
	tracks  []*track // described, in order of description
	frozen  []*track // the tracks Medias handed out, in its order
	started bool
	err     error

	backlog      []held
	backlogBytes int
	backlogKey   bool // the backlog starts at a video keyframe
}

type track struct {
	Track
	index   int // in frozen, -1 before
	last    uint32
	lastPTS int64
	delta   int64 // last PTS step, 90 kHz
	samples int64 // samples of the last G.711 unit
	hasLast bool
	seq     uint16
	pay     core.HandlerFunc
}

type held struct {
	t   *track
	pkt *rtp.Packet
	pts int64 // 90 kHz
}

// NewSource makes a Source.
func NewSource(cfg SourceConfig) *Source {
	if cfg.MaxBacklog == 0 {
		cfg.MaxBacklog = 256
	}
	s := &Source{cfg: cfg}
	s.d.MaxUnitSize = cfg.MaxUnitSize
	s.d.OnError = cfg.OnError
	s.d.OnUnit = s.unit
	s.d.OnStreams = s.streams
	s.d.OnHeader = func(h MediaHeader) { s.header, s.hasHdr = h, true }
	return s
}

// Write feeds one chunk of the stream. It returns a *CodecChangeError
// (ErrCodecChanged) once a stream whose media was handed out changes codec;
// the stream must then be restarted.
func (s *Source) Write(p []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, _ = s.d.Write(p)
	return s.err
}

// Header returns the media header, if one was seen.
func (s *Source) Header() (MediaHeader, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.header, s.hasHdr
}

// Stats returns the demuxer's counters.
func (s *Source) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.d.Stats()
}

// Ready reports that every supported stream the stream table names has a
// description (a video stream after its first keyframe with parameter sets,
// AAC after its first frame), and there is at least one.
func (s *Source) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, st := range s.table {
		if !st.Type.Supported() {
			continue
		}
		if s.find(st.ID) == nil {
			return false
		}
		n++
	}
	return n > 0
}

// Streams returns the stream table (program stream map, or video streams
// recognised from their data), including types this package does not read,
// so that a caller can name an unsupported codec.
func (s *Source) Streams() []Stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Stream(nil), s.table...)
}

// Tracks returns the described tracks (video first).
func (s *Source) Tracks() []Track {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Track
	for _, t := range s.ordered() {
		out = append(out, t.Track)
	}
	return out
}

// Medias hands out the medias of the described tracks, video first, and
// fixes that set: streams described later are ignored. Later calls return
// the same medias.
func (s *Source) Medias() []*core.Media {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.frozen == nil {
		s.frozen = s.ordered()
		if s.frozen == nil {
			s.frozen = []*track{}
		}
		for i, t := range s.frozen {
			t.index = i
			if s.cfg.MTU > 0 && t.Codec.PayloadType == core.PayloadTypeRAW {
				t.Codec.PayloadType = byte(96 + i)
			}
		}
	}
	medias := make([]*core.Media, len(s.frozen))
	for i, t := range s.frozen {
		medias[i] = t.Media
	}
	return medias
}

// Flush hands out the video units still being assembled (a video unit
// otherwise goes out when the next one begins). Call it at the end of a
// stream.
func (s *Source) Flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.d.Flush()
}

// Start delivers the packets held since the probe's keyframe, then every
// new packet, to OnPacket.
func (s *Source) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return
	}
	if s.frozen == nil {
		s.mu.Unlock()
		s.Medias()
		s.mu.Lock()
	}
	s.started = true
	for _, h := range s.backlog {
		if h.t.index >= 0 {
			s.deliver(h.t, h.pkt)
		}
	}
	s.backlog, s.backlogBytes = nil, 0
}

func (s *Source) ordered() []*track {
	var out []*track
	for _, t := range s.tracks {
		if t.Media.Kind == core.KindVideo {
			out = append(out, t)
		}
	}
	for _, t := range s.tracks {
		if t.Media.Kind != core.KindVideo {
			out = append(out, t)
		}
	}
	return out
}

func (s *Source) find(id byte) *track {
	for _, t := range s.tracks {
		if t.StreamID == id {
			return t
		}
	}
	return nil
}

// streams follows the stream table: a codec change drops the description
// (before Medias) or fails the stream (after).
func (s *Source) streams(table []Stream) {
	s.table = append(s.table[:0], table...)
	for _, st := range table {
		t := s.find(st.ID)
		if t == nil || t.Type == st.Type {
			continue
		}
		if s.frozen != nil && t.index >= 0 {
			if s.err == nil {
				s.err = &CodecChangeError{StreamID: st.ID, Old: t.Type, New: st.Type}
			}
			continue
		}
		s.drop(t)
	}
}

func (s *Source) drop(t *track) {
	for i, x := range s.tracks {
		if x == t {
			s.tracks = append(s.tracks[:i], s.tracks[i+1:]...)
			break
		}
	}
}

func (s *Source) unit(u *Unit) {
	t := s.find(u.StreamID)
	if t == nil {
		if s.frozen != nil {
			return
		}
		if t = s.describe(u); t == nil {
			return
		}
	}
	if t.Type != u.Type {
		return // codec change, handled by streams
	}
	if s.frozen != nil && t.index < 0 {
		return
	}
	switch t.Type {
	case StreamH264, StreamH265:
		s.video(t, u)
	case StreamAAC:
		s.aac(t, u)
	case StreamG711A, StreamG711U:
		s.g711(t, u)
	}
}

// describe makes the track for a stream's first usable unit.
func (s *Source) describe(u *Unit) *track {
	var codec *core.Codec
	kind := core.KindAudio
	switch u.Type {
	case StreamH264, StreamH265:
		if !u.Keyframe {
			return nil
		}
		avcc := toAVCC(u.Type, u.Data)
		var vps, sps, pps bool
		for b := avcc; len(b) > 4; {
			n := 4 + int(binary.BigEndian.Uint32(b))
			if u.Type == StreamH264 {
				switch h264.NALUType(b) {
				case h264.NALUTypeSPS:
					if n < 8 { // profile-level-id needs 3 bytes after the header
						return nil
					}
					sps = true
				case h264.NALUTypePPS:
					pps = true
				}
			} else {
				switch h265.NALUType(b) {
				case h265.NALUTypeVPS:
					vps = true
				case h265.NALUTypeSPS:
					sps = true
				case h265.NALUTypePPS:
					pps = true
				}
			}
			b = b[n:]
		}
		if !sps || !pps || (u.Type == StreamH265 && !vps) {
			return nil
		}
		if u.Type == StreamH264 {
			codec = h264.AVCCToCodec(avcc)
		} else {
			codec = h265.AVCCToCodec(avcc)
		}
		kind = core.KindVideo
	case StreamAAC:
		codec = aac.ADTSToCodec(u.Data)
		if codec == nil || codec.ClockRate == 0 {
			return nil
		}
		codec.PayloadType = core.PayloadTypeRAW
	case StreamG711A:
		codec = &core.Codec{Name: core.CodecPCMA, ClockRate: 8000, PayloadType: 8}
	case StreamG711U:
		codec = &core.Codec{Name: core.CodecPCMU, ClockRate: 8000, PayloadType: 0}
	default:
		return nil
	}
	t := &track{
		Track: Track{
			StreamID: u.StreamID,
			Type:     u.Type,
			Media:    &core.Media{Kind: kind, Direction: core.DirectionRecvonly, Codecs: []*core.Codec{codec}},
			Codec:    codec,
		},
		index: -1,
		delta: 3600,
	}
	if s.cfg.MTU > 0 {
		out := func(pkt *rtp.Packet) { s.out(t, pkt) }
		switch u.Type {
		case StreamH264:
			t.pay = h264.RTPPay(s.cfg.MTU, out)
		case StreamH265:
			t.pay = h265.RTPPay(s.cfg.MTU, out)
		}
	}
	s.tracks = append(s.tracks, t)
	return t
}

// timestamp converts a unit's 90 kHz PTS to the track's clock, or
// extrapolates from the last unit when the unit has none.
func (t *track) timestamp(u *Unit, rate int64, fallback int64) uint32 {
	if u.HasPTS {
		if t.hasLast && u.PTS > t.lastPTS {
			t.delta = u.PTS - t.lastPTS
		}
		t.lastPTS, t.hasLast = u.PTS, true
		t.last = uint32(u.PTS * rate / 90000)
		return t.last
	}
	if !t.hasLast {
		t.hasLast = true
		return t.last
	}
	if fallback == 0 {
		fallback = t.delta * rate / 90000
	}
	t.lastPTS += fallback * 90000 / rate
	t.last += uint32(fallback)
	return t.last
}

func (s *Source) video(t *track, u *Unit) {
	pkt := &rtp.Packet{
		Header:  rtp.Header{Version: h264.RTPPacketVersionAVC, Timestamp: t.timestamp(u, 90000, 0)},
		Payload: toAVCC(u.Type, u.Data),
	}
	if len(pkt.Payload) == 0 {
		return
	}
	if !s.started && !s.backlogKey {
		if !u.Keyframe {
			return
		}
		// the backlog starts here: keep only what is not older
		kept, bytes := s.backlog[:0], 0
		for _, h := range s.backlog {
			if h.pts >= t.lastPTS {
				kept = append(kept, h)
				bytes += len(h.pkt.Payload)
			}
		}
		s.backlog, s.backlogBytes, s.backlogKey = kept, bytes, true
	}
	if t.pay != nil {
		t.pay(pkt)
		return
	}
	s.out(t, pkt)
}

func (s *Source) aac(t *track, u *Unit) {
	rate := int64(t.Codec.ClockRate)
	ts := t.timestamp(u, rate, 1024)
	hl := aac.ADTSHeaderLen(u.Data)
	if hl >= len(u.Data) {
		return
	}
	au := u.Data[hl:]
	pkt := &rtp.Packet{Header: rtp.Header{Version: aac.RTPPacketVersionAAC, Timestamp: ts}}
	if s.cfg.MTU > 0 {
		// RFC 3640 AAC-hbr: AU-headers-length 16 bits, one AU header of
		// 13 bits size and 3 bits index
		pay := make([]byte, 4+len(au))
		pay[1] = 16
		binary.BigEndian.PutUint16(pay[2:], uint16(len(au)<<3))
		copy(pay[4:], au)
		t.seq++
		pkt.Version, pkt.Marker, pkt.SequenceNumber, pkt.Payload = 2, true, t.seq, pay
	} else {
		pkt.Payload = append([]byte(nil), au...)
	}
	s.out(t, pkt)
}

func (s *Source) g711(t *track, u *Unit) {
	ts := t.timestamp(u, 8000, t.samples)
	t.samples = int64(len(u.Data)) // one byte per sample: the step for a unit without PTS
	t.seq++
	s.out(t, &rtp.Packet{
		Header: rtp.Header{
			Version: 2, Marker: true, PayloadType: t.Codec.PayloadType,
			SequenceNumber: t.seq, Timestamp: ts,
		},
		Payload: append([]byte(nil), u.Data...),
	})
}

// out delivers a packet or holds it until Start.
func (s *Source) out(t *track, pkt *rtp.Packet) {
	if s.started {
		if t.index >= 0 {
			s.deliver(t, pkt)
		}
		return
	}
	if s.find(t.StreamID) == nil {
		return
	}
	if len(s.backlog) >= s.cfg.MaxBacklog || s.backlogBytes+len(pkt.Payload) > 8<<20 {
		// the probe lasts too long: start again at the next keyframe
		clear(s.backlog)
		s.backlog, s.backlogBytes, s.backlogKey = s.backlog[:0], 0, false
		return
	}
	// before the first key frame audio is held too, and dropped at the key
	// frame if older
	s.backlog = append(s.backlog, held{t, pkt, t.lastPTS})
	s.backlogBytes += len(pkt.Payload)
}

func (s *Source) deliver(t *track, pkt *rtp.Packet) {
	if s.cfg.MTU > 0 {
		pkt.PayloadType = t.Codec.PayloadType
	}
	if s.cfg.OnPacket != nil {
		s.cfg.OnPacket(t.index, pkt)
	}
}

// toAVCC converts an Annex B access unit into a new AVCC buffer (4-byte
// big-endian lengths), without access unit delimiters.
func toAVCC(typ StreamType, annexb []byte) []byte {
	size := 0
	forNAL(typ, annexb, func(nal []byte) { size += 4 + len(nal) })
	out := make([]byte, 0, size)
	forNAL(typ, annexb, func(nal []byte) {
		out = binary.BigEndian.AppendUint32(out, uint32(len(nal)))
		out = append(out, nal...)
	})
	return out
}

// forNAL calls f with each NAL unit of an Annex B buffer, without start
// codes, trailing zero bytes, empty units and access unit delimiters.
func forNAL(typ StreamType, b []byte, f func([]byte)) {
	start := -1
	for i := 0; ; {
		j := bytes.Index(b[i:], startCode3)
		if j < 0 {
			break
		}
		j += i
		if start >= 0 {
			nalOut(typ, b[start:j], f)
		}
		start = j + 3
		i = start
	}
	if start >= 0 {
		nalOut(typ, b[start:], f)
	}
}

// nalOut strips trailing zero bytes (the first byte of a 4-byte start code,
// trailing_zero_8bits) and skips empty units and access unit delimiters.
func nalOut(typ StreamType, nal []byte, f func([]byte)) {
	for len(nal) > 0 && nal[len(nal)-1] == 0 {
		nal = nal[:len(nal)-1]
	}
	if len(nal) == 0 {
		return
	}
	if typ == StreamH265 {
		if nal[0]>>1&0x3F == 35 {
			return
		}
	} else if nal[0]&0x1F == 9 {
		return
	}
	f(nal)
}
