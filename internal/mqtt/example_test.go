package mqtt_test

import (
	"time"

	"github.com/rs/zerolog"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/mqtt"
)

// How the module hands events on: one Publisher for the mqtt: section, fed
// by the device health and the event stream of every device.
func Example() {
	p, err := mqtt.New(mqtt.Config{Broker: "tcp://127.0.0.1:1883", Username: "go2rtc", Password: "secret"}, zerolog.Nop())
	if err != nil {
		return // a *mqtt.ConfigError naming the field
	}
	defer p.Close()

	// After login: who the device is, and that it answers.
	_ = p.UpdateDevice(mqtt.DeviceHealth{Device: "192.168.1.64:80", Name: "Front", Model: "DS-2CD2143G2-I", Serial: "DS-2CD2143G2-I20210101AAWRF12345678", Firmware: "V5.7.3", Online: true})
	// Entities Home Assistant should list before any event.
	_ = p.Declare("192.168.1.64:80", "front", 1, "motion", "linedetection", "fielddetection")
	// From the event stream: never blocks, whatever the broker does.
	_ = p.Publish(mqtt.Event{Device: "192.168.1.64:80", Stream: "front", Channel: 1, Type: "linedetection", Active: true, Time: time.Now()})
	// The health view.
	_ = p.Stats()
}
