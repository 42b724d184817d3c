package hikvision

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/AlexxIT/go2rtc/pkg/core"
	"github.com/AlexxIT/go2rtc/pkg/rtsp"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/redact"
	"github.com/rs/zerolog"
)

// UserAgent is sent on RTSP requests.
const UserAgent = "go2rtc-hikvision"

// probeTimeout bounds the whole ISAPI probe of a cold Dial.
const probeTimeout = 15 * time.Second

// Producer is the real-play source of one channel/stream: video and audio
// over RTSP (TCP interleaved), described by an ISAPI probe. It embeds
// core.Connection (FormatName "hikvision", Protocol "rtsp+tcp"); Source and URL
// hold the redacted hikvision:// URL.
//
// The inner go2rtc rtsp.Conn keeps the raw RTSP URL with the password in its
// own Connection.URL: it is never marshalled or exposed.
type Producer struct {
	core.Connection

	m        *Module
	dev      *Device // one reference, released by Stop (or a failed Dial)
	cfg      *Config
	probe    *deviceProbe
	rtspH    string // RTSP host:port, for errors and the port probe
	rtspPort int
	opts     ReconnectOptions
	log      zerolog.Logger

	// ctx is cancelled by Stop; restartCh asks Start's session to restart
	// (a track was added while playing).
	ctx       context.Context
	cancel    context.CancelFunc
	restartCh chan struct{}
	// firstPacket: a session's forward sends (never blocking) on its first
	// packet; play then sets the state to streaming.
	firstPacket chan struct{}

	mu      sync.Mutex
	rtsp    *rtsp.Conn   // the current RTSP session (replaced on reconnect)
	pending *rtsp.Conn   // a session being opened; Stop closes its socket
	tracks  []*track     // receivers handed to go2rtc; they survive reconnects
	talk    *backchannel // voice talk (talk.go); nil without a talk media; set by dial
	started bool
	stopped bool
	done    chan struct{} // closed when Start's loop ends
	status  statusBox
	// onStop runs at the end of Stop (the registry prunes what the
	// producer's end leaves unused); nil outside DialTracked.
	onStop func()
}

// Dial is go2rtc's source handler for hikvision:// URLs. It parses the URL (a
// bad one fails with *ConfigError before any traffic), probes the device over
// ISAPI unless a probe of this device/channel/stream is cached (ProbeTTL), and
// opens the RTSP session up to DESCRIBE. Other errors are *DialError.
func (m *Module) Dial(source string) (core.Producer, error) {
	cfg, err := ParseURL(source)
	if err != nil {
		return nil, err
	}
	p, err := m.dial(cfg)
	if err != nil {
		return nil, err
	}
	return p, nil
}

func (m *Module) dial(cfg *Config) (*Producer, error) {
	p := &Producer{
		m:   m,
		dev: m.device(cfg),
		log: m.log,
		Connection: core.Connection{
			ID:         core.NewID(),
			FormatName: "hikvision",
			Protocol:   "rtsp+tcp",
			Source:     cfg.String(),
			URL:        cfg.String(),
		},
		cfg:         cfg,
		opts:        m.reconnect,
		restartCh:   make(chan struct{}, 1),
		firstPacket: make(chan struct{}, 1),
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.status.state, p.status.since = StateConnecting, time.Now()
	ok := false
	defer func() {
		if !ok {
			p.cancel()
			p.dev.Release()
		}
	}()

	pr := m.probes.get(cfg)
	if pr == nil {
		client, err := p.dev.isapiClient()
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
		pr, err = m.guardedProbe(ctx, p.dev, client, cfg)
		cancel()
		if err != nil {
			client.Close()
			return nil, err
		}
		m.probes.put(cfg, pr)
		// Hand the device its HTTP sessions back: a stream needs none while
		// it plays (talk and snapshots dial again), and an idle keep-alive
		// per stream costs the device a session slot and us two goroutines.
		client.Close()
		m.log.Debug().Str("device", cfg.HTTPAddr()).Int("requests", pr.Requests).Str("model", pr.Info.Model).
			Bool("nvr", pr.NVR).Msg("[hikvision] probed")
	}
	p.probe = pr

	port := cfg.RTSPPort
	if port == 0 {
		port = pr.RTSPPort
	}
	p.rtspH = hostPort(cfg.Host, strconv.Itoa(port))
	p.rtspPort = port

	conn, err := p.openSession(port)
	if err != nil {
		return nil, err
	}
	p.unpend(conn)
	p.rtsp = conn
	p.RemoteAddr = conn.Connection.RemoteAddr
	p.SDP = conn.SDP
	p.Medias = supportedMedias(conn.Medias)
	// Seam: the talk (backchannel) media, Direction sendonly, unless
	// #backchannel=0 (backchannel.go). Before the check: talk alone is a media.
	if m := p.talkMedia(); m != nil {
		p.Medias = append(p.Medias, m)
	}
	if len(p.Medias) == 0 {
		_ = conn.Stop()
		return nil, newDialError("rtsp medias", p.rtspH, &causeError{sentinel: ErrNoMedia,
			cause: errors.New("SDP has " + mediaList(conn.Medias))}, cfg)
	}
	ok = true
	return p, nil
}

// openSession connects RTSP over TCP and DESCRIBEs the stream, as one
// authenticated attempt of the device guard (a hold returns *HoldError
// without connecting). It is the one place an RTSP session is made (Dial and
// Start's reconnects). The session stays registered as pending (Stop closes
// its socket) until the caller calls unpend.
func (p *Producer) openSession(port int) (*rtsp.Conn, error) {
	var conn *rtsp.Conn
	err := p.dev.Do(p.ctx, func(context.Context) error {
		p.mu.Lock()
		p.status.attempts++
		p.mu.Unlock()

		c := rtsp.NewClient(p.cfg.RTSPURL(port))
		c.UserAgent = UserAgent
		c.Backchannel = false // Hikvision talk is ISAPI, not ONVIF backchannel
		c.Timeout = int(p.cfg.Timeout / time.Second)

		if err := c.Dial(); err != nil {
			return newDialError("rtsp connect", p.rtspH, err, p.cfg)
		}
		if !p.pend(c) {
			_ = closeTransport(c)
			return errStopped
		}
		if err := p.rtspStep(c, c.Describe); err != nil {
			_ = c.Stop()
			_ = closeTransport(c)
			p.unpend(c)
			return newDialError("rtsp describe", p.rtspH, rtspCause(err), p.cfg)
		}
		conn = c
		return nil
	})
	if err != nil {
		return nil, err
	}
	return conn, nil
}

// rtspStep runs one request of conn that waits for the device's answer
// (DESCRIBE, SETUP) within the URL's #timeout. go2rtc's pkg/rtsp uses
// Conn.Timeout (set from #timeout) to connect and to read media, but waits
// for answers with its package-wide rtsp.Timeout (5 s): a shorter #timeout
// closes the socket when it passes, and the step fails with "no answer within
// Ns" (a timeout for the guard). A longer #timeout cannot extend go2rtc's 5 s;
// go2rtc's own read timeout is worded the same ("no answer within 5s").
func (p *Producer) rtspStep(conn *rtsp.Conn, f func() error) error {
	d := p.cfg.Timeout
	if d <= 0 || d >= rtsp.Timeout {
		// go2rtc's read deadline ends the wait: same wording as ours
		err := f()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return &isapi.TimeoutError{After: rtsp.Timeout, Err: err}
		}
		return err
	}
	var mu sync.Mutex
	done, fired := false, false
	timer := time.AfterFunc(d, func() {
		mu.Lock()
		defer mu.Unlock()
		if !done {
			fired = true
			_ = closeTransport(conn)
		}
	})
	err := f()
	timer.Stop()
	mu.Lock()
	done = true
	timedOut := fired
	mu.Unlock()
	if timedOut {
		return &isapi.TimeoutError{After: d, Err: os.ErrDeadlineExceeded}
	}
	return err
}

// playSession plays an RTSP session that has its SETUPs done, blocking until
// it ends (error, device closed, or Stop).
func playSession(conn *rtsp.Conn) error {
	return conn.Start()
}

func rtspCause(err error) error {
	if s := err.Error(); s == "wrong user/pass" || s == "user/pass not provided" {
		return &causeError{sentinel: ErrRTSPUnauthorized, cause: err}
	}
	return err
}

func closeTransport(conn *rtsp.Conn) error {
	if c, ok := conn.Connection.Transport.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// supportedMedias keeps the recvonly H.264/H.265 video and PCMU/PCMA/AAC
// audio medias (with only those codecs). The *Media pointers stay those of the
// RTSP session, which needs them for SETUP.
func supportedMedias(medias []*core.Media) []*core.Media {
	var out []*core.Media
	for _, m := range medias {
		if m.Direction != core.DirectionRecvonly {
			continue
		}
		for _, c := range m.Codecs {
			if supportedCodec(m.Kind, c.Name) {
				out = append(out, m)
				break
			}
		}
	}
	return out
}

func supportedCodec(kind, name string) bool {
	switch kind {
	case core.KindVideo:
		return name == core.CodecH264 || name == core.CodecH265
	case core.KindAudio:
		return name == core.CodecPCMU || name == core.CodecPCMA || name == core.CodecAAC
	}
	return false
}

func mediaList(medias []*core.Media) string {
	if len(medias) == 0 {
		return "no media"
	}
	var s []string
	for _, m := range medias {
		s = append(s, m.String())
	}
	return strings.Join(s, "; ")
}

// GetTrack sets up (RTSP SETUP) a receiver for one of the producer's recvonly
// medias.
func (p *Producer) GetTrack(media *core.Media, codec *core.Codec) (*core.Receiver, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return nil, errors.New("hikvision: producer stopped")
	}
	known := false
	for _, m := range p.Medias {
		if m == media && m.Direction == core.DirectionRecvonly {
			known = true
		}
	}
	if !known || !supportedCodec(media.Kind, codec.Name) {
		return nil, errors.New("hikvision: GetTrack for a media this producer does not have: " + media.String())
	}
	for _, t := range p.tracks {
		if t.codec == codec {
			return t.recv, nil
		}
	}
	// go2rtc gets our own receiver; each RTSP session's receiver forwards
	// into it, so it survives reconnects.
	t := &track{media: media, codec: codec, recv: core.NewReceiver(media, codec)}
	if p.started {
		// playing: the next session SETUPs it too; restart now
		p.addTrackLocked(t)
		select {
		case p.restartCh <- struct{}{}:
		default:
		}
		return t.recv, nil
	}
	var inner *core.Receiver
	err := p.dev.Do(p.ctx, func(context.Context) error {
		err := p.rtspStep(p.rtsp, func() (err error) {
			inner, err = p.rtsp.GetTrack(media, codec)
			return err
		})
		if err != nil {
			return newDialError("rtsp setup", p.rtspH, rtspCause(err), p.cfg)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	inner.Input = p.forward(t)
	p.addTrackLocked(t)
	return t.recv, nil
}

func (p *Producer) addTrackLocked(t *track) {
	p.tracks = append(p.tracks, t)
	p.Receivers = append(p.Receivers, t.recv)
}

// Start plays the stream and blocks until Stop (then it returns nil) or an
// error it cannot recover from. When the RTSP link drops (EOF, reset, read
// timeout) or carries no media for StallTimeout, Start reconnects into the
// same receivers (see ReconnectOptions and reconnect). It returns at once
// for permanent errors (*DialError or *HoldError with Permanent() true:
// wrong credentials, lock, ...), ErrStreamChanged, or *ReconnectError after
// GiveUpAfter of failures with the device answering.
func (p *Producer) Start() error {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return nil
	}
	if p.started {
		p.mu.Unlock()
		return errors.New("hikvision: Start called twice")
	}
	p.started = true
	p.done = make(chan struct{})
	done, conn, tracks := p.done, p.rtsp, len(p.tracks)
	p.mu.Unlock()
	defer close(done)

	if tracks == 0 {
		// Nothing to play (a talk-only consumer): no RTSP session is
		// needed; stay until Stop.
		p.endSession(conn)
		<-p.ctx.Done()
		return nil
	}
	err := p.run(conn)
	if err == nil || p.isStopped() {
		return nil
	}
	return err
}

// Stop ends the RTSP session (TEARDOWN, close), or the reconnect in
// progress, and waits until Start's loop has ended, so no goroutine, socket
// or timer of the producer outlives it and nothing is sent afterwards.
func (p *Producer) Stop() error {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return nil
	}
	p.stopped = true
	p.cancel()
	conn, pending, started, done, onStop := p.rtsp, p.pending, p.started, p.done, p.onStop
	receivers := append([]*core.Receiver(nil), p.Receivers...)
	p.mu.Unlock()

	p.stopTalk() // nothing more to the talk endpoints but the one close (backchannel.go)
	if pending != nil {
		_ = closeTransport(pending) // an attempt in flight fails at once
	}
	var err error
	if started {
		// Start's loop ends its session (TEARDOWN, close) and returns.
		<-done
	} else {
		err = conn.Stop() // TEARDOWN, close
		_ = closeTransport(conn)
	}
	for _, r := range receivers {
		r.Close()
	}
	p.dev.Release()
	p.setState(StateStopped, time.Time{}, nil)
	if onStop != nil {
		onStop()
	}
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// SetSource and SetURL keep Source/URL redacted whatever a caller passes.
func (p *Producer) SetSource(s string) { p.Source = redact.URL(s) }
func (p *Producer) SetURL(s string)    { p.URL = redact.URL(s) }

// DeviceInfo is what the producer tells about the device in /api/streams.
type DeviceInfo struct {
	Model      string `json:"model,omitempty"`
	Firmware   string `json:"firmware,omitempty"`
	FirmwareOn string `json:"firmware_date,omitempty"`
	Type       string `json:"type,omitempty"`
	Name       string `json:"name,omitempty"`
	NVR        bool   `json:"nvr,omitempty"`
	VideoCodec string `json:"video_codec,omitempty"`
	Width      int    `json:"width,omitempty"`
	Height     int    `json:"height,omitempty"`
}

// Device returns what the probe learned.
func (p *Producer) Device() DeviceInfo {
	d := DeviceInfo{
		Model: p.probe.Info.Model, Firmware: p.probe.Info.FirmwareVersion,
		FirmwareOn: p.probe.Info.FirmwareReleasedDate, Type: p.probe.Info.DeviceType,
		Name: p.probe.Info.DeviceName, NVR: p.probe.NVR,
	}
	if ch := p.probe.Channel; ch != nil {
		d.VideoCodec, d.Width, d.Height = ch.VideoCodec, ch.Width, ch.Height
	}
	return d
}
