package bench

import (
	"bytes"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"
)

// DelayProxy is a TCP proxy that delays every byte by a fixed one-way delay
// in each direction, with unlimited bandwidth and in order: a link with a
// round trip of 2×OneWay between go2rtc and a simulated device. A new
// connection costs one round trip too (the connect of a real link): what the
// client sends first reaches the device one round trip plus one way after
// the accept.
//
// It records the round trips of every connection (see RoundTrips), so that
// a bench can count how many sequential device round trips a start took.
type DelayProxy struct {
	OneWay time.Duration
	Name   string // names its round trips ("isapi", "rtsp"); set before use
	target string
	ln     net.Listener

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	trips  []RoundTrip
	closed bool
	wg     sync.WaitGroup
	done   chan struct{}
}

// RoundTrip is one request→answer turn-around of one connection as the
// emulated link sees it: Start is when the request left the client (for the
// first request of a connection no earlier than the end of its connect),
// End when the first byte of the answer reached the client. A connect is a
// round trip of its own (Connect set).
type RoundTrip struct {
	Link       string // DelayProxy.Name
	Conn       int
	Start, End time.Time
	Connect    bool
	Request    string // the first line of the request (up to 60 bytes); "" for a connect
}

// String is "isapi#3 GET /ISAPI/System/deviceInfo HTTP/1.1" or "isapi#3 connect".
func (t RoundTrip) String() string {
	if t.Connect {
		return fmt.Sprintf("%s#%d connect", t.Link, t.Conn)
	}
	return fmt.Sprintf("%s#%d %s", t.Link, t.Conn, t.Request)
}

// NewDelayProxy listens on listen ("127.0.0.2:8554") and forwards every
// connection to target with oneWay delay each way; name names the link in
// its round trips. Close stops it.
func NewDelayProxy(name, listen, target string, oneWay time.Duration) (*DelayProxy, error) {
	if oneWay < 0 {
		return nil, fmt.Errorf("bench: delay proxy: negative one-way delay %v", oneWay)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("bench: delay proxy: listen %s: %w", listen, err)
	}
	p := &DelayProxy{Name: name, OneWay: oneWay, target: target, ln: ln, conns: map[net.Conn]struct{}{}, done: make(chan struct{})}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr is the proxy's listen address.
func (p *DelayProxy) Addr() string { return p.ln.Addr().String() }

// Close stops listening, closes every proxied connection and waits for the
// proxy's goroutines.
func (p *DelayProxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.done)
	err := p.ln.Close()
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

// RoundTrips returns the round trips recorded so far that started and ended
// within [from, to].
func (p *DelayProxy) RoundTrips(from, to time.Time) []RoundTrip {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []RoundTrip
	for _, t := range p.trips {
		if !t.Start.Before(from) && !t.End.After(to) {
			out = append(out, t)
		}
	}
	return out
}

// SequentialChain is the round trips SequentialRoundTrips counts, in order.
func SequentialChain(trips []RoundTrip) []RoundTrip {
	trips = slices.Clone(trips)
	slices.SortFunc(trips, func(a, b RoundTrip) int { return a.End.Compare(b.End) })
	var out []RoundTrip
	for _, t := range trips {
		if len(out) == 0 || !t.Start.Before(out[len(out)-1].End) {
			out = append(out, t)
		}
	}
	return out
}

// SequentialRoundTrips is the largest number of the trips that took place
// one after another (each starting no earlier than the previous one ended):
// the round trips a start waited for in sequence. Round trips that overlap
// (concurrent requests) count once.
func SequentialRoundTrips(trips []RoundTrip) int { return len(SequentialChain(trips)) }

func (p *DelayProxy) acceptLoop() {
	defer p.wg.Done()
	for id := 1; ; id++ {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		accepted := time.Now()
		dev, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close() // the device refused: so does the link
			continue
		}
		if !p.track(c, dev) {
			return
		}
		l := &link{p: p, id: id, connected: accepted.Add(2 * p.OneWay)}
		p.record(RoundTrip{Link: p.Name, Conn: id, Start: accepted, End: l.connected, Connect: true})
		p.wg.Add(2)
		go l.pipe(c, dev, true)
		go l.pipe(dev, c, false)
	}
}

// track registers a connection pair; false when the proxy is closing.
func (p *DelayProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		for _, c := range cs {
			_ = c.Close()
		}
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *DelayProxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
		_ = c.Close()
	}
}

func (p *DelayProxy) record(t RoundTrip) {
	p.mu.Lock()
	p.trips = append(p.trips, t)
	p.mu.Unlock()
}

// link is one proxied connection.
type link struct {
	p         *DelayProxy
	id        int
	connected time.Time // the emulated connect's end

	mu      sync.Mutex
	pending time.Time // a request left the client and was not answered yet
	request string    // its first line
}

type chunk struct {
	data []byte
	due  time.Time // when it reaches the other side
	eof  bool
}

// pipe copies src to dst, each chunk delayed by the one-way delay; up is the
// client→device direction.
func (l *link) pipe(src, dst net.Conn, up bool) {
	defer l.p.wg.Done()
	q := make(chan chunk, 4096)
	l.p.wg.Add(1)
	go func() {
		defer l.p.wg.Done()
		defer close(q)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			now := time.Now()
			if n > 0 {
				left := now
				if up {
					if left.Before(l.connected) {
						left = l.connected // sent once the connect is done
					}
					l.requestLeft(left, buf[:n])
				}
				select {
				case q <- chunk{data: buf[:n], due: left.Add(l.p.OneWay)}:
				case <-l.p.done:
					return
				}
			}
			if err != nil {
				select {
				case q <- chunk{due: now.Add(l.p.OneWay), eof: true}:
				case <-l.p.done:
				}
				return
			}
		}
	}()
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for c := range q {
		if wait := time.Until(c.due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-l.p.done:
				return
			}
		}
		if c.eof {
			l.p.untrack(src, dst) // ends the other direction too
			return
		}
		// the answer's arrival is noted before the write: the client may
		// act on it before this goroutine runs again
		if !up {
			l.answered(time.Now())
		}
		if _, err := dst.Write(c.data); err != nil {
			l.p.untrack(src, dst)
			return
		}
	}
}

// requestLeft notes client data leaving at t: the start of a round trip
// unless one is already waiting for its answer.
func (l *link) requestLeft(t time.Time, data []byte) {
	l.mu.Lock()
	if l.pending.IsZero() {
		l.pending = t
		l.request = firstLine(data)
	}
	l.mu.Unlock()
}

// firstLine is data's first line, at most 60 bytes; binary data (an
// interleaved RTCP packet) is shown as its length.
func firstLine(data []byte) string {
	if len(data) > 0 && data[0] == '$' {
		return fmt.Sprintf("interleaved %d bytes", len(data))
	}
	if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
		data = data[:i]
	}
	if len(data) > 60 {
		data = data[:60]
	}
	return string(data)
}

// answered notes device data reaching the client at t: the end of the
// waiting round trip, if any.
func (l *link) answered(t time.Time) {
	l.mu.Lock()
	start, req := l.pending, l.request
	l.pending = time.Time{}
	l.mu.Unlock()
	if !start.IsZero() {
		l.p.record(RoundTrip{Link: l.p.Name, Conn: l.id, Start: start, End: t, Request: req})
	}
}
