//lint:file-ignore SA1019 go2rtc v1.9.14 marks core.Producer Start/Stop, Receiver.WriteRTP and Sender.HandleRTP deprecated, yet they are the interface it calls; the tests drive the producer as go2rtc does.

package hikvision

import (
	"encoding/json"
	"fmt"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/guard"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/AlexxIT/go2rtc/pkg/core"
)

func testURL(hostPort, query string) string {
	return "hikvision://" + url.UserPassword(testUser, testPass).String() + "@" + hostPort + "/" + query
}

// waitGoroutines polls until the goroutine count is back to base.
func waitGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= base {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("goroutines: %d, want <= %d\n%s", n, base, buf)
		}
		time.Sleep(10 * time.Millisecond) // polling with a deadline, not synchronisation
	}
}

func noPassword(t *testing.T, what, s string) {
	t.Helper()
	for _, form := range []string{testPass, url.QueryEscape(testPass), url.PathEscape(testPass), "p@ss", "w?rd"} {
		if strings.Contains(s, form) {
			t.Errorf("%s shows the password (%q): %s", what, form, s)
		}
	}
}

// count returns how many ISAPI requests match prefix.
func count(log []string, prefix string) int {
	n := 0
	for _, l := range log {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

type env struct {
	isapi *fakeISAPI
	rtsp  *fakeRTSP
}

func newEnv(t *testing.T, sdp string) *env {
	resetModule(t, Options{}, guard.Config{})
	e := &env{isapi: newFakeISAPI(t), rtsp: newFakeRTSP(t, sdp)}
	e.isapi.rtspPort.Store(int32(e.rtsp.port()))
	return e
}

func TestDialPlayStop(t *testing.T) {
	e := newEnv(t, sdpH264PCMA)
	base := runtime.NumGoroutine()

	prod, err := mod(t).Dial(testURL(e.isapi.hostPort(), "?channel=1&stream=main"))
	if err != nil {
		t.Fatal(err)
	}
	p := prod.(*Producer)

	// ISAPI, exactly 5 requests in 3 round trips: deviceInfo first and alone,
	// as the login (without credentials for the digest challenge, then with
	// them), then in one concurrent round: streaming channel 101,
	// adminAccesses (RTSP port) and TwoWayAudio/channels (the talk codec;
	// this fake refuses it with a 404).
	log := e.isapi.log()
	if len(log) != 5 || log[0] != "GET /ISAPI/System/deviceInfo noauth" || log[1] != "GET /ISAPI/System/deviceInfo auth" {
		t.Errorf("cold Dial made %d ISAPI requests, want 5 starting with deviceInfo without then with credentials: %v", len(log), log)
	}
	for _, want := range []string{"GET /ISAPI/Streaming/channels/101 auth", "GET /ISAPI/Security/adminAccesses auth",
		"GET /ISAPI/System/TwoWayAudio/channels auth"} {
		if n := count(log, want); n != 1 {
			t.Errorf("%q requested %d times, want 1 (log %v)", want, n, log)
		}
	}

	// Medias: H.264 video and PCMA audio recvonly; the metadata track dropped.
	medias := p.GetMedias()
	var got []string
	for _, m := range medias {
		got = append(got, m.Kind+"/"+m.Direction+"/"+m.Codecs[0].Name)
	}
	if want := "video/recvonly/H264 audio/recvonly/PCMA"; strings.Join(got, " ") != want {
		t.Fatalf("medias %v, want %s", got, want)
	}

	// Receivers, each with a child node that signals packets.
	packets := make(chan string, 100)
	for _, m := range medias {
		r, err := p.GetTrack(m, m.Codecs[0])
		if err != nil {
			t.Fatal(err)
		}
		kind := m.Kind
		child := &core.Node{Codec: r.Codec}
		child.Input = func(*core.Packet) {
			select {
			case packets <- kind:
			default:
			}
		}
		r.AppendChild(child)
	}

	// Connection info.
	if p.FormatName != "hikvision" || p.Protocol != "rtsp+tcp" || p.RemoteAddr == "" {
		t.Errorf("connection info %q %q %q", p.FormatName, p.Protocol, p.RemoteAddr)
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	js := string(b)
	noPassword(t, "MarshalJSON", js)
	for _, want := range []string{`"format_name":"hikvision"`, `"model":"DS-2CD2143G2-I"`, `"firmware":"V5.7.18"`,
		`"type":"IPCamera"`, `"channel":1`, `"stream":"main"`, `"stream_id":101`, `"video_codec":"H.264"`, `"source":"hikvision://admin:***@`} {
		if !strings.Contains(js, want) {
			t.Errorf("MarshalJSON lacks %s: %s", want, js)
		}
	}

	startErr := make(chan error, 1)
	go func() { startErr <- p.Start() }()

	seen := map[string]bool{}
	timeout := time.After(5 * time.Second)
	for !seen["video"] || !seen["audio"] {
		select {
		case k := <-packets:
			seen[k] = true
		case err := <-startErr:
			t.Fatalf("Start returned early: %v", err)
		case <-timeout:
			t.Fatalf("no packets; seen %v", seen)
		}
	}

	if err := p.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	select {
	case err := <-startErr:
		if err != nil {
			t.Errorf("Start after Stop returned %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Start did not return after Stop")
	}
	if err := p.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}

	// The device saw SETUP twice, PLAY, and a TEARDOWN.
	deadline := time.Now().Add(5 * time.Second)
	for {
		td, methods := e.rtsp.stats()
		if td == 1 && count(methods, "SETUP") == 2 && count(methods, "PLAY") == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("RTSP methods %v, teardowns %d", methods, td)
		}
		time.Sleep(10 * time.Millisecond)
	}
	waitGoroutines(t, base)
}

func TestWarmDialMakesNoISAPIRequest(t *testing.T) {
	e := newEnv(t, sdpH264PCMA)
	src := testURL(e.isapi.hostPort(), "?channel=1&stream=main")

	p1, err := mod(t).Dial(src)
	if err != nil {
		t.Fatal(err)
	}
	_ = p1.Stop()
	cold := len(e.isapi.log())
	if cold == 0 {
		t.Fatal("cold Dial made no ISAPI request")
	}

	base := runtime.NumGoroutine()
	for i := 0; i < 3; i++ {
		p, err := mod(t).Dial(src)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.(*Producer).Device().Model; got != "DS-2CD2143G2-I" {
			t.Errorf("warm Dial model %q", got)
		}
		go func() { _ = p.Start() }()
		_ = p.Stop()
	}
	if n := len(e.isapi.log()); n != cold {
		t.Errorf("warm Dials made %d ISAPI requests: %v", n-cold, e.isapi.log()[cold:])
	}
	if n := e.rtsp.conns.Load(); n != 4 {
		t.Errorf("RTSP connections %d, want 4", n)
	}

	// Another stream of the same device is a different cache entry.
	p, err := mod(t).Dial(testURL(e.isapi.hostPort(), "?channel=1&stream=sub"))
	if err != nil {
		t.Fatal(err)
	}
	_ = p.Stop()
	if n := count(e.isapi.log(), "GET /ISAPI/Streaming/channels/102 auth"); n != 1 {
		t.Errorf("sub stream probe: channel 102 asked %d times", n)
	}
	waitGoroutines(t, base)
}

// A cold Dial asks deviceInfo alone (the login: challenge, then the answer),
// then its other three questions in one concurrent round. The fake holds
// each of those until all three are in flight, so a question asked after the
// others (as the talk channels used to be, or as the isapi client's first
// login serialises requests started together on a cold client) never gets
// through and Dial fails.
func TestColdDialOneConcurrentRound(t *testing.T) {
	e := newEnv(t, sdpH264PCMA)
	e.isapi.talkCodec = "G.711alaw"
	e.isapi.round = newRoundBarrier(3, 5*time.Second)
	base := runtime.NumGoroutine()
	prod, err := mod(t).Dial(testURL(e.isapi.hostPort(), ""))
	if err != nil {
		t.Fatal(err)
	}
	p := prod.(*Producer)
	defer p.Stop()
	var got []string
	for _, m := range p.GetMedias() {
		got = append(got, m.Direction+"/"+m.Codecs[0].Name)
	}
	if want := "recvonly/H264 recvonly/PCMA sendonly/PCMA"; strings.Join(got, " ") != want {
		t.Fatalf("medias %v, want %s", got, want)
	}
	if n := count(e.isapi.log(), "GET "); n != 5 {
		t.Errorf("cold Dial: %d requests, want 5 (1 challenge, 4 questions): %v", n, e.isapi.log())
	}
	_ = p.Stop()
	waitGoroutines(t, base)
}

// The talk channels live in the same cache entry as the rest of the probe:
// a warm Dial with talk asks nothing; an entry cached by a #backchannel=0
// Dial lacks them, so the next Dial that wants talk probes again (once);
// a fresh module forgets them with the rest.
func TestProbeCacheHoldsTalk(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sdpH264PCMA)
	e.isapi.talkCodec = "G.711ulaw"
	src := testURL(e.isapi.hostPort(), "")
	talkAsked := func() int { return count(e.isapi.log(), "GET /ISAPI/System/TwoWayAudio/channels auth") }
	dial := func(src string, wantTalk bool) {
		t.Helper()
		p, err := mod(t).Dial(src)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Stop()
		if has := p.(*Producer).talk != nil; has != wantTalk {
			t.Fatalf("talk media %v, want %v", has, wantTalk)
		}
	}

	dial(src+"#backchannel=0", false)
	if n := talkAsked(); n != 0 {
		t.Fatalf("#backchannel=0 asked the talk channels %d times", n)
	}
	dial(src, true) // the cached entry has no talk channels: probe again
	if n, d := talkAsked(), count(e.isapi.log(), "GET /ISAPI/System/deviceInfo auth"); n != 1 || d != 2 {
		t.Fatalf("talk channels asked %d times, deviceInfo %d; want 1 and 2", n, d)
	}
	before := len(e.isapi.log())
	dial(src, true)
	dial(src+"#backchannel=0", false)
	if n := len(e.isapi.log()); n != before {
		t.Fatalf("warm Dials made %d requests: %v", n-before, e.isapi.log()[before:])
	}
	resetModule(t, Options{}, guard.Config{})
	dial(src, true)
	if n := talkAsked(); n != 2 {
		t.Fatalf("after a fresh module the talk channels were asked %d times in all, want 2", n)
	}
}

func TestProbeCacheExpires(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sdpH264PCMA)
	now := time.Now()
	mod(t).probes.now = func() time.Time { return now }
	src := testURL(e.isapi.hostPort(), "")

	for i, advance := range []time.Duration{0, ProbeTTL - time.Second, 2 * time.Second} {
		now = now.Add(advance)
		p, err := mod(t).Dial(src)
		if err != nil {
			t.Fatal(err)
		}
		_ = p.Stop()
		want := 1
		if i == 2 {
			want = 2
		}
		if n := count(e.isapi.log(), "GET /ISAPI/System/deviceInfo auth"); n != want {
			t.Errorf("dial %d: deviceInfo asked %d times, want %d", i, n, want)
		}
	}
}

func TestDialRTSPPortFromURL(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sdpH264PCMA)
	e.isapi.rtspPort.Store(1) // the device would say a wrong port
	p, err := mod(t).Dial(testURL(e.isapi.hostPort(), fmt.Sprintf("?rtsp_port=%d", e.rtsp.port())))
	if err != nil {
		t.Fatal(err)
	}
	_ = p.Stop()
	if n := count(e.isapi.log(), "GET /ISAPI/Security/adminAccesses"); n != 0 {
		t.Errorf("adminAccesses asked %d times though rtsp_port was given", n)
	}
	// A URL without rtsp_port must not use the port-less cache entry.
	if _, err := mod(t).Dial(testURL(e.isapi.hostPort(), "")); err == nil {
		t.Error("Dial to the device's (wrong) port 1 succeeded")
	}
	if n := count(e.isapi.log(), "GET /ISAPI/Security/adminAccesses auth"); n != 1 {
		t.Errorf("adminAccesses asked %d times, want 1", n)
	}
}
