package hikvision

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/AlexxIT/go2rtc/pkg/core"
	"github.com/AlexxIT/go2rtc/pkg/rtsp"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/redact"
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

	cfg   *Config
	probe *deviceProbe
	rtspH string // RTSP host:port, for errors

	mu      sync.Mutex
	rtsp    *rtsp.Conn    // the RTSP session; replaced by a future reconnect loop
	client  *isapi.Client // lazily made; for talk and snapshots (other files)
	talk    *backchannel  // voice talk (backchannel.go); nil without a talk media; set by dial
	started bool
	stopped bool
	done    chan struct{} // closed when Start's session ends
}

// Dial is go2rtc's source handler for hikvision:// URLs. It parses the URL (a
// bad one fails with *ConfigError before any traffic), probes the device over
// ISAPI unless a probe of this device/channel/stream is cached (ProbeTTL), and
// opens the RTSP session up to DESCRIBE. Other errors are *DialError.
func Dial(source string) (core.Producer, error) {
	cfg, err := ParseURL(source)
	if err != nil {
		return nil, err
	}
	p, err := dial(cfg)
	if err != nil {
		return nil, err
	}
	return p, nil
}

func dial(cfg *Config) (*Producer, error) {
	p := &Producer{
		Connection: core.Connection{
			ID:         core.NewID(),
			FormatName: "hikvision",
			Protocol:   "rtsp+tcp",
			Source:     cfg.String(),
			URL:        cfg.String(),
		},
		cfg: cfg,
	}

	pr := probes.get(cfg)
	if pr == nil {
		client, err := p.isapiClient()
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
		pr, err = probe(ctx, client, cfg)
		cancel()
		if err != nil {
			client.Close()
			return nil, err
		}
		probes.put(cfg, pr)
		log.Debug().Str("device", cfg.HTTPAddr()).Int("requests", pr.Requests).Str("model", pr.Info.Model).
			Bool("nvr", pr.NVR).Msg("[hikvision] probed")
	}
	p.probe = pr

	port := cfg.RTSPPort
	if port == 0 {
		port = pr.RTSPPort
	}
	p.rtspH = hostPort(cfg.Host, strconv.Itoa(port))

	conn, err := p.openSession(port)
	if err != nil {
		p.closeClient()
		return nil, err
	}
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
		p.closeClient()
		return nil, newDialError("rtsp medias", p.rtspH, &causeError{sentinel: ErrNoMedia,
			cause: errors.New("SDP has " + mediaList(conn.Medias))}, cfg)
	}
	return p, nil
}

// openSession connects RTSP over TCP and DESCRIBEs the stream. It is the one
// place an RTSP session is made: a reconnect loop inside Start can call it
// again, then GetTrack-equivalent SETUPs for the existing receivers.
func (p *Producer) openSession(port int) (*rtsp.Conn, error) {
	conn := rtsp.NewClient(p.cfg.RTSPURL(port))
	conn.UserAgent = UserAgent
	conn.Backchannel = false // Hikvision talk is ISAPI, not ONVIF backchannel
	conn.Timeout = int(p.cfg.Timeout / time.Second)

	if err := conn.Dial(); err != nil {
		return nil, newDialError("rtsp connect", p.rtspH, err, p.cfg)
	}
	if err := conn.Describe(); err != nil {
		_ = conn.Stop()
		_ = closeTransport(conn)
		return nil, newDialError("rtsp describe", p.rtspH, rtspCause(err), p.cfg)
	}
	return conn, nil
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
	for _, r := range p.Receivers {
		if r.Codec == codec {
			return r, nil
		}
	}
	r, err := p.rtsp.GetTrack(media, codec)
	if err != nil {
		return nil, newDialError("rtsp setup", p.rtspH, rtspCause(err), p.cfg)
	}
	p.Receivers = append(p.Receivers, r)
	return r, nil
}

// Start plays the stream and blocks until it ends or Stop is called (then it
// returns nil).
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
	conn := p.rtsp
	p.mu.Unlock()

	// Seam: a reconnect loop (with the per-device guard) wraps this call:
	// openSession, SETUP the receivers again, playSession.
	err := playSession(conn)
	close(p.done)

	p.mu.Lock()
	stopped := p.stopped
	p.mu.Unlock()
	if stopped {
		return nil
	}
	if err == nil {
		return nil
	}
	return newDialError("rtsp play", p.rtspH, rtspCause(err), p.cfg)
}

// Stop ends the RTSP session (TEARDOWN, close) and waits until Start's
// session has ended, so no goroutine of the producer outlives it.
func (p *Producer) Stop() error {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return nil
	}
	p.stopped = true
	conn, started, done := p.rtsp, p.started, p.done
	p.mu.Unlock()

	p.stopTalk() // nothing more to the talk endpoints but the one close (backchannel.go)
	if started {
		// rtsp.Conn.Stop changes its state while its read loop runs (a data
		// race in go2rtc): end the loop first by closing the socket, after a
		// best-effort TEARDOWN so the device frees the session at once.
		_ = conn.Teardown()
		_ = closeTransport(conn)
		<-done
	}
	err := conn.Stop() // closes receivers
	_ = closeTransport(conn)
	p.closeClient()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// isapiClient returns the producer's ISAPI client, making it on first use.
func (p *Producer) isapiClient() (*isapi.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client != nil {
		return p.client, nil
	}
	c, err := isapi.New(isapi.Config{
		Host:               p.cfg.HTTPAddr(),
		HTTPS:              p.cfg.HTTPS,
		Username:           p.cfg.Username,
		Password:           p.cfg.Password,
		InsecureSkipVerify: p.cfg.Insecure,
		CertSHA256:         p.cfg.CertSHA256,
		Timeout:            p.cfg.Timeout,
	})
	if err != nil {
		return nil, &ConfigError{Param: "url", Value: p.cfg.String(), Reason: redactErr(err, p.cfg)}
	}
	p.client = c
	return c, nil
}

func (p *Producer) closeClient() {
	p.mu.Lock()
	c := p.client
	p.client = nil
	p.mu.Unlock()
	if c != nil {
		c.Close()
	}
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

// MarshalJSON is core.Connection plus device, channel and stream. It never
// includes the inner RTSP connection (whose URL holds the password).
func (p *Producer) MarshalJSON() ([]byte, error) {
	p.mu.Lock()
	conn := p.Connection
	conn.Receivers = append([]*core.Receiver(nil), p.Receivers...)
	p.mu.Unlock()
	conn.Source = redact.URL(conn.Source)
	conn.URL = redact.URL(conn.URL)
	v := struct {
		core.Connection
		Device   DeviceInfo `json:"device"`
		Channel  int        `json:"channel"`
		Stream   string     `json:"stream"`
		StreamID int        `json:"stream_id"`
	}{conn, p.Device(), p.cfg.Channel, p.cfg.Stream.String(), p.cfg.StreamID()}
	return json.Marshal(v)
}
