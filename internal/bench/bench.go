// Package bench measures the hikvision:// source side by side with go2rtc's
// stock sources (rtsp:// for video, isapi:// for talk) on the same simulated
// devices (internal/sim, in this process) through one patched go2rtc binary
// (internal/build), and renders the result as markdown and JSON.
//
// cmd/hikvision-bench is the command line; Run is the whole bench.
package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/build"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/e2e"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

// Section names, in the order they run (--only takes a subset).
const (
	SectionTTFF     = "ttff"
	SectionRecovery = "recovery"
	SectionLogins   = "logins"
	SectionTalk     = "talk"
	SectionBlip     = "blip"
	SectionLatency  = "latency"
	SectionLoad     = "load"
	SectionGoBench  = "gobench"
)

// AllSections lists every section in run order.
var AllSections = []string{SectionTTFF, SectionRecovery, SectionLogins, SectionTalk, SectionBlip, SectionLatency, SectionLoad, SectionGoBench, SectionSDK, SectionSDKLoad}

// Simulator credentials (the sim's default user) and the wrong password of
// the failed-login test.
const (
	simUser      = "admin"
	simPassword  = "hik12345"
	wrongPasswd  = "wrong-password"
	recoveryWait = 60 * time.Second // longest wait for video after the device is up
)

// Options control Run. Zero fields take the mode's default (see Defaults).
type Options struct {
	Quick    bool
	Only     []string  // sections to run; empty = all
	Bin      string    // go2rtc binary; "" = build.Build (cached)
	RepoRoot string    // repository root (for the build and go test); "" = found from the working directory
	Log      io.Writer // progress lines; nil = discarded

	Runs         int             // time-to-first-frame runs per source, cold and warm
	Outages      []time.Duration // device reboot lengths
	OutagePhase  time.Duration   // added to each outage (default 500 ms): off go2rtc's whole-second retry grid
	StreamCounts []int           // concurrent streams of the load test
	LoadWindow   time.Duration   // CPU measurement window per load phase
	LoadRounds   int             // stock-hikvision-stock rounds per stream count
	LoadKbps     int             // video bitrate of the load streams (kbit/s)
	// CPUProfile, when set, is a directory: go2rtc is built with the
	// hikvision_pprof tag and every load phase's CPU window is profiled
	// (pprof) into it, one file per phase.
	CPUProfile  string
	LoginWindow time.Duration // wrong-password window
	TalkWindow  time.Duration // silent held backchannel after a talk burst
	BenchTime   string        // go test -benchtime

	RTTs        []time.Duration // link round trips of the latency section
	LatencyRuns int             // starts per source, round trip and cold/warm
	// BinWithoutPlayFlush is go2rtc built without PlayFlushPatch (latency
	// section, full mode); "" = build.Build with WithoutPatches (cached).
	BinWithoutPlayFlush string
	Blips               []time.Duration // device silences of the blip section
	// RTSP554: latency devices on loopback addresses of their own with RTSP
	// on port 554 (binding it needs root or CAP_NET_BIND_SERVICE).
	RTSP554 bool
}

// Defaults fills the zero fields for the mode (quick or full).
func (o Options) Defaults() Options {
	if o.Runs == 0 {
		o.Runs = pick(o.Quick, 3, 7)
	}
	if len(o.Outages) == 0 {
		o.Outages = pick(o.Quick, []time.Duration{2 * time.Second},
			[]time.Duration{5 * time.Second, 30 * time.Second, 120 * time.Second})
	}
	if o.OutagePhase == 0 {
		o.OutagePhase = 500 * time.Millisecond
	}
	if len(o.StreamCounts) == 0 {
		o.StreamCounts = pick(o.Quick, []int{1, 4}, []int{1, 8, 32})
	}
	if o.LoadWindow == 0 {
		o.LoadWindow = pick(o.Quick, 6*time.Second, 20*time.Second)
	}
	if o.LoadRounds == 0 {
		o.LoadRounds = pick(o.Quick, 1, 5)
	}
	if o.LoadKbps == 0 {
		o.LoadKbps = 2000
	}
	if o.LoginWindow == 0 {
		o.LoginWindow = pick(o.Quick, 20*time.Second, 10*time.Minute)
	}
	if o.TalkWindow == 0 {
		o.TalkWindow = pick(o.Quick, 10*time.Second, 60*time.Second)
	}
	if len(o.RTTs) == 0 {
		o.RTTs = pick(o.Quick, []time.Duration{0, 80 * time.Millisecond},
			[]time.Duration{0, 20 * time.Millisecond, 80 * time.Millisecond})
	}
	if o.LatencyRuns == 0 {
		o.LatencyRuns = pick(o.Quick, 1, 5)
	}
	if len(o.Blips) == 0 {
		o.Blips = BlipLengths(pick(o.Quick, 1, 7))
	}
	if o.BenchTime == "" {
		o.BenchTime = pick(o.Quick, "200ms", "1s")
	}
	return o
}

func pick[T any](quick bool, q, full T) T {
	if quick {
		return q
	}
	return full
}

// ParseOnly splits a --only value ("ttff,load") and checks the names.
func ParseOnly(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []string
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(strings.ToLower(name))
		if name == "" {
			continue
		}
		if !slices.Contains(AllSections, name) {
			return nil, fmt.Errorf("bench: unknown section %q (want some of %s)", name, strings.Join(AllSections, ","))
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out, nil
}

func (o Options) wants(section string) bool {
	return len(o.Only) == 0 || slices.Contains(o.Only, section)
}

// runner is one bench run's state.
type runner struct {
	opts   Options
	bin    string
	root   string
	report *Report
}

func (r *runner) logf(format string, args ...any) {
	if r.opts.Log != nil {
		fmt.Fprintf(r.opts.Log, "[bench] "+format+"\n", args...)
	}
}

// Run runs the selected sections and returns the report. A section that
// fails is reported with its Error set and the others still run; Run
// returns an error only when nothing could run (no binary, bad options) or
// ctx ended.
func Run(ctx context.Context, opts Options) (*Report, error) {
	opts = opts.Defaults()
	for _, s := range opts.Only {
		if !slices.Contains(AllSections, s) {
			return nil, fmt.Errorf("bench: unknown section %q", s)
		}
	}
	start := time.Now()
	r := &runner{opts: opts, report: &Report{Date: start, Quick: opts.Quick, Machine: machine(ctx)}}
	r.report.Go2rtc = build.Go2rtcVersion + " + patches/ (one binary for both sources)"

	var err error
	if r.root = opts.RepoRoot; r.root == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		if r.root, err = build.FindRepoRoot(wd); err != nil {
			return nil, err
		}
	}
	if opts.CPUProfile != "" {
		if err = os.MkdirAll(opts.CPUProfile, 0o755); err != nil {
			return nil, fmt.Errorf("bench: cpu profile directory: %w", err)
		}
		r.report.Notes = append(r.report.Notes, fmt.Sprintf("CPU profiles: go2rtc built with -tags %s; every load phase's window profiled into %s (both sources alike).", pprofTag, opts.CPUProfile))
	}
	if r.bin = opts.Bin; r.bin == "" && r.needsGo2rtc() {
		r.logf("building go2rtc (cached)")
		bo := build.Options{RepoRoot: r.root}
		if opts.CPUProfile != "" {
			bo.Tags = []string{pprofTag}
		}
		if r.bin, err = build.Build(ctx, bo); err != nil {
			return nil, err
		}
	}

	r.report.Notes = append(r.report.Notes,
		"Simulator: internal/sim in the bench process (camera H.264 640x360 25 fps + G.711 µ-law from testdata/media: ~160 kbit/s of video, padded to 2 Mbit/s with filler NAL units in the load section), on loopback.",
		"Stock sources run in the same patched go2rtc binary as hikvision:// (patches/ change go2rtc's stream core for both: reconnect backoff, long-outage consumers, URL redaction).",
		"Consumers: the bench's own RTSP reader (TCP interleaved, every media, OPTIONS keepalive every 25 s only while packets arrive, like ffmpeg).")
	if runtime.NumCPU() <= 2 {
		r.report.Notes = append(r.report.Notes, fmt.Sprintf("Noise: %d CPUs shared with the bench, the simulator and other work; timings vary by tens of ms run to run.", runtime.NumCPU()))
	}

	var main *e2e.Go2rtc
	var mainCfg *mainConfig
	if r.opts.wants(SectionTTFF) || r.opts.wants(SectionRecovery) || r.opts.wants(SectionLogins) {
		if mainCfg, err = r.startDevices(); err != nil {
			return nil, err
		}
		defer mainCfg.close()
		r.logf("starting go2rtc with %d streams", len(mainCfg.streams))
		if main, err = e2e.Start(ctx, e2e.Options{Bin: r.bin, Config: mainCfg.yaml()}); err != nil {
			return nil, err
		}
		defer main.Stop()
	}

	// The failed-login test is 1 request/s for LoginWindow (10 min in full
	// mode) on its own devices: it runs in the background through the
	// recovery and talk tests (which mostly wait) to save wall time, and
	// ends before the load test measures CPU.
	var loginDone chan Section
	startLogins := func() {
		if !r.opts.wants(SectionLogins) || loginDone != nil {
			return
		}
		loginDone = make(chan Section, 1)
		r.logf("failed-login test (%s) runs in the background", fmtDur(r.opts.LoginWindow))
		go func() { loginDone <- r.logins(ctx, main, mainCfg) }()
	}
	waitLogins := func() {
		if loginDone != nil {
			s := <-loginDone
			r.report.Sections = append(r.report.Sections, s)
			loginDone = nil
		}
	}

	for _, name := range AllSections {
		if !r.opts.wants(name) {
			continue
		}
		if err := ctx.Err(); err != nil {
			waitLogins()
			return r.report, err
		}
		var s Section
		switch name {
		case SectionTTFF:
			s = r.ttff(ctx, main, mainCfg)
		case SectionRecovery:
			startLogins()
			s = r.recovery(ctx, main, mainCfg)
		case SectionLogins:
			// runs in the background through recovery and talk; its
			// section is added when it ends
			startLogins()
			continue
		case SectionTalk:
			startLogins()
			s = r.talk(ctx)
		case SectionBlip:
			startLogins()
			s = r.blip(ctx)
		case SectionLatency:
			waitLogins() // no background requests while starts are timed
			s = r.latency(ctx)
		case SectionLoad:
			waitLogins() // no background requests while CPU is measured
			s = r.load(ctx)
		case SectionGoBench:
			waitLogins()
			s = r.gobench(ctx)
		case SectionSDK:
			waitLogins()
			s = r.sdk(ctx) // its own go2rtc (built with the SDK loader) and devices
		case SectionSDKLoad:
			waitLogins() // no background requests while CPU is measured
			s = r.sdkLoad(ctx)
		}
		r.report.Sections = append(r.report.Sections, s)
		if s.Error != "" {
			r.logf("%s: %s", s.Name, s.Error)
		}
	}
	waitLogins()
	r.report.Duration = time.Since(start).Seconds()
	return r.report, ctx.Err()
}

func (r *runner) needsGo2rtc() bool {
	for _, s := range AllSections {
		if s != SectionGoBench && r.opts.wants(s) {
			return true
		}
	}
	return false
}

// JSON is the report as indented JSON.
func (r *Report) JSON() ([]byte, error) { return json.MarshalIndent(r, "", "  ") }

func machine(ctx context.Context) MachineInfo {
	m := MachineInfo{NProc: runtime.NumCPU(), GoOS: runtime.GOOS, GoArch: runtime.GOARCH, Go: runtime.Version()}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.CPUModel = parseCPUModel(data)
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(data))
	}
	return m
}

// Stream URLs of the simulator (the password goes into go2rtc's config only;
// the report never prints a URL).
func hikURL(d *sim.Device, password string) string {
	return "hikvision://" + url.UserPassword(simUser, password).String() + "@" + d.HTTPAddr() + "/?channel=1&stream=main"
}

func rtspURL(d *sim.Device, password string) string {
	return "rtsp://" + url.UserPassword(simUser, password).String() + "@" + d.RTSPAddr() + "/Streaming/Channels/101"
}

// Source kinds.
const (
	kindHik   = "hik"
	kindStock = "stock"
)

// mainConfig is the simulators and stream table of the shared go2rtc.
type mainConfig struct {
	ttff      []*sim.Device
	rec       *sim.Device
	loginHik  *sim.Device // separate devices: the lock is per client IP, and go2rtc is 127.0.0.1 for both
	loginRTSP *sim.Device
	streams   map[string]string
	devices   []*sim.Device
}

func (c *mainConfig) close() {
	for _, d := range c.devices {
		_ = d.Close()
	}
}

func (c *mainConfig) yaml() string { return streamsYAML(c.streams) }

// streamsYAML is a go2rtc config with these streams; a value with several
// lines is a stream with several sources.
func streamsYAML(streams map[string]string) string {
	var b strings.Builder
	b.WriteString("log:\n  level: info\nstreams:\n")
	names := make([]string, 0, len(streams))
	for n := range streams {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		srcs := strings.Split(streams[n], "\n") // several sources: one per line
		if len(srcs) == 1 {
			fmt.Fprintf(&b, "  %s: %s\n", n, strconv.Quote(srcs[0]))
			continue
		}
		fmt.Fprintf(&b, "  %s:\n", n)
		for _, src := range srcs {
			fmt.Fprintf(&b, "    - %s\n", strconv.Quote(src))
		}
	}
	return b.String()
}

func (r *runner) startDevices() (*mainConfig, error) {
	c := &mainConfig{streams: map[string]string{}}
	start := func() (*sim.Device, error) {
		d, err := sim.Start(sim.Config{})
		if err != nil {
			c.close()
			return nil, err
		}
		c.devices = append(c.devices, d)
		return d, nil
	}
	if r.opts.wants(SectionTTFF) {
		for i := 0; i < r.opts.Runs; i++ {
			d, err := start()
			if err != nil {
				return nil, err
			}
			c.ttff = append(c.ttff, d)
			c.streams[streamName(kindHik, "ttff", i)] = hikURL(d, simPassword)
			c.streams[streamName(kindStock, "ttff", i)] = rtspURL(d, simPassword)
		}
	}
	if r.opts.wants(SectionRecovery) {
		d, err := start()
		if err != nil {
			return nil, err
		}
		c.rec = d
		c.streams[streamName(kindHik, "rec", 0)] = hikURL(d, simPassword)
		c.streams[streamName(kindStock, "rec", 0)] = rtspURL(d, simPassword)
	}
	if r.opts.wants(SectionLogins) {
		var err error
		if c.loginHik, err = start(); err != nil {
			return nil, err
		}
		if c.loginRTSP, err = start(); err != nil {
			return nil, err
		}
		c.streams[streamName(kindHik, "login", 0)] = hikURL(c.loginHik, wrongPasswd)
		c.streams[streamName(kindStock, "login", 0)] = rtspURL(c.loginRTSP, wrongPasswd)
	}
	return c, nil
}

func streamName(kind, test string, i int) string { return fmt.Sprintf("%s_%s_%d", kind, test, i) }

func consumerURL(g *e2e.Go2rtc, stream string) string { return "rtsp://" + g.RTSPAddr + "/" + stream }

// waitProducerStopped polls /api/streams until every producer of stream is
// stopped (shown as just its url) or the deadline passes.
func waitProducerStopped(ctx context.Context, g *e2e.Go2rtc, stream string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		status, body, err := g.Get(ctx, "/api/streams")
		if err == nil && status == 200 {
			if stopped, perr := producersStopped(body, stream); perr == nil && stopped {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bench: stream %s: producer still running after %v", stream, timeout)
		case <-tick.C:
		}
	}
}

// producersStopped reports whether every producer of stream in an
// /api/streams answer is stopped: go2rtc shows a stopped producer as
// {"url": ...} and a running one as its connection (id, medias, ...).
func producersStopped(body []byte, stream string) (bool, error) {
	var streams map[string]struct {
		Producers []map[string]json.RawMessage `json:"producers"`
	}
	if err := json.Unmarshal(body, &streams); err != nil {
		return false, fmt.Errorf("bench: /api/streams: %w", err)
	}
	s, ok := streams[stream]
	if !ok {
		return false, fmt.Errorf("bench: /api/streams: no stream %q", stream)
	}
	for _, p := range s.Producers {
		for k := range p {
			if k != "url" {
				return false, nil
			}
		}
	}
	return true, nil
}

// go2rtcPID finds the pid of the go2rtc started with configPath (e2e.Go2rtc
// does not expose it) by its command line.
func go2rtcPID(configPath string) (int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("bench: %w", err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		if slices.Contains(args, configPath) && pid != os.Getpid() {
			return pid, nil
		}
	}
	return 0, errors.New("bench: go2rtc process not found in /proc")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
