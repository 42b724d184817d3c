// Package simrtsp is the RTSP/1.0 server of the Hikvision device simulator.
//
// It is written from RFC 2326 (RTSP), RFC 2617 (digest), RFC 6184 (H.264),
// RFC 7798 (H.265), RFC 3640 (AAC) and RFC 3550 (RTP/RTCP) plus observed
// Hikvision behaviour, and shares no code with the client it tests. It serves
// looping test media (see LoadMedia) over RTP interleaved in the RTSP TCP
// connection only; a SETUP that offers no TCP transport gets
// 461 Unsupported Transport.
//
// Typical use by the device:
//
//	m, _ := simrtsp.LoadMedia(dir)
//	srv := simrtsp.NewServer(simrtsp.Config{Lookup: users, OnAuth: countLogin, Allow: notLocked})
//	srv.AddStream(101, simrtsp.Stream{Video: m.H264Main, Audio: m.PCMU})
//	l, _ := net.Listen("tcp", "127.0.0.1:0")
//	go srv.Serve(l)
//	defer srv.Close()
package simrtsp

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrServerClosed is returned by Serve after Close.
var ErrServerClosed = errors.New("simrtsp: server closed")

// Config of a Server. Zero values take the defaults noted.
type Config struct {
	// Realm of the digest challenge. Default "IP Camera(K2195)".
	Realm string
	// Lookup returns a user's password. nil = no authentication at all.
	Lookup func(user string) (password string, ok bool)
	// OnAuth, if set, is called for every request that carried digest
	// credentials with a valid nonce: ok=false for a wrong user, password or
	// response (a failed login), ok=true for a good one. Requests without
	// credentials, with another scheme or with a stale nonce do not call it.
	// It runs on the connection's goroutine and must not block for long.
	OnAuth func(remoteIP string, ok bool)
	// Allow, if set, is asked before each request except OPTIONS; false (a
	// locked IP) answers 401 with a fresh challenge without checking the
	// credentials and without calling OnAuth.
	Allow func(remoteIP string) bool
	// DigestQOP offers qop="auth" in the challenge. Default false: many
	// Hikvision RTSP servers send no qop. Answers with or without qop are
	// accepted either way.
	DigestQOP bool
	// NonceTTL is how long a nonce is accepted before a stale challenge. Default 5 min.
	NonceTTL time.Duration
	// MaxSessions caps concurrent sessions; a SETUP beyond it gets
	// 453 Not Enough Bandwidth (as NVRs answer when overloaded). 0 = no cap.
	MaxSessions int
	// SessionTimeout is announced as Session: id;timeout=N and closes a
	// connection that sends nothing (no request, no RTCP) for that long.
	// Default 60 s.
	SessionTimeout time.Duration
	// RTCPInterval between RTCP sender reports per track. Default 2 s.
	RTCPInterval time.Duration
	// WriteTimeout per write; a client that does not read for that long is
	// disconnected. Default 10 s.
	WriteTimeout time.Duration
}

// Stream is what one RTSP path serves: one video track (trackID=1) and an
// optional audio track (trackID=2).
type Stream struct {
	Video *Video
	Audio *Audio // nil = no audio track
	FPS   int    // video frame rate; default 25
}

// Stats are the server's counters.
type Stats struct {
	Connections    int    // open TCP connections
	ActiveSessions int    // sessions set up and not yet torn down
	TotalSessions  uint64 // sessions ever set up
	PacketsSent    uint64 // RTP packets (not RTCP)
	RTCPSent       uint64 // RTCP sender reports
	AuthFailures   uint64 // failed logins (wrong digest)
}

// Server is an RTSP server. Create it with NewServer.
type Server struct {
	cfg    Config
	secret [32]byte

	mu        sync.Mutex
	streams   map[string]*Stream // lower-case path without trailing slash
	conns     map[*conn]struct{}
	listeners map[net.Listener]struct{}
	sessions  int
	closed    bool
	wg        sync.WaitGroup

	stall  atomic.Bool
	refuse atomic.Bool

	totalSessions atomic.Uint64
	packets       atomic.Uint64
	rtcp          atomic.Uint64
	authFailures  atomic.Uint64
}

// NewServer makes a server with no streams.
func NewServer(cfg Config) *Server {
	if cfg.Realm == "" {
		cfg.Realm = "IP Camera(K2195)"
	}
	if cfg.NonceTTL <= 0 {
		cfg.NonceTTL = 5 * time.Minute
	}
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = 60 * time.Second
	}
	if cfg.RTCPInterval <= 0 {
		cfg.RTCPInterval = 2 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	s := &Server{
		cfg:       cfg,
		streams:   map[string]*Stream{},
		conns:     map[*conn]struct{}{},
		listeners: map[net.Listener]struct{}{},
	}
	_, _ = rand.Read(s.secret[:])
	return s
}

func cleanPath(p string) string {
	p, _, _ = strings.Cut(p, "?")
	return strings.ToLower(strings.TrimRight(p, "/"))
}

// AddStream registers st as channel stream id (101, 102, 201...) under both
// /Streaming/Channels/<id> and /ISAPI/Streaming/channels/<id>. Paths match
// case-insensitively and ignore the query string. It replaces an earlier
// registration; sessions already playing keep the old stream.
func (s *Server) AddStream(id int, st Stream) error {
	n := strconv.Itoa(id)
	if err := s.AddPath("/Streaming/Channels/"+n, st); err != nil {
		return err
	}
	return s.AddPath("/ISAPI/Streaming/channels/"+n, st)
}

// AddPath registers st under an arbitrary path (e.g. a playback path).
func (s *Server) AddPath(path string, st Stream) error {
	if st.Video == nil {
		return fmt.Errorf("simrtsp: stream %s has no video", path)
	}
	if st.FPS <= 0 {
		st.FPS = 25
	}
	s.mu.Lock()
	s.streams[cleanPath(path)] = &st
	s.mu.Unlock()
	return nil
}

// RemovePath unregisters a path added by AddPath (AddStream registers two).
func (s *Server) RemovePath(path string) {
	s.mu.Lock()
	delete(s.streams, cleanPath(path))
	s.mu.Unlock()
}

func (s *Server) stream(path string) *Stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.streams[cleanPath(path)]
}

// Serve accepts connections on l until Close (then it returns ErrServerClosed)
// or until l fails. Close closes l.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()
	for {
		nc, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("simrtsp: accept: %w", err)
		}
		if s.refuse.Load() {
			resetClose(nc)
			continue
		}
		c := newConn(s, nc)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = nc.Close()
			return ErrServerClosed
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			c.serve()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// linger is a connection whose close can send an RST: *net.TCPConn, or a
// wrapper of one that forwards SetLinger.
type linger interface{ SetLinger(sec int) error }

// resetClose closes with an RST, as a device that drops a connection does
// ("connection reset by peer").
func resetClose(nc net.Conn) {
	if tc, ok := nc.(linger); ok {
		_ = tc.SetLinger(0)
	}
	_ = nc.Close()
}

// Close stops every listener and connection and waits for every goroutine the
// server started, including running Serve calls.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for l := range s.listeners {
		_ = l.Close()
	}
	for c := range s.conns {
		c.close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// SetStall(true) keeps connections open and RTCP sender reports flowing but
// stops sending RTP (a hung encoder). SetStall(false) resumes; video resumes
// at the next key frame.
func (s *Server) SetStall(on bool) { s.stall.Store(on) }

// SetRefuse(true) makes the server accept new connections and reset them at
// once; existing connections are not touched.
func (s *Server) SetRefuse(on bool) { s.refuse.Store(on) }

// DropAll resets every open connection (and so every session), as a reboot
// does. New connections are accepted as before.
func (s *Server) DropAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.reset()
	}
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	st := Stats{Connections: len(s.conns), ActiveSessions: s.sessions}
	s.mu.Unlock()
	st.TotalSessions = s.totalSessions.Load()
	st.PacketsSent = s.packets.Load()
	st.RTCPSent = s.rtcp.Load()
	st.AuthFailures = s.authFailures.Load()
	return st
}

// Realm is the digest realm in use.
func (s *Server) Realm() string { return s.cfg.Realm }
