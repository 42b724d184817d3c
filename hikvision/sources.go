package hikvision

import (
	"strings"
	"sync"
	"time"

	"github.com/AlexxIT/go2rtc/pkg/core"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/guard"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/snapshot"
)

// The registry is the module's list of the sources it knows: every source
// go2rtc dialled through DialTracked, every hikvision:// source of a go2rtc
// stream (through the resolver and lister the glue sets), every source asked
// for a snapshot. It backs the snapshot, health and metrics handlers.
//
// A source entry holds a reference on its device for as long as it is
// known. Entries of deleted streams are dropped (their snapshot cache
// closed, their device reference released) by prune, which runs when a
// producer's lifetime ends (Stop) or begins (go2rtc dials), never from an
// HTTP handler: the health and metrics views only leave such entries out.
// The snapshot cache of a deleted stream that nothing ever played is closed
// at the next such event.
//
// Lock order: go2rtc calls Dial and Stop holding its own producer lock, and
// prune then calls the lister (go2rtc's GetAllSources, which takes go2rtc's
// streams lock briefly). That is safe because go2rtc never waits for a
// producer lock (or for this module) while holding its streams lock. prune
// holds no registry lock while it calls the lister.
type registry struct {
	m       *Module
	mu      sync.Mutex
	resolve func(name string) []string
	list    func() map[string][]string
	sources map[string]*sourceEntry // by sourceKey
	now     func() time.Time
	// cacheOptions are the base options of new snapshot caches (tests shorten
	// MinInterval); MaxStale and NoLastGood come from the URL.
	cacheOptions snapshot.Options
	closed       bool
}

func newRegistry(m *Module) *registry {
	return &registry{m: m, sources: map[string]*sourceEntry{}, now: time.Now}
}

// sourceEntry is one hikvision:// source (device + channel/stream).
type sourceEntry struct {
	key string
	url string // redacted canonical URL
	cfg *Config
	dev *Device // one reference, released when the entry is dropped

	mu        sync.Mutex
	opts      SnapshotOptions
	streams   map[string]bool // go2rtc stream names seen with this source
	state     string
	since     time.Time
	prod      *Producer // the latest producer dialled; nil if none
	dials     int
	dialFails int
	lastDial  time.Time
	lastError string
	lastErrAt time.Time
	cache     *snapshot.Cache
}

func sourceKey(cfg *Config) string {
	return cfg.String() + "\x00" + guard.Secret(cfg.Password)
}

// source finds or makes the entry of a raw source URL (with credentials).
func (r *registry) source(raw string) (*sourceEntry, error) { return r.sourceFor(raw, false) }

// sourceFor is source; dialing marks the entry as connecting while r.mu is
// still held, so that pruning never drops a source being dialled.
func (r *registry) sourceFor(raw string, dialing bool) (*sourceEntry, error) {
	cfg, err := ParseURL(raw)
	if err != nil {
		return nil, err
	}
	sk := sourceKey(cfg)

	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.sources[sk]
	if s == nil {
		s = &sourceEntry{key: sk, url: cfg.String(), cfg: cfg, dev: r.m.device(cfg), state: StateIdle.String(),
			since: r.now(), streams: map[string]bool{}}
		r.sources[sk] = s
	}
	s.mu.Lock()
	s.opts = cfg.Snapshot
	if dialing {
		s.state, s.since = StateConnecting.String(), r.now()
		s.prod = nil // the previous producer's Start has ended (go2rtc redials after it)
		s.dials++
		s.lastDial = s.since
	}
	s.mu.Unlock()
	return s, nil
}

func (r *registry) dial(raw string, dial func(string) (core.Producer, error)) (core.Producer, error) {
	r.prune()
	s, err := r.sourceFor(raw, true)
	if err != nil {
		// a bad URL: nothing to track; Dial says what is wrong
		return dial(raw)
	}

	prod, err := dial(raw)
	now := r.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.dialFails++
		s.prod = nil
		s.failedLocked(err, now)
		return nil, err
	}
	p, _ := prod.(*Producer)
	s.prod = p
	s.since = now
	s.dev.answered(now)
	if p != nil {
		p.mu.Lock()
		p.onStop = r.prune // a producer's end may end its source's lifetime
		p.mu.Unlock()
		if p.probe != nil {
			s.dev.setModel(p.probe.Info.Model)
		}
	}
	return prod, nil
}

// failedLocked records a failed Dial. s.mu held.
func (s *sourceEntry) failedLocked(err error, now time.Time) {
	kind := guard.Classify(err)
	s.state = stateOfKind(kind).String()
	s.since = now
	s.lastError = s.dev.redact(err.Error())
	s.lastErrAt = now
	s.dev.saw(kind, s.lastError, now)
}

// resolveStream returns the hikvision sources of a go2rtc stream.
func (r *registry) resolveStream(name string) (sources []string, ok bool) {
	r.mu.Lock()
	resolve := r.resolve
	r.mu.Unlock()
	if resolve == nil {
		return nil, false
	}
	for _, src := range resolve(name) {
		if isHikvisionURL(src) {
			sources = append(sources, src)
		}
	}
	return sources, true
}

func isHikvisionURL(s string) bool {
	scheme, _, ok := strings.Cut(s, "://")
	return ok && strings.EqualFold(scheme, "hikvision")
}

// listed returns the stream names of every listed hikvision source, making
// entries for sources never seen (nil without a lister).
func (r *registry) listed() map[*sourceEntry]map[string]bool {
	r.mu.Lock()
	list := r.list
	r.mu.Unlock()
	if list == nil {
		return nil
	}
	listed := map[*sourceEntry]map[string]bool{}
	for name, srcs := range list() {
		for _, src := range srcs {
			if !isHikvisionURL(src) {
				continue
			}
			if s, err := r.source(src); err == nil {
				if listed[s] == nil {
					listed[s] = map[string]bool{}
				}
				listed[s][name] = true
			}
		}
	}
	return listed
}

// busy: a producer of the source plays or is being dialled.
func (s *sourceEntry) busyLocked() bool {
	return s.state == StateConnecting.String() || (s.prod != nil && !s.prod.isStopped())
}

// prune registers the hikvision sources of every go2rtc stream (from the
// lister) and drops the entries go2rtc no longer has once nothing plays or
// dials them: their snapshot cache is closed and their device reference
// released (the device closes with its last reference; its login guard is
// kept by the module, so deleting and re-adding a stream never resets a
// failed-login budget).
func (r *registry) prune() {
	listed := r.listed()
	if listed == nil {
		return
	}
	var caches []*snapshot.Cache
	var devs []*Device
	r.mu.Lock()
	for key, s := range r.sources {
		s.mu.Lock()
		s.syncStreamsLocked(listed[s])
		drop := len(listed[s]) == 0 && !s.busyLocked()
		if drop && s.cache != nil {
			caches = append(caches, s.cache)
			s.cache = nil
		}
		s.mu.Unlock()
		if drop {
			delete(r.sources, key)
			devs = append(devs, s.dev)
		}
	}
	r.mu.Unlock()
	for _, c := range caches {
		c.Close()
	}
	for _, d := range devs {
		d.Release()
	}
}

// syncStreamsLocked sets the stream names of the source to names. s.mu held.
func (s *sourceEntry) syncStreamsLocked(names map[string]bool) {
	for name := range s.streams {
		if !names[name] {
			delete(s.streams, name)
		}
	}
	for name := range names {
		s.streams[name] = true
	}
}

// entriesLocked copies the source entries out of the map, so they can be
// read without r.mu; r.mu held.
func (r *registry) entriesLocked() []*sourceEntry {
	srcs := make([]*sourceEntry, 0, len(r.sources))
	for _, s := range r.sources {
		srcs = append(srcs, s)
	}
	return srcs
}

// close closes every snapshot cache and releases every device reference
// (tests; go2rtc never closes the module). Afterwards snapshots answer
// ReasonClosed.
func (r *registry) close() {
	r.mu.Lock()
	r.closed = true
	srcs := r.entriesLocked()
	r.sources = map[string]*sourceEntry{}
	r.mu.Unlock()
	for _, s := range srcs {
		s.mu.Lock()
		c := s.cache
		s.cache = nil
		s.mu.Unlock()
		if c != nil {
			c.Close()
		}
		s.dev.Release()
	}
}
