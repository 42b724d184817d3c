package main

import (
	"os"
	"runtime"
	"slices"
	"testing"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/build"
)

// run builds with the SDK loader when the config asks for transport=sdk or
// auto on a glibc Linux host, and only then.
func TestWantsSDK(t *testing.T) {
	_, err := os.Stat("/lib64/ld-linux-x86-64.so.2")
	glibc := runtime.GOOS == "linux" && runtime.GOARCH == "amd64" && err == nil
	if runtime.GOARCH == "arm64" {
		_, err = os.Stat("/lib/ld-linux-aarch64.so.1")
		glibc = runtime.GOOS == "linux" && err == nil
	}
	for _, c := range []struct {
		config string
		want   bool
	}{
		{"streams:\n  a: hikvision://u:p@h/?channel=1\n", false},
		{"streams:\n  a: hikvision://u:p@h/?channel=1&transport=sdk\n", glibc},
		{"streams:\n  a: hikvision://u:p@h/?transport=auto\n", glibc},
		{"streams:\n  a: hikvision://u:p@h/?transport=rtsp\n", false},
	} {
		if got := wantsSDK([]string{c.config}); got != c.want {
			t.Errorf("wantsSDK(%q) = %v, want %v", c.config, got, c.want)
		}
	}
	if !slices.Equal(sdkTags(true), []string{build.SDKTag}) || sdkTags(false) != nil {
		t.Errorf("sdkTags: %v %v", sdkTags(true), sdkTags(false))
	}
}
