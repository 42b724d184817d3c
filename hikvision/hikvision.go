// Package hikvision is the go2rtc source for Hikvision cameras, door stations
// and NVRs (scheme hikvision://).
//
//	hikvision://USER:PASS@HOST[:HTTP_PORT]/?channel=1&stream=main
//
// Dial checks the URL, probes the device over ISAPI (model, firmware, type,
// channel, RTSP port, two-way audio channels, an NVR channel's online state;
// deviceInfo first as the login, the rest in one concurrent round; an offline
// NVR channel fails with *ChannelOfflineError; cached per device/channel/stream for
// ProbeTTL so that go2rtc's reconnects make no ISAPI request) and plays the
// stream over RTSP (TCP) with go2rtc's pkg/rtsp client. Voice talk is a
// sendonly audio media in the device's talk codec (unless #backchannel=0),
// opened lazily on the first audio; every talk request goes through the
// device's login guard like the probe and RTSP.
package hikvision

import (
	"github.com/rs/zerolog"
)

var log = zerolog.Nop()

// SetLogger sets the logger the module writes to (go2rtc's glue passes
// app.GetLogger("hikvision")). Call it before the first Dial.
func SetLogger(l zerolog.Logger) { log = l }
