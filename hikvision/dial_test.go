//lint:file-ignore SA1019 go2rtc v1.9.14 marks core.Producer Start/Stop, Receiver.WriteRTP and Sender.HandleRTP deprecated, yet they are the interface it calls; the tests drive the producer as go2rtc does.

package hikvision

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
)

func TestDialWrongPassword(t *testing.T) {
	e := newEnv(t, sdpH264PCMA)
	e.isapi.pass = "other"
	base := runtime.NumGoroutine()

	_, err := mod(t).Dial(testURL(e.isapi.hostPort(), ""))
	var de *DialError
	if !errors.As(err, &de) {
		t.Fatalf("err %v (%T), want *DialError", err, err)
	}
	if de.Step != "probe deviceInfo" || !errors.Is(err, isapi.ErrUnauthorized) {
		t.Errorf("step %q, err %v", de.Step, err)
	}
	want := "hikvision: probe deviceInfo on " + e.isapi.hostPort() + ": wrong credentials (6 tries left before lock)"
	if err.Error() != want {
		t.Errorf("err %q\nwant %q", err, want)
	}
	noPassword(t, "error", err.Error())
	e.isapi.mu.Lock()
	failed := e.isapi.failedLogin
	e.isapi.mu.Unlock()
	if failed != 1 {
		t.Errorf("one Dial cost %d failed logins, want 1", failed)
	}
	if n := e.rtsp.conns.Load(); n != 0 {
		t.Errorf("RTSP dialed %d times after an ISAPI auth failure", n)
	}
	// A failed probe is not cached: the next Dial asks again.
	_, _ = mod(t).Dial(testURL(e.isapi.hostPort(), ""))
	bad := 0
	for _, l := range e.isapi.log() {
		if strings.HasSuffix(l, " badauth") {
			bad++
		}
	}
	if bad != 2 {
		t.Errorf("after two Dials: %d failed logins, want 2 (%v)", bad, e.isapi.log())
	}
	waitGoroutines(t, base)
}

func TestDialChannelNotFound(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sdpH264PCMA)
	_, err := mod(t).Dial(testURL(e.isapi.hostPort(), "?channel=5&stream=sub"))
	if !errors.Is(err, ErrChannelNotFound) {
		t.Fatalf("err %v, want ErrChannelNotFound", err)
	}
	var de *DialError
	if !errors.As(err, &de) || de.Step != "probe streaming channel 502" {
		t.Errorf("err %v", err)
	}
	if n := e.rtsp.conns.Load(); n != 0 {
		t.Errorf("RTSP dialed %d times for a missing channel", n)
	}
}

func TestDialRTSPWrongPassword(t *testing.T) {
	e := newEnv(t, sdpH264PCMA)
	e.rtsp.pass = "different"
	base := runtime.NumGoroutine()
	_, err := mod(t).Dial(testURL(e.isapi.hostPort(), ""))
	if !errors.Is(err, ErrRTSPUnauthorized) {
		t.Fatalf("err %v, want ErrRTSPUnauthorized", err)
	}
	var de *DialError
	if !errors.As(err, &de) || de.Step != "rtsp describe" || de.Host != fmt.Sprintf("127.0.0.1:%d", e.rtsp.port()) {
		t.Errorf("err %v", err)
	}
	noPassword(t, "error", err.Error())
	waitGoroutines(t, base)
}

func TestDialNoSupportedMedia(t *testing.T) {
	sdp := "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=x\r\nt=0 0\r\n" +
		"m=video 0 RTP/AVP 26\r\na=rtpmap:26 JPEG/90000\r\na=control:trackID=1\r\n"
	e := newEnv(t, sdp)
	base := runtime.NumGoroutine()
	_, err := mod(t).Dial(testURL(e.isapi.hostPort(), ""))
	if !errors.Is(err, ErrNoMedia) || !strings.Contains(err.Error(), "JPEG") {
		t.Fatalf("err %v, want ErrNoMedia naming JPEG", err)
	}
	waitGoroutines(t, base)
}

func TestDialUnreachable(t *testing.T) {
	t.Parallel()
	_, err := mod(t).Dial(testURL("127.0.0.1:1", "#timeout=2"))
	var de *DialError
	if !errors.As(err, &de) || de.Step != "probe deviceInfo" || de.Host != "127.0.0.1:1" {
		t.Fatalf("err %v", err)
	}
	noPassword(t, "error", err.Error())
}

func TestBadURLNoTraffic(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sdpH264PCMA)
	_, err := mod(t).Dial(testURL(e.isapi.hostPort(), "?channel=0"))
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Param != "channel" {
		t.Fatalf("err %v", err)
	}
	if n := len(e.isapi.log()); n != 0 {
		t.Errorf("bad URL made %d ISAPI requests", n)
	}
}

func TestStopBeforeStart(t *testing.T) {
	e := newEnv(t, sdpH264PCMA)
	base := runtime.NumGoroutine()
	p, err := mod(t).Dial(testURL(e.isapi.hostPort(), ""))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if err := p.Start(); err != nil {
		t.Errorf("Start after Stop: %v", err)
	}
	waitGoroutines(t, base)
}
