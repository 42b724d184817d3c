package hikvision

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
)

// ProbeTTL is how long a probe result is reused: a reconnect within it (go2rtc
// calls Dial again after every Start return) makes no ISAPI request.
const ProbeTTL = 10 * time.Minute

// deviceProbe is what Dial learns from ISAPI before opening RTSP.
type deviceProbe struct {
	Info isapi.DeviceInfo
	NVR  bool
	// Channel is the streaming channel as the device describes it; nil when
	// the device refused to say (403, notSupport, lowPrivilege, NVR without
	// the channel in /ISAPI/Streaming/channels).
	Channel *isapi.StreamingChannel
	// RTSPPort is the device's RTSP port (adminAccesses, 554 if absent);
	// 0 when it was not asked because the URL gave rtsp_port.
	RTSPPort int
	// Talk is what the device said about its two-way audio channels, asked
	// with the rest when the URL wants talk (#backchannel, on by default).
	Talk talkInfo
	// Requests is how many ISAPI calls the probe made (for tests/logs).
	Requests int
	// IPChannel: a recorder named the channel in its IP-channel lists
	// (InputProxy); IPKnown: a list was read (an unlisted channel is then
	// an analog input).
	IPChannel, IPKnown bool
}

// pictureProxyLikely: the snapshot path to try first. A recorder's IP
// channel takes pictures through StreamingProxy, its analog inputs and
// cameras through the plain Streaming path. Without an IP-channel list, an
// NVR's channels are taken as IP channels and a DVR's as analog.
func (p *deviceProbe) pictureProxyLikely() bool {
	switch {
	case !p.NVR:
		return false
	case p.IPKnown:
		return p.IPChannel
	}
	return !strings.Contains(strings.ToUpper(p.Info.DeviceType), "DVR")
}

// talkInfo is the answer to GET /ISAPI/System/TwoWayAudio/channels.
type talkInfo struct {
	// Asked: the device answered (a list or a refusal). False when the
	// URL has #backchannel=0, or the request failed without an answer (a
	// later Dial asks again).
	Asked    bool
	Channels []isapi.TwoWayAudioChannel
	// Refused is the device's refusal (403, 404, notSupport...): no talk.
	Refused error
}

// probeCache keeps probes per device, channel and stream for the module:
// go2rtc builds a new producer on every reconnect.
type probeCache struct {
	mu  sync.Mutex
	m   map[string]probeEntry
	ttl time.Duration
	now func() time.Time
	// ports keeps the RTSP port each device named, beyond the probes'
	// expiry: a later cold start tries it first.
	ports map[string]int
}

type probeEntry struct {
	p       *deviceProbe
	expires time.Time
}

func newProbeCache(ttl time.Duration) *probeCache {
	return &probeCache{m: map[string]probeEntry{}, ttl: ttl, now: time.Now, ports: map[string]int{}}
}

// probeKey identifies device + channel + stream (and the user, whose
// privileges decide what the device tells): the device's key plus the
// stream id.
func probeKey(cfg *Config) string {
	return deviceKey(cfg) + "/" + strconv.Itoa(cfg.StreamID())
}

func (c *probeCache) get(cfg *Config) *deviceProbe {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[probeKey(cfg)]
	if !ok || !c.now().Before(e.expires) {
		return nil
	}
	if cfg.RTSPPort == 0 && e.p.RTSPPort == 0 {
		return nil // cached without the port; this URL needs it
	}
	if cfg.Backchannel && !e.p.Talk.Asked {
		return nil // cached without the talk channels; this URL needs them
	}
	return e.p
}

func (c *probeCache) put(cfg *Config, p *deviceProbe) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for k, e := range c.m { // drop expired entries; the map stays small
		if !now.Before(e.expires) {
			delete(c.m, k)
		}
	}
	c.m[probeKey(cfg)] = probeEntry{p: p, expires: now.Add(c.ttl)}
	if cfg.RTSPPort == 0 && p.RTSPPort != 0 {
		c.ports[deviceKey(cfg)] = p.RTSPPort
	}
}

// rtspPort is the RTSP port cfg's device named in its last probe, 0 if none.
func (c *probeCache) rtspPort(cfg *Config) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ports[deviceKey(cfg)]
}

// guardedProbe runs probe as two authenticated attempts of the device's
// guard, the login and then the round (a hold returns *HoldError without
// any request). afterLogin, if not nil, runs once the login succeeded,
// before the round: the credentials are good from there on.
func (m *Module) guardedProbe(ctx context.Context, d *Device, c *isapi.Client, cfg *Config, afterLogin func()) (*deviceProbe, error) {
	var p *deviceProbe
	err := d.Do(ctx, func(ctx context.Context) error {
		var err error
		p, err = m.probeLogin(ctx, c, cfg)
		return err
	})
	if err == nil {
		if afterLogin != nil {
			afterLogin()
		}
		err = d.Do(ctx, func(ctx context.Context) error { return m.probeRound(ctx, c, cfg, p) })
	}
	if err == nil || errors.Is(err, ErrChannelNotFound) || errors.Is(err, ErrChannelOffline) {
		m.warnBasic(cfg, c)
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Sentinel errors of Dial (match with errors.Is; ISAPI causes also match the
// isapi package's sentinels such as isapi.ErrUnauthorized and isapi.ErrLocked).
var (
	// ErrChannelNotFound: the device has no such channel/stream.
	ErrChannelNotFound = errors.New("hikvision: no such channel or stream on the device")
	// ErrNoMedia: the RTSP stream has no video or audio this source can pass on.
	ErrNoMedia = errors.New("hikvision: no supported video or audio in the stream")
	// ErrRTSPUnauthorized: the RTSP server refused the credentials.
	ErrRTSPUnauthorized = errors.New("hikvision: wrong credentials (RTSP refused the user/password)")
)

// probe asks the device what Dial needs:
//
//	GET /ISAPI/System/deviceInfo           model, firmware, type (NVR?)
//
// first and alone: it is the client's login (the challenge round trip, then
// the answer), so a wrong password costs one failed login and nothing else is
// asked. Then, with the challenge cached, concurrently in one round:
//
//	GET /ISAPI/Streaming/channels/<id>     codec, resolution; 404, statusCode 6 badParameters or a
//	                                       bare 400/403/500 = no such channel or stream
//	GET /ISAPI/Security/adminAccesses      RTSP port (skipped when rtsp_port is given)
//	GET /ISAPI/System/TwoWayAudio/channels talk channels and codec (skipped with #backchannel=0)
//	GET /ISAPI/ContentMgmt/InputProxy/channels  only when deviceType is empty (NVR detection)
//	GET /ISAPI/ContentMgmt/InputProxy/channels/status  NVR (or empty deviceType): is the IP channel online?
//
// (Started all at once on a cold client, the isapi client would serialise
// them behind its first login: one round trip each.) The round's extra
// connections are opened while the login runs. So a cold probe costs three
// round trips whatever it asks. One more request happens only in a
// rare case, after the round: the NVR StreamingProxy channel when an NVR
// does not list the channel itself.
func (m *Module) probe(ctx context.Context, c *isapi.Client, cfg *Config) (*deviceProbe, error) {
	p, err := m.probeLogin(ctx, c, cfg)
	if err != nil {
		return nil, err
	}
	if err := m.probeRound(ctx, c, cfg, p); err != nil {
		return nil, err
	}
	return p, nil
}

// probeLogin is the probe's first request, deviceInfo: the login.
func (m *Module) probeLogin(ctx context.Context, c *isapi.Client, cfg *Config) (*deviceProbe, error) {
	p := &deviceProbe{Requests: 1}

	// The round after the login needs a connection per request. Connect
	// them meanwhile (no request on them until the login succeeded): the
	// round then costs one round trip, not a connect and a request. The
	// login's own connection may take one of the requests, when it is back
	// in the client's pool in time; the spare also serves an NVR's status
	// request (NVR or not is the login's answer).
	round := 1
	if cfg.RTSPPort == 0 {
		round++
	}
	if cfg.Backchannel {
		round++
	}
	c.Preconnect(round)

	info, err := c.DeviceInfo(ctx)
	if err != nil {
		return nil, newDialError("probe deviceInfo", cfg.HTTPAddr(), err, cfg)
	}
	p.Info = *info
	p.NVR = info.IsNVR()
	return p, nil
}

// probeRound asks the rest of the probe, after the login, concurrently.
func (m *Module) probeRound(ctx context.Context, c *isapi.Client, cfg *Config, p *deviceProbe) error {
	id := cfg.StreamID()
	host := cfg.HTTPAddr()
	info := &p.Info
	var (
		wg                           sync.WaitGroup
		ch                           *isapi.StreamingChannel
		port                         int
		talkChs                      []isapi.TwoWayAudioChannel
		inputs                       []isapi.InputProxyChannel
		statuses                     []isapi.InputProxyStatus
		chErr, pe, talkErr, inputErr error
		statusErr                    error
	)
	ask := func(f func()) {
		wg.Add(1)
		p.Requests++
		go func() { defer wg.Done(); f() }()
	}
	ask(func() { ch, chErr = c.StreamingChannel(ctx, id) })
	if cfg.RTSPPort == 0 {
		ask(func() { port, pe = c.RTSPPort(ctx) })
	}
	if cfg.Backchannel {
		ask(func() { talkChs, talkErr = c.TwoWayAudioChannels(ctx) })
	}
	if info.DeviceType == "" {
		// Not every firmware says what it is: an NVR answers InputProxy.
		ask(func() { inputs, inputErr = c.InputProxyChannels(ctx) })
	}
	if p.NVR || info.DeviceType == "" {
		// Is the NVR's IP channel connected? (A camera answers notSupport.)
		ask(func() { statuses, statusErr = c.InputProxyStatus(ctx) })
	}
	wg.Wait()

	// An auth failure on any call is fatal (the lock counter is ticking).
	for _, e := range []struct {
		step string
		err  error
	}{{"probe streaming channel " + strconv.Itoa(id), chErr}, {"probe RTSP port", pe},
		{"probe two-way audio channels", talkErr}, {"probe InputProxy", inputErr},
		{"probe InputProxy status", statusErr}} {
		if isAuthErr(e.err) {
			return newDialError(e.step, host, e.err, cfg)
		}
	}
	if info.DeviceType == "" && inputErr == nil && len(inputs) > 0 {
		p.NVR = true
	}
	if p.NVR && statusErr == nil {
		p.IPKnown = true
		for _, st := range statuses {
			p.IPChannel = p.IPChannel || st.ID == cfg.Channel
		}
	}
	if inputErr == nil && len(inputs) > 0 {
		p.IPKnown = true
		for _, in := range inputs {
			p.IPChannel = p.IPChannel || in.ID == cfg.Channel
		}
	}
	if p.NVR {
		if err := channelOnline(statuses, statusErr, cfg.Channel, host); err != nil {
			return err
		}
		if statusErr != nil {
			m.log.Debug().Str("device", host).Str("err", redactErr(statusErr, cfg)).
				Msg("[hikvision] NVR channel status unknown")
		}
	}

	if cfg.Backchannel {
		var se *isapi.StatusError
		switch {
		case talkErr == nil:
			p.Talk = talkInfo{Asked: true, Channels: talkChs}
		case errors.As(talkErr, &se):
			p.Talk = talkInfo{Asked: true, Refused: talkErr} // the device's answer: cached
		default:
			m.log.Warn().Str("device", host).Str("err", redactErr(talkErr, cfg)).
				Msg("[hikvision] two-way audio channels unknown: no talk this time")
		}
	}

	if pe != nil {
		m.log.Warn().Str("device", host).Str("err", redactErr(pe, cfg)).Msg("[hikvision] RTSP port unknown, using 554")
		port = isapi.DefaultRTSPPort
	}
	p.RTSPPort = port

	switch {
	case chErr == nil:
		p.Channel = ch
	case isBareAbsent(chErr):
		// the bare answer of a stream the device does not have: no
		// StreamingProxy round, no RTSP
		return newDialError("probe streaming channel "+strconv.Itoa(id), host, newAbsentError(cfg, chErr), cfg)
	case p.NVR:
		// IP channels of an NVR may only be described under StreamingProxy.
		// (Snapshots of them likewise need
		// /ISAPI/ContentMgmt/StreamingProxy/channels/<id>/picture.)
		// RTSP uses /Streaming/Channels/<id> either way.
		p.Requests++
		sc, err := streamingProxyChannel(ctx, c, id)
		switch {
		case err == nil:
			p.Channel = sc
		case isAuthErr(err):
			return newDialError("probe streaming proxy channel "+strconv.Itoa(id), host, err, cfg)
		case isNotFound(chErr) && isNotFound(err):
			// neither a local nor an IP channel of the NVR
			return newDialError("probe streaming proxy channel "+strconv.Itoa(id), host, newAbsentError(cfg, err), cfg)
		}
	case isNotFound(chErr):
		return newDialError("probe streaming channel "+strconv.Itoa(id), host, newAbsentError(cfg, chErr), cfg)
	default:
		// 403/notSupport/lowPrivilege/odd XML: RTSP will tell.
		m.log.Debug().Str("device", host).Str("err", redactErr(chErr, cfg)).
			Msg("[hikvision] streaming channel not described by the device")
	}
	return nil
}

// streamingProxyChannel reads GET /ISAPI/ContentMgmt/StreamingProxy/channels/<id>.
func streamingProxyChannel(ctx context.Context, c *isapi.Client, id int) (*isapi.StreamingChannel, error) {
	var x struct {
		ID      string `xml:"id"`
		Name    string `xml:"channelName"`
		Enabled string `xml:"enabled"`
		Video   struct {
			Codec  string `xml:"videoCodecType"`
			Width  string `xml:"videoResolutionWidth"`
			Height string `xml:"videoResolutionHeight"`
			FPS    string `xml:"maxFrameRate"`
		} `xml:"Video"`
		Audio struct {
			Enabled string `xml:"enabled"`
			Codec   string `xml:"audioCompressionType"`
		} `xml:"Audio"`
	}
	if err := c.GetXML(ctx, "/ISAPI/ContentMgmt/StreamingProxy/channels/"+strconv.Itoa(id), &x); err != nil {
		return nil, err
	}
	atoi := func(s string) int { n, _ := strconv.Atoi(s); return n }
	return &isapi.StreamingChannel{
		ID: atoi(x.ID), ChannelName: x.Name, Enabled: x.Enabled == "true",
		VideoCodec: x.Video.Codec, Width: atoi(x.Video.Width), Height: atoi(x.Video.Height),
		MaxFrameRate: atoi(x.Video.FPS), AudioEnabled: x.Audio.Enabled == "true", AudioCodec: x.Audio.Codec,
	}, nil
}

// channelOnline returns *ChannelOfflineError when the NVR's status list says
// channel ch is offline. A channel the list does not name (an analog or
// local channel, or other numbering) or a status the NVR would not give
// passes: RTSP will tell.
func channelOnline(statuses []isapi.InputProxyStatus, statusErr error, ch int, host string) error {
	if statusErr != nil {
		return nil
	}
	for _, s := range statuses {
		if s.ID == ch && s.Known && !s.Online {
			return &ChannelOfflineError{Host: host, Channel: ch, Detect: s.DetectResult}
		}
	}
	return nil
}

func isAuthErr(err error) bool {
	return err != nil && (errors.Is(err, isapi.ErrUnauthorized) || errors.Is(err, isapi.ErrLocked) ||
		errors.Is(err, isapi.ErrNotActivated))
}

// isNotFound: the device says the streaming channel does not exist: 404, or
// (as most firmware answers an unknown channel id) ResponseStatus statusCode 6
// badParameters, or a bare status (see isBareAbsent).
func isNotFound(err error) bool {
	var se *isapi.StatusError
	if !errors.As(err, &se) {
		return false
	}
	return se.HTTPStatus == 404 || (se.StatusCode == 6 && strings.EqualFold(se.SubStatusCode, "badParameters")) ||
		isBareAbsent(err)
}

// isBareAbsent: a bare HTTP 400, 403 or 500 without a ResponseStatus, which
// recorders and older cameras answer for a stream they do not have (x03,
// x04). Never a 401: that is the login.
func isBareAbsent(err error) bool {
	var se *isapi.StatusError
	if !errors.As(err, &se) || se.StatusCode != 0 || se.StatusString != "" || se.SubStatusCode != "" || se.ErrorMsg != "" {
		return false
	}
	switch se.HTTPStatus {
	case 400, 403, 500:
		return true
	}
	return false
}

// absentError is the device's "no such channel or stream" answer, naming the
// stream asked for; it matches ErrChannelNotFound and the device's
// *isapi.StatusError.
type absentError struct {
	channel int
	stream  Stream
	id      int
	cause   error
}

func (e *absentError) Error() string {
	var se *isapi.StatusError
	if !errors.As(e.cause, &se) || !isBareAbsent(e.cause) {
		// 404 or statusCode 6: the channel itself may be the missing part
		return fmt.Sprintf("%s: channel %d, %s stream (id %d): %s", ErrChannelNotFound.Error(), e.channel, e.stream, e.id, describe(e.cause))
	}
	s := fmt.Sprintf("%s: channel %d has no %s stream (id %d): %s with no body", ErrChannelNotFound.Error(), e.channel, e.stream, e.id, describe(e.cause))
	if se.HTTPStatus == 403 {
		s += " (some firmware also answers a bare 403 when the user may not read the stream's settings: check the user's rights if the stream exists)"
	}
	return s
}

func (e *absentError) Unwrap() []error { return []error{ErrChannelNotFound, e.cause} }

// CredentialsAccepted: the device answered after the login (for the login
// guard).
func (e *absentError) CredentialsAccepted() bool { return true }

func newAbsentError(cfg *Config, cause error) error {
	return &absentError{channel: cfg.Channel, stream: cfg.Stream, id: cfg.StreamID(), cause: cause}
}
