// Package hikvision is the go2rtc source for Hikvision cameras, door stations
// and NVRs (scheme hikvision://).
//
// STUB: replaced by the real implementation.
package hikvision

import (
	"errors"

	"github.com/AlexxIT/go2rtc/pkg/core"
	"github.com/rs/zerolog"
)

var log = zerolog.Nop()

// SetLogger sets the logger the module writes to (go2rtc's glue passes
// app.GetLogger("hikvision")).
func SetLogger(l zerolog.Logger) { log = l }

// Dial is go2rtc's source handler for hikvision:// URLs.
func Dial(source string) (core.Producer, error) {
	return nil, errors.New("hikvision: not implemented")
}
