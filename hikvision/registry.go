package hikvision

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/AlexxIT/go2rtc/pkg/core"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/guard"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/redact"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/snapshot"
)

// The registry is the process-wide list of the devices and sources the module
// knows: every source go2rtc dialled through DialTracked, and every
// hikvision:// source of a go2rtc stream (through the resolver and lister the
// glue sets). It backs the snapshot, health and metrics handlers (api.go).
//
// Per-stream snapshot options, after '#' in the source URL:
//
//	#snapshot_max_stale=SECONDS  oldest last good image served when the device fails (default 600)
//	#snapshot_last_good=0        never serve a last good image: a failed fetch is an error at once
//	#snapshot_min_interval=SECONDS  least time between two device requests (default 1; decimals allowed)
//
// DialTracked removes them before the URL reaches Dial.

// Source states the registry shows when there is no producer to ask (its
// Status): the same words as State.String.
const (
	stateIdle        = "idle"        // known (in a stream's config), never dialled
	stateConnecting  = "connecting"  // Dial in progress
	stateUnreachable = "unreachable" // the last Dial failed without the device answering
	stateAuthFailed  = "auth failed" // the device refused the credentials, or the guard holds after that
	stateLocked      = "locked"      // the device locked this client
	stateFailed      = "failed"      // another failure; see last_error
)

// Snapshot option names (URL fragment).
const (
	optSnapshotMaxStale = "snapshot_max_stale"
	optSnapshotLastGood = "snapshot_last_good"
	optSnapshotMinIvl   = "snapshot_min_interval"
)

// snapshotOptions are a source's per-stream snapshot options.
type snapshotOptions struct {
	MaxStale    time.Duration // 0: snapshot.DefaultMaxStale
	NoLastGood  bool
	MinInterval time.Duration // 0: the registry's default (snapshot.DefaultMinInterval)
}

// SetStreamResolver sets how a go2rtc stream name resolves to its source URLs
// (with credentials), e.g. streams.Get(name).Sources(). The glue calls it in
// Init; without it SnapshotHandler answers 503.
func SetStreamResolver(resolve func(name string) []string) {
	reg.mu.Lock()
	reg.resolve = resolve
	reg.mu.Unlock()
}

// SetStreamLister sets how to list every go2rtc stream with its source URLs
// (e.g. streams.GetAllSources), so that the health view shows configured
// hikvision sources that were never dialled. Optional.
func SetStreamLister(list func() map[string][]string) {
	reg.mu.Lock()
	reg.list = list
	reg.mu.Unlock()
}

// DialTracked is Dial for go2rtc (the glue registers it for the hikvision
// scheme): it takes the snapshot options out of the URL, records the source
// in the registry, dials, and records the outcome; the producer it returns
// records when Start runs and ends. Errors are Dial's.
func DialTracked(source string) (core.Producer, error) {
	return reg.dial(source, Dial)
}

type registry struct {
	mu      sync.Mutex
	resolve func(name string) []string
	list    func() map[string][]string
	sources map[string]*sourceEntry // by sourceKey
	devices map[string]*deviceEntry // by deviceKey
	now     func() time.Time
	// cacheOptions are the base options of new snapshot caches (tests shorten
	// MinInterval); MaxStale and NoLastGood come from the URL.
	cacheOptions snapshot.Options
	closed       bool
}

var reg = newRegistry()

func newRegistry() *registry {
	return &registry{
		sources: map[string]*sourceEntry{},
		devices: map[string]*deviceEntry{},
		now:     time.Now,
	}
}

// deviceEntry is one device (scheme, host[:port], user, password).
type deviceEntry struct {
	key    string
	host   string // HTTPAddr
	user   string
	cfg    *Config // of the first source; for the ISAPI client
	guard  *guard.Guard
	secret []string // password forms to redact

	mu        sync.Mutex
	client    *isapi.Client
	model     string
	lastUp    time.Time // the device last answered (any answer, even an error)
	lastDown  time.Time // the device last did not answer (refused, timeout)
	lastError string    // redacted, of the last failure seen by the registry
	lastErrAt time.Time
}

// sourceEntry is one hikvision:// source (device + channel/stream).
type sourceEntry struct {
	key string
	url string // redacted canonical URL
	cfg *Config
	dev *deviceEntry

	mu        sync.Mutex
	opts      snapshotOptions
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

func deviceKey(cfg *Config) string {
	scheme := "http"
	if cfg.HTTPS {
		scheme = "https"
	}
	return scheme + "://" + cfg.Username + "@" + strings.ToLower(cfg.HTTPAddr()) + "\x00" + guard.Secret(cfg.Password)
}

func sourceKey(cfg *Config) string {
	return cfg.String() + "\x00" + guard.Secret(cfg.Password)
}

// splitSnapshotOptions takes the snapshot options out of a source URL's
// fragment and returns the rest of the URL for ParseURL/Dial.
func splitSnapshotOptions(source string) (string, snapshotOptions, error) {
	var o snapshotOptions
	main, frag, ok := strings.Cut(source, "#")
	if !ok {
		return source, o, nil
	}
	var keep []string
	for _, opt := range strings.FieldsFunc(frag, func(r rune) bool { return r == '#' || r == '&' }) {
		name, value, _ := strings.Cut(opt, "=")
		switch name {
		case optSnapshotMaxStale:
			n, err := strconv.Atoi(value)
			if err != nil || n < 1 || n > 7*24*3600 {
				return "", o, &ConfigError{Param: "#" + name, Value: value, Reason: "want seconds 1-604800"}
			}
			o.MaxStale = time.Duration(n) * time.Second
		case optSnapshotMinIvl:
			f, err := strconv.ParseFloat(value, 64)
			if err != nil || f < 0.001 || f > 3600 {
				return "", o, &ConfigError{Param: "#" + name, Value: value, Reason: "want seconds 0.001-3600"}
			}
			o.MinInterval = time.Duration(f * float64(time.Second))
		case optSnapshotLastGood:
			b, err := parseBool("#"+name, value)
			if err != nil {
				return "", o, err
			}
			o.NoLastGood = !b
		default:
			keep = append(keep, opt)
		}
	}
	if len(keep) == 0 {
		return main, o, nil
	}
	return main + "#" + strings.Join(keep, "#"), o, nil
}

// source finds or makes the entry of a raw source URL (with credentials).
func (r *registry) source(raw string) (*sourceEntry, error) { return r.sourceFor(raw, false) }

// sourceFor is source; dialing marks the entry as connecting while r.mu is
// still held, so that sync's pruning never drops a source being dialled.
func (r *registry) sourceFor(raw string, dialing bool) (*sourceEntry, error) {
	rest, opts, err := splitSnapshotOptions(raw)
	if err != nil {
		return nil, err
	}
	cfg, err := ParseURL(rest)
	if err != nil {
		return nil, err
	}
	sk, dk := sourceKey(cfg), deviceKey(cfg)

	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.devices[dk]
	if d == nil {
		d = &deviceEntry{
			key: dk, host: cfg.HTTPAddr(), user: cfg.Username, cfg: cfg,
			guard:  deviceGuard(cfg),
			secret: []string{cfg.Password, cfg.Username + ":" + cfg.Password},
		}
		r.devices[dk] = d
	}
	s := r.sources[sk]
	if s == nil {
		s = &sourceEntry{key: sk, url: cfg.String(), cfg: cfg, dev: d, state: stateIdle,
			since: r.now(), streams: map[string]bool{}}
		r.sources[sk] = s
	}
	s.mu.Lock()
	s.opts = opts
	if dialing {
		s.state, s.since = stateConnecting, r.now()
		s.prod = nil // the previous producer's Start has ended (go2rtc redials after it)
		s.dials++
		s.lastDial = s.since
	}
	s.mu.Unlock()
	return s, nil
}

func (r *registry) dial(raw string, dial func(string) (core.Producer, error)) (core.Producer, error) {
	rest, _, err := splitSnapshotOptions(raw)
	if err != nil {
		return nil, err
	}
	s, err := r.sourceFor(raw, true)
	if err != nil {
		// a bad URL: nothing to track; Dial says what is wrong
		return dial(rest)
	}

	prod, err := dial(rest)
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
	if p != nil && p.probe != nil {
		s.dev.setModel(p.probe.Info.Model)
	}
	return prod, nil
}

// failedLocked records a failed Dial. s.mu held.
func (s *sourceEntry) failedLocked(err error, now time.Time) {
	kind := guard.Classify(err)
	s.state = stateOf(kind)
	s.since = now
	s.lastError = s.dev.redact(err.Error())
	s.lastErrAt = now
	s.dev.saw(kind, s.lastError, now)
}

func stateOf(k guard.Kind) string {
	switch k {
	case guard.KindWrongCredentials, guard.KindNoCredentials, guard.KindLoginPending:
		return stateAuthFailed
	case guard.KindLocked:
		return stateLocked
	case guard.KindUnreachable, guard.KindTimeout:
		return stateUnreachable
	}
	return stateFailed
}

func (d *deviceEntry) redact(s string) string { return redact.String(s, d.secret...) }

func (d *deviceEntry) answered(now time.Time) {
	d.mu.Lock()
	if now.After(d.lastUp) {
		d.lastUp = now
	}
	d.mu.Unlock()
}

func (d *deviceEntry) setModel(m string) {
	if m == "" {
		return
	}
	d.mu.Lock()
	d.model = m
	d.mu.Unlock()
}

// saw records a failure: whether the device answered, and the error.
func (d *deviceEntry) saw(kind guard.Kind, msg string, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch kind {
	case guard.KindUnreachable, guard.KindTimeout:
		d.lastDown = now
	case guard.KindLoginPending, guard.KindOther:
		// the guard held (no request) or an unknown failure: says nothing about the device
	default:
		if now.After(d.lastUp) {
			d.lastUp = now
		}
	}
	d.lastError, d.lastErrAt = msg, now
}

// reachable is true when the device answered last, false when it did not,
// nil when nothing is known.
func (d *deviceEntry) reachable() *bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.lastUp.IsZero() && d.lastDown.IsZero() {
		return nil
	}
	v := !d.lastUp.Before(d.lastDown)
	return &v
}

// isapiClient returns the device's ISAPI client for snapshots, making it on first use.
func (d *deviceEntry) isapiClient() (*isapi.Client, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.client != nil {
		return d.client, nil
	}
	c, err := isapi.New(isapi.Config{
		Host: d.cfg.HTTPAddr(), HTTPS: d.cfg.HTTPS, Username: d.cfg.Username, Password: d.cfg.Password,
		InsecureSkipVerify: d.cfg.Insecure, CertSHA256: d.cfg.CertSHA256, Timeout: d.cfg.Timeout,
	})
	if err != nil {
		return nil, &ConfigError{Param: "url", Value: d.cfg.String(), Reason: redactErr(err, d.cfg)}
	}
	d.client = c
	return c, nil
}

// snapshots returns the source's snapshot cache, making it on first use.
func (r *registry) snapshots(s *sourceEntry) (*snapshot.Cache, error) {
	r.mu.Lock()
	closed, base := r.closed, r.cacheOptions
	r.mu.Unlock()
	if closed {
		return nil, snapshot.ErrClosed
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cache != nil {
		return s.cache, nil
	}
	opt := base
	opt.MaxStale, opt.NoLastGood = s.opts.MaxStale, s.opts.NoLastGood
	if s.opts.MinInterval > 0 {
		opt.MinInterval = s.opts.MinInterval
	}
	if s.cfg.Timeout > 0 {
		opt.FetchTimeout = s.cfg.Timeout
	}
	if opt.Now == nil {
		opt.Now = r.now
	}
	s.cache = snapshot.New(func(ctx context.Context, w, h int) ([]byte, error) {
		return r.fetchSnapshot(ctx, s, w, h)
	}, opt)
	return s.cache, nil
}

// fetchSnapshot is the snapshot cache's Fetcher: one device request through
// the device's guard. A hold answers at once (no request); a failed login is
// reported to the guard, as is every other outcome, so the guard's state and
// budget cover snapshots too.
func (r *registry) fetchSnapshot(ctx context.Context, s *sourceEntry, width, height int) ([]byte, error) {
	d := s.dev
	if err := d.guard.Allow(); err != nil {
		d.saw(guard.Classify(err), d.redact(err.Error()), r.now())
		return nil, d.safeErr(holdErr(d.host, err))
	}
	body, err := r.fetchAllowed(ctx, s, width, height)
	now := r.now()
	if err == nil {
		d.guard.Success()
		d.answered(now)
		if c, cerr := d.isapiClient(); cerr == nil {
			warnBasic(d.cfg, c)
		}
		return body, nil
	}
	var se *isapi.StatusError
	switch kind := guard.Classify(err); {
	case kind == guard.KindWrongCredentials || kind == guard.KindLocked || kind == guard.KindNotActivated:
		d.guard.Report(err) // a failed login: counts toward the budget
	case errors.As(err, &se) || errors.Is(err, isapi.ErrProtocol) || errors.Is(err, isapi.ErrTooLarge):
		d.guard.Success() // the device answered past the login: the credentials are good
	default:
		d.guard.Report(err) // unreachable, timeout...: recorded, not a failed login
	}
	d.saw(guard.Classify(err), d.redact(err.Error()), now)
	return nil, d.safeErr(err)
}

// safeErr returns err, or a stand-in without the password if its text
// quotes it (errors.Is still matches the original).
func (d *deviceEntry) safeErr(err error) error {
	if msg := d.redact(err.Error()); msg != err.Error() {
		return &redactedError{msg: msg, orig: err}
	}
	return err
}

func (r *registry) fetchAllowed(ctx context.Context, s *sourceEntry, width, height int) ([]byte, error) {
	c, err := s.dev.isapiClient()
	if err != nil {
		return nil, err
	}
	pr := probes.get(s.cfg)
	if pr == nil {
		// never dialled (or the probe expired): the same probe Dial makes,
		// cached for the next Dial.
		if pr, err = probe(ctx, c, s.cfg); err != nil {
			return nil, err
		}
		probes.put(s.cfg, pr)
	}
	s.dev.setModel(pr.Info.Model)
	// The raw body: the snapshot cache checks it (SOI/EOI, XML, HTML) and names
	// what was wrong. Non-2xx and ResponseStatus answers are *isapi.StatusError.
	_, body, err := c.Do(ctx, http.MethodGet, snapshot.Path(s.cfg.StreamID(), pr.NVR, width, height), nil)
	if err != nil {
		return nil, err
	}
	return body, nil
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

// sync registers the hikvision sources of every go2rtc stream (from the
// lister) and forgets what go2rtc no longer has: stream names no longer
// listed, sources of deleted streams once nothing plays or dials them (their
// snapshot cache is closed), and devices left without a source (their ISAPI
// client is closed). The login guard of a device is kept (package-wide), so
// deleting and re-adding a stream never resets a failed-login budget.
func (r *registry) sync() {
	r.mu.Lock()
	list := r.list
	r.mu.Unlock()
	if list == nil {
		return
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

	var caches []*snapshot.Cache
	var clients []*isapi.Client
	r.mu.Lock()
	for key, s := range r.sources {
		s.mu.Lock()
		for name := range s.streams {
			if !listed[s][name] {
				delete(s.streams, name)
			}
		}
		for name := range listed[s] {
			s.streams[name] = true
		}
		busy := s.state == stateConnecting || (s.prod != nil && !s.prod.isStopped())
		drop := len(listed[s]) == 0 && !busy
		if drop && s.cache != nil {
			caches = append(caches, s.cache)
			s.cache = nil
		}
		s.mu.Unlock()
		if drop {
			delete(r.sources, key)
		}
	}
	inUse := map[*deviceEntry]bool{}
	for _, s := range r.sources {
		inUse[s.dev] = true
	}
	for key, d := range r.devices {
		if inUse[d] {
			continue
		}
		delete(r.devices, key)
		d.mu.Lock()
		if d.client != nil {
			clients = append(clients, d.client)
			d.client = nil
		}
		d.mu.Unlock()
	}
	r.mu.Unlock()
	for _, c := range caches {
		c.Close()
	}
	for _, c := range clients {
		c.Close()
	}
}

// Health is the JSON of GET /api/hikvision.
type Health struct {
	Devices []DeviceHealth `json:"devices"`
	Sources []SourceHealth `json:"sources"`
}

// DeviceHealth is one device in Health.
type DeviceHealth struct {
	Device    string `json:"device"` // host[:port]
	User      string `json:"user"`
	Model     string `json:"model,omitempty"`
	Reachable *bool  `json:"reachable"` // null: not known yet
	// Guard: the device's login guard (shared by producers, snapshots, talk).
	State          guard.Status `json:"state"`  // idle, ok, failing, holding, locked
	Reason         string       `json:"reason"` // the hold's reason or the last failure's kind
	FailedLogins   int          `json:"failed_logins"`
	LoginBudget    int          `json:"login_budget"`
	BudgetWindowS  int64        `json:"budget_window_s"`
	RetryLoginTime int          `json:"retry_login_time"` // tries left the device reported; -1 unknown
	LockedUntil    *time.Time   `json:"locked_until"`
	HoldUntil      *time.Time   `json:"hold_until"`
	LastError      string       `json:"last_error,omitempty"` // redacted
	LastErrorAt    *time.Time   `json:"last_error_at,omitempty"`
	Sources        []string     `json:"sources"` // redacted URLs
}

// SourceHealth is one source (of one stream) in Health.
type SourceHealth struct {
	Stream     string          `json:"stream"` // go2rtc stream name; "" if dialled outside any stream
	URL        string          `json:"url"`    // redacted
	Device     string          `json:"device"`
	Channel    int             `json:"channel"`
	StreamID   int             `json:"stream_id"`
	State      string          `json:"state"`
	Since      *time.Time      `json:"since"`
	Until      *time.Time      `json:"until,omitempty"` // end of a backoff or lock
	LastFrame  *time.Time      `json:"last_frame"`      // last RTP packet; null if none (yet)
	Attempts   int             `json:"attempts"`        // the producer's authenticated RTSP attempts
	Reconnects int             `json:"reconnects"`      // sessions the producer restored
	Dials      int             `json:"dials"`
	DialFails  int             `json:"dial_failures"`
	LastDial   *time.Time      `json:"last_dial"`
	LastError  string          `json:"last_error,omitempty"` // redacted
	LastErrAt  *time.Time      `json:"last_error_at,omitempty"`
	Snapshot   *SnapshotHealth `json:"snapshot"`       // null until the first snapshot request
	Talk       *TalkStatus     `json:"talk,omitempty"` // voice talk (backchannel) of the producer, if any
}

// SnapshotHealth is the snapshot cache of a source.
type SnapshotHealth struct {
	LastGood       *time.Time        `json:"last_good"`
	DeviceRequests uint64            `json:"device_requests"`
	ServedFresh    uint64            `json:"served_fresh"`
	ServedStale    uint64            `json:"served_stale"`
	ServedErrors   uint64            `json:"served_errors"`
	ServedCached   uint64            `json:"served_cached"`
	Coalesced      uint64            `json:"coalesced"`
	Failures       map[string]uint64 `json:"failures"`
	LastFailure    *time.Time        `json:"last_failure,omitempty"`
	LastReason     string            `json:"last_reason,omitempty"`
	LastError      string            `json:"last_error,omitempty"` // redacted
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// entriesLocked copies the source and device entries out of the maps, so
// they can be read without r.mu; r.mu held.
func (r *registry) entriesLocked() ([]*sourceEntry, []*deviceEntry) {
	srcs := make([]*sourceEntry, 0, len(r.sources))
	for _, s := range r.sources {
		srcs = append(srcs, s)
	}
	devs := make([]*deviceEntry, 0, len(r.devices))
	for _, d := range r.devices {
		devs = append(devs, d)
	}
	return srcs, devs
}

// health builds the health view, sorted by device and stream.
func (r *registry) health() Health {
	r.sync()
	r.mu.Lock()
	srcs, devs := r.entriesLocked()
	r.mu.Unlock()

	h := Health{Devices: []DeviceHealth{}, Sources: []SourceHealth{}}
	bySource := map[*deviceEntry][]string{}
	for _, s := range srcs {
		for _, sh := range s.health() {
			h.Sources = append(h.Sources, sh)
		}
		bySource[s.dev] = append(bySource[s.dev], s.url)
	}
	for _, d := range devs {
		g := d.guard.State()
		d.mu.Lock()
		dh := DeviceHealth{
			Device: d.host, User: d.user, Model: d.model,
			State: g.Status, Reason: g.Reason.String(), FailedLogins: g.FailedLogins, LoginBudget: g.Budget,
			BudgetWindowS: int64(g.Window / time.Second), RetryLoginTime: g.RetryLoginTime,
			LockedUntil: timePtr(g.LockedUntil), HoldUntil: timePtr(g.HoldUntil),
			LastError: d.redact(g.LastError), LastErrorAt: timePtr(g.LastErrorAt),
		}
		if dh.LastError == "" && d.lastError != "" {
			dh.LastError, dh.LastErrorAt = d.lastError, timePtr(d.lastErrAt)
		}
		d.mu.Unlock()
		dh.Reachable = d.reachable()
		dh.Sources = bySource[d]
		sort.Strings(dh.Sources)
		h.Devices = append(h.Devices, dh)
	}
	sort.Slice(h.Devices, func(i, j int) bool {
		a, b := h.Devices[i], h.Devices[j]
		return a.Device+"\x00"+a.User < b.Device+"\x00"+b.User
	})
	sort.Slice(h.Sources, func(i, j int) bool {
		a, b := h.Sources[i], h.Sources[j]
		return a.Stream+"\x00"+a.URL < b.Stream+"\x00"+b.URL
	})
	return h
}

// health returns one SourceHealth per stream the source is in (one with
// Stream "" if none).
func (s *sourceEntry) health() []SourceHealth {
	s.mu.Lock()
	sh := SourceHealth{
		URL: s.url, Device: s.dev.host, Channel: s.cfg.Channel, StreamID: s.cfg.StreamID(),
		State: s.state, Since: timePtr(s.since), Dials: s.dials, DialFails: s.dialFails,
		LastDial: timePtr(s.lastDial), LastError: s.lastError, LastErrAt: timePtr(s.lastErrAt),
	}
	prod, cache := s.prod, s.cache
	names := make([]string, 0, len(s.streams))
	for n := range s.streams {
		names = append(names, n)
	}
	s.mu.Unlock()

	if prod != nil {
		st := prod.Status()
		sh.State, sh.Since = st.State.String(), timePtr(st.Since)
		if st.State == StateBackoff || st.State == StateLocked {
			sh.Until = timePtr(st.Until)
		}
		sh.LastFrame = timePtr(st.LastPacket)
		sh.Attempts, sh.Reconnects = st.Attempts, st.Reconnects
		if ts := prod.Talk(); ts != nil {
			ts.Error = s.dev.redact(ts.Error)
			sh.Talk = ts
		}
		if st.LastError != "" {
			sh.LastError, sh.LastErrAt = s.dev.redact(st.LastError), timePtr(st.LastErrorAt)
		}
	}
	if cache != nil {
		st := cache.Stats()
		sh.Snapshot = &SnapshotHealth{
			LastGood: timePtr(st.LastGood), DeviceRequests: st.DeviceRequests, ServedFresh: st.ServedFresh,
			ServedStale: st.ServedStale, ServedErrors: st.ServedErrors, ServedCached: st.ServedCached,
			Coalesced: st.Coalesced, Failures: map[string]uint64{}, LastFailure: timePtr(st.LastFailure),
			LastReason: string(st.LastReason), LastError: s.dev.redact(st.LastError),
		}
		for k, v := range st.Failures {
			sh.Snapshot.Failures[string(k)] = v
		}
	}
	if len(names) == 0 {
		return []SourceHealth{sh}
	}
	sort.Strings(names)
	out := make([]SourceHealth, 0, len(names))
	for _, n := range names {
		c := sh
		c.Stream = n
		out = append(out, c)
	}
	return out
}

// close closes every snapshot cache and ISAPI client (tests; go2rtc never
// closes the registry). Afterwards snapshots answer ReasonClosed.
func (r *registry) close() {
	r.mu.Lock()
	r.closed = true
	srcs, devs := r.entriesLocked()
	r.mu.Unlock()
	for _, s := range srcs {
		s.mu.Lock()
		c := s.cache
		s.mu.Unlock()
		if c != nil {
			c.Close()
		}
	}
	for _, d := range devs {
		d.mu.Lock()
		c := d.client
		d.client = nil
		d.mu.Unlock()
		if c != nil {
			c.Close()
		}
	}
}
