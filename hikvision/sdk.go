package hikvision

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/AlexxIT/go2rtc/pkg/core"
	"github.com/pion/rtp"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/hcnetsdk"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/ps"
)

// SDKOptions say where the vendor's device network SDK is, for streams with
// transport=sdk (or auto falling back to it):
//
//	hikvision:
//	  sdk:
//	    lib: /opt/hcnetsdk/lib          # libhcnetsdk.so or its folder
//	    components: /opt/hcnetsdk/lib   # folder holding HCNetSDKCom/ (default: lib's folder)
//
// Without lib the environment variable HIKVISION_SDK_LIB is used.
type SDKOptions struct {
	Lib        string `yaml:"lib"`
	Components string `yaml:"components"`
	// ConnectTimeout bounds one connection attempt of the SDK (default 3 s);
	// RecvTimeout the wait for a device answer (default 5 s).
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	RecvTimeout    time.Duration `yaml:"recv_timeout"`
}

// EnvSDKLib names the environment variable read when the module options
// give no SDK path.
const EnvSDKLib = "HIKVISION_SDK_LIB"

// sdkBuildTag is the build tag that compiles in the SDK loader.
const sdkBuildTag = "hcnetsdk"

// DefaultSDKPort is the SDK's service port on most devices.
const DefaultSDKPort = 8000

// sdkMediaWait bounds how long Open reads the real-play stream for its
// medias (a key frame with parameter sets) when the URL sets no #timeout.
const sdkMediaWait = 10 * time.Second

// The SDK is process-global (Init once, Cleanup once): every module of the
// process shares one load, made by the first transport=sdk dial with that
// module's options, and released when the last module using it closes.
var sdkProc struct {
	mu     sync.Mutex
	sdk    *hcnetsdk.SDK
	users  map[*Module]struct{}
	closed map[*Module]struct{} // modules closed: they never load it again
}

// sdkOpen returns the process's SDK, loading and initialising it on first
// use. A load failure is not kept: a later dial tries again (the user may
// have installed the library meanwhile).
func (m *Module) sdkOpen() (*hcnetsdk.SDK, error) {
	sdkProc.mu.Lock()
	defer sdkProc.mu.Unlock()
	if _, ok := sdkProc.closed[m]; ok {
		return nil, fmt.Errorf("hikvision: transport=sdk: module closed: %w", hcnetsdk.ErrClosed)
	}
	if sdkProc.sdk == nil {
		o := m.opts.SDK
		path := o.Lib
		if path == "" {
			path = os.Getenv(EnvSDKLib)
		}
		s, err := hcnetsdk.Open(hcnetsdk.Config{Path: path, ComponentPath: o.Components,
			ConnectTimeout: o.ConnectTimeout, RecvTimeout: o.RecvTimeout})
		if err != nil {
			return nil, &SDKUnavailableError{Err: err}
		}
		m.log.Info().Str("lib", s.Path()).Uint32("version", s.Version()).Msg("[hikvision] device network SDK loaded")
		sdkProc.sdk = s
		if sdkProc.users == nil {
			sdkProc.users = map[*Module]struct{}{}
		}
	}
	sdkProc.users[m] = struct{}{}
	return sdkProc.sdk, nil
}

// closeSDK releases what the module holds process-wide: the device network
// SDK, when this was the last module using it (its logins are logged out,
// its real-plays and talks stopped, then NET_DVR_Cleanup). Module.Close
// calls it after the module's devices are released; it waits at most 10 s
// for SDK calls under way.
func (m *Module) closeSDK() error {
	sdkProc.mu.Lock()
	defer sdkProc.mu.Unlock()
	if sdkProc.closed == nil {
		sdkProc.closed = map[*Module]struct{}{}
	}
	sdkProc.closed[m] = struct{}{}
	if _, ok := sdkProc.users[m]; !ok {
		return nil
	}
	delete(sdkProc.users, m)
	if len(sdkProc.users) > 0 || sdkProc.sdk == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := sdkProc.sdk.Close(ctx)
	if err == nil {
		sdkProc.sdk = nil
	}
	return err
}

// SDKUnavailableError: transport=sdk was asked for but the SDK cannot be
// used here (no library at the configured path, a build without SDK
// support, an unsupported platform). Its text is one line saying what to
// install or build, and where. It is permanent: redialling cannot help
// until the installation changes.
type SDKUnavailableError struct {
	Err error // *hcnetsdk.LoadError, or the SDK's initialisation error
}

func (e *SDKUnavailableError) Error() string {
	msg := "hikvision: transport=sdk: " + e.Err.Error()
	if errors.Is(e.Err, hcnetsdk.ErrUnsupported) && strings.Contains(msg, "-tags "+sdkBuildTag) {
		msg += " (go2rtc with the hikvision module: go run ./cmd/go2rtc-hikvision build -sdk)"
	}
	if errors.Is(e.Err, hcnetsdk.ErrLibraryMissing) {
		msg += " (go2rtc.yaml hikvision: sdk: lib: PATH, or " + EnvSDKLib + "=PATH)"
	}
	return strings.ReplaceAll(msg, "\n", " ")
}

func (e *SDKUnavailableError) Unwrap() error   { return e.Err }
func (e *SDKUnavailableError) Permanent() bool { return true }

// SDKExceptionError ends a transport=sdk session whose real-play or login
// the SDK reported lost (its exception callback); the producer's
// supervisor reconnects.
type SDKExceptionError struct {
	Type hcnetsdk.Exception
}

func (e *SDKExceptionError) Error() string {
	return "the SDK reported " + e.Type.String()
}

// setSDKParam parses transport= and sdk_port=.
func (c *Config) setSDKParam(name, value string) error {
	switch name {
	case "transport":
		switch v := strings.ToLower(value); v {
		case TransportRTSP, TransportSDK, TransportAuto:
			c.Transport = v
		default:
			return &ConfigError{Param: name, Value: value, Reason: "want rtsp, sdk or auto"}
		}
	case "sdk_port":
		n, err := strconv.Atoi(value)
		if err != nil || n < 1 || n > 65535 {
			return &ConfigError{Param: name, Value: value, Reason: "want 1-65535"}
		}
		c.SDKPort = n
	}
	return nil
}

// sdkQuery adds transport= and sdk_port= to the canonical URL.
func (c *Config) sdkQuery(q url.Values) {
	if c.Transport != "" && c.Transport != TransportRTSP {
		q.Set("transport", c.Transport)
	}
	if c.SDKPort != 0 {
		q.Set("sdk_port", strconv.Itoa(c.SDKPort))
	}
}

// sdkAddr is host:port of the SDK's service port.
func (c *Config) sdkAddr() string {
	port := c.SDKPort
	if port == 0 {
		port = DefaultSDKPort
	}
	return hostPort(c.Host, strconv.Itoa(port))
}

// sdkProbe is the probe of a transport=sdk producer: nothing asked over
// ISAPI (the device may answer only on the SDK's port), so no ISAPI talk.
func sdkProbe() *deviceProbe { return &deviceProbe{} }

// newSDKBackendFor returns the SDK backend when the URL asks for it (or
// auto finds the RTSP port closed); nil for RTSP.
func newSDKBackendFor(cfg *Config, dev *Device, probe *deviceProbe) Backend {
	switch cfg.Transport {
	case TransportSDK:
		return &sdkBackend{cfg: cfg, dev: dev, addr: cfg.sdkAddr(), probe: probe}
	case TransportAuto:
		port := cfg.RTSPPort
		if port == 0 {
			port = probe.RTSPPort
		}
		if port == 0 {
			port = 554
		}
		if rtspClosed(hostPort(cfg.Host, strconv.Itoa(port)), cfg.Timeout) {
			dev.m.log.Info().Str("device", cfg.HTTPAddr()).Int("rtsp_port", port).
				Msg("[hikvision] transport=auto: the RTSP port is closed; using the device network SDK")
			// the ISAPI probe is shared (cached): talk keeps what ISAPI said
			return &sdkBackend{cfg: cfg, dev: dev, addr: cfg.sdkAddr()}
		}
	}
	return nil
}

// rtspClosed reports whether a TCP connect to addr is refused or times out
// (no request is sent).
func rtspClosed(addr string, timeout time.Duration) bool {
	if timeout <= 0 || timeout > 3*time.Second {
		timeout = 3 * time.Second
	}
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return !errors.Is(err, syscall.ECONNRESET)
	}
	_ = c.Close()
	return false
}

// sdkBackend plays a channel through the vendor's device network SDK:
// the device's shared login (sdklogin.go, through the device's guard), a
// real-play per session, and the MPEG-PS it delivers demuxed into go2rtc
// packets.
type sdkBackend struct {
	cfg   *Config
	dev   *Device
	addr  string
	probe *deviceProbe // the producer's own (sdkProbe): talk facts filled by the first Open
}

func (b *sdkBackend) Protocol() string { return "hcnetsdk" }
func (b *sdkBackend) Addr() string     { return b.addr }

// Open starts the real-play on the device's shared SDK login (logging in
// first if there is none) and reads the stream until its medias are known.
func (b *sdkBackend) Open(ctx context.Context) (Session, error) {
	shared, err := b.sdkLoginOf()
	if err != nil {
		return nil, err
	}
	var s *sdkSession
	err = shared.withLogin(ctx, func(login *hcnetsdk.Session) error {
		b.sdkTalkInfo(ctx, login)
		var err error
		s, err = b.play(ctx, login)
		return err
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	return s, nil
}

// sdkChannel maps the URL's channel to the SDK's channel number: a camera's
// channels start at the device's first analog channel; on a recorder the
// channels past its analog ones are its IP channels, which the SDK numbers
// from the device's first digital channel.
func sdkChannel(n int, info hcnetsdk.DeviceInfo) (int, error) {
	if n <= info.AnalogChannels {
		first := info.FirstAnalogChannel
		if first <= 0 {
			first = 1
		}
		return first + n - 1, nil
	}
	if ip := n - info.AnalogChannels; ip <= info.IPChannels {
		return info.FirstIPChannel + ip - 1, nil
	}
	return 0, &causeError{sentinel: ErrChannelNotFound, cause: fmt.Errorf(
		"channel %d: the device has %d analog and %d IP channels", n, info.AnalogChannels, info.IPChannels)}
}

func (b *sdkBackend) play(ctx context.Context, login *hcnetsdk.Session) (*sdkSession, error) {
	ch, err := sdkChannel(b.cfg.Channel, login.Info())
	if err != nil {
		return nil, newDialError("sdk channel", b.addr, err, b.cfg)
	}
	stream := hcnetsdk.StreamMain
	switch b.cfg.Stream {
	case StreamSub:
		stream = hcnetsdk.StreamSub
	case StreamThird:
		stream = hcnetsdk.StreamThird
	}
	pl, err := login.RealPlay(ctx, hcnetsdk.PlayParams{Channel: ch, Stream: stream})
	if err != nil {
		cause := sdkCause(err)
		if errors.Is(err, hcnetsdk.ErrChannel) {
			cause = &causeError{sentinel: ErrChannelNotFound, cause: err}
		}
		return nil, newDialError("sdk real-play", b.addr, cause, b.cfg)
	}
	s := &sdkSession{
		b: b, play: pl,
		start: make(chan struct{}), ready: make(chan struct{}),
		closing: make(chan struct{}), done: make(chan struct{}),
	}
	s.src = ps.NewSource(ps.SourceConfig{OnPacket: s.route})
	go s.pump()

	wait := sdkMediaWait
	if b.cfg.Timeout > 0 {
		wait = b.cfg.Timeout
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-s.ready:
	case <-t.C:
	case <-s.done:
		_ = s.Close()
		return nil, s.err
	case <-ctx.Done():
		_ = s.Close()
		return nil, ctx.Err()
	}
	s.medias = s.src.Medias()
	if len(s.medias) == 0 {
		_ = s.Close()
		return nil, newDialError("sdk medias", b.addr, &causeError{sentinel: ErrNoMedia,
			cause: fmt.Errorf("no H.264/H.265 key frame or G.711/AAC audio within %s", wait)}, b.cfg)
	}
	return s, nil
}

// sdkSession is one real-play of sdkBackend. Its pump goroutine is the only
// reader of the SDK's data and the only caller of the tracks' Out.
type sdkSession struct {
	b      *sdkBackend
	play   *hcnetsdk.Play
	src    *ps.Source
	medias []*core.Media

	mu   sync.Mutex
	outs map[int]core.HandlerFunc // by index into medias

	start     chan struct{} // closed by Play: deliver
	startOnce sync.Once
	ready     chan struct{} // closed by pump once the source knows its medias
	closing   chan struct{}
	closeOnce sync.Once
	closeErr  error
	done      chan struct{} // pump ended; err says why
	err       error
}

func (s *sdkSession) Medias() []*core.Media { return s.medias }
func (s *sdkSession) SDP() string           { return "" }
func (s *sdkSession) RemoteAddr() string    { return s.b.addr }

// Setup routes each track to the session's media of the same kind and
// codec name (the same pointer on the Dial's session).
func (s *sdkSession) Setup(ctx context.Context, tracks []Track) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.outs == nil {
		s.outs = map[int]core.HandlerFunc{}
	}
	for _, t := range tracks {
		i := s.match(t)
		if i < 0 {
			return newDialError("sdk setup", s.b.addr, &causeError{sentinel: ErrStreamChanged,
				cause: errors.New(t.Media.String() + " not in " + mediaList(s.medias))}, s.b.cfg)
		}
		s.outs[i] = t.Out
	}
	return nil
}

func (s *sdkSession) match(t Track) int {
	for i, m := range s.medias {
		if m == t.Media {
			return i
		}
	}
	for i, m := range s.medias {
		if m.Kind == t.Media.Kind && len(m.Codecs) > 0 && m.Codecs[0].Name == t.Codec.Name {
			return i
		}
	}
	return -1
}

// route takes the source's packets (on the pump goroutine).
func (s *sdkSession) route(track int, pkt *rtp.Packet) {
	s.mu.Lock()
	out := s.outs[track]
	s.mu.Unlock()
	if out != nil {
		out(pkt)
	}
}

// Play delivers until the real-play ends, the SDK reports it lost, or Close.
func (s *sdkSession) Play() error {
	s.startOnce.Do(func() { close(s.start) })
	<-s.done
	return s.err
}

// pump reads the SDK's data and events until the play ends or Close.
func (s *sdkSession) pump() {
	defer close(s.done)
	data, events, start := s.play.Data(), s.play.Events(), s.start
	ready := false
	end := func(step string, cause error) {
		select {
		case <-s.closing:
			s.err = errStopped
		default:
			s.err = newDialError(step, s.b.addr, cause, s.b.cfg)
		}
	}
	for {
		select {
		case <-s.closing:
			s.err = errStopped
			return
		case <-start:
			start = nil
			s.src.Start()
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if ev.Type.Lost() {
				end("sdk play", &SDKExceptionError{Type: ev.Type})
				return
			}
		case pkt, ok := <-data:
			if !ok {
				end("sdk play", errors.New("real-play ended"))
				return
			}
			if pkt.Type != hcnetsdk.DataSysHead && pkt.Type != hcnetsdk.DataStream {
				continue
			}
			if err := s.src.Write(pkt.Data); err != nil && errors.Is(err, ps.ErrCodecChanged) {
				end("sdk play", &causeError{sentinel: ErrStreamChanged, cause: err})
				return
			}
			if !ready && s.src.Ready() {
				ready = true
				close(s.ready)
			}
		}
	}
}

// Close stops the real-play (no data callback is delivered after it) and
// waits for the pump; the login stays for the device's other sessions.
// Safe at any time and more than once.
func (s *sdkSession) Close() error {
	s.closeOnce.Do(func() {
		close(s.closing)
		s.closeErr = s.play.Stop()
		<-s.done
	})
	return s.closeErr
}

// sdkCause turns an SDK error into the causes the login guard and the
// supervisor sort: a refused login or a lock carries the device's lock
// facts as the ISAPI path reports them (tries left, lock time left); a
// connection the SDK could not make is unreachable; a timeout a timeout.
func sdkCause(err error) error {
	var se *hcnetsdk.Error
	if !errors.As(err, &se) {
		return err
	}
	switch {
	case errors.Is(err, hcnetsdk.ErrUserLocked), errors.Is(err, hcnetsdk.ErrWrongPassword):
		ae := &isapi.AuthError{Method: "SDK", Path: se.Op, RetryLoginTime: -1}
		if errors.Is(err, hcnetsdk.ErrUserLocked) {
			ae.Locked = true
			ae.UnlockTime = se.LockRemaining
		} else if se.LockReported {
			ae.RetryLoginTime = se.TriesLeft
		}
		return &sdkError{sdk: se, also: ae}
	case se.Code == 10 || se.Code == 14:
		return &sdkError{sdk: se, also: os.ErrDeadlineExceeded}
	case errors.Is(err, hcnetsdk.ErrNetwork):
		return &sdkError{sdk: se, also: syscall.ECONNREFUSED}
	case errors.Is(err, hcnetsdk.ErrNoPrivilege):
		return &sdkError{sdk: se, also: isapi.ErrLowPrivilege}
	}
	return err
}

// sdkError is an SDK error with the cause it stands for in this package's
// classification; its text is the SDK's.
type sdkError struct {
	sdk  *hcnetsdk.Error
	also error
}

func (e *sdkError) Error() string   { return e.sdk.Error() }
func (e *sdkError) Unwrap() []error { return []error{e.sdk, e.also} }
