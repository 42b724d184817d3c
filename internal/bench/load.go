package bench

import (
	"context"
	"errors"
	"fmt"
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
func (r *runner) load(ctx context.Context) Section {
	s := Section{Name: SectionLoad, Title: "go2rtc CPU and memory with N streams (H.264 + G.711, one consumer each)", Stock: "rtsp://"}
	maxN := slices.Max(r.opts.StreamCounts)
	devices := make([]*sim.Device, 0, maxN)
	defer func() {
		for _, d := range devices {
			_ = d.Close()
		}
	}()
	for i := 0; i < maxN; i++ {
		d, err := sim.Start(sim.Config{})
		if err != nil {
			s.Error = err.Error()
			return s
		}
		devices = append(devices, d)
	}
	for i, n := range r.opts.StreamCounts {
		order := []string{kindHik, kindStock}
		if i%2 == 1 {
			order = []string{kindStock, kindHik}
		}
		res := map[string]loadResult{}
		for _, kind := range order {
			r.logf("load: %d × %s for %v", n, kind, r.opts.LoadWindow)
			lr, err := r.loadPhase(ctx, kind, devices[:n])
			if err != nil {
				s.Error = fmt.Sprintf("%d streams, %s: %v", n, kind, err)
				return s
			}
			res[kind] = lr
		}
		h, st := res[kindHik], res[kindStock]
		label := fmt.Sprintf("%d streams", n)
		if n == 1 {
			label = "1 stream"
		}
		s.Rows = append(s.Rows,
			NewRow(fmt.Sprintf("%s: go2rtc CPU", label), "CPU s / stream-min", Num(h.cpuPerStreamMin), Num(st.cpuPerStreamMin)),
			NewRow(fmt.Sprintf("%s: go2rtc peak RSS", label), "MiB", Num(h.peakRSS), Num(st.peakRSS)),
			NewRow(fmt.Sprintf("%s: simulator + consumers CPU (bench process)", label), "CPU s / stream-min", Num(h.benchPerStreamMin), Num(st.benchPerStreamMin)),
			NewRow(fmt.Sprintf("%s: packets at each consumer", label), "pkt/s", Num(h.pktPerStreamSec), Num(st.pktPerStreamSec)))
	}
	s.Notes = append(s.Notes,
		fmt.Sprintf("Each phase is a fresh go2rtc; CPU is user+system from /proc/<pid>/stat over a %s window that opens %s after every consumer got its first packet; peak RSS is the largest VmRSS sampled every 250 ms in the window.", fmtDur(r.opts.LoadWindow), fmtDur(loadSettle)),
		"The simulator runs inside the bench process: its CPU (with the bench's RTSP consumers) is the bench process's own /proc/self/stat, shown separately.",
		"Media is ~300 kbit/s H.264 + 64 kbit/s G.711 (testdata/media), not the 2 Mbit/s of the issue: per-packet costs are what differs between the sources.")
	return s
}

func (r *runner) loadPhase(ctx context.Context, kind string, devices []*sim.Device) (loadResult, error) {
	var lr loadResult
	streams := map[string]string{}
	for i, d := range devices {
		if kind == kindHik {
			streams[streamName(kind, "load", i)] = hikURL(d, simPassword)
		} else {
			streams[streamName(kind, "load", i)] = rtspURL(d, simPassword)
		}
	}
	g, err := e2e.Start(ctx, e2e.Options{Bin: r.bin, Config: streamsYAML(streams)})
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
