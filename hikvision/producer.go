package hikvision

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/AlexxIT/go2rtc/pkg/core"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/redact"
	"github.com/rs/zerolog"
)

// probeTimeout bounds the whole ISAPI probe of a cold Dial.
const probeTimeout = 15 * time.Second

// Producer is the real-play source of one channel/stream, described by an
// ISAPI probe, its media from a Backend (RTSP over TCP so far). It embeds
// core.Connection (FormatName "hikvision", Protocol the backend's); Source
// and URL hold the redacted hikvision:// URL.
//
// The backend's own connection (go2rtc's rtsp.Conn) keeps the raw RTSP URL
// with the password in its own Connection.URL: it is never marshalled or
// exposed.
type Producer struct {
	core.Connection

	m       *Module
	dev     *Device // one reference, released by Stop (or a failed Dial)
	cfg     *Config
	probe   *deviceProbe
	backend Backend
	opts    ReconnectOptions
	log     zerolog.Logger

	// ctx is cancelled by Stop; restartCh asks Start's session to restart
	// (a track was added while playing).
	ctx       context.Context
	cancel    context.CancelFunc
	restartCh chan struct{}
	// firstPacket: a session's forward sends (never blocking) on its first
	// packet; play then sets the state to streaming.
	firstPacket chan struct{}
	// gate picks the session whose packets reach the consumers (forward.go).
	gate gate

	mu      sync.Mutex
	sess    Session      // the current session (replaced on reconnect)
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
// opens the backend's session (RTSP: up to DESCRIBE). Other errors are
// *DialError or *HoldError.
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
		Connection: core.Connection{
			ID:         core.NewID(),
			FormatName: "hikvision",
			Source:     cfg.String(),
			URL:        cfg.String(),
		},
		m:           m,
		dev:         m.device(cfg),
		log:         m.log,
		cfg:         cfg,
		opts:        m.reconnect,
		restartCh:   make(chan struct{}, 1),
		firstPacket: make(chan struct{}, 1),
	}
	p.gate.claimed = make(chan uint64, 1)
	p.gate.next, p.gate.current, p.gate.owner = 1, 1, 1 // Dial's session
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
	if cfg.Transport == TransportSDK {
		pr = sdkProbe() // the SDK asks the device itself; no ISAPI
	}
	var early *earlyOpen // a cold start's RTSP session, opened beside the probe
	if pr == nil {
		client, err := p.dev.isapiClient()
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
		pr, early, err = m.coldProbe(ctx, p, client)
		cancel()
		// Hand the device its HTTP sessions back: a stream needs none while
		// it plays (talk and snapshots dial again), and an idle keep-alive
		// per stream costs the device a session slot and us two goroutines.
		client.Close()
		if err != nil {
			return nil, err
		}
		m.probes.put(cfg, pr)
		m.log.Debug().Str("device", cfg.HTTPAddr()).Int("requests", pr.Requests).Str("model", pr.Info.Model).
			Bool("nvr", pr.NVR).Msg("[hikvision] probed")
	}
	p.probe = pr
	p.backend = newBackend(cfg, p.dev, pr)
	p.Protocol = p.backend.Protocol()

	var (
		sess Session
		err  error
	)
	if b, ok := p.backend.(*rtspBackend); ok && early != nil && early.b.addr == b.addr {
		p.backend = early.b // the same stream and port
		sess, err = early.sess, early.err
		p.countAttempt(err)
	} else {
		if early != nil && early.sess != nil {
			_ = early.sess.Close()
		}
		sess, err = p.open(p.ctx)
	}
	if err != nil {
		return nil, err
	}
	p.sess = sess
	p.RemoteAddr = sess.RemoteAddr()
	p.SDP = sess.SDP()
	p.Medias = supportedMedias(sess.Medias())
	// the talk media, Direction sendonly, unless #backchannel=0 (talk.go).
	// Before the check: talk alone is a media.
	if m := p.talkMedia(); m != nil {
		p.Medias = append(p.Medias, m)
	}
	if len(p.Medias) == 0 {
		_ = sess.Close()
		return nil, newDialError("rtsp medias", p.backend.Addr(), &causeError{sentinel: ErrNoMedia,
			cause: errors.New("SDP has " + mediaList(sess.Medias()))}, cfg)
	}
	ok = true
	return p, nil
}

// open asks the backend for a session, counting the attempts that reached
// the device (a hold is none).
func (p *Producer) open(ctx context.Context) (Session, error) {
	sess, err := p.backend.Open(ctx)
	p.countAttempt(err)
	return sess, err
}

// countAttempt counts an Open that reached the device (a hold is none).
func (p *Producer) countAttempt(err error) {
	var h *HoldError
	if !errors.As(err, &h) {
		p.mu.Lock()
		p.status.attempts++
		p.mu.Unlock()
	}
}

// supportedMedias keeps the recvonly H.264/H.265/MJPEG video and PCMU/PCMA/AAC
// audio medias (with only those codecs). The *Media pointers stay those of the
// session, which needs them for Setup.
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
		// MJPEG (RTP JPEG): the sub stream of older cameras
		return name == core.CodecH264 || name == core.CodecH265 || name == core.CodecJPEG
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
	// go2rtc gets our own receiver; each session's receiver forwards into
	// it, so it survives reconnects.
	t := &track{media: media, codec: codec, recv: core.NewReceiver(media, codec)}
	if p.started {
		// playing: the next session sets it up too; restart now
		p.addTrackLocked(t)
		select {
		case p.restartCh <- struct{}{}:
		default:
		}
		return t.recv, nil
	}
	if err := p.sess.Setup(p.ctx, []Track{{Media: media, Codec: codec, Out: p.forward(t)}}); err != nil {
		return nil, err
	}
	p.addTrackLocked(t)
	return t.recv, nil
}

func (p *Producer) addTrackLocked(t *track) {
	p.tracks = append(p.tracks, t)
	p.Receivers = append(p.Receivers, t.recv)
}

// Start plays the stream and blocks until Stop (then it returns nil) or an
// error it cannot recover from. When the session drops (EOF, reset, read
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
	done, sess, tracks := p.done, p.sess, len(p.tracks)
	p.mu.Unlock()
	defer close(done)

	if tracks == 0 {
		// Nothing to play (a talk-only consumer): no session is needed;
		// stay until Stop.
		_ = sess.Close()
		<-p.ctx.Done()
		return nil
	}
	err := p.run(sess)
	if err == nil || p.isStopped() {
		return nil
	}
	return err
}

// Stop ends the session (TEARDOWN, close), or the reconnect in progress,
// and waits until Start's loop has ended, so no goroutine, socket or timer
// of the producer outlives it and nothing is sent afterwards.
func (p *Producer) Stop() error {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return nil
	}
	p.stopped = true
	p.cancel() // an attempt in flight fails at once
	sess, started, done, onStop := p.sess, p.started, p.done, p.onStop
	receivers := append([]*core.Receiver(nil), p.Receivers...)
	p.mu.Unlock()

	p.stopTalk() // nothing more to the talk endpoints but the one close (talk.go)
	var err error
	if started {
		// Start's loop ends its session (TEARDOWN, close) and returns.
		<-done
	} else {
		err = sess.Close() // TEARDOWN, close
	}
	for _, r := range receivers {
		r.Close()
	}
	p.dev.Release()
	p.setState(StateStopped, time.Time{}, nil)
	if onStop != nil {
		onStop()
	}
	return err
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
