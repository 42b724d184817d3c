// Package ps reads the real-play stream of Hikvision's device network SDK:
// an optional 40-byte media header followed by an MPEG program stream, pushed
// in chunks whose boundaries fall anywhere. Demuxer turns it into elementary
// stream units (H.264/H.265 access units, G.711 blocks, AAC ADTS frames);
// Source turns those into go2rtc medias and packets. Pure Go, no cgo.
//
// # Facts relied on, and where they come from
//
// Program stream system layer, ISO/IEC 13818-1 (MPEG-2 systems) 2.5.3 and
// 2.4.3.6/2.4.3.7:
//   - Every packet starts with the prefix 00 00 01 and a stream id of 0xB9 or
//     more: 0xBA pack header, 0xBB system header, 0xBC program stream map,
//     0xB9 end code, PES packets for the rest (0xE0-0xEF video, 0xC0-0xDF
//     audio, 0xBD private stream 1). Only zero bytes may come between
//     packets.
//   - An MPEG-2 pack header is 10 bytes after the start code (first two bits
//     01, marker bits at fixed places), then 0-7 stuffing bytes given by the
//     low 3 bits of its last byte.
//   - Every packet but the pack header has a 16-bit length after the stream
//     id. The packets 0xBC, 0xBE (padding), 0xBF (private stream 2), 0xF0,
//     0xF1, 0xF2, 0xF8 and 0xFF carry no PES header.
//   - A PES header (first bits 10) has two flag bytes and a header length;
//     PTS_DTS_flags 10 or 11 put a 33-bit PTS (90 kHz) in the first five
//     bytes of the optional fields, split 3+15+15 bits with marker bits.
//     A PES length of 0 (unbounded) is allowed only for video in transport
//     streams; this package treats it as malformed.
//   - The PTS of a PES applies to the first access unit that starts in the
//     packet's payload, so a unit that starts in a packet without PTS, or
//     after another unit started in the same packet, has none: Unit.HasPTS
//     is false and Source extrapolates from the last step.
//   - The program stream map lists stream_type and elementary_stream_id
//     pairs (with descriptors) after current_next_indicator, version and
//     program_stream_info; a CRC_32 ends it. Only a map with
//     current_next_indicator 1 applies. The CRC is not checked.
//   - stream_type 0x1B is H.264, 0x24 H.265, 0x0F AAC in ADTS (ISO/IEC
//     13818-1 Table 2-34).
//
// MPEG-1 system layer, ISO/IEC 11172-1: pack headers start with the bits 0010
// and are 8 bytes after the start code; PES headers are up to 16 stuffing
// bytes 0xFF, an optional 2-byte STD buffer field (bits 01), then a PTS (bits
// 0010), PTS and DTS (0011), or the byte 0x0F. ffmpeg's "mpeg" muxer writes
// this layer.
//
// Access units, ITU-T H.264 7.4.1.2.3 and ITU-T H.265 7.4.2.4.4: after a
// picture's slices, an access unit delimiter, a parameter set, SEI (prefix SEI
// in H.265) or the first slice of the next picture begins the next access
// unit. The first slice of a picture has first_mb_in_slice 0 (H.264: ue(v)
// right after the 1-byte NAL header, 0 exactly when its first bit is 1) or
// first_slice_segment_in_pic_flag 1 (H.265: the first bit after the 2-byte NAL
// header). NAL payloads never contain 00 00 01 (emulation prevention), so a
// start code found in the stream is real. Splitting on these rules works for
// any PES layout; the price is that a video unit is handed out when the next
// one begins (one frame of delay), or at Flush.
//
// ADTS, ISO/IEC 14496-3 1.A.2: sync word 0xFFF, a 13-bit frame_length that
// includes the 7-byte header (9 with CRC), the sampling frequency index
// (96000 ... 7350 Hz), 1024 samples per frame.
//
// Hikvision's media header: 40 bytes, little endian, laid out as the vendor's
// public player SDK header describes its media information structure
// (four-character code 0x484B4D49, which reads "IMKH" in byte order): u32
// code, u16 version, u16 device id, u16 system format (2 = MPEG-2 PS), u16
// video format (0x0100 H.264, 1 the vendor's older H.264, 5 H.265), u16
// audio format (0x7110 G.711 mu-law, 0x7111 G.711 A-law, 0x2001 AAC, 0x7221
// G.722.1, 0x7260/0x7261 G.726 ...), u8 channels, u8 bits per sample, u32
// sample rate, u32 bit rate, 16 reserved bytes. The SDK delivers it as a
// separate "system header" data type before the stream; Write accepts it at
// any packet boundary.
//
// Hikvision's program stream, public observations of its SDK and RTP
// streams: each video frame begins with a pack header; key frames also carry
// a system header and a program stream map; a frame is cut into several PES
// packets (often one per NAL unit, large slices cut further) that all carry
// the frame's PTS; audio frames come in their own packs with PES id 0xC0;
// stream types 0x90 (G.711 A-law) and 0x91 (G.711 mu-law) are private
// assignments, the same ones GB/T 28181 devices use and go2rtc's MPEG-TS
// code names PCMA/PCMU; 0x92 G.722.1, 0x93 G.723.1, 0x99 G.729 and 0x80
// (SVAC) are named but not read. The tests' stream writer builds this layout
// from the project's test media.
//
// ffmpeg 5.1's MPEG-PS muxers ("mpeg", "vob", "svcd", "dvd"), observed in
// this package's tests: they write no program stream map, use stream id 0xE2
// for H.264 and 0xE0 for H.265, fill PES packets up to the pack size so one
// PES holds the end of a frame and the start of the next, and refuse G.711
// and AAC. So a video stream no map names is recognised from its first NAL
// header.
//
// go2rtc v1.9.14 conventions (its pkg/core, pkg/h264, pkg/h265, pkg/aac,
// pkg/mpegts and pkg/dvrip sources): a producer hands receivers "raw"
// packets, codec PayloadType core.PayloadTypeRAW, rtp.Packet.Version 0, one
// H.264/H.265 access unit per packet in AVCC form (4-byte lengths, no access
// unit delimiters) with a 90 kHz timestamp, one AAC frame without its ADTS
// header per packet at the sample rate; its consumers packetise with
// h264.RTPPay / h265.RTPPay / aac.RTPPay as they need. G.711 travels as RTP
// at 8 kHz. Receivers queue packets in senders' channels and read them later
// on other goroutines, so every packet and payload must be new: Source
// allocates them (2 allocations per packet); the Demuxer itself reuses its
// buffers and allocates nothing in steady state. go2rtc's H.265 depacketiser
// does not split aggregation packets, which its own payloader makes from
// VPS/SPS/PPS: use the raw form (the default) inside go2rtc.
package ps
