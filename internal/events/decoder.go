package events

import (
	"bytes"
	"errors"
	"io"
	"strings"
)

// DecoderStats counts what a Decoder saw.
type DecoderStats struct {
	Parts          int // parts read
	Alerts         int // event reports (not heartbeats)
	Heartbeats     int
	Pictures       int // pictures attached to their event
	OrphanPictures int // pictures no event announced (dropped)
	BadParts       int // parts that did not decode (see LastError)
}

// Decoder reads Alerts from an alert-stream body.
type Decoder struct {
	pr       *PartReader
	channels ChannelMapper
	pending  *Part
	stats    DecoderStats
	lastErr  error
}

// NewDecoder reads the alert stream body r whose response Content-Type is contentType. channels maps
// channel fields to our numbers (nil = DefaultChannels).
func NewDecoder(r io.Reader, contentType string, channels ChannelMapper) *Decoder {
	if channels == nil {
		channels = DefaultChannels
	}
	return &Decoder{pr: NewPartReader(r, contentType, 0), channels: channels}
}

// Stats returns the counters so far.
func (d *Decoder) Stats() DecoderStats { return d.stats }

// LastError is the last part that failed to decode (a *PartError), nil if none.
func (d *Decoder) LastError() error { return d.lastErr }

// Boundary is the multipart boundary in use (see PartReader.Boundary).
func (d *Decoder) Boundary() string { return d.pr.Boundary() }

func (d *Decoder) next() (*Part, error) {
	if p := d.pending; p != nil {
		d.pending = nil
		return p, nil
	}
	p, err := d.pr.Next()
	if err == nil {
		d.stats.Parts++
	}
	return p, err
}

func isPicture(p *Part) bool {
	return strings.HasPrefix(p.ContentType, "image/") ||
		(p.ContentType == "" || p.ContentType == "application/octet-stream") && bytes.HasPrefix(p.Body, []byte{0xFF, 0xD8})
}

// Next returns the next alert (event or heartbeat). Parts that do not decode are counted and skipped.
// A picture announced by an event (detectionPictureTransType binary, picturesNumber) is read with it:
// the first one becomes Alert.Picture. It returns io.EOF when the device ended the stream.
func (d *Decoder) Next() (Alert, error) {
	for {
		p, err := d.next()
		if err != nil {
			return Alert{}, err
		}
		if isPicture(p) {
			d.stats.OrphanPictures++
			continue
		}
		a, err := ParseAlert(p.ContentType, p.Body)
		if err != nil {
			d.stats.BadParts++
			d.lastErr = &PartError{ContentType: p.ContentType, Err: err}
			continue
		}
		switch {
		case a.Type == TypeRing || a.Type == TypeCall:
			a.Channel = 0 // the station as a whole, whatever channel the report names (as callStatus)
		case a.Type == TypeIO && a.IDs.IOPort > 0:
			a.Channel = a.IDs.IOPort
		case a.Heartbeat && a.IDs == (ChannelIDs{}):
			a.Channel = 0
		default:
			a.Channel = d.channels(a.IDs)
		}
		if a.Heartbeat {
			d.stats.Heartbeats++
		} else {
			d.stats.Alerts++
		}
		for i := 0; i < a.Pictures && i < 8; i++ {
			q, err := d.next()
			if err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return a, nil // the error shows again on the next call
			}
			if !isPicture(q) {
				d.pending = q
				break
			}
			if a.Picture == nil {
				a.Picture = q.Body
				d.stats.Pictures++
			}
		}
		return a, nil
	}
}
