package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/build"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/e2e"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/hcnetsdk/hcfake"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

// SectionSDK compares hikvision:// transport=sdk (the device network SDK,
// here the project's fake SDK library serving the simulator's media as
// MPEG-PS) with hikvision:// over RTSP (the simulator), in one go2rtc built
// with the SDK loader.
const SectionSDK = "sdk"

// fakeSDKDevice is the fake SDK library's device as go2rtc sees it: the
// library in go2rtc's process answers logins on port; a listener on that
// port stands for the device's service port; faults go through the control
// file the library polls.
type fakeSDKDevice struct {
	lib, control string
	port         int

	mu sync.Mutex
	ln net.Listener
}

func (d *fakeSDKDevice) up() error {
	ln, err := hcfake.HoldPort(d.port)
	if err != nil {
		return err
	}
	d.port = ln.Addr().(*net.TCPAddr).Port
	d.mu.Lock()
	d.ln = ln
	d.mu.Unlock()
	return nil
}

func (d *fakeSDKDevice) down() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ln != nil {
		_ = d.ln.Close()
		d.ln = nil
	}
}

func (d *fakeSDKDevice) fault(name string) error {
	f, err := os.OpenFile(d.control, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteString(name + "\n")
	return err
}

func sdkStreamURL(user, pass string, port int) string {
	return "hikvision://" + url.UserPassword(user, pass).String() + "@127.0.0.1/?transport=sdk&sdk_port=" + strconv.Itoa(port)
}

// sdk runs the transport=sdk rows: time to first frame, recovery after the
// first outage length, failed logins over the login window.
func (r *runner) sdk(ctx context.Context) (s Section) {
	s = Section{Name: SectionSDK, Title: "transport=sdk (fake SDK library) beside transport=rtsp (simulator), hikvision:// both", Stock: "hikvision:// rtsp"}
	fail := func(err error) Section { s.Error = err.Error(); return s }

	dir, bin, dev, err := r.sdkSetup(ctx, "sdk")
	if dir != "" {
		defer os.RemoveAll(dir)
	}
	if err != nil {
		return fail(err)
	}
	media := filepath.Join(r.root, "testdata", "media")
	ps := filepath.Join(dir, "camera.ps")
	if err = hcfake.WritePS(ps, hcfake.PSOptions{Video: filepath.Join(media, "h264_main.h264"),
		Audio: filepath.Join(media, "tone_1khz_8k.ulaw"), AudioCodec: hcfake.G711U}); err != nil {
		return fail(err)
	}
	if err = os.WriteFile(dev.control, nil, 0o600); err != nil {
		return fail(err)
	}
	if err = dev.up(); err != nil {
		return fail(err)
	}
	defer dev.down()

	var sims []*sim.Device
	defer func() {
		for _, d := range sims {
			_ = d.Close()
		}
	}()
	streams := map[string]string{}
	for i := 0; i < r.opts.Runs; i++ {
		d, err := sim.Start(sim.Config{})
		if err != nil {
			return fail(err)
		}
		sims = append(sims, d)
		streams[streamName("rtsp", "ttff", i)] = hikURL(d, simPassword)
		streams[streamName("sdk", "ttff", i)] = sdkStreamURL(simUser, simPassword, dev.port)
	}
	rec, err := sim.Start(sim.Config{})
	if err != nil {
		return fail(err)
	}
	sims = append(sims, rec)
	streams[streamName("rtsp", "rec", 0)] = hikURL(rec, simPassword)
	streams[streamName("sdk", "rec", 0)] = sdkStreamURL(simUser, simPassword, dev.port)
	loginRTSP, err := sim.Start(sim.Config{})
	if err != nil {
		return fail(err)
	}
	sims = append(sims, loginRTSP)
	streams[streamName("rtsp", "login", 0)] = hikURL(loginRTSP, wrongPasswd)
	streams[streamName("sdk", "login", 0)] = sdkStreamURL(simUser, wrongPasswd, dev.port)
	streams[streamName("sdk", "other", 0)] = sdkStreamURL("other", wrongPasswd, dev.port)
	talkDev, err := sim.Start(sim.Config{})
	if err != nil {
		return fail(err)
	}
	sims = append(sims, talkDev)
	streams[streamName("rtsp", "talk", 0)] = hikURL(talkDev, simPassword)
	streams[streamName("sdk", "talk", 0)] = sdkStreamURL(simUser, simPassword, dev.port)
	stats := filepath.Join(dir, "stats")

	conf := streamsYAML(streams) + "hikvision:\n  sdk:\n    lib: " + strconv.Quote(dev.lib) + "\n"
	env := "HCNETSDK_FAKE=port=" + strconv.Itoa(dev.port) + ";control=" + dev.control + ";media=" + ps +
		";video_format=0x0100;audio_format=0x7110;audio_rate=8000;lock_after=5;user=" + simUser + ";password=" + simPassword + ";stats=" + stats
	g, err := e2e.Start(ctx, e2e.Options{Bin: bin, Config: conf, Env: []string{env}})
	if err != nil {
		return fail(err)
	}
	defer g.Stop()

	// time to first frame, cold (first consumer of a stream since go2rtc
	// started) and warm (the next one)
	r.logf("sdk: time to first frame, %d runs per transport", r.opts.Runs)
	type samples struct{ cold, warm []float64 }
	res := map[string]*samples{"sdk": {}, "rtsp": {}}
	for i := 0; i < r.opts.Runs; i++ {
		order := []string{"sdk", "rtsp"}
		if i%2 == 1 {
			order = []string{"rtsp", "sdk"}
		}
		for _, kind := range order {
			for _, warm := range []bool{false, true} {
				_, video, err := firstFrame(ctx, g, streamName(kind, "ttff", i))
				if err != nil {
					return fail(fmt.Errorf("%s: %w", kind, err))
				}
				if warm {
					res[kind].warm = append(res[kind].warm, ms(video))
				} else {
					res[kind].cold = append(res[kind].cold, ms(video))
				}
			}
		}
	}
	row := func(metric string, h, st []float64) Row {
		row := NewRow(fmt.Sprintf("%s, median of %d", metric, len(h)), "ms", Num(Median(h)), Num(Median(st)))
		hl, hh := MinMax(h)
		sl, sh := MinMax(st)
		row.Note = fmt.Sprintf("range %s–%s vs %s–%s", formatNum(hl), formatNum(hh), formatNum(sl), formatNum(sh))
		return row
	}
	s.Rows = append(s.Rows,
		row("time to first video packet, cold", res["sdk"].cold, res["rtsp"].cold),
		row("time to first video packet, warm", res["sdk"].warm, res["rtsp"].warm))

	// talk, then stop: nothing may reach the device once go2rtc stopped
	// the producer
	quiet := afterStop(r.opts.TalkWindow)
	r.logf("sdk: talk for %s, then %s after the producer stopped", fmtDur(sdkTalkBurst), fmtDur(quiet))
	var tsSDK, tsRTSP talkStop
	var errSDK, errRTSP error
	var twg sync.WaitGroup
	twg.Add(2)
	go func() {
		defer twg.Done()
		tsSDK, errSDK = measureTalkStop(ctx, g, streamName("sdk", "talk", 0), fakeStatsCounts(stats), quiet)
	}()
	go func() {
		defer twg.Done()
		tsRTSP, errRTSP = measureTalkStop(ctx, g, streamName("rtsp", "talk", 0), simCounts(talkDev), quiet)
	}()
	twg.Wait()
	if errSDK != nil || errRTSP != nil {
		return fail(fmt.Errorf("talk after stop: sdk: %v; rtsp: %v", errSDK, errRTSP))
	}
	s.Rows = append(s.Rows,
		NewRow(fmt.Sprintf("talk sessions opened by a %s burst", fmtDur(sdkTalkBurst)), "", Num(tsSDK.burstOpens), Num(tsRTSP.burstOpens)),
		NewRow(fmt.Sprintf("talk sessions opened in the %s after the producer stopped", fmtDur(quiet)), "", Num(tsSDK.stopOpens), Num(tsRTSP.stopOpens)),
		NewRow(fmt.Sprintf("requests reaching the device in the %s after the producer stopped", fmtDur(quiet)), "", Num(tsSDK.stopRequest), Num(tsRTSP.stopRequest)))

	// recovery: both devices away for the same time, each outage length
	readers := newConsumers(g, "rec", true)
	defer readers.close()
	back := func(rd *Reader, up time.Time) (*float64, string) {
		timer := time.NewTimer(recoveryWait)
		defer timer.Stop()
		select {
		case t := <-rd.NextVideo(up):
			return Num(t.Sub(up).Seconds()), ""
		case <-rd.Done():
			return nil, "consumer dropped"
		case <-timer.C:
			return nil, fmt.Sprintf("> %.0f", recoveryWait.Seconds())
		}
	}
	for _, outage := range r.opts.Outages {
		r.logf("sdk: recovery after a %s outage", fmtDur(outage))
		for _, kind := range []string{"sdk", "rtsp"} {
			if err := readers.ensure(ctx, kind); err != nil {
				return fail(fmt.Errorf("recovery: %s: %w", kind, err))
			}
			if err := waitPacket(ctx, readers.get(kind), time.Now(), 30*time.Second); err != nil {
				return fail(fmt.Errorf("before the %s outage: %s: %w", fmtDur(outage), kind, err))
			}
		}
		down := outage + r.opts.OutagePhase
		dev.down()
		if err := dev.fault("reboot"); err != nil {
			return fail(err)
		}
		if err := rec.Reboot(down); err != nil {
			return fail(err)
		}
		select {
		case <-time.After(down):
		case <-ctx.Done():
			return fail(ctx.Err())
		}
		// the device's logins work again before its port answers, as on a
		// device whose service starts listening when it is ready: the fake
		// applies its control file within 100 ms
		if err := dev.fault("back"); err != nil {
			return fail(err)
		}
		select {
		case <-time.After(250 * time.Millisecond):
		case <-ctx.Done():
			return fail(ctx.Err())
		}
		if err := dev.up(); err != nil {
			return fail(err)
		}
		sdkUp := time.Now()
		var rtspUp time.Time
		select {
		case <-rec.Up():
			rtspUp = time.Now()
		case <-ctx.Done():
			return fail(ctx.Err())
		}
		var sdkRec, rtspRec *float64
		var sdkText, rtspText string
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); sdkRec, sdkText = back(readers.get("sdk"), sdkUp) }()
		go func() { defer wg.Done(); rtspRec, rtspText = back(readers.get("rtsp"), rtspUp) }()
		wg.Wait()
		rr := NewRow(fmt.Sprintf("video back after a %s outage", fmtDur(outage)), "s", sdkRec, rtspRec)
		rr.HikvisionText, rr.StockText = sdkText, rtspText
		rr.Note = fmt.Sprintf("device down %s", fmtDur(down))
		s.Rows = append(s.Rows, rr)
	}

	// failed logins: a client asks for the wrong-password stream every second
	win := r.opts.LoginWindow
	r.logf("sdk: wrong password for %s", fmtDur(win))
	wctx, cancel := context.WithTimeout(ctx, win)
	var lwg sync.WaitGroup
	for _, kind := range []string{"sdk", "rtsp"} {
		lwg.Add(1)
		go func() {
			defer lwg.Done()
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				actx, acancel := context.WithTimeout(ctx, 3*time.Second)
				_, _ = Describe(actx, consumerURL(g, streamName(kind, "login", 0)))
				acancel()
				select {
				case <-wctx.Done():
					return
				case <-tick.C:
				}
			}
		}()
	}
	lwg.Wait()
	cancel()
	// The fake counts failed logins for the whole device and answers a
	// refused login with the tries left before its lock (5): one login of
	// another user (its own guard) reads the count.
	actx, acancel := context.WithTimeout(ctx, 10*time.Second)
	_, _ = Describe(actx, consumerURL(g, streamName("sdk", "other", 0)))
	acancel()
	sdkFailed, locked, err := fakeFailedLogins(g.Output())
	if err != nil {
		return fail(err)
	}
	cs := loginRTSP.Client("127.0.0.1")
	lockedRTSP, _, _ := loginRTSP.LockStatus("127.0.0.1")
	s.Rows = append(s.Rows,
		NewRow(fmt.Sprintf("failed logins counted by the device in %s of a wrong password", fmtDur(win)), "",
			Num(float64(sdkFailed)), Num(float64(cs.FailedLogins+cs.RTSPFailedLogins))),
		Row{Metric: "device locked", HikvisionText: yesNo(locked), StockText: yesNo(cs.LockEvents > 0 || lockedRTSP)})
	s.Notes = append(s.Notes,
		"Both columns are hikvision:// in one go2rtc built with -tags hcnetsdk: transport=sdk against the project's fake SDK library (testdata/hcnetsdk-fake, loaded in go2rtc's process, serving the simulator camera's H.264 + G.711 µ-law as MPEG-PS paced by its SCR), transport=rtsp against the simulator. Not the vendor's SDK: the SDK column measures this module's SDK path, not a real device's SDK latency.",
		"Cold: first consumer of a stream since go2rtc started; warm: the next consumer. Video packet: the first H.264 packet at the consumer (the SDK path waits for a key frame with parameter sets before it describes the stream, as RTSP's SDP does not).",
		"Recovery: from the device's port answering again to the first video packet at a consumer that stayed connected. The fake accepts logins again 250 ms before its port listens (it applies its control file within 100 ms); the other way round, a login tried in between fails and the next waits for the supervisor's backoff (3.4 s after a 2 min outage in one run).",
		"Talk after stop: a consumer holds the backchannel (?backchannel=1), sends 1 s of G.711, leaves; once go2rtc shows the producer stopped, the device is watched. transport=sdk: the fake's voice talk starts (NET_DVR_StartVoiceCom_MR_V30 calls, refused ones too) as sessions, its login + real-play + talk-start calls as requests, read from the stats file the fake rewrites every 100 ms; transport=rtsp: the simulator's talk sessions, ISAPI requests and RTSP connections. The fake is one device for all the section's transport=sdk streams, so its counts would also show any other stream's calls in the window (none are started then).",
		"Failed logins at the fake: read at the end through one login of another user (the fake counts failures for the device and answers with the tries left before its lock at 5), so that login is not counted.")
	return s
}

var triesLeft = regexp.MustCompile(`(\d+) tries left before lock`)

// fakeFailedLogins reads the fake's failed-login count from go2rtc's log:
// the last "N tries left" answer (to the other user's one login), with the
// fake locking after 5.
func fakeFailedLogins(out string) (failed int, locked bool, err error) {
	if strings.Contains(out, "user locked") {
		locked = true
	}
	m := triesLeft.FindAllStringSubmatch(out, -1)
	if len(m) == 0 {
		return 0, locked, errors.New("sdk: go2rtc's log holds no answer with the tries left")
	}
	n, _ := strconv.Atoi(m[len(m)-1][1])
	return 5 - n - 1, locked, nil
}

// sdkSetup makes a temporary folder (the caller removes it), the go2rtc built
// with the SDK tag, and the fake SDK library compiled into that folder.
func (r *runner) sdkSetup(ctx context.Context, section string) (dir, bin string, dev *fakeSDKDevice, err error) {
	if dir, err = os.MkdirTemp("", "bench-"+section+"-"); err != nil {
		return "", "", nil, err
	}
	r.logf("%s: building go2rtc with -tags %s (cached) and the fake SDK library", section, build.SDKTag)
	if bin, err = build.Build(ctx, build.Options{RepoRoot: r.root, Tags: []string{build.SDKTag}}); err != nil {
		return dir, "", nil, err
	}
	dev = &fakeSDKDevice{control: filepath.Join(dir, "control")}
	if dev.lib, err = hcfake.Build(dir); err != nil {
		return dir, "", nil, err
	}
	return dir, bin, dev, nil
}
