package ps

import "fmt"

// StreamType is the stream_type of a program stream map entry.
type StreamType byte

// Stream types this package knows. Only H.264, H.265, G.711 and AAC (ADTS)
// are assembled into units; the others are named in reports and skipped.
const (
	StreamMPEG1Video StreamType = 0x01
	StreamMPEG2Video StreamType = 0x02
	StreamMPEG1Audio StreamType = 0x03
	StreamMPEG2Audio StreamType = 0x04
	StreamPrivate    StreamType = 0x06
	StreamAAC        StreamType = 0x0F // AAC in ADTS frames
	StreamMPEG4Video StreamType = 0x10
	StreamH264       StreamType = 0x1B
	StreamH265       StreamType = 0x24
	StreamSVAC       StreamType = 0x80
	StreamG711A      StreamType = 0x90
	StreamG711U      StreamType = 0x91
	StreamG7221      StreamType = 0x92
	StreamG7231      StreamType = 0x93
	StreamG729       StreamType = 0x99
)

func (t StreamType) String() string {
	switch t {
	case 0:
		return "none"
	case StreamMPEG1Video:
		return "MPEG-1 video"
	case StreamMPEG2Video:
		return "MPEG-2 video"
	case StreamMPEG1Audio:
		return "MPEG-1 audio"
	case StreamMPEG2Audio:
		return "MPEG-2 audio"
	case StreamPrivate:
		return "private"
	case StreamAAC:
		return "AAC"
	case StreamMPEG4Video:
		return "MPEG-4 video"
	case StreamH264:
		return "H.264"
	case StreamH265:
		return "H.265"
	case StreamSVAC:
		return "SVAC"
	case StreamG711A:
		return "G.711 A-law"
	case StreamG711U:
		return "G.711 mu-law"
	case StreamG7221:
		return "G.722.1"
	case StreamG7231:
		return "G.723.1"
	case StreamG729:
		return "G.729"
	}
	return fmt.Sprintf("0x%02X", byte(t))
}

// IsVideo: the stream carries H.264 or H.265 (the video this package reads).
func (t StreamType) IsVideo() bool { return t == StreamH264 || t == StreamH265 }

// Supported: units of this stream type are assembled.
func (t StreamType) Supported() bool {
	switch t {
	case StreamH264, StreamH265, StreamG711A, StreamG711U, StreamAAC:
		return true
	}
	return false
}

// Stream is one entry of the program stream map.
type Stream struct {
	ID   byte       // elementary_stream_id: 0xE0 video, 0xC0 audio...
	Type StreamType // stream_type
	// FromPSM: named by a program stream map; otherwise recognised from
	// the data of a video stream no map named.
	FromPSM bool
}

// Unit is one complete elementary-stream unit: a video access unit in
// Annex B (start codes kept as received), one PES payload of G.711, or one
// ADTS frame (header included) of AAC.
//
// Data is borrowed: it is valid only during the OnUnit call.
type Unit struct {
	StreamID byte
	Type     StreamType
	// PTS in 90 kHz ticks, unwrapped (it keeps counting past the 33-bit
	// wrap). Valid if HasPTS; otherwise the PES carried none and the caller
	// extrapolates.
	PTS    int64
	HasPTS bool
	// Keyframe: a video unit with an IDR/IRAP slice.
	Keyframe bool
	Data     []byte
}
