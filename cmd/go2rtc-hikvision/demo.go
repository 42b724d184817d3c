package main

import (
	"strings"

	"github.com/rs/zerolog"
)

// Addresses of the built-in simulator that go2rtc.yaml.example points at.
const (
	DemoCameraHTTP = "127.0.0.1:18080"
	DemoCameraRTSP = "127.0.0.1:18554"
	DemoNVRHTTP    = "127.0.0.1:18090"
	DemoNVRRTSP    = "127.0.0.1:18564"
)

// demoNeeds reports which simulated devices a config's text refers to: a
// non-comment line that names the camera's or the NVR's ISAPI or RTSP
// address (127.0.0.1 or localhost).
func demoNeeds(config string) (camera, nvr bool) {
	for _, line := range strings.Split(config, "\n") {
		line = stripComment(line)
		for _, host := range []string{"127.0.0.1", "localhost"} {
			camera = camera || strings.Contains(line, host+":18080") || strings.Contains(line, host+":18554")
			nvr = nvr || strings.Contains(line, host+":18090") || strings.Contains(line, host+":18564")
		}
	}
	return camera, nvr
}

// stripComment drops a YAML comment: a '#' at the start of the line or after
// whitespace ('#' right after other text, as in go2rtc's "url#backchannel=0",
// is not a comment).
func stripComment(line string) string {
	for i := 0; i < len(line); i++ {
		if line[i] == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t') {
			return line[:i]
		}
	}
	return line
}

// simulators are the simulated devices started for the demo.
type simulators struct {
	log     zerolog.Logger
	closers []func() error
}

func (s *simulators) Close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		if err := s.closers[i](); err != nil {
			s.log.Warn().Err(err).Msg("[go2rtc-hikvision] stop simulator")
		}
	}
	if len(s.closers) > 0 {
		s.log.Info().Msg("[go2rtc-hikvision] simulator stopped")
	}
	s.closers = nil
}

// startSimulators starts the simulated camera and/or NVR that config refers
// to, on the fixed demo addresses.
func startSimulators(config string, log zerolog.Logger) (*simulators, error) {
	s := &simulators{log: log}
	camera, nvr := demoNeeds(config)
	if camera {
		closer, err := startSim("camera", DemoCameraHTTP, DemoCameraRTSP, log)
		if err != nil {
			return nil, err
		}
		s.closers = append(s.closers, closer)
	}
	if nvr {
		closer, err := startSim("nvr", DemoNVRHTTP, DemoNVRRTSP, log)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.closers = append(s.closers, closer)
	}
	return s, nil
}
