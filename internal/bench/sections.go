package bench

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/e2e"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

// ttff: time to first frame through go2rtc, cold and warm.
//
// Each run uses its own simulated camera with two go2rtc streams on it
// (hikvision:// and rtsp://). Cold is the first consumer of the stream since
// go2rtc started (for hikvision://: no cached ISAPI probe); warm is a second
// consumer after go2rtc stopped the first producer. The two sources alternate
// which goes first.
func (r *runner) ttff(ctx context.Context, g *e2e.Go2rtc, c *mainConfig) Section {
	s := Section{Name: SectionTTFF, Title: "Time to first frame through go2rtc", Stock: "rtsp://"}
	r.logf("time to first frame: %d runs per source", len(c.ttff))
	type samples struct{ cold, warm, coldVideo, warmVideo []float64 }
	res := map[string]*samples{kindHik: {}, kindStock: {}}
	for i := range c.ttff {
		order := []string{kindHik, kindStock}
		if i%2 == 1 {
			order = []string{kindStock, kindHik}
		}
		for _, kind := range order {
			name := streamName(kind, "ttff", i)
			for _, warm := range []bool{false, true} {
				first, video, err := firstFrame(ctx, g, name)
				if err != nil {
					s.Error = err.Error()
					return s
				}
				sm := res[kind]
				if warm {
					sm.warm, sm.warmVideo = append(sm.warm, ms(first)), append(sm.warmVideo, ms(video))
				} else {
					sm.cold, sm.coldVideo = append(sm.cold, ms(first)), append(sm.coldVideo, ms(video))
				}
			}
		}
	}
	row := func(metric string, h, st []float64) Row {
		hm, sm := Median(h), Median(st)
		row := NewRow(fmt.Sprintf("%s, median of %d", metric, len(h)), "ms", Num(hm), Num(sm))
		hl, hh := MinMax(h)
		sl, sh := MinMax(st)
		row.Note = fmt.Sprintf("range %s–%s vs %s–%s", formatNum(hl), formatNum(hh), formatNum(sl), formatNum(sh))
		return row
	}
	h, st := res[kindHik], res[kindStock]
	s.Rows = append(s.Rows,
		row("cold, first RTP packet", h.cold, st.cold),
		row("warm, first RTP packet", h.warm, st.warm),
		row("cold, first video packet", h.coldVideo, st.coldVideo),
		row("warm, first video packet", h.warmVideo, st.warmVideo))
	s.Notes = append(s.Notes,
		"From the consumer's TCP connect to go2rtc's RTSP port to the first RTP packet it reads (DESCRIBE makes go2rtc dial the source).",
		"Cold: first consumer since go2rtc started; warm: the next consumer after go2rtc stopped the producer (hikvision:// then reuses its cached ISAPI probe).")
	return s
}

// firstFrame plays stream once and returns the times to the first RTP packet
// and the first video packet, then closes the consumer and waits until go2rtc
// stopped the producer.
func firstFrame(ctx context.Context, g *e2e.Go2rtc, stream string) (first, video time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rd, err := DialReader(ctx, consumerURL(g, stream))
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %w", stream, err)
	}
	first, err = rd.WaitFirst(ctx)
	if err == nil {
		video, err = rd.WaitFirstVideo(ctx)
	}
	rd.Close()
	if err != nil {
		return 0, 0, err
	}
	if err = waitProducerStopped(ctx, g, stream, 10*time.Second); err != nil {
		return 0, 0, err
	}
	return first, video, nil
}

// recovery: a consumer stays connected to each source while the device
// reboots; the figure is from the device's RTSP port answering again
// (Device.Up) to the first new packet at the consumer.
func (r *runner) recovery(ctx context.Context, g *e2e.Go2rtc, c *mainConfig) Section {
	s := Section{Name: SectionRecovery, Title: "Recovery after a device outage (reboot)", Stock: "rtsp://"}
	kinds := []string{kindHik, kindStock}
	readers := newConsumers(g, "rec", false)
	defer readers.close()
	for _, outage := range r.opts.Outages {
		r.logf("recovery: %v outage", outage)
		// consumers connected and video flowing on both before the outage
		for _, kind := range kinds {
			if err := readers.ensure(ctx, kind); err != nil {
				s.Error = fmt.Sprintf("before the %v outage: %v", outage, err)
				return s
			}
			if err := waitPacket(ctx, readers.get(kind), time.Now(), 30*time.Second); err != nil {
				s.Error = fmt.Sprintf("before the %v outage: %s: %v", outage, kind, err)
				return s
			}
		}
		if err := c.rec.Reboot(outage + r.opts.OutagePhase); err != nil {
			s.Error = err.Error()
			return s
		}
		select {
		case <-c.rec.Up():
		case <-ctx.Done():
			s.Error = ctx.Err().Error()
			return s
		}
		up := time.Now()
		type result struct {
			rec      *float64
			survived bool
			text     string
		}
		results := map[string]result{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, kind := range kinds {
			rd := readers.get(kind)
			wg.Add(1)
			go func() {
				defer wg.Done()
				var res result
				timer := time.NewTimer(recoveryWait)
				defer timer.Stop()
				select {
				case t := <-rd.NextPacket(up):
					res.rec, res.survived = Num(t.Sub(up).Seconds()), true
				case <-rd.Done():
					res.text = "consumer dropped"
				case <-timer.C:
					res.survived, res.text = rd.Alive(), fmt.Sprintf("> %.0f", recoveryWait.Seconds())
				case <-ctx.Done():
					res.text = "interrupted"
				}
				mu.Lock()
				results[kind] = res
				mu.Unlock()
			}()
		}
		wg.Wait()
		h, st := results[kindHik], results[kindStock]
		row := NewRow(fmt.Sprintf("video back after a %s outage", fmtDur(outage)), "s", h.rec, st.rec)
		if r.opts.OutagePhase > 0 {
			row.Note = fmt.Sprintf("device down %s", fmtDur(outage+r.opts.OutagePhase))
		}
		row.HikvisionText, row.StockText = h.text, st.text
		surv := Row{Metric: fmt.Sprintf("consumer kept its session through a %s outage", fmtDur(outage)),
			HikvisionText: yesNo(h.survived), StockText: yesNo(st.survived)}
		s.Rows = append(s.Rows, row, surv)
	}
	s.Notes = append(s.Notes,
		"Time from the simulator's RTSP port listening again (sim Device.Up) to the first RTP packet at a consumer that stayed connected to go2rtc through the outage; both sources on the same device, same outage.",
		fmt.Sprintf("Each outage is %s longer than its nominal length so that the device does not come back in step with go2rtc's whole-second retry timers (which start when the connection drops); with an exact 2 s outage both sources recover within ms by coincidence.", fmtDur(r.opts.OutagePhase)),
		fmt.Sprintf("A consumer go2rtc drops (it closes a consumer that sent nothing for 60 s) counts as not kept; the wait for video ends %.0f s after the device is up.", recoveryWait.Seconds()))
	return s
}

// waitPacket waits for a packet after t.
func waitPacket(ctx context.Context, rd *Reader, t time.Time, timeout time.Duration) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-rd.NextPacket(t):
		return nil
	case <-rd.Done():
		return fmt.Errorf("consumer closed: %v", rd.Err())
	case <-timer.C:
		return fmt.Errorf("no packet within %v", timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

func fmtDur(d time.Duration) string {
	if d >= time.Minute && d%time.Minute == 0 {
		return fmt.Sprintf("%d min", int(d/time.Minute))
	}
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + " s"
}

// logins: a client asks go2rtc for a stream with a wrong password every
// second; the simulator counts failed logins (ISAPI and RTSP).
func (r *runner) logins(ctx context.Context, g *e2e.Go2rtc, c *mainConfig) Section {
	win := r.opts.LoginWindow
	s := Section{Name: SectionLogins, Title: fmt.Sprintf("Wrong password, a client asking go2rtc for the stream every second for %s", fmtDur(win)), Stock: "rtsp://"}
	r.logf("failed logins: %v", win)
	type count struct {
		asks   int
		status map[string]int
	}
	counts := map[string]*count{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	wctx, cancel := context.WithTimeout(ctx, win)
	defer cancel()
	for _, kind := range []string{kindHik, kindStock} {
		counts[kind] = &count{status: map[string]int{}}
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				actx, acancel := context.WithTimeout(ctx, 3*time.Second)
				status, err := Describe(actx, consumerURL(g, streamName(kind, "login", 0)))
				acancel()
				if err != nil {
					status = "error"
				}
				mu.Lock()
				counts[kind].asks++
				counts[kind].status[status]++
				mu.Unlock()
				select {
				case <-wctx.Done():
					return
				case <-tick.C:
				}
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		s.Error = "interrupted"
	}
	const ip = "127.0.0.1"
	h, st := c.loginHik.Client(ip), c.loginRTSP.Client(ip)
	failed := func(cs sim.ClientStats) float64 { return float64(cs.FailedLogins + cs.RTSPFailedLogins) }
	reqs := func(cs sim.ClientStats) float64 {
		n := cs.RTSPConnections
		for _, v := range cs.Requests {
			n += v
		}
		return float64(n)
	}
	lockedH, _, _ := c.loginHik.LockStatus(ip)
	lockedS, _, _ := c.loginRTSP.LockStatus(ip)
	s.Rows = append(s.Rows,
		NewRow("failed logins counted by the device", "", Num(failed(h)), Num(failed(st))),
		Row{Metric: "device locked the IP", HikvisionText: yesNo(h.LockEvents > 0 || lockedH), StockText: yesNo(st.LockEvents > 0 || lockedS)},
		NewRow("requests reaching the device (ISAPI + RTSP connections)", "", Num(reqs(h)), Num(reqs(st))),
		NewRow("ISAPI requests refused as locked", "", Num(float64(h.LockedRejects)), Num(float64(st.LockedRejects))),
		NewRow("client asks (RTSP DESCRIBE to go2rtc)", "", Num(float64(counts[kindHik].asks)), Num(float64(counts[kindStock].asks))))
	s.Notes = append(s.Notes,
		fmt.Sprintf("Real time, not scaled: the simulator locks an IP after 5 wrong passwords for 30 min (device defaults). DESCRIBE answers: hikvision %s; stock %s.",
			statusSummary(counts[kindHik].status), statusSummary(counts[kindStock].status)))
	if r.opts.wants(SectionRecovery) || r.opts.wants(SectionTalk) {
		s.Notes = append(s.Notes, "Ran in the background during the recovery and talk tests (its own devices, same go2rtc as recovery).")
	}
	return s
}

func statusSummary(m map[string]int) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%d× %q", v, k))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

// gobench: allocations per packet on the module's hot paths.
func (r *runner) gobench(ctx context.Context) Section {
	s := Section{Name: SectionGoBench, Title: "Go benchmarks", Stock: "–"}
	r.logf("go test -bench on %s", strings.Join(HotPathPackages, " "))
	res, skipped, err := RunGoBench(ctx, r.root, HotPathPackages, r.opts.BenchTime)
	r.report.GoBench = append(r.report.GoBench, res...)
	if err != nil {
		s.Error = err.Error()
	}
	s.Notes = append(s.Notes, fmt.Sprintf("`go test -run=^$ -bench=. -benchmem -benchtime=%s` on %s; results in the table below.", r.opts.BenchTime, strings.Join(HotPathPackages, ", ")))
	if len(skipped) > 0 {
		s.Notes = append(s.Notes, "No benchmarks in: "+strings.Join(skipped, ", ")+".")
	}
	return s
}
