package talk

import (
	"context"
	"io"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
)

// ISAPIDevice is the Device of one talk channel of an *isapi.Client.
type ISAPIDevice struct {
	Client  *isapi.Client
	Channel string // TwoWayAudioChannel id, e.g. "1"
}

func (d ISAPIDevice) Open(ctx context.Context) (string, error) {
	return d.Client.TalkOpen(ctx, d.Channel)
}

func (d ISAPIDevice) Close(ctx context.Context) error {
	return d.Client.TalkClose(ctx, d.Channel)
}

func (d ISAPIDevice) AudioData(ctx context.Context, sessionID string) (io.WriteCloser, error) {
	return d.Client.TalkAudioData(ctx, d.Channel, sessionID)
}

var _ Device = ISAPIDevice{}
