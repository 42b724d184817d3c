//go:build hcnetsdk && linux && (amd64 || arm64)

package hikvision

import (
	"errors"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/AlexxIT/go2rtc/pkg/core"
	"github.com/ebitengine/purego"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/guard"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/hcnetsdk"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/hcnetsdk/hcfake"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/talk"
)

// The fake SDK library (testdata/hcnetsdk-fake) is process-global like the
// vendor's: these tests do not run in parallel and reset it each time.

var (
	fakeOnce   sync.Once
	fakeErr    error
	fakeLib    string
	fakePS     string // testdata/media/h264_main.h264 as MPEG-2 PS (ffmpeg)
	fakeConfig func(kv string) int32
	fakeFault  func(name string) int32
	fakeCount  func(name string) int64
)

func loadFake(t *testing.T) {
	t.Helper()
	fakeOnce.Do(func() {
		dir, err := os.MkdirTemp("", "hikvision-sdk-fake-")
		if err != nil {
			fakeErr = err
			return
		}
		if fakeLib, fakeErr = hcfake.Build(dir); fakeErr != nil {
			return
		}
		h, err := purego.Dlopen(fakeLib, purego.RTLD_NOW|purego.RTLD_GLOBAL)
		if err != nil {
			fakeErr = err
			return
		}
		purego.RegisterLibFunc(&fakeConfig, h, "fake_config")
		purego.RegisterLibFunc(&fakeFault, h, "fake_fault")
		purego.RegisterLibFunc(&fakeCount, h, "fake_count")
		if _, err := exec.LookPath("ffmpeg"); err != nil {
			return
		}
		fakePS = filepath.Join(dir, "main.ps")
		src := filepath.Join("..", "testdata", "media", "h264_main.h264")
		b, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-r", "25", "-i", src,
			"-c", "copy", "-f", "vob", fakePS).CombinedOutput()
		if err != nil {
			fakeErr = errors.New("ffmpeg: " + err.Error() + ": " + string(b))
		}
	})
	if fakeErr != nil {
		t.Fatal(fakeErr)
	}
}

// sdkDevice is the fake device: the fake library answers logins on port,
// and a TCP listener on that port stands for the device's service port
// (the supervisor probes it while the device is away).
type sdkDevice struct {
	port int
	mu   sync.Mutex
	ln   net.Listener
}

func (d *sdkDevice) listen(t *testing.T) {
	t.Helper()
	ln, err := hcfake.HoldPort(d.port)
	if err != nil {
		t.Fatal(err)
	}
	d.port = ln.Addr().(*net.TCPAddr).Port
	d.mu.Lock()
	d.ln = ln
	d.mu.Unlock()
}

func (d *sdkDevice) down() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ln != nil {
		_ = d.ln.Close()
		d.ln = nil
	}
}

// newSDKEnv resets the fake with kv, starts the port listener and gives t a
// module using the fake library. When t ends: sources closed, the module
// closed (NET_DVR_Cleanup), and no login, real-play or talk left open.
func newSDKEnv(t *testing.T, kv string, opts ReconnectOptions, gc guard.Config) (*Module, *sdkDevice) {
	t.Helper()
	loadFake(t)
	if fakeFault("reset") != 0 {
		t.Fatal("fake reset failed")
	}
	d := &sdkDevice{}
	d.listen(t)
	conf := "port=" + strconv.Itoa(d.port) + ";speed=4"
	if fakePS != "" {
		conf += ";media=" + fakePS + ";video_format=0x0100"
	}
	if kv != "" {
		conf += ";" + kv
	}
	if fakeConfig(conf) != 0 {
		t.Fatalf("fake_config(%q) rejected a key", conf)
	}
	m := resetModule(t, Options{Reconnect: opts, SDK: SDKOptions{Lib: fakeLib}}, gc)
	t.Cleanup(func() {
		d.down()
		m.reg.close()
		if err := m.Close(); err != nil {
			t.Errorf("Module.Close: %v", err)
		}
		for _, n := range []string{"logins", "plays", "talks", "cleanup_with_open"} {
			if v := fakeCount(n); v != 0 {
				t.Errorf("fake %s = %d after Close, want 0", n, v)
			}
		}
	})
	return m, d
}

func sdkURL(port int, pass, query string) string {
	return "hikvision://" + url.UserPassword("admin", pass).String() + "@127.0.0.1/?transport=sdk&sdk_port=" +
		strconv.Itoa(port) + query
}

func TestSDKRealPlay(t *testing.T) {
	_, d := newSDKEnv(t, "", ReconnectOptions{}, guard.Config{})
	if fakePS == "" {
		t.Skip("ffmpeg not installed")
	}
	base := runtime.NumGoroutine()
	pl := startPlaying(t, sdkURL(d.port, "12345", ""))
	var names []string
	for _, m := range pl.p.GetMedias() {
		names = append(names, m.Direction+":"+m.Kind+":"+m.Codecs[0].Name)
	}
	// the stream's H.264, and the talk media in the device's talk codec
	// (the fake's default: G.711 µ-law)
	if strings.Join(names, ",") != "recvonly:video:H264,sendonly:audio:PCMU" {
		t.Fatalf("medias %v", names)
	}
	pl.waitPacket(t, 50, 10*time.Second)
	if got := pl.p.Protocol; got != "hcnetsdk" {
		t.Errorf("protocol %q", got)
	}
	if n := fakeCount("plays"); n != 1 {
		t.Errorf("fake plays while playing = %d, want 1", n)
	}
	pl.stop(t)
	if n := fakeCount("plays"); n != 0 {
		t.Errorf("fake plays after Stop = %d", n)
	}
	waitGoroutines(t, base)
}

// The device reboots: the SDK's exception ends the session, the supervisor
// waits for the port and logs in again; packets flow again into the same
// receivers without anyone asking.
func TestSDKRebootRecovers(t *testing.T) {
	_, d := newSDKEnv(t, "", ReconnectOptions{PortProbeInterval: 50 * time.Millisecond,
		StallTimeout: 2 * time.Second, BackoffBase: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond}, guard.Config{})
	if fakePS == "" {
		t.Skip("ffmpeg not installed")
	}
	pl := startPlaying(t, sdkURL(d.port, "12345", ""))
	pl.waitPacket(t, 10, 10*time.Second)
	for round := 0; round < 3; round++ {
		logins := fakeCount("login_attempts")
		d.down()
		fakeFault("reboot")
		waitState(t, pl.p, StateReconnecting, 5*time.Second)
		// the SDK's exception callback ended the session with its type
		if e := pl.p.Status().LastError; !strings.Contains(e, "sdk play") || !strings.Contains(e, "the SDK reported EXCEPTION_") {
			t.Errorf("round %d: last error %q", round, e)
		}
		n := pl.packets.Load()
		d.listen(t)
		fakeFault("back")
		pl.waitPacket(t, n+10, 15*time.Second)
		if got := fakeCount("login_attempts") - logins; got < 1 || got > 3 {
			t.Errorf("round %d: %d logins to recover", round, got)
		}
		if v := fakeCount("plays"); v != 1 {
			t.Errorf("round %d: fake plays = %d, want 1", round, v)
		}
		if v := fakeCount("logins"); v != 1 {
			t.Errorf("round %d: fake logins = %d, want 1", round, v)
		}
	}
	pl.stop(t)
}

func waitLeft(t *testing.T, p *Producer, from State, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for p.Status().State == from {
		if time.Now().After(deadline) {
			t.Fatalf("still %s", from)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitState(t *testing.T, p *Producer, want State, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for p.Status().State != want {
		if time.Now().After(deadline) {
			t.Fatalf("state %s, want %s", p.Status().State, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A wrong password dialled again and again (as go2rtc does for a consumer
// that keeps asking): the device sees the guard's budget of failed logins
// and is never locked (the fake locks after 5).
func TestSDKWrongPasswordNeverLocks(t *testing.T) {
	m, d := newSDKEnv(t, "lock_after=5", ReconnectOptions{}, guard.Config{})
	src := sdkURL(d.port, "badpass1", "")
	var last error
	for i := 0; i < 30; i++ {
		p, err := m.Dial(src)
		if err == nil {
			_ = p.(*Producer).Stop()
			t.Fatal("dial with a wrong password worked")
		}
		last = err
		noPassword(t, "dial error", err.Error())
	}
	if fl := fakeCount("failed_logins"); fl != 2 {
		t.Errorf("failed logins at the device %d, want 2 (the guard's budget)", fl)
	}
	if la := fakeCount("locked_answers"); la != 0 {
		t.Errorf("device answered locked %d times", la)
	}
	var h *HoldError
	if !errors.As(last, &h) || !h.Permanent() {
		t.Errorf("last dial: %v, want a permanent hold", last)
	}
	// the first refusal carried the device's tries left to the guard
	if st := m.guardOf(mustParse(t, src)).Snapshot(); st.FailedLogins != 2 || st.RetryLoginTime != 3 {
		t.Errorf("guard state %+v", st)
	}
}

// The SDK's error for a refused login carries the tries left; the guard
// reads them like the ISAPI answer's.
func TestSDKLoginErrorFacts(t *testing.T) {
	m, d := newSDKEnv(t, "lock_after=5", ReconnectOptions{}, guard.Config{})
	_, err := m.Dial(sdkURL(d.port, "badpass1", ""))
	if !errors.Is(err, hcnetsdk.ErrWrongPassword) {
		t.Fatalf("dial: %v", err)
	}
	if guard.Classify(err) != guard.KindWrongCredentials {
		t.Errorf("class %s", guard.Classify(err))
	}
	if !strings.Contains(err.Error(), "4 tries left") {
		t.Errorf("error %q does not say the tries left", err)
	}
}

// Start/stop cycles with a reboot every tenth: the fake's open handles, the
// goroutines and the file descriptors end where they began.
func TestSDKNoLeakCycles(t *testing.T) {
	_, d := newSDKEnv(t, "", ReconnectOptions{PortProbeInterval: 20 * time.Millisecond,
		BackoffBase: 20 * time.Millisecond, BackoffMax: 100 * time.Millisecond}, guard.Config{})
	if fakePS == "" {
		t.Skip("ffmpeg not installed")
	}
	src := sdkURL(d.port, "12345", "")
	pl := startPlaying(t, src)
	pl.waitPacket(t, 0, 10*time.Second)
	pl.stop(t)
	waitGoroutines(t, runtime.NumGoroutine())
	g0, fd0 := runtime.NumGoroutine(), openFDs(t)

	cycles := 1000
	if testing.Short() {
		cycles = 50
	}
	for i := 0; i < cycles; i++ {
		pl := startPlaying(t, src)
		pl.waitPacket(t, 0, 10*time.Second)
		if i%10 == 9 {
			fakeFault("reboot")
			waitLeft(t, pl.p, StateStreaming, 5*time.Second)
			n := pl.packets.Load()
			fakeFault("back")
			pl.waitPacket(t, n, 10*time.Second)
		}
		pl.stop(t)
	}
	waitGoroutines(t, g0)
	if fd := openFDs(t); fd > fd0+2 {
		t.Errorf("FDs %d, baseline %d", fd, fd0)
	}
	for _, n := range []string{"logins", "plays", "talks"} {
		if v := fakeCount(n); v != 0 {
			t.Errorf("fake %s open = %d after %d cycles", n, v, cycles)
		}
	}
	t.Logf("%d cycles: %d login attempts, %d exceptions sent", cycles, fakeCount("login_attempts"), fakeCount("exceptions_sent"))
}

func shortSDKTalk(m *Module) {
	m.talkHook = func(c *talk.Config) {
		c.IdleTimeout = 300 * time.Millisecond
		c.BusyRetry = 100 * time.Millisecond
		c.FailDelay = 50 * time.Millisecond
	}
}

// Voice talk over the SDK: the device's talk codec (A-law here) is the
// sendonly media; the tone reaches the fake device byte for byte; the talk
// closes itself when the audio stops; after Stop nothing opens again.
func TestSDKTalk(t *testing.T) {
	record := filepath.Join(t.TempDir(), "talk.raw")
	m, d := newSDKEnv(t, "talk_encoding=2;talk_record="+record, ReconnectOptions{}, guard.Config{})
	if fakePS == "" {
		t.Skip("ffmpeg not installed")
	}
	shortSDKTalk(m)
	tone, err := os.ReadFile(filepath.Join("..", "testdata", "media", "tone_1khz_8k.alaw"))
	if err != nil {
		t.Fatal(err)
	}
	tone = tone[:8000] // 1 s
	pl := startPlaying(t, sdkURL(d.port, "12345", ""))
	media := sendonly(pl.p)
	if media == nil || media.Codecs[0].Name != core.CodecPCMA {
		t.Fatalf("talk media %v, want PCMA", media)
	}
	f := addTrack(t, pl.p)
	f.talkG711(tone)
	waitFor(t, "the tone at the device", 10*time.Second, func() bool { return fakeCount("talk_bytes") >= int64(len(tone)) })
	got, err := os.ReadFile(record)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(tone) {
		t.Fatalf("device heard %d bytes, not the %d sent", len(got), len(tone))
	}
	waitFor(t, "the idle close", 5*time.Second, func() bool { return fakeCount("talks") == 0 })
	f.talkG711(tone[:1600]) // talks again: one more open
	waitFor(t, "the second talk", 5*time.Second, func() bool { return fakeCount("talk_bytes") >= int64(len(tone)+1600) })
	st := pl.p.talk.sess.Stats()
	if st.Opens != 2 {
		t.Errorf("opens %d, want 2", st.Opens)
	}
	pl.stop(t)
	sends := fakeCount("talk_sends")
	f.talkG711(tone[:1600]) // after Stop: dropped
	observe(500 * time.Millisecond)
	if n := fakeCount("talks"); n != 0 {
		t.Errorf("talks open after Stop: %d", n)
	}
	if st := pl.p.talk.sess.Stats(); st.Opens != 2 || fakeCount("talk_sends") != sends {
		t.Errorf("after Stop: opens %d, sends %d -> %d", st.Opens, sends, fakeCount("talk_sends"))
	}
}

// Another client holds the talk channel: the engine reports busy and never
// takes the line (no talk of ours opens, nothing of the other is stopped).
func TestSDKTalkBusy(t *testing.T) {
	m, d := newSDKEnv(t, "talk_busy=1", ReconnectOptions{}, guard.Config{})
	if fakePS == "" {
		t.Skip("ffmpeg not installed")
	}
	shortSDKTalk(m)
	pl := startPlaying(t, sdkURL(d.port, "12345", ""))
	f := addTrack(t, pl.p)
	f.talkG711(make([]byte, 1600))
	waitFor(t, "busy", 5*time.Second, func() bool { return pl.p.talk.sess.State() == talk.StateBusy })
	if !errors.Is(pl.p.talk.sess.Err(), talk.ErrBusy) {
		t.Errorf("talk error %v", pl.p.talk.sess.Err())
	}
	if n := fakeCount("talks"); n != 0 || pl.p.talk.sess.Stats().Opens != 0 {
		t.Errorf("talks open %d, opens %d", n, pl.p.talk.sess.Stats().Opens)
	}
	pl.stop(t)
}

// transport=auto: the ISAPI probe says where RTSP is; a closed RTSP port
// makes the stream play through the SDK, an open one through RTSP.
func TestSDKAuto(t *testing.T) {
	_, d := newSDKEnv(t, "", ReconnectOptions{}, guard.Config{})
	if fakePS == "" {
		t.Skip("ffmpeg not installed")
	}
	dev, err := sim.Start(sim.Config{Users: map[string]string{"admin": "12345"}, Audio: "none"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dev.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()

	base := "hikvision://admin:12345@" + dev.HTTPAddr() + "/?transport=auto&sdk_port=" + strconv.Itoa(d.port)
	for _, c := range []struct {
		query, protocol string
	}{
		{"&rtsp_port=" + strconv.Itoa(closed), "hcnetsdk"},
		{"", "rtsp+tcp"},
	} {
		pl := startPlaying(t, base+c.query)
		pl.waitPacket(t, 5, 10*time.Second)
		if pl.p.Protocol != c.protocol {
			t.Errorf("%s: protocol %q, want %q", c.query, pl.p.Protocol, c.protocol)
		}
		pl.stop(t)
	}
}

// The library path from HIKVISION_SDK_LIB when the options give none.
func TestSDKLibFromEnv(t *testing.T) {
	_, d := newSDKEnv(t, "", ReconnectOptions{}, guard.Config{})
	if fakePS == "" {
		t.Skip("ffmpeg not installed")
	}
	t.Setenv(EnvSDKLib, fakeLib)
	m := resetModule(t, Options{}, guard.Config{}) // no sdk: options
	t.Cleanup(func() { m.reg.close(); _ = m.Close() })
	pl := startPlaying(t, sdkURL(d.port, "12345", ""))
	pl.waitPacket(t, 5, 10*time.Second)
	pl.stop(t)
}

// The device stops sending but keeps the session (the fake's stall): the
// shared stall timer ends the session and the supervisor starts a new one;
// video flows again once the device does.
func TestSDKStallRecovers(t *testing.T) {
	_, d := newSDKEnv(t, "", ReconnectOptions{StallTimeout: 500 * time.Millisecond,
		BackoffBase: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond}, guard.Config{})
	if fakePS == "" {
		t.Skip("ffmpeg not installed")
	}
	pl := startPlaying(t, sdkURL(d.port, "12345", ""))
	pl.waitPacket(t, 5, 10*time.Second)
	fakeFault("stall")
	waitFor(t, "a stall noticed", 10*time.Second, func() bool { return pl.p.Status().Stalls > 0 })
	n := pl.packets.Load()
	fakeFault("resume")
	pl.waitPacket(t, n+5, 15*time.Second)
	// the first video packet after the stall decides which session
	// carries on; the other one is stopped then
	waitFor(t, "one fake play left after the stall (the other session stopped)", 10*time.Second,
		func() bool { return fakeCount("plays") == 1 })
	pl.stop(t)
}

// Streams of one device share its SDK login: main and sub stream play on
// one login; it is logged out when the last of them stops.
func TestSDKSharedLogin(t *testing.T) {
	_, d := newSDKEnv(t, "", ReconnectOptions{}, guard.Config{})
	if fakePS == "" {
		t.Skip("ffmpeg not installed")
	}
	main := startPlaying(t, sdkURL(d.port, "12345", "&stream=main"))
	sub := startPlaying(t, sdkURL(d.port, "12345", "&stream=sub"))
	main.waitPacket(t, 5, 10*time.Second)
	sub.waitPacket(t, 5, 10*time.Second)
	if l, p, a := fakeCount("logins"), fakeCount("plays"), fakeCount("login_attempts"); l != 1 || p != 2 || a != 1 {
		t.Errorf("logins %d, plays %d, login attempts %d; want 1, 2, 1", l, p, a)
	}
	main.stop(t)
	if l, p := fakeCount("logins"), fakeCount("plays"); l != 1 || p != 1 {
		t.Errorf("after one Stop: logins %d, plays %d; want 1, 1", l, p)
	}
	n := sub.packets.Load()
	sub.waitPacket(t, n+5, 10*time.Second)
	sub.stop(t)
	if l, p := fakeCount("logins"), fakeCount("plays"); l != 0 || p != 0 {
		t.Errorf("after both Stops: logins %d, plays %d; want 0, 0", l, p)
	}
}
