package hikvision

import (
	"errors"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/guard"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/hcnetsdk"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/redact"
)

func TestSDKURLParams(t *testing.T) {
	c := mustParse(t, "hikvision://admin:pw@cam/?channel=2&transport=SDK&sdk_port=8001")
	if c.Transport != TransportSDK || c.SDKPort != 8001 || c.sdkAddr() != "cam:8001" {
		t.Fatalf("%+v", c)
	}
	again := mustParse(t, strings.Replace(c.String(), redact.Mask, "pw", 1))
	if again.Transport != TransportSDK || again.SDKPort != 8001 {
		t.Fatalf("String() does not round-trip: %s", c.String())
	}
	if c := mustParse(t, "hikvision://admin:pw@cam/"); c.Transport != "" || c.sdkAddr() != "cam:8000" ||
		strings.Contains(c.String(), "transport") {
		t.Fatalf("defaults: %+v %s", c, c.String())
	}
	for _, bad := range []struct{ q, param string }{
		{"transport=dvrip", "transport"},
		{"sdk_port=0", "sdk_port"},
		{"sdk_port=x", "sdk_port"},
		{"sdk_port=65536", "sdk_port"},
	} {
		_, err := ParseURL("hikvision://admin:pw@cam/?" + bad.q)
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Param != bad.param {
			t.Errorf("%s: %v", bad.q, err)
		}
	}
}

func TestSDKChannel(t *testing.T) {
	camera := hcnetsdk.DeviceInfo{AnalogChannels: 1, FirstAnalogChannel: 1}
	nvr := hcnetsdk.DeviceInfo{IPChannels: 16, FirstIPChannel: 33}
	hybrid := hcnetsdk.DeviceInfo{AnalogChannels: 4, FirstAnalogChannel: 1, IPChannels: 4, FirstIPChannel: 33}
	for _, c := range []struct {
		info    hcnetsdk.DeviceInfo
		n, want int
	}{
		{camera, 1, 1}, {camera, 2, 0},
		{nvr, 1, 33}, {nvr, 16, 48}, {nvr, 17, 0},
		{hybrid, 4, 4}, {hybrid, 5, 33}, {hybrid, 8, 36}, {hybrid, 9, 0},
	} {
		got, err := sdkChannel(c.n, c.info)
		if c.want == 0 {
			if !errors.Is(err, ErrChannelNotFound) {
				t.Errorf("%+v channel %d: %d %v, want ErrChannelNotFound", c.info, c.n, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%+v channel %d: %d %v, want %d", c.info, c.n, got, err, c.want)
		}
	}
}

// The SDK's errors sort like the ISAPI path's: a refused login with its
// tries left, a lock with its time, an unreachable device.
func TestSDKCauseClasses(t *testing.T) {
	wrong := sdkCause(&hcnetsdk.Error{Op: "NET_DVR_Login_V40", Code: 1, LockReported: true, TriesLeft: 3})
	var ae *isapi.AuthError
	if guard.Classify(wrong) != guard.KindWrongCredentials || !errors.As(wrong, &ae) || ae.RetryLoginTime != 3 {
		t.Errorf("wrong password: %v %s %+v", wrong, guard.Classify(wrong), ae)
	}
	if !errors.Is(wrong, hcnetsdk.ErrWrongPassword) || guard.Outcome(wrong) != guard.ResultFailedLogin {
		t.Errorf("wrong password loses its SDK sentinel or counts wrong: %v", wrong)
	}
	locked := sdkCause(&hcnetsdk.Error{Op: "NET_DVR_Login_V40", Code: 153, LockReported: true, LockRemaining: 1800e9})
	if guard.Classify(locked) != guard.KindLocked || !errors.As(locked, &ae) || ae.UnlockTime != 1800e9 {
		t.Errorf("locked: %v %s", locked, guard.Classify(locked))
	}
	down := sdkCause(&hcnetsdk.Error{Op: "NET_DVR_Login_V40", Code: 7})
	if guard.Classify(down) != guard.KindUnreachable || !errors.Is(down, syscall.ECONNREFUSED) {
		t.Errorf("cannot connect: %s", guard.Classify(down))
	}
	slow := sdkCause(&hcnetsdk.Error{Op: "NET_DVR_Login_V40", Code: 10})
	if guard.Classify(slow) != guard.KindTimeout {
		t.Errorf("timeout: %s", guard.Classify(slow))
	}
}

// Without the library (or in a build without the loader) a transport=sdk
// dial fails at once with one permanent line saying what to install where;
// nothing is sent to the device.
func TestSDKUnavailable(t *testing.T) {
	t.Setenv(EnvSDKLib, "")
	missing := filepath.Join(t.TempDir(), "nothing-here")
	m := resetModule(t, Options{SDK: SDKOptions{Lib: missing}}, guard.Config{})
	defer m.Close()
	_, err := m.Dial("hikvision://admin:secretpw@127.0.0.1:1/?transport=sdk&sdk_port=1")
	var ue *SDKUnavailableError
	if !errors.As(err, &ue) {
		t.Fatalf("dial: %T %v", err, err)
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") || strings.Contains(msg, "secretpw") {
		t.Errorf("not one clean line: %q", msg)
	}
	if !ue.Permanent() {
		t.Error("not permanent")
	}
	if errors.Is(err, hcnetsdk.ErrUnsupported) {
		if !strings.Contains(msg, "hcnetsdk") || !strings.Contains(msg, "build") {
			t.Errorf("does not say how to build: %q", msg)
		}
	} else if !errors.Is(err, hcnetsdk.ErrLibraryMissing) || !strings.Contains(msg, missing) ||
		!strings.Contains(msg, "libhcnetsdk.so") || !strings.Contains(msg, EnvSDKLib) {
		t.Errorf("does not say what to install where: %q", msg)
	}
	if st := m.guardOf(mustParse(t, "hikvision://admin:secretpw@127.0.0.1:1/")).Snapshot(); st.Allowed != 0 {
		t.Errorf("a request went to the device: %+v", st)
	}
	t.Log(msg)
}
