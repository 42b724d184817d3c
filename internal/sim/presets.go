package sim

import "net/http"

// Preset names: device kinds seen among recorded device answers, each a ready Config (see Preset).
const (
	PresetAnalogDVR     = "analog-dvr"     // 4 analog inputs, no IP channel; x03 bare 400, x04 bare 403
	PresetHybrid        = "hybrid"         // 4 analog inputs (1..4) and 2 IP channels (5, 6)
	PresetNVRTwoTalk    = "nvr-two-talk"   // NVR with two talk channels; x03 and x04 bare 403
	PresetNVRFourth     = "nvr-fourth"     // NVR whose channels have a fourth stream (x04) but no third
	PresetOldCamera     = "old-camera"     // MJPEG sub stream 640x480; 103 and 104 bare 500
	PresetFourStreams   = "camera-4stream" // current camera with streams 101..104
	PresetCameraDefault = "camera"         // the default camera (H.264 + G.711 µ-law, 101 and 102)
)

// Presets lists the preset names in a stable order.
func Presets() []string {
	return []string{PresetCameraDefault, PresetFourStreams, PresetOldCamera, PresetNVRTwoTalk, PresetNVRFourth,
		PresetAnalogDVR, PresetHybrid}
}

// Preset returns the Config of a preset device kind (ok false for an unknown name). Callers add users,
// addresses and faults.
func Preset(name string) (cfg Config, ok bool) {
	switch name {
	case PresetCameraDefault:
		return Config{}, true
	case PresetFourStreams:
		return Config{Model: "DS-2CD2386G2-IU", Firmware: "V5.7.15",
			Channels: []Channel{{ID: 1, Streams: []int{1, 2, 3, 4}}}}, true
	case PresetOldCamera:
		return Config{Model: "DS-2CD2532F-IWS", Firmware: "V5.2.0",
			Channels:     []Channel{{ID: 1, SubVideo: "MJPEG", SubWidth: 640, SubHeight: 480}},
			AbsentStream: map[int]int{3: http.StatusInternalServerError, 4: http.StatusInternalServerError}}, true
	case PresetNVRTwoTalk:
		return Config{Personality: PersonalityNVR, Model: "DS-7616NI-K2", Firmware: "V4.74.210", TalkChannels: 2,
			AbsentStream: map[int]int{3: http.StatusForbidden, 4: http.StatusForbidden}}, true
	case PresetNVRFourth:
		var chs []Channel
		for i := 1; i <= 4; i++ {
			chs = append(chs, Channel{ID: i, Video: "H.264", Audio: "PCMA", Streams: []int{1, 2, 4}})
		}
		return Config{Personality: PersonalityNVR, Model: "DS-7608NXI-I2/8P/S", Firmware: "V4.62.210",
			TalkChannels: 2, Channels: chs,
			AbsentStream: map[int]int{3: http.StatusForbidden, 4: http.StatusForbidden}}, true
	case PresetAnalogDVR:
		return Config{Personality: PersonalityDVR}, true
	case PresetHybrid:
		return Config{Personality: PersonalityHybrid}, true
	}
	return Config{}, false
}
