package hikvision

import (
	"sync"
	"testing"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/guard"
	"github.com/rs/zerolog"
)

// testModules holds each test's own module (tests never share one).
var testModules sync.Map // testing.TB → *Module

// mod returns t's module, making it (default options) on first use.
func mod(t testing.TB) *Module {
	if m, ok := testModules.Load(t); ok {
		return m.(*Module)
	}
	return resetModule(t, Options{}, guard.Config{})
}

// resetModule gives t a fresh module: no probe, device, guard or warning
// known. Its sources are closed when t ends.
func resetModule(t testing.TB, opts Options, gc guard.Config) *Module {
	m := newModule(opts, zerolog.Nop(), gc)
	if old, loaded := testModules.Swap(t, m); !loaded {
		t.Cleanup(func() {
			if m, ok := testModules.LoadAndDelete(t); ok {
				m.(*Module).reg.close()
			}
		})
	} else {
		old.(*Module).reg.close()
	}
	return m
}

// guardOf is the login guard of cfg's device in m.
func (m *Module) guardOf(cfg *Config) *guard.Guard {
	return m.guards.Get(cfg.HTTPAddr(), cfg.Username, guard.Secret(cfg.Password))
}
