package hikvision

// Voice talk (the backchannel): a sendonly audio media in the device's talk
// codec, fed by go2rtc through AddTrack into the internal/talk engine (lazy
// session, idle close, busy line, stop contract).

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/AlexxIT/go2rtc/pkg/aac"
	"github.com/AlexxIT/go2rtc/pkg/core"
	"github.com/pion/rtp"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/intercom"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/talk"
)

// aacTalkFmtp is the RTP fmtp of AAC-LC talk (RFC 3640 AAC-hbr); config= is
// the AudioSpecificConfig, filled per sample rate (1408: 16 kHz mono).
const aacTalkFmtp = "streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config="

// backchannel is the talk side of a Producer.
type backchannel struct {
	channel string // TwoWayAudio channel id
	codec   string // the device's audioCompressionType
	media   *core.Media

	mu      sync.Mutex
	sess    *talk.Session // made by the first AddTrack
	senders []*core.Sender
	stopped bool
}

// talkMedia returns the sendonly media to append to the producer's medias,
// from the talk channels the probe read (probe.go: in the same concurrent
// round and cache entry as the rest), or nil: #backchannel=0, the device
// refused or did not answer, no talk channel, or a talk codec this source
// cannot send (logged once per Dial). It makes no request and never fails Dial.
func (p *Producer) talkMedia() *core.Media {
	cfg := p.cfg
	if !cfg.Backchannel || !p.probe.Talk.Asked {
		return nil
	}
	host := cfg.HTTPAddr()
	tp := &p.probe.Talk
	if tp.Refused != nil {
		p.log.Debug().Str("device", host).Str("err", redactErr(tp.Refused, cfg)).Msg("[hikvision] no two-way audio")
		return nil
	}
	ch := chooseTalkChannel(tp.Channels, cfg.TalkChannel)
	if ch == nil {
		if cfg.TalkChannel != "" {
			p.log.Warn().Str("device", host).Str("talk_channel", cfg.TalkChannel).
				Msg("[hikvision] the device has no such two-way audio channel: no talk")
		} else if len(tp.Channels) > 0 {
			p.log.Info().Str("device", host).Msg("[hikvision] no two-way audio channel with a speaker: no talk")
		}
		return nil
	}
	codec, err := talkCodec(ch)
	if err != nil {
		p.log.Warn().Str("device", host).Str("channel", ch.ID).Str("codec", ch.AudioCodec).
			Msg("[hikvision] talk codec " + ch.AudioCodec + " cannot be sent (G.711ulaw, G.711alaw or AAC needed; change it in the device's audio settings): no talk")
		return nil
	}
	media := &core.Media{Kind: core.KindAudio, Direction: core.DirectionSendonly, Codecs: []*core.Codec{codec}}
	p.talk = &backchannel{channel: ch.ID, codec: ch.AudioCodec, media: media}
	return media
}

// chooseTalkChannel: the one named by talk_channel, else the first with a
// speaker (audioOutputType Speaker), else the first that does not say.
func chooseTalkChannel(chs []isapi.TwoWayAudioChannel, want string) *isapi.TwoWayAudioChannel {
	if want != "" {
		for i := range chs {
			if chs[i].ID == want {
				return &chs[i]
			}
		}
		return nil
	}
	for i := range chs {
		if strings.Contains(strings.ToLower(chs[i].AudioOutputType), "speaker") {
			return &chs[i]
		}
	}
	for i := range chs {
		if chs[i].AudioOutputType == "" {
			return &chs[i]
		}
	}
	return nil
}

// talkCodec maps the device's talk codec to the RTP codec go2rtc sends us.
func talkCodec(ch *isapi.TwoWayAudioChannel) (*core.Codec, error) {
	switch strings.ToLower(ch.AudioCodec) {
	case "g.711ulaw", "g711ulaw", "g.711u":
		return &core.Codec{Name: core.CodecPCMU, ClockRate: 8000}, nil
	case "g.711alaw", "g711alaw", "g.711a":
		return &core.Codec{Name: core.CodecPCMA, ClockRate: 8000}, nil
	case "aac":
		rate := uint32(16000) // AAC talk is 16 kHz unless the device says otherwise
		if r := ch.AudioSamplingRate; r > 0 {
			rate = uint32(r)
		}
		if _, err := talk.NewAACFramerLC(rate, 1); err != nil { // a rate ADTS cannot say
			return nil, err
		}
		return &core.Codec{Name: core.CodecAAC, ClockRate: rate, Channels: 1, FmtpLine: aacTalkFmtp + aacConfig(rate)}, nil
	}
	return nil, fmt.Errorf("%w: %s", talk.ErrCodec, ch.AudioCodec)
}

// aacConfig is the hex AudioSpecificConfig of AAC-LC mono at rate.
func aacConfig(rate uint32) string {
	return strings.ToUpper(hex.EncodeToString(aac.EncodeConfig(aac.TypeAACLC, rate, 1, false)))
}

// AddTrack is go2rtc handing us the audio to speak through the device (a
// browser microphone, an RTSP client's backchannel, a played file). Nothing is
// sent to the device here: the talk session opens on the first audio packet.
func (p *Producer) AddTrack(media *core.Media, codec *core.Codec, track *core.Receiver) error {
	bc := p.talk
	if bc == nil || media != bc.media {
		return errors.New("hikvision: AddTrack for a media this producer does not have: " + media.String())
	}
	if codec == nil || track == nil {
		return errors.New("hikvision: AddTrack without codec or track")
	}
	framer, err := talk.NewFramer(codec)
	if err != nil {
		return fmt.Errorf("hikvision: talk: %w", err)
	}

	bc.mu.Lock()
	defer bc.mu.Unlock()
	if bc.stopped {
		return errors.New("hikvision: producer stopped")
	}
	if bc.sess == nil {
		client, err := p.dev.isapiClient()
		if err != nil {
			return err
		}
		var dev talk.Device = &guardedTalk{dev: talk.ISAPIDevice{Client: client, Channel: bc.channel}, device: p.dev}
		if sd := p.sdkTalkDevice(bc.channel); sd != nil {
			dev = sd // transport=sdk: its Open logs in through the guard itself
		}
		if p.m.opts.talkAnswersRing() {
			dev = &ringTalk{Device: dev, p: p, gate: intercom.TalkGate{Do: deviceDoer(p.dev, client)}}
		}
		tc := talk.Config{
			Device:   dev,
			Framer:   framer,
			TakeOver: p.cfg.TalkTakeover,
			OnState:  p.onTalkState,
		}
		if p.m.talkHook != nil {
			p.m.talkHook(&tc)
		}
		if bc.sess, err = talk.New(tc); err != nil {
			return fmt.Errorf("hikvision: talk: %w", err)
		}
	}
	sess := bc.sess

	sender := core.NewSender(media, track.Codec)
	sender.Handler = func(packet *rtp.Packet) { sess.Write(packet.Payload) }
	if !track.Codec.IsRTP() && track.Codec.Name == core.CodecAAC {
		// Raw AAC units (an ffmpeg or file source): go2rtc's AAC RTP
		// payloader adds the AU headers the framer reads.
		sender.Handler = aac.RTPPay(sender.Handler)
	}
	//lint:ignore SA1019 go2rtc v1.9.14 marks it deprecated but has no other way to bind a sender to a receiver
	sender.HandleRTP(track)
	bc.senders = append(bc.senders, sender)

	p.mu.Lock()
	p.Senders = append(p.Senders, sender)
	p.mu.Unlock()
	return nil
}

// guardedTalk is the talk.Device of a producer: every talk request (open,
// close, audioData) is an attempt of the device's login guard (Device.Do),
// which every producer, snapshot and talk session of the device shares.
//
// The first authentication failure is permanent for talk (the talk engine
// turns talk off on it) and is counted once: every later call returns it
// without a request, so a close the engine still tries, or a take-over's
// close-then-open, cannot spend the budget again.
type guardedTalk struct {
	dev    talk.Device
	device *Device

	mu      sync.Mutex
	authErr error // the first authentication failure; latched
}

func (g *guardedTalk) Open(ctx context.Context) (sid string, err error) {
	err = g.do(ctx, func(ctx context.Context) error {
		var err error
		sid, err = g.dev.Open(ctx)
		return err
	})
	return sid, err
}

func (g *guardedTalk) Close(ctx context.Context) error {
	return g.do(ctx, func(ctx context.Context) error { return g.dev.Close(ctx) })
}

// AudioData counts as a login that worked once the request went out: the
// credentials were proved by the open just before on the same client. A
// refusal the device sends on the audio connection later comes through the
// writer (guardedWriter) and is recorded then.
func (g *guardedTalk) AudioData(ctx context.Context, sessionID string) (io.WriteCloser, error) {
	var w io.WriteCloser
	err := g.do(ctx, func(ctx context.Context) error {
		var err error
		w, err = g.dev.AudioData(ctx, sessionID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &guardedWriter{WriteCloser: w, g: g}, nil
}

// do runs one authenticated talk request through the device's guard, unless
// an authentication failure is latched.
func (g *guardedTalk) do(ctx context.Context, req func(context.Context) error) error {
	if err := g.latched(); err != nil {
		return err
	}
	err := g.device.Do(ctx, req)
	if isAuthErr(err) {
		g.latch(err)
	}
	return err
}

func (g *guardedTalk) latched() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.authErr
}

// latch keeps the first authentication failure; true if err is the first.
func (g *guardedTalk) latch(err error) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.authErr != nil {
		return false
	}
	g.authErr = err
	return true
}

// guardedWriter reports an authentication refusal that arrives on the audio
// connection (the device's answer to the audioData request) to the guard.
type guardedWriter struct {
	io.WriteCloser
	g *guardedTalk
}

func (w *guardedWriter) Write(b []byte) (int, error) {
	n, err := w.WriteCloser.Write(b)
	if err != nil && isAuthErr(err) && w.g.latch(err) {
		// the device's answer to the audioData request, after it returned
		w.g.device.guard.ReportLate(err)
	}
	return n, err
}

// SetWriteDeadline passes through, so the talk engine's write timeout works.
func (w *guardedWriter) SetWriteDeadline(t time.Time) error {
	if d, ok := w.WriteCloser.(interface{ SetWriteDeadline(time.Time) error }); ok {
		return d.SetWriteDeadline(t)
	}
	return nil
}

// ringTalk answers a door station's ringing call before talk opens, and
// hangs up the call it answered when the talk session closes: opening talk
// alone does not answer, so the station would ring on and the visitor hear
// nothing. Only on devices known to be door stations (they answered the call
// status, or deviceInfo says so); for others it adds no request. A call
// already answered elsewhere is left alone (the open is then refused as busy
// and the talk engine waits, as for any other talker), and only a call this
// session answered is ever hung up. Every request goes through the device's
// login guard (deviceDoer).
type ringTalk struct {
	talk.Device
	p *Producer

	mu       sync.Mutex // the talk engine calls Open and Close one at a time; held across them anyway
	gate     intercom.TalkGate
	answered bool // the gate answered a call that is not hung up yet
}

// ringHangUpTimeout bounds the hang-up after a talk (Stop waits for it).
const ringHangUpTimeout = 3 * time.Second

func (r *ringTalk) doorStation() bool {
	if r.p.dev.isDoorStation() {
		return true
	}
	return strings.Contains(strings.ToLower(r.p.probe.Info.DeviceType), "doorstation")
}

func (r *ringTalk) Open(ctx context.Context) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.doorStation() {
		answered, err := r.gate.TalkStarting(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			// talk is tried anyway: the station may not be ringing
			r.p.log.Warn().Str("device", r.p.cfg.HTTPAddr()).Str("err", redactErr(err, r.p.cfg)).
				Msg("[hikvision] door station: could not read or answer the call before talk")
		case answered:
			r.answered = true
			r.p.log.Info().Str("device", r.p.cfg.HTTPAddr()).Msg("[hikvision] door station ringing: answered the call to talk")
		}
	}
	sid, err := r.Device.Open(ctx)
	if err != nil {
		r.hangUp() // a call answered for a talk that did not open
	}
	return sid, err
}

func (r *ringTalk) Close(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.Device.Close(ctx)
	r.hangUp()
	return err
}

// hangUp ends the call this session answered (none: no request). Its own
// bound: the talk close may have used up its context. Caller holds r.mu.
func (r *ringTalk) hangUp() {
	if !r.answered {
		return
	}
	r.answered = false
	ctx, cancel := context.WithTimeout(context.Background(), ringHangUpTimeout)
	defer cancel()
	if err := r.gate.TalkEnded(ctx); err != nil {
		r.p.log.Warn().Str("device", r.p.cfg.HTTPAddr()).Str("err", redactErr(err, r.p.cfg)).
			Msg("[hikvision] door station: could not hang up the call answered for talk")
		return
	}
	r.p.log.Info().Str("device", r.p.cfg.HTTPAddr()).Msg("[hikvision] door station: talk ended, hung up the call it answered")
}

// onTalkState logs one line per talk state change.
func (p *Producer) onTalkState(st talk.State, err error) {
	ev := p.log.Debug()
	switch st {
	case talk.StateOpen:
		ev = p.log.Info()
	case talk.StateBusy:
		ev = p.log.Warn()
	case talk.StateFailed:
		ev = p.log.Error()
	case talk.StateIdle:
		if err != nil {
			ev = p.log.Warn()
		}
	}
	ev = ev.Str("device", p.cfg.HTTPAddr()).Str("channel", p.talk.channel)
	if err != nil {
		ev = ev.Str("err", redactErr(err, p.cfg))
	}
	ev.Msg("[hikvision] talk " + st.String())
}

// stopTalk ends talk for good: the stop contract of talk.Session (nothing more
// is sent but the one close of a session that was open) and the senders'
// goroutines. Called by Stop before the ISAPI client is closed.
func (p *Producer) stopTalk() {
	bc := p.talk
	if bc == nil {
		return
	}
	bc.mu.Lock()
	bc.stopped = true
	sess, senders := bc.sess, bc.senders
	bc.senders = nil
	bc.mu.Unlock()
	if sess != nil {
		sess.Stop()
	}
	for _, s := range senders {
		s.Close()
		s.Wait()
	}
}

// TalkStatus is the talk side of a producer, as /api/streams shows it.
type TalkStatus struct {
	Channel      string `json:"channel"`
	Codec        string `json:"codec"` // the device's audioCompressionType
	State        string `json:"state"` // idle (nothing sent yet), opening, open, busy, failed, stopped
	Error        string `json:"error,omitempty"`
	Opens        uint64 `json:"opens"`
	Closes       uint64 `json:"closes"`
	BusyRefusals uint64 `json:"busy_refusals,omitempty"`
	Failures     uint64 `json:"failures,omitempty"`
	Packets      uint64 `json:"packets"`
	Bytes        uint64 `json:"bytes"`
	Drops        uint64 `json:"drops,omitempty"`
	FrameErrors  uint64 `json:"frame_errors,omitempty"`
}

// Talk returns the talk status, nil when the producer has no talk media.
func (p *Producer) Talk() *TalkStatus {
	bc := p.talk
	if bc == nil {
		return nil
	}
	bc.mu.Lock()
	sess, stopped := bc.sess, bc.stopped
	bc.mu.Unlock()
	ts := &TalkStatus{Channel: bc.channel, Codec: bc.codec, State: talk.StateIdle.String()}
	if sess == nil {
		if stopped {
			ts.State = talk.StateStopped.String()
		}
		return ts
	}
	ts.State = sess.State().String()
	if err := sess.Err(); err != nil {
		ts.Error = redactErr(err, p.cfg)
	}
	st := sess.Stats()
	ts.Opens, ts.Closes, ts.BusyRefusals, ts.Failures = st.Opens, st.Closes, st.BusyRefusals, st.Failures
	ts.Packets, ts.Bytes, ts.Drops, ts.FrameErrors = st.Packets, st.Bytes, st.Drops, st.FrameErrors
	return ts
}
