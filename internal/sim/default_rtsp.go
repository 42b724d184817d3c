package sim

import (
	"fmt"
	"net"
	"sync"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim/simrtsp"
)

// defaultRTSP is the RTSP side used when Config.RTSP is nil: a simrtsp.Server looping testdata/media.
var defaultRTSP RTSPFactory = startSimRTSP

var (
	mediaOnce sync.Once
	media     *simrtsp.Media
	mediaErr  error
)

// loadMedia reads testdata/media once per process.
func loadMedia() (*simrtsp.Media, error) {
	mediaOnce.Do(func() {
		dir, err := simrtsp.MediaDir()
		if err != nil {
			mediaErr = err
			return
		}
		media, mediaErr = simrtsp.LoadMedia(dir)
	})
	return media, mediaErr
}

type paddedKey struct {
	media     *simrtsp.Video // the loaded media (one per codec and stream), stable for the process
	kbps, fps int
}

var (
	paddedMu sync.Mutex
	padded   = map[paddedKey]*simrtsp.Video{}
)

// mainVideo is the main stream media of a channel: v padded to kbps at fps (Channel.MainKbps), built once
// per (media, kbps, fps) per process so devices with the same setting share it; v itself for kbps 0.
func mainVideo(v *simrtsp.Video, kbps, fps int) *simrtsp.Video {
	if kbps <= 0 {
		return v
	}
	k := paddedKey{v, kbps, fps}
	paddedMu.Lock()
	defer paddedMu.Unlock()
	p, ok := padded[k]
	if !ok {
		p = v.WithBitrate(kbps*1000, fps)
		padded[k] = p
	}
	return p
}

// simRTSP adapts a simrtsp.Server to RTSPServer.
type simRTSP struct {
	srv  *simrtsp.Server
	ln   net.Listener
	done chan struct{}
}

func startSimRTSP(opts RTSPOptions) (RTSPServer, error) {
	m, err := loadMedia()
	if err != nil {
		return nil, err
	}
	cfg := simrtsp.Config{Realm: opts.Realm, Lookup: opts.Password, OnAuth: opts.AuthResult}
	if opts.Locked != nil {
		cfg.Allow = func(ip string) bool { return !opts.Locked(ip) }
	}
	srv := simrtsp.NewServer(cfg)
	for _, ch := range opts.Channels {
		if ch.Offline {
			continue // NVR channel whose IP camera is not connected: the paths answer 404
		}
		var main, sub *simrtsp.Video
		switch ch.Video {
		case "H.264":
			main, sub = m.H264Main, m.H264Sub
		case "H.265":
			main, sub = m.H265Main, m.H265Main
		default:
			continue // no media for this codec (MJPEG): the paths answer 404
		}
		main = mainVideo(main, ch.MainKbps, ch.FrameRate)
		var audio *simrtsp.Audio
		switch ch.Audio {
		case "PCMU":
			audio = m.PCMU
		case "PCMA":
			audio = m.PCMA
		case "AAC":
			audio = m.AAC
		}
		if err := srv.AddStream(ch.StreamID(1), simrtsp.Stream{Video: main, Audio: audio, FPS: ch.FrameRate}); err != nil {
			return nil, fmt.Errorf("channel %d: %w", ch.ID, err)
		}
		if err := srv.AddStream(ch.StreamID(2), simrtsp.Stream{Video: sub, Audio: audio, FPS: ch.FrameRate}); err != nil {
			return nil, fmt.Errorf("channel %d: %w", ch.ID, err)
		}
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, err
	}
	s := &simRTSP{srv: srv, ln: ln, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		_ = srv.Serve(&countingListener{ln, opts.ConnAccepted, opts.WrapConn})
	}()
	return s, nil
}

func (s *simRTSP) Addr() string          { return s.ln.Addr().String() }
func (s *simRTSP) SetStall(on bool)      { s.srv.SetStall(on) }
func (s *simRTSP) SetRefuse(on bool)     { s.srv.SetRefuse(on) }
func (s *simRTSP) DropAll()              { s.srv.DropAll() }
func (s *simRTSP) TotalSessions() uint64 { return s.srv.Stats().TotalSessions }
func (s *simRTSP) Close() error {
	err := s.srv.Close()
	<-s.done
	return err
}

// countingListener reports each accepted connection's client IP and hands the connection over
// over, wrapped by wrap if set (simrtsp resets connections with SO_LINGER 0: a wrapper must forward
// SetLinger).
type countingListener struct {
	net.Listener
	onAccept func(ip string)
	wrap     func(net.Conn) net.Conn
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil && l.onAccept != nil {
		l.onAccept(clientIP(c.RemoteAddr().String()))
	}
	if err == nil && l.wrap != nil {
		c = l.wrap(c)
	}
	return c, err
}
