package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/e2e"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

// loadSettle is how long a load phase runs before the CPU window opens (go2rtc
// start-up and the consumers' first keyframes are not part of the figure).
var loadSettle = 3 * time.Second

// loadResult is one go2rtc of a load phase: n streams of one source.
type loadResult struct {
	cpuPerStreamMin float64 // go2rtc CPU seconds per stream-minute
	peakRSS         float64 // MiB, max VmRSS sampled in the window
	pktPerStreamSec float64 // RTP packets per stream per second at the consumers
}

// loadSide is one go2rtc of a phase: a source kind on its own devices.
type loadSide struct {
	kind    string
	devices []*sim.Device
	profile string // CPU profile file of this go2rtc's window; "" none

	// set by phases that do not take the default go2rtc and URLs
	urls []string // source of each stream; nil: hikvision:// or rtsp:// of devices by kind
	bin  string   // go2rtc binary; "" the runner's
	env  []string // go2rtc's extra environment
	conf string   // appended to go2rtc's streams config
}

// sources is the source URL of each of the side's streams.
func (s loadSide) sources() []string {
	if s.urls != nil {
		return s.urls
	}
	out := make([]string, len(s.devices))
	for j, d := range s.devices {
		if s.kind == kindHik {
			out[j] = hikURL(d, simPassword)
		} else {
			out[j] = rtspURL(d, simPassword)
		}
	}
	return out
}

// load: CPU and memory of go2rtc with 1..32 streams of each source.
//
// The two sources are measured at the same time, each in its own go2rtc on
// its own simulated cameras, over the same CPU window: whatever else the
// machine does in that window weighs on both, so it cancels in their ratio
// instead of landing on one side. Each round runs two such phases:
// hikvision beside stock, then stock beside stock (the noise band: what the
// same source measures against itself). Rounds alternate the two device sets.
func (r *runner) load(ctx context.Context) Section {
	s := Section{Name: SectionLoad, Stock: "rtsp://",
		Title: fmt.Sprintf("go2rtc CPU and memory with N streams (%s H.264 + G.711, one consumer each)", kbps(r.opts.LoadKbps))}
	maxN := slices.Max(r.opts.StreamCounts)
	var sets [2][]*sim.Device
	defer func() {
		for _, set := range sets {
			for _, d := range set {
				_ = d.Close()
			}
		}
	}()
	for i := range sets {
		for range maxN {
			d, err := sim.Start(sim.Config{Channels: []sim.Channel{{ID: 1, MainKbps: r.opts.LoadKbps}}})
			if err != nil {
				s.Error = err.Error()
				return s
			}
			sets[i] = append(sets[i], d)
		}
	}
	var verdicts []string
	var benchCPU []string
	for _, n := range r.opts.StreamCounts {
		var hik, stock []loadResult
		var ratios, noise, bench []float64
		for round := 1; round <= r.opts.LoadRounds; round++ {
			// even rounds swap the device sets and which go2rtc starts first
			// (and gets its consumers first: the first of two measures about
			// 1 % more); h and st are the hikvision and stock positions
			a, b := sets[0][:n], sets[1][:n]
			h, st := 0, 1
			if round%2 == 0 {
				a, b = b, a
				h, st = 1, 0
			}
			prof := func(phase int, kind string) string {
				if r.opts.CPUProfile == "" {
					return ""
				}
				return filepath.Join(r.opts.CPUProfile, fmt.Sprintf("load-%d-r%d-%d-%s.pprof", n, round, phase, kind))
			}
			r.logf("load: %d × hik beside %d × stock for %v (round %d of %d)", n, n, r.opts.LoadWindow, round, r.opts.LoadRounds)
			pair := make([]loadSide, 2)
			pair[h] = loadSide{kind: kindHik, devices: a, profile: prof(1, kindHik)}
			pair[st] = loadSide{kind: kindStock, devices: b, profile: prof(1, kindStock)}
			res, bcpu, err := r.loadPhase(ctx, pair)
			if err != nil {
				s.Error = fmt.Sprintf("%d streams, round %d, hikvision beside stock: %v", n, round, err)
				return s
			}
			hik, stock = append(hik, res[h]), append(stock, res[st])
			ratios = append(ratios, res[h].cpuPerStreamMin/res[st].cpuPerStreamMin)
			bench = append(bench, bcpu)

			r.logf("load: %d × stock beside %d × stock for %v (round %d of %d)", n, n, r.opts.LoadWindow, round, r.opts.LoadRounds)
			res, _, err = r.loadPhase(ctx, []loadSide{{kind: kindStock, devices: a, profile: prof(2, "stockA")}, {kind: kindStock, devices: b, profile: prof(2, "stockB")}})
			if err != nil {
				s.Error = fmt.Sprintf("%d streams, round %d, stock beside stock: %v", n, round, err)
				return s
			}
			noise = append(noise, res[h].cpuPerStreamMin/res[st].cpuPerStreamMin) // the same positions
		}
		label := streamsLabel(n)
		s.Rows = append(s.Rows, loadRows(label, hik, stock, ratios, noise,
			"hikvision / stock measured at the same time; stock column: stock / stock at the same time (noise band)")...)
		verdicts = append(verdicts, loadVerdict(label, ratios, noise))
		benchCPU = append(benchCPU, fmt.Sprintf("%s %.3g", label, Median(bench)))
	}
	s.Notes = append(s.Notes,
		fmt.Sprintf("Each phase runs two go2rtc at the same time, each with N streams on its own N simulated cameras and one consumer per stream; CPU is each go2rtc's user+system from /proc/<pid>/stat over the same %s window, opened %s after every consumer got its first packet; peak RSS is each go2rtc's largest VmRSS sampled every 250 ms in the window.", fmtDur(r.opts.LoadWindow), fmtDur(loadSettle)),
		"Each round: hikvision beside stock, then stock beside stock on the same two device sets (the stock/stock ratio is the noise band, taken in the same order of start as the hikvision/stock one); rounds swap the device sets and which go2rtc starts first. The CPU row's ratio is the median of the rounds' hikvision/stock ratios.",
		"The simulators and all consumers run inside the bench process; its CPU in the hikvision-beside-stock phases (both sides together, CPU s per stream-minute of the 2N streams, median): "+strings.Join(benchCPU, ", ")+".",
		fmt.Sprintf("Media: testdata/media H.264 640x360 25 fps padded with filler NAL units to %s (as a CBR encoder pads), + 64 kbit/s G.711 µ-law.", kbps(r.opts.LoadKbps)))
	s.Notes = append(s.Notes, verdicts...)
	return s
}

func cpuOf(lr loadResult) float64 { return lr.cpuPerStreamMin }
func rssOf(lr loadResult) float64 { return lr.peakRSS }
func pktOf(lr loadResult) float64 { return lr.pktPerStreamSec }

func kbps(k int) string {
	if k%1000 == 0 {
		return fmt.Sprintf("%d Mbit/s", k/1000)
	}
	return fmt.Sprintf("%d kbit/s", k)
}

// spread prints ratios as "median 0.98 (0.95–1.02, 5 rounds)".
func spread(xs []float64) string {
	if len(xs) == 1 {
		return fmt.Sprintf("%.3f (1 round)", xs[0])
	}
	lo, hi := MinMax(xs)
	return fmt.Sprintf("median %.3f (%.3f–%.3f, %d rounds)", Median(xs), lo, hi, len(xs))
}

// noiseBand is the largest distance from 1 of the stock-vs-stock ratios (and
// of their inverses: a band is symmetric).
func noiseBand(noise []float64) float64 {
	band := 0.0
	for _, x := range noise {
		if x > 0 {
			band = max(band, math.Abs(x-1), math.Abs(1/x-1))
		}
	}
	return band
}

// loadVerdict says where the median hik/stock ratio lies against the
// stock-vs-stock noise band.
func loadVerdict(label string, ratios, noise []float64) string {
	m, band := Median(ratios), noiseBand(noise)
	var where string
	switch {
	case m > 1+band:
		where = "above stock by more than the noise band: hikvision:// costs more CPU"
	case m < 1-band:
		where = "below stock by more than the noise band: hikvision:// costs less CPU"
	case m <= 1:
		where = "at or below 1.0, inside the noise band"
	default:
		where = "above 1.0 but inside the noise band: not distinguishable from stock"
	}
	return fmt.Sprintf("%s: CPU ratio %.3f (median of %d rounds), noise band ±%.1f %% (stock vs stock): %s.",
		label, m, len(ratios), band*100, where)
}

// pprofTag builds go2rtc with hikvision/pprof.go, which serves
// net/http/pprof on $HIKVISION_PPROF_ADDR.
const pprofTag = "hikvision_pprof"

// loadPhase runs one go2rtc per side at the same time and measures them over
// one window. It returns a result per side and the bench process's CPU
// (simulators and consumers of every side) per stream-minute.
func (r *runner) loadPhase(ctx context.Context, sides []loadSide) ([]loadResult, float64, error) {
	type running struct {
		g       *e2e.Go2rtc
		pid     int
		readers []*Reader
		pprof   string
		p0      ProcStat
		peak    int64
	}
	runs := make([]*running, len(sides))
	stop := func() error {
		var errs []error
		for _, ru := range runs {
			if ru == nil {
				continue
			}
			for _, rd := range ru.readers {
				rd.Close()
			}
			errs = append(errs, ru.g.Stop())
		}
		return errors.Join(errs...)
	}
	fail := func(err error) ([]loadResult, float64, error) { return nil, 0, errors.Join(err, stop()) }

	for i, side := range sides {
		streams := map[string]string{}
		for j, u := range side.sources() {
			streams[streamName(side.kind, "load", j)] = u
		}
		eo := e2e.Options{Bin: r.bin, Config: streamsYAML(streams) + side.conf, Env: slices.Clone(side.env)}
		if side.bin != "" {
			eo.Bin = side.bin
		}
		ru := &running{}
		if side.profile != "" {
			addr, err := e2e.FreeAddr()
			if err != nil {
				return fail(err)
			}
			ru.pprof = addr
			eo.Env = append(eo.Env, "HIKVISION_PPROF_ADDR="+addr)
		}
		g, err := e2e.Start(ctx, eo)
		if err != nil {
			return fail(err)
		}
		ru.g = g
		runs[i] = ru
		if ru.pid, err = go2rtcPID(g.ConfigPath); err != nil {
			return fail(err)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for i, side := range sides {
		for j := range side.sources() {
			rd, err := DialReader(cctx, consumerURL(runs[i].g, streamName(side.kind, "load", j)))
			if err != nil {
				return fail(err)
			}
			runs[i].readers = append(runs[i].readers, rd)
		}
	}
	for _, ru := range runs {
		for _, rd := range ru.readers {
			if _, err := rd.WaitFirst(cctx); err != nil {
				return fail(err)
			}
		}
	}
	settle := time.NewTimer(loadSettle)
	select {
	case <-settle.C:
	case <-ctx.Done():
		settle.Stop()
		return fail(ctx.Err())
	}

	packets := func(ru *running) (n uint64) {
		for _, rd := range ru.readers {
			n += rd.Packets()
		}
		return n
	}
	profErr := make(chan error, len(sides))
	nprof := 0
	for i, side := range sides {
		if side.profile != "" {
			nprof++
			go func() { profErr <- fetchProfile(ctx, runs[i].pprof, r.opts.LoadWindow, side.profile) }()
		}
	}
	pkts0 := make([]uint64, len(runs))
	for i, ru := range runs {
		st, err := ReadProc(ru.pid)
		if err != nil {
			return fail(err)
		}
		ru.p0, ru.peak, pkts0[i] = st, st.RSS, packets(ru)
	}
	b0, err := ReadProc(0)
	if err != nil {
		return fail(err)
	}
	t0 := time.Now()
	tick := time.NewTicker(250 * time.Millisecond)
	window := time.NewTimer(r.opts.LoadWindow)
sample:
	for {
		select {
		case <-tick.C:
			for _, ru := range runs {
				if st, err := ReadProc(ru.pid); err == nil {
					ru.peak = max(ru.peak, st.RSS)
				}
			}
		case <-window.C:
			break sample
		case <-ctx.Done():
			tick.Stop()
			return fail(ctx.Err())
		}
	}
	tick.Stop()
	t1 := time.Now()
	out := make([]loadResult, len(runs))
	total := 0
	for i, ru := range runs {
		st, err := ReadProc(ru.pid)
		if err != nil {
			return fail(err)
		}
		n := float64(len(sides[i].sources()))
		total += len(sides[i].sources())
		streamMin := n * t1.Sub(t0).Minutes()
		out[i] = loadResult{
			cpuPerStreamMin: (st.CPU() - ru.p0.CPU()).Seconds() / streamMin,
			peakRSS:         float64(max(ru.peak, st.RSS)) / (1 << 20),
			pktPerStreamSec: float64(packets(ru)-pkts0[i]) / n / t1.Sub(t0).Seconds(),
		}
	}
	b1, err := ReadProc(0)
	if err != nil {
		return fail(err)
	}
	for range nprof {
		if err := <-profErr; err != nil {
			return fail(err)
		}
	}
	for i, ru := range runs {
		for j, rd := range ru.readers {
			if !rd.Alive() {
				return fail(fmt.Errorf("%s consumer %d closed during the window: %v", sides[i].kind, j, rd.Err()))
			}
		}
	}
	if err := stop(); err != nil {
		return nil, 0, err
	}
	benchPerStreamMin := (b1.CPU() - b0.CPU()).Seconds() / (float64(total) * t1.Sub(t0).Minutes())
	return out, benchPerStreamMin, nil
}

// fetchProfile saves go2rtc's CPU profile over the next window (whole
// seconds, at least 1) to path.
func fetchProfile(ctx context.Context, addr string, window time.Duration, path string) error {
	secs := max(int(window.Round(time.Second)/time.Second), 1)
	ctx, cancel := context.WithTimeout(ctx, window+30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, secs), nil)
	if err != nil {
		return err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("cpu profile of go2rtc (is it built with -tags %s?): %w", pprofTag, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("cpu profile of go2rtc: %s", res.Status)
	}
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return fmt.Errorf("cpu profile of go2rtc: %w", err)
	}
	return os.WriteFile(path, data, 0o644)
}

// streamsLabel names a stream count in a row: "1 stream", "8 streams".
func streamsLabel(n int) string {
	if n == 1 {
		return "1 stream"
	}
	return fmt.Sprintf("%d streams", n)
}

// loadRows are the rows of one stream count of a CPU comparison: a (the
// Hikvision column) against b (the Stock column) measured in the same
// phases, with the per-phase ratios and the b-beside-b noise band.
func loadRows(label string, a, b []loadResult, ratios, noise []float64, ratioNote string) []Row {
	med := func(rs []loadResult, f func(loadResult) float64) *float64 {
		xs := make([]float64, len(rs))
		for i, lr := range rs {
			xs[i] = f(lr)
		}
		return Num(Median(xs))
	}
	return []Row{
		{Metric: fmt.Sprintf("%s: go2rtc CPU", label), Unit: "CPU s / stream-min",
			Note:      fmt.Sprintf("medians of %d phases; ratio: median of the per-phase ratios", len(a)),
			Hikvision: med(a, cpuOf), Stock: med(b, cpuOf), Ratio: Num(Median(ratios))},
		NewRow(fmt.Sprintf("%s: go2rtc peak RSS", label), "MiB", med(a, rssOf), med(b, rssOf)),
		NewRow(fmt.Sprintf("%s: packets at each consumer", label), "pkt/s", med(a, pktOf), med(b, pktOf)),
		{Metric: fmt.Sprintf("%s: CPU ratio of each round", label), Unit: "ratio",
			Note: ratioNote, HikvisionText: spread(ratios), StockText: spread(noise)},
	}
}
