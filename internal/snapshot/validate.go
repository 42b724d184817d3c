package snapshot

import (
	"bytes"
	"fmt"
	"regexp"
)

// Validate checks that body is one whole JPEG, as a device snapshot must be, and
// returns it without the trailing zero padding some devices add. A body that is
// not a whole JPEG gives a *FetchError whose Reason says what it was instead:
// ReasonEmpty, ReasonXML, ReasonHTML, ReasonNotJPEG or ReasonTruncated.
//
// Checked: the SOI FF D8 FF at the start; the marker segments up to the first
// start-of-scan lie within the body and include a frame header (SOF); scan data
// follows; the body ends with EOI FF D9 once trailing zero bytes are trimmed.
// The image is not decoded.
func Validate(body []byte) ([]byte, error) {
	if len(body) == 0 {
		return nil, &FetchError{Reason: ReasonEmpty, Detail: "device answered 0 bytes"}
	}
	if len(body) < 3 || body[0] != 0xFF || body[1] != 0xD8 || body[2] != 0xFF {
		return nil, sniffNotJPEG(body)
	}
	end := len(body)
	for end > 0 && body[end-1] == 0 {
		end--
	}
	b := body[:end:end]

	truncated := func(format string, a ...any) error {
		return &FetchError{Reason: ReasonTruncated, Detail: fmt.Sprintf(format, a...) + fmt.Sprintf(" (%d bytes)", len(body))}
	}
	sawSOF := false
	i := 2
	for {
		if i >= end {
			return nil, truncated("JPEG headers cut at byte %d", i)
		}
		if b[i] != 0xFF {
			return nil, truncated("no JPEG marker at byte %d", i)
		}
		for i < end && b[i] == 0xFF { // fill bytes
			i++
		}
		if i >= end {
			return nil, truncated("JPEG headers cut at byte %d", i)
		}
		m := b[i]
		i++
		switch {
		case m == 0x01 || (m >= 0xD0 && m <= 0xD7): // TEM, RSTn: no length
			continue
		case m == 0xD9:
			return nil, truncated("EOI before any image data")
		case m == 0x00 || m == 0xD8:
			return nil, truncated("bad JPEG marker FF %02X at byte %d", m, i-1)
		}
		if i+2 > end {
			return nil, truncated("JPEG segment FF %02X cut at byte %d", m, i)
		}
		n := int(b[i])<<8 | int(b[i+1])
		if n < 2 || i+n > end {
			return nil, truncated("JPEG segment FF %02X of %d bytes at byte %d runs past the end", m, n, i)
		}
		i += n
		if m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC {
			sawSOF = true
		}
		if m == 0xDA {
			break
		}
	}
	if !sawSOF {
		return nil, truncated("no JPEG frame header (SOF) before the scan")
	}
	if end-2 <= i {
		return nil, truncated("no scan data")
	}
	if b[end-2] != 0xFF || b[end-1] != 0xD9 {
		return nil, truncated("no JPEG end marker FF D9")
	}
	return b, nil
}

var (
	reStatusCode    = regexp.MustCompile(`<(?:\w+:)?statusCode>\s*([0-9]{1,3})\s*<`)
	reStatusString  = regexp.MustCompile(`<(?:\w+:)?statusString>\s*([A-Za-z0-9 ]{1,40})\s*<`)
	reSubStatusCode = regexp.MustCompile(`<(?:\w+:)?subStatusCode>\s*([A-Za-z0-9_]{1,40})\s*<`)
)

// sniffNotJPEG says what a body that is not a JPEG looks like. Only the
// ResponseStatus codes are quoted from an XML body, never free text.
func sniffNotJPEG(body []byte) error {
	head := body
	if len(head) > 512 {
		head = head[:512]
	}
	t := bytes.TrimLeft(head, "\xef\xbb\xbf \t\r\n")
	lower := bytes.ToLower(t)
	switch {
	case bytes.HasPrefix(lower, []byte("<!doctype html")) || bytes.HasPrefix(lower, []byte("<html")):
		return &FetchError{Reason: ReasonHTML, Detail: fmt.Sprintf("device answered an HTML page (%d bytes)", len(body))}
	case bytes.HasPrefix(t, []byte("<")):
		d := "device answered XML"
		if m := reStatusCode.FindSubmatch(head); m != nil {
			d += ": statusCode " + string(m[1])
		}
		if m := reStatusString.FindSubmatch(head); m != nil {
			d += " " + string(m[1])
		}
		if m := reSubStatusCode.FindSubmatch(head); m != nil {
			d += " (" + string(m[1]) + ")"
		}
		return &FetchError{Reason: ReasonXML, Detail: d}
	}
	n := min(len(body), 4)
	return &FetchError{Reason: ReasonNotJPEG, Detail: fmt.Sprintf("body starts % X, not a JPEG SOI (%d bytes)", body[:n], len(body))}
}
