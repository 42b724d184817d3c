package main

import (
	"fmt"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
	"github.com/rs/zerolog"
)

// startSim starts one simulated device (personality "camera" or "nvr") with
// the simulator's default users (admin / hik12345) and channel layout.
func startSim(personality, httpAddr, rtspAddr string, log zerolog.Logger) (closer func() error, err error) {
	d, err := sim.Start(sim.Config{Personality: personality, HTTPAddr: httpAddr, RTSPAddr: rtspAddr})
	if err != nil {
		return nil, fmt.Errorf("start simulated %s on %s/%s (is another demo running?): %w", personality, httpAddr, rtspAddr, err)
	}
	log.Info().Str("isapi", "http://"+d.HTTPAddr()).Str("rtsp", "rtsp://"+d.RTSPAddr()).
		Msgf("[go2rtc-hikvision] simulated %s running", personality)
	return d.Close, nil
}
