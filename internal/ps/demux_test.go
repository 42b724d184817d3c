package ps_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand"
	"testing"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/ps"
)

// collected is what a Demuxer handed out, copied.
type collected struct {
	units   []ps.Unit
	headers []ps.MediaHeader
	tables  [][]ps.Stream
	errs    []error
}

func (c *collected) demuxer() *ps.Demuxer {
	return &ps.Demuxer{
		OnUnit: func(u *ps.Unit) {
			v := *u
			v.Data = bytes.Clone(u.Data)
			c.units = append(c.units, v)
		},
		OnHeader:  func(h ps.MediaHeader) { c.headers = append(c.headers, h) },
		OnStreams: func(s []ps.Stream) { c.tables = append(c.tables, append([]ps.Stream(nil), s...)) },
		OnError:   func(err error) { c.errs = append(c.errs, err) },
	}
}

func (c *collected) of(id byte) []ps.Unit {
	var out []ps.Unit
	for _, u := range c.units {
		if u.StreamID == id {
			out = append(out, u)
		}
	}
	return out
}

// digest summarises the units in order, for comparing runs.
func (c *collected) digest() string {
	h := sha256.New()
	for _, u := range c.units {
		fmt.Fprintf(h, "%x %v %d %v %v %d;", u.StreamID, u.Type, u.PTS, u.HasPTS, u.Keyframe, len(u.Data))
		h.Write(u.Data)
	}
	fmt.Fprintf(h, "headers %+v tables %v errors %v", c.headers, c.tables, c.errs)
	return fmt.Sprintf("%x/%d", h.Sum(nil), len(c.units))
}

// demux feeds b in one Write and flushes.
func demux(b []byte) *collected {
	c := &collected{}
	d := c.demuxer()
	_, _ = d.Write(b)
	d.Flush()
	return c
}

func demuxChunks(b []byte, sizes func() int) (*collected, ps.Stats) {
	c := &collected{}
	d := c.demuxer()
	for len(b) > 0 {
		n := min(max(sizes(), 1), len(b))
		_, _ = d.Write(b[:n])
		b = b[n:]
	}
	d.Flush()
	return c, d.Stats()
}

func checkVideo(t *testing.T, c *collected, want hikOut, typ ps.StreamType) {
	t.Helper()
	got := c.of(0xE0)
	if len(got) != len(want.aus) {
		t.Fatalf("video: %d units, want %d", len(got), len(want.aus))
	}
	for i, u := range got {
		if !bytes.Equal(u.Data, want.aus[i]) {
			t.Fatalf("video unit %d: %d bytes differ from the %d written", i, len(u.Data), len(want.aus[i]))
		}
		if !u.HasPTS || u.PTS != want.ausPTS[i] {
			t.Fatalf("video unit %d: PTS %d (%v), want %d", i, u.PTS, u.HasPTS, want.ausPTS[i])
		}
		if u.Type != typ {
			t.Fatalf("video unit %d: type %v, want %v", i, u.Type, typ)
		}
		if u.Keyframe != (i%25 == 0) {
			t.Fatalf("video unit %d: keyframe %v; the media has a GOP of 25", i, u.Keyframe)
		}
	}
}

func checkAudio(t *testing.T, c *collected, want hikOut, typ ps.StreamType) {
	t.Helper()
	got := c.of(0xC0)
	if len(got) != len(want.audio) {
		t.Fatalf("audio: %d units, want %d; first PTS %d/%d, last %d/%d", len(got), len(want.audio), got[0].PTS, want.audioPTS[0], got[len(got)-1].PTS, want.audioPTS[len(want.audioPTS)-1])
	}
	for i, u := range got {
		if !bytes.Equal(u.Data, want.audio[i]) || u.Type != typ {
			t.Fatalf("audio unit %d (%v): differs from the one written", i, u.Type)
		}
		if !u.HasPTS || u.PTS != want.audioPTS[i] {
			t.Fatalf("audio unit %d: PTS %d (%v), want %d", i, u.PTS, u.HasPTS, want.audioPTS[i])
		}
	}
}

func TestHikvisionH264G711A(t *testing.T) {
	want := hikStream{video: media(t, "h264_main.h264"), audio: media(t, "tone_1khz_8k.alaw"), audioType: 0x90}.build(t)
	c := demux(want.ps)
	checkVideo(t, c, want, ps.StreamH264)
	checkAudio(t, c, want, ps.StreamG711A)
	if len(c.errs) != 0 {
		t.Fatalf("errors on a clean stream: %v", c.errs)
	}
	if len(c.headers) != 1 {
		t.Fatalf("%d media headers, want 1", len(c.headers))
	}
	h := c.headers[0]
	if h.SystemFormat != ps.SystemMPEG2PS || h.Video() != ps.StreamH264 || h.Audio() != ps.StreamG711A || h.AudioRate != 8000 || h.AudioChannels != 1 || h.DeviceID != 0x1234 {
		t.Fatalf("media header %+v", h)
	}
	// the map is repeated with every key frame; it is reported once
	if len(c.tables) != 1 || len(c.tables[0]) != 2 || c.tables[0][0] != (ps.Stream{ID: 0xC0, Type: ps.StreamG711A, FromPSM: true}) ||
		c.tables[0][1] != (ps.Stream{ID: 0xE0, Type: ps.StreamH264, FromPSM: true}) {
		t.Fatalf("stream tables %v", c.tables)
	}
}

func TestHikvisionH265G711U(t *testing.T) {
	want := hikStream{video: media(t, "h265_main.h265"), h265: true, audio: media(t, "tone_1khz_8k.ulaw"), audioType: 0x91, maxPES: 1000}.build(t)
	c := demux(want.ps)
	checkVideo(t, c, want, ps.StreamH265)
	checkAudio(t, c, want, ps.StreamG711U)
}

func TestHikvisionAAC(t *testing.T) {
	want := hikStream{video: media(t, "h264_sub.h264"), audio: media(t, "tone_1khz_16k.aac"), audioType: 0x0F}.build(t)
	c := demux(want.ps)
	checkVideo(t, c, want, ps.StreamH264)
	checkAudio(t, c, want, ps.StreamAAC)
	if len(want.audio) < 60 {
		t.Fatalf("only %d AAC frames written", len(want.audio))
	}
}

// Several ADTS frames in one PES and frames cut across PES packets: each
// frame comes out whole; the PES PTS goes to the first frame that starts in
// it, the others get PTS + 1024 samples.
func TestAACFramesAcrossPES(t *testing.T) {
	aacES := media(t, "tone_1khz_16k.aac")
	var frames [][]byte
	for a := aacES; len(a) >= 7; {
		n := int(a[3]&3)<<11 | int(a[4])<<3 | int(a[5]>>5)
		frames = append(frames, a[:n])
		a = a[n:]
	}
	w := &psWriter{}
	w.pack(0)
	w.psm(0, psmEntry{typ: 0x0F, id: 0xC0})
	// PES of 3 frames' worth of bytes, cut anywhere
	pos, pts := 0, int64(9000)
	all := bytes.Join(frames, nil)
	for pos < len(all) {
		n := min(len(all)-pos, 3*len(frames[0])+17)
		w.pack(pts)
		w.pes(0xC0, pts, 0, all[pos:pos+n])
		pos += n
		pts += 3 * 5760
	}
	c := demux(w.Bytes())
	got := c.of(0xC0)
	if len(got) != len(frames) {
		t.Fatalf("%d frames, want %d", len(got), len(frames))
	}
	for i, u := range got {
		if !bytes.Equal(u.Data, frames[i]) {
			t.Fatalf("frame %d differs", i)
		}
		if !u.HasPTS {
			t.Fatalf("frame %d: no PTS", i)
		}
	}
	if got[0].PTS != 9000 || got[1].PTS != 9000+5760 {
		t.Fatalf("PTS %d, %d; want 9000, %d", got[0].PTS, got[1].PTS, 9000+5760)
	}
}

// Every chunk size from 1 to 300 and random splits give the same units as
// one Write: chunk boundaries fall inside start codes, PES headers, the media
// header and the program stream map.
func TestChunkBoundaries(t *testing.T) {
	h := hikStream{video: media(t, "h264_main.h264"), audio: media(t, "tone_1khz_8k.alaw"), audioType: 0x90, maxPES: 700}
	full := h.build(t)
	// one second is enough for every boundary position and keeps -race fast
	end := full.frameAt[27]
	stream := full.ps[:end]
	want := demux(stream)
	if len(want.of(0xE0)) < 20 || len(want.of(0xC0)) < 40 {
		t.Fatalf("too few units in the test stream: %d video, %d audio", len(want.of(0xE0)), len(want.of(0xC0)))
	}
	if len(want.headers) != 1 || len(want.tables) != 1 {
		t.Fatalf("%d headers, %d tables in the test stream", len(want.headers), len(want.tables))
	}
	wantDigest := want.digest()
	maxSize := 300
	if testing.Short() {
		maxSize = 40
	}
	for size := 1; size <= maxSize; size++ {
		got, st := demuxChunks(stream, func() int { return size })
		if g := got.digest(); g != wantDigest {
			t.Fatalf("chunk size %d: units differ (%d units, want %d)", size, len(got.units), len(want.units))
		}
		if st.Bytes != int64(len(stream)) || st.SyncLosses != 0 {
			t.Fatalf("chunk size %d: stats %+v", size, st)
		}
	}
	rng := rand.New(rand.NewSource(1))
	for run := 0; run < 50; run++ {
		got, _ := demuxChunks(full.ps, func() int { return 1 + rng.Intn(5000) })
		if len(got.of(0xE0)) != 100 {
			t.Fatalf("random run %d: %d video units", run, len(got.of(0xE0)))
		}
		checkVideo(t, got, full, ps.StreamH264)
		checkAudio(t, got, full, ps.StreamG711A)
	}
}

// MPEG-1 system layer (pack and PES headers), with no media header.
func TestMPEG1SystemLayer(t *testing.T) {
	want := hikStream{video: media(t, "h264_sub.h264"), audio: media(t, "tone_1khz_8k.ulaw"), audioType: 0x91, mpeg1: true, noHeader: true}.build(t)
	c := demux(want.ps)
	checkVideo(t, c, want, ps.StreamH264)
	checkAudio(t, c, want, ps.StreamG711U)
	if len(c.headers) != 0 || len(c.errs) != 0 {
		t.Fatalf("headers %v errors %v", c.headers, c.errs)
	}
}

// The PTS wraps at 2^33; units keep counting.
func TestPTSWrap(t *testing.T) {
	want := hikStream{video: media(t, "h264_sub.h264"), ptsBase: 1<<33 - 50*3600}.build(t)
	w := &psWriter{}
	// rewrite with wrapped PTS values
	for i := range want.ausPTS {
		want.ausPTS[i] &= 1<<33 - 1
	}
	_ = w
	c := demux(want.ps)
	got := c.of(0xE0)
	if len(got) != 100 {
		t.Fatalf("%d units", len(got))
	}
	for i := 1; i < len(got); i++ {
		if got[i].PTS-got[i-1].PTS != 3600 {
			t.Fatalf("unit %d: PTS step %d at %d", i, got[i].PTS-got[i-1].PTS, got[i].PTS)
		}
	}
	if got[99].PTS <= 1<<33 {
		t.Fatalf("last PTS %d did not count past the wrap", got[99].PTS)
	}
}

// Garbage between packets, a packet cut short and a bad pack header: the
// demuxer says what happened and resumes at the next pack header.
func TestResync(t *testing.T) {
	want := hikStream{video: media(t, "h264_main.h264"), audio: media(t, "tone_1khz_8k.alaw"), audioType: 0x90}.build(t)
	s := want.ps
	// positions of pack headers
	var packs []int
	for i := 0; ; {
		j := bytes.Index(s[i:], []byte{0, 0, 1, 0xBA})
		if j < 0 {
			break
		}
		packs = append(packs, i+j)
		i += j + 4
	}
	// 1. garbage (with fake start codes) inserted before pack 40
	garbage := []byte("garbage \x00\x00\x01\xE0\x00\x10 more \x00\x00\x01\xC0 and \x00\x00")
	// 2. pack 80 cut in the middle (the rest of its packet lost)
	// 3. pack 120's header corrupted
	var b []byte
	b = append(b, s[:packs[40]]...)
	b = append(b, garbage...)
	b = append(b, s[packs[40]:packs[80]+30]...)
	b = append(b, s[packs[81]:]...)
	b[len(b)-len(s)+packs[120]+4] = 0xFF
	c := demux(b)
	var syncErrs, pktErrs int
	for _, err := range c.errs {
		var se *ps.SyncError
		var pe *ps.PacketError
		switch {
		case errors.As(err, &se):
			syncErrs++
			if !errors.Is(err, ps.ErrSync) || se.Skipped <= 0 {
				t.Errorf("sync error %v", err)
			}
		case errors.As(err, &pe):
			pktErrs++
			if pe.StreamID != 0xBA || !errors.Is(err, ps.ErrPacket) {
				t.Errorf("packet error %v", err)
			}
		default:
			t.Errorf("unexpected error %v", err)
		}
	}
	if syncErrs != 3 || pktErrs != 1 {
		t.Fatalf("%d sync errors and %d packet errors, want 3 and 1: %v", syncErrs, pktErrs, c.errs)
	}
	// every video unit that comes out is one of the written ones, whole,
	// with its PTS, and most of the stream survives
	byPTS := map[int64][]byte{}
	for i, au := range want.aus {
		byPTS[want.ausPTS[i]] = au
	}
	got := c.of(0xE0)
	for _, u := range got {
		if !bytes.Equal(byPTS[u.PTS], u.Data) {
			t.Fatalf("unit at PTS %d is not the written one", u.PTS)
		}
	}
	if len(got) < 90 {
		t.Fatalf("only %d of 100 video units survived 3 faults", len(got))
	}
	d := c.demuxer()
	_, _ = d.Write(b)
	if st := d.Stats(); st.SyncLosses != 3 || st.BadPackets != 1 || st.SkippedBytes < int64(len(garbage)) {
		t.Fatalf("stats %+v", st)
	}
}

// An access unit beyond the cap is dropped with a typed error; the next one
// comes out.
func TestUnitTooLarge(t *testing.T) {
	want := hikStream{video: media(t, "h264_main.h264")}.build(t)
	biggest := 0
	for _, au := range want.aus {
		biggest = max(biggest, len(au))
	}
	c := &collected{}
	d := c.demuxer()
	d.MaxUnitSize = biggest - 1
	_, _ = d.Write(want.ps)
	d.Flush()
	var tooLarge *ps.UnitTooLargeError
	n := 0
	for _, err := range c.errs {
		if errors.As(err, &tooLarge) && errors.Is(err, ps.ErrUnitTooLarge) && tooLarge.StreamID == 0xE0 && tooLarge.Max == biggest-1 {
			n++
		}
	}
	if n == 0 || d.Stats().Oversize != int64(n) {
		t.Fatalf("%d too-large errors, stats %+v", n, d.Stats())
	}
	if got := len(c.of(0xE0)); got != 100-n {
		t.Fatalf("%d units came out, want %d", got, 100-n)
	}
	for _, u := range c.of(0xE0) {
		if len(u.Data) > biggest-1 {
			t.Fatalf("unit of %d bytes passed the cap", len(u.Data))
		}
	}
}

// A program stream map that changes the video stream type is reported, and
// the units follow the new type.
func TestCodecChange(t *testing.T) {
	a := hikStream{video: media(t, "h264_sub.h264"), noHeader: true}.build(t)
	b := hikStream{video: media(t, "h265_main.h265"), h265: true, noHeader: true, ptsBase: 100 * 3600}.build(t)
	c := demux(append(bytes.Clone(a.ps), b.ps...))
	if len(c.tables) != 2 || c.tables[1][0].Type != ps.StreamH265 {
		t.Fatalf("tables %v", c.tables)
	}
	got := c.of(0xE0)
	if len(got) != 200 || got[99].Type != ps.StreamH264 || got[100].Type != ps.StreamH265 || !bytes.Equal(got[150].Data, b.aus[50]) {
		t.Fatalf("%d units across the change", len(got))
	}
	d := c.demuxer()
	_, _ = d.Write(a.ps)
	_, _ = d.Write(b.ps)
	if st := d.Stats(); st.CodecChanges != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// Without a program stream map, a video stream's codec is recognised from
// its first NAL unit.
func TestNoPSM(t *testing.T) {
	for _, tc := range []struct {
		file string
		h265 bool
		typ  ps.StreamType
	}{{"h264_sub.h264", false, ps.StreamH264}, {"h265_main.h265", true, ps.StreamH265}} {
		aus := splitAUD(t, media(t, tc.file), tc.h265)
		w := &psWriter{}
		for i, au := range aus {
			w.pack(int64(i) * 3600)
			w.pes(0xE0, int64(i)*3600, 0, au)
		}
		c := demux(w.Bytes())
		if len(c.tables) != 1 || c.tables[0][0] != (ps.Stream{ID: 0xE0, Type: tc.typ}) {
			t.Fatalf("%s: tables %v", tc.file, c.tables)
		}
		if got := c.of(0xE0); len(got) != len(aus) || !bytes.Equal(got[7].Data, aus[7]) {
			t.Fatalf("%s: %d units", tc.file, len(got))
		}
	}
}

// Units split mid-PES: a PES may end inside one access unit and begin the
// next (as ffmpeg writes it); its PTS belongs to the unit that starts in it.
func TestUnitStartsInsidePES(t *testing.T) {
	aus := splitAUD(t, media(t, "h264_sub.h264"), false)
	all := bytes.Join(aus, nil)
	w := &psWriter{}
	w.pack(0)
	w.psm(0, psmEntry{typ: 0x1B, id: 0xE0})
	// PES 0 covers [0, mid 0); PES i covers [mid i-1, mid i) with the PTS of
	// unit i, which starts inside it; the last one carries no PTS
	start, mid := 0, make([]int, len(aus))
	for i, au := range aus {
		mid[i] = start + len(au)/2
		start += len(au)
	}
	pos := 0
	for i := range aus {
		w.pack(int64(i) * 3600)
		w.pes(0xE0, int64(i)*3600, 0, all[pos:mid[i]])
		pos = mid[i]
	}
	w.pack(0)
	w.pes(0xE0, -1, 0, all[pos:])
	c := demux(w.Bytes())
	got := c.of(0xE0)
	if len(got) != len(aus) {
		t.Fatalf("%d units, want %d", len(got), len(aus))
	}
	for i, u := range got {
		if !bytes.Equal(u.Data, aus[i]) {
			t.Fatalf("unit %d differs", i)
		}
		// unit 0 starts in PES 0 (PTS 0); unit i>0 starts in PES i
		if !u.HasPTS || u.PTS != int64(i)*3600 {
			t.Fatalf("unit %d: PTS %d (%v)", i, u.PTS, u.HasPTS)
		}
	}
}

func TestParseMediaHeader(t *testing.T) {
	w := &psWriter{}
	w.mediaHeader(0x0005, 0x2001, 2, 16, 16000, 32000)
	h, err := ps.ParseMediaHeader(w.Bytes())
	if err != nil || h.Video() != ps.StreamH265 || h.Audio() != ps.StreamAAC || h.AudioChannels != 2 || h.AudioRate != 16000 || h.AudioBitrate != 32000 || h.Version != 0x0101 {
		t.Fatalf("%+v %v", h, err)
	}
	if _, err := ps.ParseMediaHeader(w.Bytes()[:39]); err == nil {
		t.Fatal("39 bytes accepted")
	}
	bad := bytes.Clone(w.Bytes())
	bad[0] = 'X'
	if _, err := ps.ParseMediaHeader(bad); err == nil {
		t.Fatal("wrong magic accepted")
	}
	_ = binary.LittleEndian
}

// Reset forgets the streams: a restarted stream is read as new, the counters
// keep counting.
func TestReset(t *testing.T) {
	a := hikStream{video: media(t, "h264_sub.h264"), audio: media(t, "tone_1khz_8k.alaw"), audioType: 0x90}.build(t)
	c := &collected{}
	d := c.demuxer()
	// stop in the middle of a PES, as a stopped real-play does
	_, _ = d.Write(a.ps[:a.frameAt[50]+100])
	d.Reset()
	_, _ = d.Write(a.ps)
	d.Flush()
	if len(c.errs) != 0 {
		t.Fatalf("errors after Reset: %v", c.errs)
	}
	if len(c.tables) != 2 || len(c.headers) != 2 {
		t.Fatalf("%d tables, %d headers; want the second stream announced again", len(c.tables), len(c.headers))
	}
	got := c.of(0xE0)
	if len(got) != 50+100 || !bytes.Equal(got[50].Data, a.aus[0]) || got[50].PTS != 0 {
		t.Fatalf("%d units; the restarted stream does not start at its first unit", len(got))
	}
	if st := d.Stats(); st.Bytes != int64(a.frameAt[50]+100+len(a.ps)) {
		t.Fatalf("stats %+v", st)
	}
}
