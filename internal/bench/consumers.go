package bench

import (
	"context"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/e2e"
)

// consumers keeps one go2rtc RTSP consumer per source kind across device
// outages, for the sections that measure how a playing session comes back:
// a consumer go2rtc dropped is dialled again before the next outage.
type consumers struct {
	g    *e2e.Go2rtc
	name string // the streams' middle name: streamName(kind, name, 0)
	// video: a consumer is connected once video flows (else any packet)
	video bool
	rd    map[string]*Reader
}

func newConsumers(g *e2e.Go2rtc, name string, video bool) *consumers {
	return &consumers{g: g, name: name, video: video, rd: map[string]*Reader{}}
}

// ensure dials kind's consumer unless the one it has is still alive, and
// waits (60 s at most) for its first packet.
func (c *consumers) ensure(ctx context.Context, kind string) error {
	if rd := c.rd[kind]; rd != nil && rd.Alive() {
		return nil
	} else if rd != nil {
		rd.Close()
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	rd, err := DialReader(ctx, consumerURL(c.g, streamName(kind, c.name, 0)))
	if err != nil {
		return err
	}
	c.rd[kind] = rd
	if c.video {
		_, err = rd.WaitFirstVideo(ctx)
	} else {
		_, err = rd.WaitFirst(ctx)
	}
	return err
}

func (c *consumers) get(kind string) *Reader { return c.rd[kind] }

func (c *consumers) close() {
	for _, rd := range c.rd {
		rd.Close()
	}
}
