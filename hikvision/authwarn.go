package hikvision

import (
	"sync"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
)

// basicWarned holds the devices (isapi host:port) already warned about HTTP
// Basic over plain HTTP: one warning per device for the process.
var basicWarned sync.Map

// warnBasic logs one warning per device when c's login was answered with HTTP
// Basic over plain HTTP (the password crosses the network base64-encoded).
// Call it after a successful ISAPI request.
func warnBasic(cfg *Config, c *isapi.Client) {
	if cfg.HTTPS || c == nil || c.AuthScheme() != "Basic" {
		return
	}
	if _, seen := basicWarned.LoadOrStore(c.Host(), struct{}{}); seen {
		return
	}
	log.Warn().Str("device", cfg.HTTPAddr()).
		Msg("[hikvision] the device offers only HTTP Basic authentication: the password crosses the network " +
			"base64-encoded; enable digest on the device or use https=1")
}

// resetBasicWarned forgets the devices warned about (tests).
func resetBasicWarned() { basicWarned.Clear() }
