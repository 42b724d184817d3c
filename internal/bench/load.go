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
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/e2e"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

// loadSettle is how long a load phase runs before the CPU window opens (go2rtc
// start-up and the consumers' first keyframes are not part of the figure).
var loadSettle = 3 * time.Second

// loadResult is one load phase: n streams of one source.
type loadResult struct {
	cpuPerStreamMin   float64 // go2rtc CPU seconds per stream-minute
	benchPerStreamMin float64 // this process (simulator + consumers)
	peakRSS           float64 // MiB, max VmRSS sampled in the window
	pktPerStreamSec   float64 // RTP packets per stream per second at the consumers
}

// load: CPU and memory of go2rtc with 1..32 streams of each source. Each
// phase is a fresh go2rtc (so that peak RSS is the phase's own) with n
// streams on n simulated cameras and one consumer each.
//
// Every round runs three phases, stock, hikvision, stock: the hikvision phase
// is compared with the mean of the stock phases around it (slow drift of the
// machine cancels), and the two stock phases with each other, which is the
// noise band a hik/stock ratio has to leave before it means anything.
func (r *runner) load(ctx context.Context) Section {
	s := Section{Name: SectionLoad, Stock: "rtsp://",
		Title: fmt.Sprintf("go2rtc CPU and memory with N streams (%s H.264 + G.711, one consumer each)", kbps(r.opts.LoadKbps))}
	maxN := slices.Max(r.opts.StreamCounts)
	devices := make([]*sim.Device, 0, maxN)
	defer func() {
		for _, d := range devices {
			_ = d.Close()
		}
	}()
	for i := 0; i < maxN; i++ {
		d, err := sim.Start(sim.Config{Channels: []sim.Channel{{ID: 1, MainKbps: r.opts.LoadKbps}}})
		if err != nil {
			s.Error = err.Error()
			return s
		}
		devices = append(devices, d)
	}
	var verdicts []string
	for _, n := range r.opts.StreamCounts {
		var hik, stock []loadResult
		var ratios, noise []float64
		for round := 1; round <= r.opts.LoadRounds; round++ {
			var got [3]loadResult
			for i, kind := range []string{kindStock, kindHik, kindStock} {
				r.logf("load: %d × %s for %v (round %d of %d)", n, kind, r.opts.LoadWindow, round, r.opts.LoadRounds)
				prof := ""
				if r.opts.CPUProfile != "" {
					prof = filepath.Join(r.opts.CPUProfile, fmt.Sprintf("load-%d-r%d-%d-%s.pprof", n, round, i+1, kind))
				}
				lr, err := r.loadPhase(ctx, kind, devices[:n], prof)
				if err != nil {
					s.Error = fmt.Sprintf("%d streams, %s, round %d: %v", n, kind, round, err)
					return s
				}
				got[i] = lr
			}
			hik = append(hik, got[1])
			stock = append(stock, got[0], got[2])
			ratios = append(ratios, got[1].cpuPerStreamMin/((got[0].cpuPerStreamMin+got[2].cpuPerStreamMin)/2))
			noise = append(noise, got[2].cpuPerStreamMin/got[0].cpuPerStreamMin)
		}
		label := fmt.Sprintf("%d streams", n)
		if n == 1 {
			label = "1 stream"
		}
		med := func(rs []loadResult, f func(loadResult) float64) *float64 {
			xs := make([]float64, len(rs))
			for i, lr := range rs {
				xs[i] = f(lr)
			}
			return Num(Median(xs))
		}
		of := fmt.Sprintf("median of %d", len(hik))
		ofStock := fmt.Sprintf("median of %d", len(stock))
		medians := fmt.Sprintf("%s / %s phases", of, ofStock)
		s.Rows = append(s.Rows,
			Row{Metric: fmt.Sprintf("%s: go2rtc CPU", label), Unit: "CPU s / stream-min", Note: medians,
				Hikvision: med(hik, cpuOf), Stock: med(stock, cpuOf), Ratio: Num(Median(ratios))},
			NewRow(fmt.Sprintf("%s: go2rtc peak RSS", label), "MiB", med(hik, rssOf), med(stock, rssOf)),
			NewRow(fmt.Sprintf("%s: simulator + consumers CPU (bench process)", label), "CPU s / stream-min",
				med(hik, benchOf), med(stock, benchOf)),
			NewRow(fmt.Sprintf("%s: packets at each consumer", label), "pkt/s", med(hik, pktOf), med(stock, pktOf)),
			Row{Metric: fmt.Sprintf("%s: CPU ratio of each round", label), Unit: "ratio",
				Note:          "hikvision / mean of the stock phases before and after it; stock: second stock phase / first",
				HikvisionText: spread(ratios), StockText: spread(noise)})
		verdicts = append(verdicts, loadVerdict(label, ratios, noise))
	}
	s.Notes = append(s.Notes,
		fmt.Sprintf("Each round runs three phases, stock, hikvision, stock, each a fresh go2rtc; CPU is user+system from /proc/<pid>/stat over a %s window that opens %s after every consumer got its first packet; peak RSS is the largest VmRSS sampled every 250 ms in the window.", fmtDur(r.opts.LoadWindow), fmtDur(loadSettle)),
		"The CPU row's ratio is the median over rounds of hikvision / (mean of the two stock phases of the round); the ratio row shows each round's ratios, and in the stock column the stock-vs-stock ratios of the same rounds: the noise band of this machine.",
		"The simulator runs inside the bench process: its CPU (with the bench's RTSP consumers) is the bench process's own /proc/self/stat, shown separately.",
		fmt.Sprintf("Media: testdata/media H.264 640x360 25 fps padded with filler NAL units to %s (as a CBR encoder pads), + 64 kbit/s G.711 µ-law.", kbps(r.opts.LoadKbps)))
	s.Notes = append(s.Notes, verdicts...)
	return s
}

func cpuOf(lr loadResult) float64   { return lr.cpuPerStreamMin }
func rssOf(lr loadResult) float64   { return lr.peakRSS }
func benchOf(lr loadResult) float64 { return lr.benchPerStreamMin }
func pktOf(lr loadResult) float64   { return lr.pktPerStreamSec }

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
// of their inverses: which stock phase came first is arbitrary).
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

// loadPhase runs one phase; with profile set (a file path) it also records a
// CPU profile of go2rtc over the measurement window.
func (r *runner) loadPhase(ctx context.Context, kind string, devices []*sim.Device, profile string) (loadResult, error) {
	var lr loadResult
	streams := map[string]string{}
	for i, d := range devices {
		if kind == kindHik {
			streams[streamName(kind, "load", i)] = hikURL(d, simPassword)
		} else {
			streams[streamName(kind, "load", i)] = rtspURL(d, simPassword)
		}
	}
	eo := e2e.Options{Bin: r.bin, Config: streamsYAML(streams)}
	pprofAddr := ""
	if profile != "" {
		var err error
		if pprofAddr, err = e2e.FreeAddr(); err != nil {
			return lr, err
		}
		eo.Env = append(eo.Env, "HIKVISION_PPROF_ADDR="+pprofAddr)
	}
	g, err := e2e.Start(ctx, eo)
	if err != nil {
		return lr, err
	}
	var readers []*Reader
	stop := func() error {
		for _, rd := range readers {
			rd.Close()
		}
		return g.Stop()
	}
	pid, err := go2rtcPID(g.ConfigPath)
	if err != nil {
		return lr, errors.Join(err, stop())
	}
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for i := range devices {
		rd, err := DialReader(cctx, consumerURL(g, streamName(kind, "load", i)))
		if err != nil {
			return lr, errors.Join(err, stop())
		}
		readers = append(readers, rd)
	}
	for _, rd := range readers {
		if _, err := rd.WaitFirst(cctx); err != nil {
			return lr, errors.Join(err, stop())
		}
	}
	settle := time.NewTimer(loadSettle)
	select {
	case <-settle.C:
	case <-ctx.Done():
		settle.Stop()
		return lr, errors.Join(ctx.Err(), stop())
	}

	packets := func() (n uint64) {
		for _, rd := range readers {
			n += rd.Packets()
		}
		return n
	}
	g0, err := ReadProc(pid)
	if err != nil {
		return lr, errors.Join(err, stop())
	}
	b0, err := ReadProc(0)
	if err != nil {
		return lr, errors.Join(err, stop())
	}
	var profErr chan error
	if profile != "" {
		profErr = make(chan error, 1)
		go func() { profErr <- fetchProfile(ctx, pprofAddr, r.opts.LoadWindow, profile) }()
	}
	p0, t0 := packets(), time.Now()
	peak := g0.RSS
	tick := time.NewTicker(250 * time.Millisecond)
	window := time.NewTimer(r.opts.LoadWindow)
sample:
	for {
		select {
		case <-tick.C:
			if st, err := ReadProc(pid); err == nil {
				peak = max(peak, st.RSS)
			}
		case <-window.C:
			break sample
		case <-ctx.Done():
			tick.Stop()
			return lr, errors.Join(ctx.Err(), stop())
		}
	}
	tick.Stop()
	g1, err := ReadProc(pid)
	if err != nil {
		return lr, errors.Join(err, stop())
	}
	b1, err := ReadProc(0)
	if err != nil {
		return lr, errors.Join(err, stop())
	}
	p1, t1 := packets(), time.Now()
	if profErr != nil {
		if err := <-profErr; err != nil {
			return lr, errors.Join(err, stop())
		}
	}
	for i, rd := range readers {
		if !rd.Alive() {
			return lr, errors.Join(fmt.Errorf("consumer %d closed during the window: %v", i, rd.Err()), stop())
		}
	}
	if err = stop(); err != nil {
		return lr, err
	}
	n := float64(len(devices))
	streamMin := n * t1.Sub(t0).Minutes()
	peak = max(peak, g1.RSS)
	lr.cpuPerStreamMin = (g1.CPU() - g0.CPU()).Seconds() / streamMin
	lr.benchPerStreamMin = (b1.CPU() - b0.CPU()).Seconds() / streamMin
	lr.peakRSS = float64(peak) / (1 << 20)
	lr.pktPerStreamSec = float64(p1-p0) / n / t1.Sub(t0).Seconds()
	return lr, nil
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
