package hikvision

import (
	"sync"
	"time"

	"github.com/AlexxIT/go2rtc/pkg/core"
	"github.com/rs/zerolog"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/guard"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/mqtt"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/talk"
)

// Options configure a Module: the hikvision: section of go2rtc.yaml. Zero
// fields take the defaults. Later sections (a vendor-SDK login, device
// events, MQTT) are added here as sub-structs with their own yaml key.
//
//	hikvision:
//	  probe_ttl: 10m
//	  reconnect:
//	    stall_timeout: 3s
//	    give_up_after: 2m
//	  guard:
//	    max_failed_logins: 2
//	    window: 30m
//	    reserve_tries: 1
//	    peer_reserve: 2
type Options struct {
	// ProbeTTL is how long a device's probe is reused. Default 10 min.
	ProbeTTL time.Duration `yaml:"probe_ttl"`
	// Reconnect tunes how producers keep their stream alive.
	Reconnect ReconnectOptions `yaml:"reconnect"`
	// Guard sets the login guard's rules (one guard per device).
	Guard GuardOptions `yaml:"guard"`
	// Events turns device events on (events.go).
	Events EventOptions `yaml:"events"`
	// MQTT sends events and device availability to a broker (internal/mqtt).
	MQTT *mqtt.Config `yaml:"mqtt"`
	// SDK says where the vendor's device network SDK is (transport=sdk).
	SDK SDKOptions `yaml:"sdk"`
	// TalkAnswersRing: talk that starts while a door station rings answers
	// the call first, and hangs up the call it answered when the talk ends.
	// Default true (nil); false leaves the call alone (the station keeps
	// ringing and the visitor does not hear the talk until it is answered).
	TalkAnswersRing *bool `yaml:"talk_answers_ring"`
}

// talkAnswersRing: the TalkAnswersRing option with its default.
func (o Options) talkAnswersRing() bool { return o.TalkAnswersRing == nil || *o.TalkAnswersRing }

// GuardOptions are the login guard's rules that a user may change (the
// rest are fixed). Zero fields take the defaults of internal/guard.
type GuardOptions struct {
	MaxFailedLogins int           `yaml:"max_failed_logins"`
	Window          time.Duration `yaml:"window"`
	ReserveTries    int           `yaml:"reserve_tries"`
	PeerReserve     int           `yaml:"peer_reserve"`
	PeekHold        time.Duration `yaml:"peek_hold"`
}

// Module is the hikvision:// source: every device, source, probe and login
// guard the process knows, with the logger and options. The go2rtc glue
// makes one with New and registers its Dial and handlers; tests make their
// own. It has no goroutine of its own.
type Module struct {
	log       zerolog.Logger
	opts      Options
	reconnect ReconnectOptions
	guards    *guard.Registry
	probes    *probeCache
	reg       *registry

	devMu   sync.Mutex
	devices map[string]*Device // by deviceKey; a device leaves when released

	// warned holds the devices (ISAPI host:port) already warned about HTTP
	// Basic over plain HTTP: one warning per device for the module.
	warned sync.Map

	// talkHook lets tests shorten the talk engine's timings.
	talkHook func(*talk.Config)

	// rtspGuess is the RTSP port a cold start tries before the device has
	// named its own (without rtsp_port): 554; tests move it.
	rtspGuess int

	evMu sync.Mutex
	ev   *moduleEvents // nil until StartEvents (events.go)
}

// New returns a module with its options and logger (go2rtc's glue passes
// app.GetLogger("hikvision")).
func New(opts Options, log zerolog.Logger) *Module {
	return newModule(opts, log, guard.Config{})
}

func newModule(opts Options, log zerolog.Logger, gc guard.Config) *Module {
	if opts.ProbeTTL <= 0 {
		opts.ProbeTTL = ProbeTTL
	}
	g := opts.Guard
	gc.MaxFailedLogins, gc.Window, gc.ReserveTries = g.MaxFailedLogins, g.Window, g.ReserveTries
	gc.PeerReserve, gc.PeekHold = g.PeerReserve, g.PeekHold
	m := &Module{
		log:       log,
		opts:      opts,
		reconnect: opts.Reconnect.withDefaults(),
		guards:    guard.NewRegistry(gc),
		probes:    newProbeCache(opts.ProbeTTL),
		rtspGuess: isapi.DefaultRTSPPort,
		devices:   map[string]*Device{},
	}
	m.reg = newRegistry(m)
	return m
}

// Dial is a hikvision:// source of its own module (default options, no
// logger): devices, probes and login guards are not shared with any other
// Dial. go2rtc uses Module.DialTracked.
func Dial(source string) (core.Producer, error) {
	return New(Options{}, zerolog.Nop()).Dial(source)
}

// SetStreamResolver sets how a go2rtc stream name resolves to its source URLs
// (with credentials), e.g. streams.Get(name).Sources(). The glue calls it in
// Init; without it SnapshotHandler answers 503.
func (m *Module) SetStreamResolver(resolve func(name string) []string) {
	m.reg.mu.Lock()
	m.reg.resolve = resolve
	m.reg.mu.Unlock()
}

// SetStreamLister sets how to list every go2rtc stream with its source URLs
// (e.g. streams.GetAllSources), so that the health view shows configured
// hikvision sources that were never dialled. Optional.
func (m *Module) SetStreamLister(list func() map[string][]string) {
	m.reg.mu.Lock()
	m.reg.list = list
	m.reg.mu.Unlock()
}

// DialTracked is Dial for go2rtc (the glue registers it for the hikvision
// scheme): it takes the snapshot options out of the URL, records the source
// in the registry, dials, and records the outcome; the producer it returns
// records when Start runs and ends. Errors are Dial's.
func (m *Module) DialTracked(source string) (core.Producer, error) {
	return m.reg.dial(source, m.Dial)
}
