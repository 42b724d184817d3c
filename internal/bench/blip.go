package bench

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/e2e"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

// blipWait is the longest wait for video after a freeze ends.
const blipWait = 60 * time.Second

// blip: the device goes completely silent (sim Freeze: no FIN, no RST,
// connections stay open) and comes back; how long after the silence ends
// the video is back at a consumer that stayed connected to go2rtc. Each
// silence has its own device and go2rtc, so one blip's reconnect state
// (backoff after short sessions) does not carry into the next.
func (r *runner) blip(ctx context.Context) Section {
	lengths := r.opts.Blips
	s := Section{Name: SectionBlip, Title: "Network blip: the device silent for 4–12 s without closing anything", Stock: "rtsp://"}
	r.logf("blip: %d freezes", len(lengths))
	back := map[string][]float64{}
	lost := map[string]int{}
	var perRun []string
	for i, freeze := range lengths {
		r.logf("blip %d: %s silent", i+1, fmtDur(freeze))
		got, err := r.oneBlip(ctx, freeze)
		if err != nil {
			s.Error = fmt.Sprintf("blip %d (%s): %v", i+1, fmtDur(freeze), err)
			return s
		}
		texts := map[string]string{}
		for kind, res := range got {
			texts[kind] = res.text
			if res.ok {
				back[kind] = append(back[kind], res.sec)
			} else {
				lost[kind]++
			}
		}
		perRun = append(perRun, fmt.Sprintf("%s: %s/%s", fmtDur(freeze), texts[kindHik], texts[kindStock]))
	}
	h, st := back[kindHik], back[kindStock]
	med := func(v []float64) *float64 {
		if len(v) == 0 {
			return nil
		}
		return Num(Median(v))
	}
	worst := func(v []float64) *float64 {
		if len(v) == 0 {
			return nil
		}
		_, hi := MinMax(v)
		return Num(hi)
	}
	row := NewRow(fmt.Sprintf("video back after the silence ends, median of %d", len(lengths)), "s", med(h), med(st))
	row.Note = fmt.Sprintf("silences %s–%s", fmtDur(lengths[0]), fmtDur(lengths[len(lengths)-1]))
	wrow := NewRow(fmt.Sprintf("video back after the silence ends, worst of %d", len(lengths)), "s", worst(h), worst(st))
	lrow := NewRow("silences after which the consumer got no video (dropped or > 60 s)", "", Num(float64(lost[kindHik])), Num(float64(lost[kindStock])))
	s.Rows = append(s.Rows, row, wrow, lrow)
	s.Notes = append(s.Notes,
		"sim Freeze: the device reads, answers and sends nothing (RTP due meanwhile is dropped), keeps every connection open and accepts new ones without answering; then resumes on the same connections. Both sources on the same device, consumers connected to go2rtc throughout; each silence on a fresh device and go2rtc, after 2 s of video.",
		"Time from the end of the silence to the next video RTP packet at the consumer. Per silence (hikvision/stock, s): "+strings.Join(perRun, "; ")+".")
	return s
}

type blipResult struct {
	sec  float64
	ok   bool
	text string
}

// oneBlip runs one silence on its own device and go2rtc.
func (r *runner) oneBlip(ctx context.Context, freeze time.Duration) (map[string]blipResult, error) {
	d, err := sim.Start(sim.Config{})
	if err != nil {
		return nil, err
	}
	defer d.Close()
	streams := map[string]string{
		streamName(kindHik, "blip", 0):   hikURL(d, simPassword),
		streamName(kindStock, "blip", 0): rtspURL(d, simPassword),
	}
	g, err := e2e.Start(ctx, e2e.Options{Bin: r.bin, Config: streamsYAML(streams)})
	if err != nil {
		return nil, err
	}
	defer g.Stop()

	kinds := []string{kindHik, kindStock}
	readers := map[string]*Reader{}
	defer func() {
		for _, rd := range readers {
			rd.Close()
		}
	}()
	for _, kind := range kinds {
		cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		rd, err := DialReader(cctx, consumerURL(g, streamName(kind, "blip", 0)))
		if err == nil {
			readers[kind] = rd
			_, err = rd.WaitFirstVideo(cctx)
		}
		cancel()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", kind, err)
		}
	}
	for _, kind := range kinds {
		if err := waitVideoFor(ctx, readers[kind], 2*time.Second, 60*time.Second); err != nil {
			return nil, fmt.Errorf("%s: %w", kind, err)
		}
	}
	if err := d.Freeze(freeze); err != nil {
		return nil, err
	}
	_, thawed := d.Frozen()
	select {
	case <-thawed:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	end := time.Now()
	got := map[string]blipResult{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, kind := range kinds {
		rd := readers[kind]
		wg.Add(1)
		go func() {
			defer wg.Done()
			timer := time.NewTimer(blipWait)
			defer timer.Stop()
			var res blipResult
			select {
			case t := <-rd.NextVideo(end):
				res.sec, res.ok = t.Sub(end).Seconds(), true
				res.text = fmt.Sprintf("%.3f", res.sec)
			case <-rd.Done():
				res.text = "consumer dropped"
			case <-timer.C:
				res.text = fmt.Sprintf("> %.0f", blipWait.Seconds())
			case <-ctx.Done():
				res.text = "interrupted"
			}
			mu.Lock()
			got[kind] = res
			mu.Unlock()
		}()
	}
	wg.Wait()
	return got, ctx.Err()
}

// waitVideoFor waits until video packets have been arriving for span (a
// packet at the start and one after it), within timeout.
func waitVideoFor(ctx context.Context, rd *Reader, span, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for _, after := range []time.Time{time.Now(), time.Now().Add(span)} {
		if d := time.Until(after); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			}
		}
		select {
		case <-rd.NextVideo(after):
		case <-rd.Done():
			return fmt.Errorf("consumer closed: %v", rd.Err())
		case <-deadline.C:
			return fmt.Errorf("no video within %v", timeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// BlipLengths spreads n silences evenly over 4.3–11.7 s (off go2rtc's and
// the module's whole-second timers).
func BlipLengths(n int) []time.Duration {
	if n <= 1 {
		return []time.Duration{4300 * time.Millisecond}
	}
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = 4300*time.Millisecond + time.Duration(i)*(7400*time.Millisecond)/time.Duration(n-1)
	}
	return out
}
