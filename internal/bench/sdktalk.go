package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/e2e"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

// sdkTalkBurst is the audio a consumer sends before it leaves in the
// talk-after-stop rows of the sdk section.
var sdkTalkBurst = time.Second

// deviceCounts reads a device's talk sessions opened and the requests that
// reached it so far.
type deviceCounts func(ctx context.Context) (opens, requests float64, err error)

// simCounts: the simulator's talk sessions opened by 127.0.0.1, its ISAPI
// requests and RTSP connections.
func simCounts(d *sim.Device) deviceCounts {
	return func(context.Context) (float64, float64, error) {
		c := d.Client("127.0.0.1")
		return float64(d.TalkClient("127.0.0.1").Opens), requestCount(c) + float64(c.RTSPConnections), nil
	}
}

// fakeStatsCounts: the fake SDK's voice talk starts, and its logins, plays
// and talk starts as the requests, from the stats file the fake rewrites
// after every poll of its control file. The file is removed first and read
// when the fake wrote it again, so the figures are from after the call.
func fakeStatsCounts(path string) deviceCounts {
	return func(ctx context.Context) (float64, float64, error) {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return 0, 0, err
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			b, err := os.ReadFile(path)
			if err == nil {
				c, perr := parseFakeStats(string(b))
				if perr != nil {
					return 0, 0, perr
				}
				return c["talk_starts"], c["login_attempts"] + c["play_starts"] + c["talk_starts"], nil
			}
			if !errors.Is(err, os.ErrNotExist) {
				return 0, 0, err
			}
			if time.Now().After(deadline) {
				return 0, 0, fmt.Errorf("the fake SDK did not rewrite its stats file %s within 10 s", path)
			}
			select {
			case <-ctx.Done():
				return 0, 0, ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
}

// parseFakeStats reads the fake's "name value" lines; the counters the rows
// use must be there.
func parseFakeStats(s string) (map[string]float64, error) {
	out := map[string]float64{}
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			return nil, fmt.Errorf("fake SDK stats: bad line %q", line)
		}
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			return nil, fmt.Errorf("fake SDK stats: %s: %w", name, err)
		}
		out[name] = v
	}
	for _, k := range []string{"talk_starts", "login_attempts", "play_starts"} {
		if _, ok := out[k]; !ok {
			return nil, fmt.Errorf("fake SDK stats: no %s counter", k)
		}
	}
	return out, nil
}

// talkStop is one source's talk-after-stop measurement.
type talkStop struct {
	burstOpens             float64 // talk sessions the burst opened (must be > 0)
	stopOpens, stopRequest float64 // in the window after go2rtc stopped the producer
}

// measureTalkStop sends sdkTalkBurst of G.711 on stream's backchannel, leaves,
// waits until go2rtc stopped the producer, then counts what reaches the
// device over window.
func measureTalkStop(ctx context.Context, g *e2e.Go2rtc, stream string, counts deviceCounts, window time.Duration) (talkStop, error) {
	var ts talkStop
	o0, _, err := counts(ctx)
	if err != nil {
		return ts, err
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rd, err := DialReader(cctx, consumerURL(g, stream)+"?backchannel=1")
	if err != nil {
		return ts, err
	}
	defer rd.Close()
	payload, err := quietG711(rd.Backchannel())
	if err != nil {
		return ts, err
	}
	tick := time.NewTicker(talkPacket)
	for i := 0; i < int(sdkTalkBurst/talkPacket); i++ {
		if err := rd.WriteAudio(payload, uint32(len(payload))); err != nil {
			tick.Stop()
			return ts, fmt.Errorf("send audio: %w", err)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			tick.Stop()
			return ts, ctx.Err()
		}
	}
	tick.Stop()
	// the talk session opens lazily on the first audio: wait for it
	deadline := time.Now().Add(10 * time.Second)
	for ts.burstOpens == 0 {
		o1, _, err := counts(ctx)
		if err != nil {
			return ts, err
		}
		if ts.burstOpens = o1 - o0; ts.burstOpens == 0 && time.Now().After(deadline) {
			return ts, errors.New("the burst opened no talk session at the device: nothing to measure after stop")
		}
	}
	rd.Close()
	if err := waitProducerStopped(ctx, g, stream, 10*time.Second); err != nil {
		return ts, err
	}
	o2, r2, err := counts(ctx)
	if err != nil {
		return ts, err
	}
	quiet := time.NewTimer(window)
	select {
	case <-quiet.C:
	case <-ctx.Done():
		quiet.Stop()
		return ts, ctx.Err()
	}
	o3, r3, err := counts(ctx)
	if err != nil {
		return ts, err
	}
	ts.stopOpens, ts.stopRequest = o3-o2, r3-r2
	return ts, nil
}
