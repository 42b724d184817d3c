package hikvision

// Voice talk over the device network SDK (transport=sdk): the same talk
// engine (internal/talk) as ISAPI talk, with a talk.Device whose Open starts
// the SDK's voice talk on the device's shared login, whose audio writer
// passes encoded blocks to it, and whose Close stops the talk.

import (
	"context"
	"errors"
	"io"
	"strconv"
	"sync"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/hcnetsdk"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/talk"
)

// sdkTalkInfo fills the producer's probe with the device's talk channel and
// codec as the SDK reports them (NET_DVR_GetCurrentAudioCompress), once per
// producer, so that the producer offers its talk media as for ISAPI. Only
// G.711 is offered: the SDK takes other encodings in framings this module
// does not make.
func (b *sdkBackend) sdkTalkInfo(ctx context.Context, login *hcnetsdk.Session) {
	if b.probe == nil || b.probe.Talk.Asked || !b.cfg.Backchannel {
		return
	}
	b.probe.Talk.Asked = true
	info := login.Info()
	if info.TalkChannels <= 0 {
		b.probe.Talk.Refused = errors.New("the device reports no voice talk channel")
		return
	}
	ac, err := login.AudioCompress(ctx)
	if err != nil {
		b.probe.Talk.Refused = err
		return
	}
	codec := ac.Encoding.String()
	switch ac.Encoding {
	case hcnetsdk.TalkG711U:
		codec = "G.711ulaw"
	case hcnetsdk.TalkG711A:
		codec = "G.711alaw"
	}
	for n := 1; n <= info.TalkChannels; n++ {
		b.probe.Talk.Channels = append(b.probe.Talk.Channels, isapi.TwoWayAudioChannel{
			ID: strconv.Itoa(n), AudioCodec: codec, AudioOutputType: "Speaker"})
	}
}

// sdkTalkDevice returns the SDK talk device of a transport=sdk producer, or
// nil for the others.
func (p *Producer) sdkTalkDevice(channel string) talk.Device {
	b, ok := p.backend.(*sdkBackend)
	if !ok {
		return nil
	}
	n, err := strconv.Atoi(channel)
	if err != nil || n < 1 {
		n = 1
	}
	return &sdkTalk{b: b, channel: n}
}

// sdkTalk is one talk channel over the SDK: a voice talk per talk session
// of the engine, on the device's shared SDK login.
type sdkTalk struct {
	b       *sdkBackend
	channel int

	mu sync.Mutex
	tk *hcnetsdk.Talk
}

// Open starts the voice talk (logging in first, through the device's
// guard, if the device has no SDK login). A talk channel another client
// holds answers busy (talk.ErrBusy's rule: isapi.ErrDeviceBusy); nothing of
// the other client's talk is touched.
func (s *sdkTalk) Open(ctx context.Context) (string, error) {
	shared, err := s.b.sdkLoginOf()
	if err != nil {
		return "", err
	}
	var tk *hcnetsdk.Talk
	err = shared.withLogin(ctx, func(login *hcnetsdk.Session) error {
		var err error
		tk, err = login.StartTalk(ctx, s.channel)
		return err
	})
	if err != nil {
		var se *hcnetsdk.Error
		if errors.Is(err, hcnetsdk.ErrTalkBusy) && errors.As(err, &se) {
			return "", &sdkError{sdk: se, also: isapi.ErrDeviceBusy}
		}
		return "", sdkCause(err)
	}
	s.mu.Lock()
	s.tk = tk
	s.mu.Unlock()
	return "", nil
}

// AudioData returns the writer of the open talk.
func (s *sdkTalk) AudioData(ctx context.Context, _ string) (io.WriteCloser, error) {
	s.mu.Lock()
	tk := s.tk
	s.mu.Unlock()
	if tk == nil {
		return nil, errors.New("hikvision: sdk talk: not open")
	}
	return sdkTalkWriter{tk}, nil
}

// Close stops the talk; without an open talk it sends nothing.
func (s *sdkTalk) Close(ctx context.Context) error {
	s.mu.Lock()
	tk := s.tk
	s.tk = nil
	s.mu.Unlock()
	if tk == nil {
		return nil
	}
	return tk.Stop()
}

type sdkTalkWriter struct{ tk *hcnetsdk.Talk }

func (w sdkTalkWriter) Write(b []byte) (int, error) {
	if err := w.tk.Send(b); err != nil {
		return 0, err
	}
	return len(b), nil
}

// Close is a no-op: the talk ends with sdkTalk.Close (the engine calls it
// after the writer's Close).
func (w sdkTalkWriter) Close() error { return nil }
