package events

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"strconv"
	"strings"
)

// Errors of the multipart reader.
var (
	// ErrNoBoundary: the body never showed a "--boundary" line (nothing to split on).
	ErrNoBoundary = errors.New("events: alert stream has no multipart boundary line")
	// ErrPartTooLarge: a part exceeded MaxPartSize; it was skipped.
	ErrPartTooLarge = errors.New("events: alert stream part too large")
)

// DefaultMaxPartSize bounds one part (an event picture is the largest: a few hundred KiB).
const DefaultMaxPartSize = 4 << 20

// maxPreamble is how much the reader skips looking for the first boundary line.
const maxPreamble = 64 << 10

// Part is one part of the alert stream.
type Part struct {
	ContentType   string // media type, lower case, without parameters ("" when the part had none)
	ContentLength int    // -1 when absent or unusable
	Body          []byte
}

// PartReader splits a long-lived multipart/mixed (or x-mixed-replace) body into parts. It trusts what
// the body shows over what the headers claim: the boundary is taken from the body's first "--" line when
// it differs from the announced one, duplicate boundary lines are skipped, a boundary glued to the end
// of a text line still ends the part, and Content-Length is only used for binary parts.
type PartReader struct {
	br        *bufio.Reader
	pb        *pushback // under br: bytes pushed back in front of the body
	announced string    // boundary from Content-Type, "" if none
	boundary  string    // boundary in use, without the leading "--"
	started   bool      // the first boundary line was consumed
	sync      bool      // a part was returned before its closing delimiter line: skip to it first
	done      bool      // closing delimiter seen
	max       int
	line      []byte // scratch
}

// NewPartReader reads parts from r. contentType is the response's Content-Type header (may be empty or
// wrong). maxPart ≤ 0 means DefaultMaxPartSize.
func NewPartReader(r io.Reader, contentType string, maxPart int) *PartReader {
	if maxPart <= 0 {
		maxPart = DefaultMaxPartSize
	}
	pb := &pushback{r: r}
	p := &PartReader{br: bufio.NewReaderSize(pb, 32<<10), pb: pb, max: maxPart}
	if _, params, err := mime.ParseMediaType(contentType); err == nil {
		p.announced = strings.TrimSpace(params["boundary"])
	} else if i := indexFold(contentType, "boundary="); i >= 0 {
		p.announced = strings.Trim(strings.TrimSpace(contentType[i+len("boundary="):]), `"`)
	}
	p.announced = strings.TrimPrefix(p.announced, "--")
	return p
}

// indexFold is strings.Index ignoring ASCII case (byte offsets of s, whatever its encoding).
func indexFold(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return i
		}
	}
	return -1
}

// Boundary is the boundary in use ("" before the first part). It differs from Announced on devices
// whose header and body disagree.
func (p *PartReader) Boundary() string { return p.boundary }

// Announced is the boundary the Content-Type header gave ("" if none).
func (p *PartReader) Announced() string { return p.announced }

// readLine reads one line including its end ("\n" or "\r\n"); the last line of the stream may have no
// end. It returns at most limit bytes; a longer line gives ErrPartTooLarge after consuming it.
func (p *PartReader) readLine(limit int) ([]byte, error) {
	p.line = p.line[:0]
	tooLong := false
	for {
		frag, err := p.br.ReadSlice('\n')
		if !tooLong {
			if len(p.line)+len(frag) > limit {
				tooLong = true
			} else {
				p.line = append(p.line, frag...)
			}
		}
		switch {
		case err == nil:
			if tooLong {
				return nil, ErrPartTooLarge
			}
			return p.line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			if tooLong {
				return nil, ErrPartTooLarge
			}
			if len(p.line) > 0 && errors.Is(err, io.EOF) {
				return p.line, nil
			}
			return nil, err
		}
	}
}

func trimEOL(b []byte) []byte { return bytes.TrimRight(b, "\r\n") }

// delimiter reports whether line is a boundary line: 0 no, 1 delimiter, 2 closing delimiter.
func (p *PartReader) delimiter(line []byte) int {
	t := bytes.TrimRight(line, " \t\r\n")
	if len(t) < 2+len(p.boundary) || t[0] != '-' || t[1] != '-' || string(t[2:2+len(p.boundary)]) != p.boundary {
		return 0
	}
	switch rest := string(t[2+len(p.boundary):]); rest {
	case "":
		return 1
	case "--":
		return 2
	}
	return 0
}

// start finds the boundary in use from the body's first boundary line.
func (p *PartReader) start() error {
	skipped := 0
	for {
		line, err := p.readLine(maxPreamble)
		if err != nil {
			if errors.Is(err, ErrPartTooLarge) {
				return ErrNoBoundary
			}
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("%w (stream ended)", ErrNoBoundary)
			}
			return err
		}
		skipped += len(line)
		t := bytes.TrimSpace(line)
		switch {
		case len(t) == 0:
		case bytes.HasPrefix(t, []byte("--")) && len(t) > 2:
			b := string(bytes.TrimPrefix(t, []byte("--")))
			if p.announced != "" && b == p.announced+"--" {
				b = p.announced // a closing delimiter first: odd, but the boundary is known
			}
			p.boundary = b
			p.started = true
			return nil
		case p.announced != "" && hasHeaderPrefix(t, "content-type:"):
			// headers of a first part sent without its delimiter line: use the announced boundary and
			// read this part's headers from here
			p.boundary = p.announced
			p.started = true
			p.unread(line)
			return nil
		}
		if skipped > maxPreamble {
			return ErrNoBoundary
		}
	}
}

// pushback is the body reader with bytes put back in front.
type pushback struct {
	front []byte
	r     io.Reader
}

func (b *pushback) Read(p []byte) (int, error) {
	if len(b.front) > 0 {
		n := copy(p, b.front)
		b.front = b.front[n:]
		return n, nil
	}
	return b.r.Read(p)
}

// unread pushes bytes back in front of what the buffered reader holds.
func (p *PartReader) unread(data []byte) {
	front := append(append([]byte(nil), data...), bufferedBytes(p.br)...)
	p.pb.front = append(front, p.pb.front...)
	p.br.Reset(p.pb)
}

// bufferedBytes drains what br has buffered without reading further.
func bufferedBytes(br *bufio.Reader) []byte {
	b, _ := br.Peek(br.Buffered())
	out := append([]byte(nil), b...)
	_, _ = br.Discard(len(out))
	return out
}

func hasHeaderPrefix(line []byte, prefix string) bool {
	return len(line) >= len(prefix) && strings.EqualFold(string(line[:len(prefix)]), prefix)
}

// Next returns the next part. Bad parts (too large) are skipped. It returns io.EOF when the stream ended
// (closing delimiter or end of body), or the read error.
func (p *PartReader) Next() (*Part, error) {
	if p.done {
		return nil, io.EOF
	}
	if !p.started {
		if err := p.start(); err != nil {
			return nil, err
		}
	}
	for {
		part, err := p.readPart()
		if errors.Is(err, ErrPartTooLarge) {
			if err := p.skipToDelimiter(); err != nil {
				return nil, err
			}
			continue
		}
		return part, err
	}
}

// readPart reads headers and body of one part; the delimiter line before it was consumed (or sync says
// it is still to be read).
func (p *PartReader) readPart() (*Part, error) {
	if p.sync {
		p.sync = false
		if err := p.skipToDelimiter(); err != nil {
			return nil, eof(err)
		}
		if p.done {
			return nil, io.EOF
		}
	}
	part := &Part{ContentLength: -1}
	var first []byte // a body line met where a header was expected
	for n := 0; ; n++ {
		line, err := p.readLine(8 << 10)
		if err != nil {
			if errors.Is(err, ErrPartTooLarge) {
				return nil, err
			}
			return nil, eof(err)
		}
		if d := p.delimiter(line); d != 0 {
			if d == 2 {
				p.done = true
				return nil, io.EOF
			}
			// duplicate delimiter (seen on cameras): start this part again
			*part = Part{ContentLength: -1}
			continue
		}
		t := trimEOL(line)
		if len(t) == 0 {
			if n == 0 {
				continue // blank line right after the delimiter: some devices add one
			}
			break
		}
		name, value, ok := strings.Cut(string(t), ":")
		if !ok || strings.ContainsAny(name, " <{\t") || n > 64 {
			first = append([]byte(nil), line...) // no headers: this is already the body
			break
		}
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "content-type":
			mt, _, err := mime.ParseMediaType(strings.TrimSpace(value))
			if err != nil {
				mt, _, _ = strings.Cut(strings.TrimSpace(value), ";")
			}
			part.ContentType = strings.ToLower(strings.TrimSpace(mt))
		case "content-length":
			if n, err := strconv.Atoi(strings.TrimSpace(value)); err == nil && n >= 0 {
				part.ContentLength = n
			}
		}
	}
	binary := strings.HasPrefix(part.ContentType, "image/") || part.ContentType == "application/octet-stream"
	body := first
	if part.ContentLength > p.max {
		return nil, ErrPartTooLarge
	}
	if part.ContentLength > 0 && first == nil {
		// Read what Content-Length announces without waiting for the next delimiter (it only comes with
		// the next part, maybe much later). A delimiter inside means the length was too long.
		for len(body) < part.ContentLength {
			if p.br.Buffered() == 0 {
				if _, err := p.br.Peek(1); err != nil {
					if errors.Is(err, io.EOF) && len(body) > 0 {
						p.done = true
						part.Body = trimBody(body, binary)
						return part, nil
					}
					return nil, eof(err)
				}
			}
			chunk, _ := p.br.Peek(min(p.br.Buffered(), part.ContentLength-len(body)))
			from := len(body)
			body = append(body, chunk...)
			_, _ = p.br.Discard(len(chunk))
			if i := p.delimiterIn(body, from); i >= 0 {
				rest := body[i:]
				body = body[:i]
				p.unread(rest)
				return p.finishAtDelimiter(part, body, binary)
			}
		}
		if binary || newCompleter().complete(body, 0) {
			p.sync = true // the delimiter line is read before the next part
			part.Body = trimBody(body, binary)
			return part, nil
		}
		// too short: go on line by line up to the delimiter
	}
	doc := newCompleter()
	for {
		line, err := p.readLine(p.max)
		if err != nil {
			if errors.Is(err, io.EOF) {
				p.done = true
				part.Body = trimBody(body, binary)
				if len(part.Body) == 0 {
					return nil, io.EOF
				}
				return part, nil
			}
			return nil, err
		}
		if d := p.delimiter(line); d != 0 {
			p.done = d == 2
			part.Body = trimBody(body, binary)
			return part, nil
		}
		if !binary {
			// "</EventNotificationAlert>--boundary": the delimiter glued to the last text line
			t := bytes.TrimRight(line, " \t\r\n")
			if i := bytes.LastIndex(t, []byte("--"+p.boundary)); i > 0 && i+2+len(p.boundary) == len(t) {
				body = append(body, t[:i]...)
				part.Body = trimBody(body, binary)
				return part, nil
			}
		}
		if len(body)+len(line) > p.max {
			return nil, ErrPartTooLarge
		}
		from := len(body)
		body = append(body, line...)
		if !binary && part.ContentLength < 0 && doc.complete(body, from) {
			// no length: a complete document is returned at once, not when the next part starts
			p.sync = true
			part.Body = trimBody(body, binary)
			return part, nil
		}
	}
}

// delimiterIn finds a delimiter line inside body (at its start or after a line end) that ends at or
// after from (the bytes before from were searched already); -1 if none.
func (p *PartReader) delimiterIn(body []byte, from int) int {
	d := []byte("--" + p.boundary)
	for off := max(0, from-len(d)-1); ; {
		i := bytes.Index(body[off:], d)
		if i < 0 {
			return -1
		}
		i += off
		if i == 0 || body[i-1] == '\n' {
			return i
		}
		off = i + 1
	}
}

// finishAtDelimiter ends a part whose body stopped at a delimiter that was pushed back.
func (p *PartReader) finishAtDelimiter(part *Part, body []byte, binary bool) (*Part, error) {
	p.sync = true
	part.Body = trimBody(body, binary)
	return part, nil
}

// completer tells, as a text body grows, whether it is a whole document: XML whose root element has
// closed, or one complete JSON value. It looks at each byte once (no rescans as the body grows).
type completer struct {
	kind     byte   // 0 unknown yet, '<' XML, '{' JSON, 'x' neither (never complete)
	closing  []byte // XML: "</root>"
	depth    int    // JSON: nesting depth outside strings
	inString bool
	escaped  bool
	scanned  int // JSON: bytes scanned
}

func newCompleter() *completer { return &completer{} }

// complete is called with the whole body after bytes were appended at from.
func (c *completer) complete(body []byte, from int) bool {
	if c.kind == 0 {
		t := bytes.TrimLeft(body, " \t\r\n")
		if len(t) == 0 {
			return false
		}
		switch t[0] {
		case '<':
			c.kind = '<'
		case '{':
			c.kind = '{'
			c.scanned = len(body) - len(t)
		default:
			c.kind = 'x'
		}
	}
	switch c.kind {
	case '<':
		if c.closing == nil {
			c.closing = xmlClosingTag(body)
			if c.closing == nil {
				if len(body) > 4096 { // no root element in sight: wait for the delimiter
					c.kind = 'x'
				}
				return false
			}
		}
		return bytes.HasSuffix(bytes.TrimRight(body, " \t\r\n"), c.closing)
	case '{':
		ended := false
		for ; c.scanned < len(body); c.scanned++ {
			b := body[c.scanned]
			switch {
			case c.escaped:
				c.escaped = false
			case c.inString && b == '\\':
				c.escaped = true
			case b == '"':
				c.inString = !c.inString
			case c.inString:
			case b == '{' || b == '[':
				c.depth++
			case b == '}' || b == ']':
				c.depth--
				if c.depth == 0 {
					ended = true
				}
			}
		}
		if !ended {
			return false
		}
		if json.Valid(bytes.TrimSpace(body)) {
			return true
		}
		c.kind = 'x' // not one JSON value: wait for the delimiter
	}
	return false
}

// xmlClosingTag returns "</root>" for the root element of an XML body, nil while it is not known yet.
func xmlClosingTag(body []byte) []byte {
	s := bytes.TrimLeft(body, " \t\r\n")
	for len(s) > 1 && s[0] == '<' && (s[1] == '?' || s[1] == '!') { // declaration, comment, doctype
		i := bytes.IndexByte(s, '>')
		if i < 0 {
			return nil
		}
		s = bytes.TrimLeft(s[i+1:], " \t\r\n")
	}
	if len(s) < 2 || s[0] != '<' {
		return nil
	}
	end := bytes.IndexAny(s[1:], " \t\r\n/>")
	if end <= 0 {
		return nil
	}
	return append(append([]byte("</"), s[1:1+end]...), '>')
}

// trimBody drops the line end that belongs to the next delimiter (text parts: all surrounding space).
func trimBody(b []byte, binary bool) []byte {
	if binary {
		b = bytes.TrimSuffix(b, []byte("\n"))
		return bytes.TrimSuffix(b, []byte("\r"))
	}
	return bytes.TrimSpace(b)
}

// skipToDelimiter discards input up to and including the next delimiter line.
func (p *PartReader) skipToDelimiter() error {
	for {
		line, err := p.readLine(p.max)
		if err != nil && !errors.Is(err, ErrPartTooLarge) {
			return err
		}
		if err == nil {
			switch p.delimiter(line) {
			case 1:
				return nil
			case 2:
				p.done = true
				return nil
			}
		}
	}
}

func eof(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return io.EOF
	}
	return err
}
