package e2e_test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
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
	// stock: the source is go2rtc's own rtsp:// (a reference beside
	// hikvision:// for the MJPEG stream).
	stock bool
	// snapshot: also fetch /api/hikvision/snapshot for this stream (main
	// streams).
	snapshot bool
	// absentAnswer: for an absent stream, the device's bare answer the
	// module must name ("HTTP 403").
	absentAnswer string
}

var streamWord = map[int]string{1: "main", 2: "sub", 3: "third", 4: "fourth"}

// personalityConfigs are the simulator presets plus the door station.
func personalityConfigs() (names []string, cfgs []sim.Config) {
	for _, preset := range sim.Presets() {
		cfg, _ := sim.Preset(preset)
		names, cfgs = append(names, preset), append(cfgs, cfg)
	}
	return append(names, "doorstation"), append(cfgs, sim.Config{Personality: sim.PersonalityDoorStation})
}

// TestPersonalitiesPlay plays, through the patched go2rtc, every stream of every
// simulator preset and of the door station (main, sub, third, fourth), read by
// ffprobe, with a snapshot of every main stream (a recorder's analog inputs
// and IP channels alike). A third or fourth stream the device does not have
// must fail at once with the device's answer named. The MJPEG stream is also
// played through go2rtc's own rtsp:// source as a reference.
func TestPersonalitiesPlay(t *testing.T) {
	requireFFmpeg(t)
	bin := binary(t)
	users := map[string]string{"admin": e2ePassword}

	var plays []personalityPlay
	names, cfgs := personalityConfigs()
	for i, preset := range names {
		cfg := cfgs[i]
		cfg.Users = users
		dev := startSim(t, cfg)
		for _, ch := range dev.Channels() {
			for n := 1; n <= 4; n++ {
				has := false
				for _, s := range ch.Streams {
					has = has || s == n
				}
				id := ch.ID*100 + n
				p := personalityPlay{name: fmt.Sprintf("%s_%d", strings.ReplaceAll(preset, "-", "_"), id), dev: dev,
					query: "?channel=" + strconv.Itoa(ch.ID) + "&stream=" + streamWord[n], audio: ch.Audio != "none",
					snapshot: n == 1 && has}
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
				} else {
					if n < 3 {
						continue
					}
					if code, bare := dev.Config().AbsentStream[n]; bare {
						p.absentAnswer = "HTTP " + strconv.Itoa(code) + " with no body"
					}
				}
				if p.video == "mjpeg" {
					ref := p
					ref.name, ref.stock, ref.snapshot = p.name+"_stock", true, false
					ref.query = (&url.URL{Scheme: "rtsp", User: url.UserPassword("admin", e2ePassword),
						Host: dev.RTSPAddr(), Path: "/Streaming/Channels/" + strconv.Itoa(id)}).String()
					plays = append(plays, ref)
				}
				plays = append(plays, p)
			}
		}
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
		// the module's line in go2rtc's log names the stream and the answer
		id := p.name[strings.LastIndexByte(p.name, '_')+1:]
		word := p.query[strings.LastIndexByte(p.query, '=')+1:]
		want := []string{"probe streaming channel " + id, "no such channel or stream", word + " stream (id " + id + ")"}
		if p.absentAnswer != "" {
			want = append(want, "has no "+word+" stream", p.absentAnswer)
		}
		line := ""
		for _, l := range strings.Split(g.Output(), "\n") {
			if strings.Contains(l, "probe streaming channel "+id) && strings.Contains(l, p.dev.HTTPAddr()) {
				line = l
			}
		}
		for _, w := range want {
			if !strings.Contains(line, w) {
				t.Errorf("absent stream %s: go2rtc's line %q lacks %q", p.query, line, w)
			}
		}
		// one ISAPI round, no RTSP: ffprobe's own wait on go2rtc's answer is
		// all that is left (RTSP's own failure takes 5 s or more)
		if took > 4*time.Second {
			t.Errorf("absent stream %s failed after %v, want at once", p.query, took.Round(time.Millisecond))
		}
		t.Logf("absent stream %s failed after %v: %s (ffprobe: %s)", p.query, took.Round(time.Millisecond), line, strings.TrimSpace(stderr))
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
		if kind, problem := checkSnap(a); kind != "fresh" || problem != "" {
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
			if hz := e2e.MulawHz(dev.TalkAudio()); math.Abs(hz-440) > 440*0.03 {
				t.Errorf("the device's audio is %.0f Hz, want 440", hz)
			}
		})
	}
}

// TestPersonalityTalkAAC32k: a device that lists 32 kHz AAC talk gets, through
// go2rtc and the module, ADTS frames at 32 kHz (the simulator refuses any
// other rate) that decode back to the tone played.
func TestPersonalityTalkAAC32k(t *testing.T) {
	requireFFmpeg(t)
	bin := binary(t)
	dev := startSim(t, sim.Config{Users: map[string]string{"admin": e2ePassword}, TalkCodec: "AAC",
		Talk: sim.TalkConfig{AACSampleRate: 32000}})
	g := e2e.StartGo2rtc(t, bin, go2rtcConfig(map[string]string{
		"door": hikURL("admin", e2ePassword, dev, "?channel=1&stream=sub"),
	}, "hikvision=debug"))
	dir := t.TempDir()
	tone := filepath.Join(dir, "tone32k.wav")
	if out, err := exec.Command("ffmpeg", "-hide_banner", "-v", "error", "-f", "lavfi",
		"-i", "sine=frequency=440:sample_rate=32000:duration=3", "-ac", "1", tone).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg tone: %v: %s", err, out)
	}
	talkAPI(t, g, http.MethodPost, "/api/streams?dst=door&src="+url.QueryEscape("ffmpeg:"+tone+"#audio=aac#input=file"))
	talkWait(t, g, "2 s of AAC at the device", 20*time.Second, func() bool {
		cs := dev.TalkClient(talkClientIP)
		return cs.FramingErrors > 0 || len(dev.TalkAudio()) > 0 && cs.Bytes > 16000
	})
	talkWait(t, g, "the talk session closed", 15*time.Second, func() bool { _, open := dev.TalkSession(); return !open })
	if cs := dev.TalkClient(talkClientIP); cs.FramingErrors != 0 {
		t.Fatalf("framing errors at the 32 kHz device: %+v", cs)
	}
	adts := filepath.Join(dir, "got.aac")
	if err := os.WriteFile(adts, dev.TalkAudio(), 0o644); err != nil {
		t.Fatal(err)
	}
	pcm, err := exec.Command("ffmpeg", "-hide_banner", "-v", "error", "-f", "aac", "-i", adts,
		"-f", "s16le", "-ac", "1", "-ar", "32000", "-").Output()
	if err != nil {
		t.Fatalf("ffmpeg decode of the device's AAC: %v", err)
	}
	crossings, prev := 0, int16(0)
	for i := 0; i+1 < len(pcm); i += 2 {
		v := int16(pcm[i]) | int16(pcm[i+1])<<8
		if (prev < 0) != (v < 0) && v != 0 {
			crossings++
		}
		if v != 0 {
			prev = v
		}
	}
	secs := float64(len(pcm)/2) / 32000
	if secs < 2 || math.Abs(float64(crossings)/2/secs-440) > 440*0.05 {
		t.Errorf("the device's AAC decodes to %.2f s at %.0f Hz, want about 3 s of 440 Hz", secs, float64(crossings)/2/secs)
	}
}

// TestPersonalityDoorStationTalk: a door station (deviceType VIS / door
// station) takes talk like a camera: the tone played to its stream reaches
// its speaker.
func TestPersonalityDoorStationTalk(t *testing.T) {
	requireFFmpeg(t)
	bin := binary(t)
	dev := startSim(t, sim.Config{Personality: sim.PersonalityDoorStation, Users: map[string]string{"admin": e2ePassword}})
	g := e2e.StartGo2rtc(t, bin, go2rtcConfig(map[string]string{
		"door": hikURL("admin", e2ePassword, dev, "?channel=1&stream=sub"),
	}, "hikvision=debug"))
	tone := talkToneFile(t, 440, 3)
	talkAPI(t, g, http.MethodPost, playURL(tone))
	talkWait(t, g, "a talk session streaming audio", 20*time.Second, func() bool {
		return dev.TalkClient(talkClientIP).Bytes >= 8000
	})
	if hz := e2e.MulawHz(dev.TalkAudio()); math.Abs(hz-440) > 440*0.03 {
		t.Errorf("the door station's audio is %.0f Hz, want 440", hz)
	}
}

// TestPersonalityDoorStationTalkWhileRinging: a tone played into a door
// station's stream while it rings goes through the real go2rtc and the
// module: the call is answered before talk opens (the station stops ringing
// and gets the tone), and when the talk session closes the call the module
// answered is hung up.
func TestPersonalityDoorStationTalkWhileRinging(t *testing.T) {
	requireFFmpeg(t)
	bin := binary(t)
	dev := startSim(t, sim.Config{Personality: sim.PersonalityDoorStation, Users: map[string]string{"admin": e2ePassword}})
	g := e2e.StartGo2rtc(t, bin, go2rtcConfig(map[string]string{
		"door": hikURL("admin", e2ePassword, dev, "?channel=1&stream=sub"),
	}, "hikvision=debug"))
	if err := dev.Ring(); err != nil {
		t.Fatal(err)
	}
	tone := talkToneFile(t, 440, 3)
	talkAPI(t, g, http.MethodPost, playURL(tone))
	talkWait(t, g, "1 s of the tone at the station", 20*time.Second, func() bool {
		return dev.TalkClient(talkClientIP).Bytes >= 8000
	})
	if ds := dev.DoorStats(); ds.Signals["answer"] != 1 || ds.TalkOpensWhileRinging != 0 || ds.State != sim.CallOnCall {
		t.Errorf("while talking: %+v, want the call answered once before the talk opened", ds)
	}
	talkWait(t, g, "the talk session closed and the call hung up", 20*time.Second, func() bool {
		_, open := dev.TalkSession()
		return !open && dev.DoorStats().Signals["hangUp"] == 1
	})
	if ds := dev.DoorStats(); ds.State != sim.CallIdle || ds.Signals["answer"] != 1 || ds.RefusedSignals != 0 {
		t.Errorf("after the talk: %+v, want idle, one answer, one hangUp", ds)
	}
	if hz := e2e.MulawHz(dev.TalkAudio()); math.Abs(hz-440) > 440*0.03 {
		t.Errorf("the station's audio is %.0f Hz, want 440", hz)
	}
	if !strings.Contains(g.Output(), "door station ringing: answered the call to talk") {
		t.Errorf("no log line of the answer in go2rtc's output")
	}
}
