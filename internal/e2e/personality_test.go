package e2e_test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/e2e"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

// personalityPlay is one stream of one simulated device kind played through go2rtc.
type personalityPlay struct {
	name          string
	dev           *sim.Device
	query         string
	video         string // ffprobe codec name; "" = the stream is absent and must fail
	width, height int
	audio         bool
	// stock: the source is go2rtc's own rtsp:// (a reference for what
	// hikvision:// does not play yet); gap: hikvision:// is known not to play
	// this stream yet, so its result is only logged.
	stock, gap bool
	// snapshot: also fetch /api/hikvision/snapshot for this stream (main
	// streams); snapGap: the module is known to take the wrong picture path
	// (a DVR's analog channel), so the answer is only logged.
	snapshot, snapGap bool
}

var streamWord = map[int]string{1: "main", 2: "sub", 3: "third"}

// TestPersonalitiesPlay plays, through the patched go2rtc, every stream of every
// simulator preset that hikvision:// can address today (main, sub, third), read
// by ffprobe; an absent third stream must fail. Fourth streams are listed as
// not addressable yet; an MJPEG stream, which hikvision:// does not keep yet,
// is played through go2rtc's own rtsp:// source instead (and the hikvision://
// result logged).
func TestPersonalitiesPlay(t *testing.T) {
	requireFFmpeg(t)
	bin := binary(t)
	users := map[string]string{"admin": e2ePassword}

	var plays []personalityPlay
	var notAddressable []string
	for _, preset := range sim.Presets() {
		cfg, _ := sim.Preset(preset)
		cfg.Users = users
		dev := startSim(t, cfg)
		for _, ch := range dev.Channels() {
			for n := 1; n <= 4; n++ {
				has := false
				for _, s := range ch.Streams {
					has = has || s == n
				}
				id := ch.ID*100 + n
				if n == 4 {
					if has {
						notAddressable = append(notAddressable, fmt.Sprintf("%s %d", preset, id))
					}
					continue
				}
				p := personalityPlay{name: fmt.Sprintf("%s_%d", strings.ReplaceAll(preset, "-", "_"), id), dev: dev,
					query: "?channel=" + strconv.Itoa(ch.ID) + "&stream=" + streamWord[n], audio: ch.Audio != "none",
					snapshot: n == 1 && has, snapGap: n == 1 && ch.Analog}
				if has {
					codec := ch.Video
					p.width, p.height = ch.Width, ch.Height
					if n > 1 {
						p.width, p.height = ch.SubWidth, ch.SubHeight
						if ch.SubVideo != "" {
							codec = ch.SubVideo
						}
					}
					p.video = map[string]string{"H.264": "h264", "H.265": "hevc", "MJPEG": "mjpeg"}[codec]
				} else if n != 3 {
					continue
				}
				if p.video == "mjpeg" {
					// hikvision:// keeps H.264/H.265 video only: log what it does,
					// and play the same stream through go2rtc's own rtsp:// source.
					ref := p
					ref.name, ref.stock = p.name+"_stock", true
					ref.query = (&url.URL{Scheme: "rtsp", User: url.UserPassword("admin", e2ePassword),
						Host: dev.RTSPAddr(), Path: "/Streaming/Channels/" + strconv.Itoa(id)}).String()
					plays = append(plays, ref)
					p.gap = true
				}
				plays = append(plays, p)
			}
		}
	}
	if len(notAddressable) > 0 {
		t.Logf("fourth streams the simulator serves but hikvision:// cannot choose yet: %s", strings.Join(notAddressable, ", "))
	}

	streams := map[string]string{}
	for _, p := range plays {
		streams[p.name] = hikURL("admin", e2ePassword, p.dev, p.query)
		if p.stock {
			streams[p.name] = p.query
		}
	}
	g := e2e.StartGo2rtc(t, bin, go2rtcConfig(streams, "hikvision=debug"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	sem := make(chan struct{}, 4) // a 2-core machine: a few ffprobes at a time
	var wg sync.WaitGroup
	for _, p := range plays {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			t.Run(p.name, func(t *testing.T) { checkPersonalityPlay(ctx, t, g, p) })
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.Logf("go2rtc output:\n%s", g.Output())
	}
}

func checkPersonalityPlay(ctx context.Context, t *testing.T, g *e2e.Go2rtc, p personalityPlay) {
	url := "rtsp://" + g.RTSPAddr + "/" + p.name
	t0 := time.Now()
	got, stderr, err := ffprobeStreams(ctx, url)
	took := time.Since(t0)
	if p.video == "" {
		if err == nil {
			t.Fatalf("absent stream %s played: %+v", p.query, got)
		}
		t.Logf("absent stream %s failed after %v: %s", p.query, took.Round(time.Millisecond), strings.TrimSpace(stderr))
		return
	}
	if p.gap {
		t.Logf("not played by hikvision:// yet (%s video): ffprobe found %+v, err %v", p.video, got, err)
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	var video, audio bool
	for _, s := range got {
		switch s.CodecType {
		case "video":
			video = true
			if s.CodecName != p.video || s.Width != p.width || s.Height != p.height {
				t.Errorf("video %+v, want %s %dx%d", s, p.video, p.width, p.height)
			}
		case "audio":
			audio = true
		}
	}
	if !video || audio != p.audio {
		t.Errorf("streams %+v: want video and audio=%v", got, p.audio)
	}
	if p.snapshot {
		a := getSnapshot(t, g, p.name)
		kind, problem := checkSnap(a)
		switch {
		case p.snapGap:
			t.Logf("snapshot of an analog channel (the module asks StreamingProxy): %d %s", a.status, a.body)
		case kind != "fresh" || problem != "":
			t.Errorf("snapshot: %s %s (status %d %s), want a fresh JPEG", kind, problem, a.status, a.body)
		}
	}
}

// TestPersonalityTalkChannels: on an NVR with two talk channels the module
// talks on the first one with a speaker, and on the second when the URL names
// it (talk_channel=2); the tone reaches the device on that channel.
func TestPersonalityTalkChannels(t *testing.T) {
	requireFFmpeg(t)
	bin := binary(t)
	cfg, _ := sim.Preset(sim.PresetNVRTwoTalk)
	cfg.Users = map[string]string{"admin": e2ePassword}
	for _, tc := range []struct{ query, want string }{
		{"?channel=1&stream=sub", "1"},
		{"?channel=1&stream=sub&talk_channel=2", "2"},
	} {
		t.Run("talk_channel="+tc.want, func(t *testing.T) {
			dev := startSim(t, cfg)
			g := e2e.StartGo2rtc(t, bin, go2rtcConfig(map[string]string{
				"door": hikURL("admin", e2ePassword, dev, tc.query),
			}, "hikvision=debug"))
			tone := talkToneFile(t, 440, 3)
			talkAPI(t, g, http.MethodPost, playURL(tone))
			var seen []string
			talkWait(t, g, "a talk session streaming audio", 20*time.Second, func() bool {
				for _, s := range dev.TalkSessions() {
					if s.Streaming && !slices.Contains(seen, s.Channel) {
						seen = append(seen, s.Channel)
					}
				}
				return len(seen) > 0 && dev.TalkClient(talkClientIP).Bytes >= 8000
			})
			if !slices.Equal(seen, []string{tc.want}) {
				t.Errorf("talk sessions on channels %v, want only %s", seen, tc.want)
			}
			if hz := talkMulawHz(dev.TalkAudio()); math.Abs(hz-440) > 440*0.03 {
				t.Errorf("the device's audio is %.0f Hz, want 440", hz)
			}
		})
	}
}
