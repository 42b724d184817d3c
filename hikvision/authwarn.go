package hikvision

import (
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
)

// warnBasic logs one warning per device when c's login was answered with HTTP
// Basic over plain HTTP (the password crosses the network base64-encoded).
// Call it after a successful ISAPI request.
func (m *Module) warnBasic(cfg *Config, c *isapi.Client) {
	if cfg.HTTPS || c == nil || c.AuthScheme() != "Basic" {
		return
	}
	if _, seen := m.warned.LoadOrStore(c.Host(), struct{}{}); seen {
		return
	}
	m.log.Warn().Str("device", cfg.HTTPAddr()).
		Msg("[hikvision] the device offers only HTTP Basic authentication: the password crosses the network " +
			"base64-encoded; enable digest on the device or use https=1")
}
