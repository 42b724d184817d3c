package ps

import (
	"errors"
	"fmt"
)

// Sentinels for errors.Is. The typed errors below wrap exactly one of them.
var (
	// ErrSync: the bytes at a packet boundary were not a start code (or a
	// media header); the demuxer skipped to the next pack header.
	ErrSync = errors.New("ps: lost sync")
	// ErrPacket: a system-layer packet (pack header, PSM, PES header) was
	// malformed; the demuxer skipped to the next pack header.
	ErrPacket = errors.New("ps: malformed packet")
	// ErrUnitTooLarge: an access unit grew past the configured cap and was
	// dropped.
	ErrUnitTooLarge = errors.New("ps: unit too large")
	// ErrCodecChanged: the program stream map changed the codec of a stream
	// whose media was already handed out; the stream must be restarted.
	ErrCodecChanged = errors.New("ps: codec changed")
)

// SyncError reports bytes skipped while looking for the next pack header.
type SyncError struct {
	Offset  int64 // stream offset where the expected start code was missing
	Skipped int64 // bytes skipped until the next pack header (0 while still searching)
}

func (e *SyncError) Error() string {
	return fmt.Sprintf("ps: lost sync at byte %d, skipped %d bytes", e.Offset, e.Skipped)
}

func (e *SyncError) Unwrap() error { return ErrSync }

// PacketError names the packet (by stream id) and what was wrong with it.
type PacketError struct {
	Offset   int64 // stream offset of the packet's start code
	StreamID byte  // 0xBA pack header, 0xBC program stream map, 0xE0 video PES...
	Reason   string
}

func (e *PacketError) Error() string {
	return fmt.Sprintf("ps: packet 0x%02X at byte %d: %s", e.StreamID, e.Offset, e.Reason)
}

func (e *PacketError) Unwrap() error { return ErrPacket }

// UnitTooLargeError: a unit of stream StreamID grew past Max bytes; it was
// dropped.
type UnitTooLargeError struct {
	StreamID byte
	Max      int
}

func (e *UnitTooLargeError) Error() string {
	return fmt.Sprintf("ps: stream 0x%02X: unit larger than the cap of %d bytes dropped", e.StreamID, e.Max)
}

func (e *UnitTooLargeError) Unwrap() error { return ErrUnitTooLarge }

// CodecChangeError: stream StreamID changed from Old to New after its media
// was described.
type CodecChangeError struct {
	StreamID byte
	Old, New StreamType
}

func (e *CodecChangeError) Error() string {
	return fmt.Sprintf("ps: stream 0x%02X changed codec from %s to %s", e.StreamID, e.Old, e.New)
}

func (e *CodecChangeError) Unwrap() error { return ErrCodecChanged }
