package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/e2e"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

// blipWait is the longest wait for video after a freeze ends.
const blipWait = 60 * time.Second

// blipTie: two sources whose video came back this close count as even.
const blipTie = 500 * time.Microsecond

// blip: the device goes completely silent (sim Freeze: no FIN, no RST,
// connections stay open) and comes back; how long after the silence ends
// the video is back at a consumer that stayed connected to go2rtc. Two
// series: each silence on a fresh device and go2rtc (a lone blip), and the
// same silences one after another on one device and go2rtc with 2 s of
// video between them (a flaky link).
func (r *runner) blip(ctx context.Context) Section {
	lengths := r.opts.Blips
	s := Section{Name: SectionBlip, Title: "Network blip: the device silent for 4–12 s without closing anything", Stock: "rtsp://"}
	r.logf("blip: %d lone silences, then %d in a row", len(lengths), len(lengths))

	type series struct {
		back   map[string][]float64
		lost   map[string]int
		perRun []string
		label  string
		// per silence: hikvision:// back sooner than stock, within
		// blipTie of it, later
		sooner, tie, later int
	}
	add := func(se *series, freeze time.Duration, got map[string]blipResult) {
		texts := map[string]string{}
		for kind, res := range got {
			texts[kind] = res.text
			if res.ok {
				se.back[kind] = append(se.back[kind], res.sec)
			} else {
				se.lost[kind]++
			}
		}
		se.perRun = append(se.perRun, fmt.Sprintf("%s: %s/%s", fmtDur(freeze), texts[kindHik], texts[kindStock]))
		if h, st := got[kindHik], got[kindStock]; h.ok && st.ok {
			switch d := h.sec - st.sec; {
			case d < -blipTie.Seconds():
				se.sooner++
			case d > blipTie.Seconds():
				se.later++
			default:
				se.tie++
			}
		}
	}
	lone := &series{back: map[string][]float64{}, lost: map[string]int{}, label: "lone silence (fresh device and go2rtc each)"}
	for i, freeze := range lengths {
		r.logf("blip %d: %s silent", i+1, fmtDur(freeze))
		got, err := func() (map[string]blipResult, error) {
			rig, err := r.newBlipRig(ctx)
			if err != nil {
				return nil, err
			}
			defer rig.close()
			return rig.silence(ctx, freeze)
		}()
		if err != nil {
			s.Error = fmt.Sprintf("blip %d (%s): %v", i+1, fmtDur(freeze), err)
			return s
		}
		add(lone, freeze, got)
	}
	row := &series{back: map[string][]float64{}, lost: map[string]int{}, label: "silences in a row (one device and go2rtc, 2 s of video between)"}
	rig, err := r.newBlipRig(ctx)
	if err != nil {
		s.Error = err.Error()
		return s
	}
	defer rig.close()
	for i, freeze := range lengths {
		r.logf("blip in a row %d: %s silent", i+1, fmtDur(freeze))
		got, err := rig.silence(ctx, freeze)
		if err != nil {
			s.Error = fmt.Sprintf("blip in a row %d (%s): %v", i+1, fmtDur(freeze), err)
			return s
		}
		add(row, freeze, got)
	}

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
	for _, se := range []*series{lone, row} {
		h, st := se.back[kindHik], se.back[kindStock]
		m := NewRow(fmt.Sprintf("video back after the silence ends, %s, median of %d", se.label, len(lengths)), "s", med(h), med(st))
		m.Note = fmt.Sprintf("silences %s–%s", fmtDur(lengths[0]), fmtDur(lengths[len(lengths)-1]))
		w := NewRow(fmt.Sprintf("video back after the silence ends, %s, worst of %d", se.label, len(lengths)), "s", worst(h), worst(st))
		l := NewRow(fmt.Sprintf("%s: consumer got no video (dropped or > %.0f s)", se.label, blipWait.Seconds()), "", Num(float64(se.lost[kindHik])), Num(float64(se.lost[kindStock])))
		s.Rows = append(s.Rows, m, w, l)
		s.Notes = append(s.Notes, fmt.Sprintf("Per silence, %s (hikvision/stock, s): %s.", se.label, strings.Join(se.perRun, "; ")),
			fmt.Sprintf("%s: hikvision:// video back sooner than stock's in %d silences, within %.1f ms of it in %d, later in %d.",
				se.label, se.sooner, blipTie.Seconds()*1000, se.tie, se.later))
	}
	s.Notes = append(s.Notes,
		"sim Freeze: the device reads, answers and sends nothing (RTP due meanwhile is dropped), keeps every connection open and accepts new ones without answering; then resumes on the same connections and answers what waited. Both sources on the same device, consumers connected to go2rtc throughout, 2 s of video before each silence.",
		"Time from the end of the silence (the simulator's own moment of resuming) to the next video RTP packet at the consumer; for hikvision://, in brackets, how many sessions it tore down for want of media (stalls) and how many reconnect attempts it made, from the start of the silence until video was back (its counters in /api/streams).")
	return s
}

type blipResult struct {
	sec  float64
	ok   bool
	text string
}

// blipRig is a device with both sources in a go2rtc and a consumer on each.
type blipRig struct {
	d       *sim.Device
	g       *e2e.Go2rtc
	readers *consumers
}

var blipKinds = []string{kindHik, kindStock}

func (r *runner) newBlipRig(ctx context.Context) (*blipRig, error) {
	d, err := sim.Start(sim.Config{})
	if err != nil {
		return nil, err
	}
	streams := map[string]string{
		streamName(kindHik, "blip", 0):   hikURL(d, simPassword),
		streamName(kindStock, "blip", 0): rtspURL(d, simPassword),
	}
	g, err := startGo2rtc(ctx, r.bin, streams)
	if err != nil {
		_ = d.Close()
		return nil, err
	}
	return &blipRig{d: d, g: g, readers: newConsumers(g, "blip", true)}, nil
}

func (b *blipRig) close() {
	b.readers.close()
	_ = b.g.Stop()
	_ = b.d.Close()
}

// silence makes sure video flows to both consumers (connecting them if
// needed) for 2 s, freezes the device for freeze and measures how long
// after its end video is back on each.
func (b *blipRig) silence(ctx context.Context, freeze time.Duration) (map[string]blipResult, error) {
	for _, kind := range blipKinds {
		if err := b.readers.ensure(ctx, kind); err != nil {
			_, streams, _ := b.g.Get(ctx, "/api/streams")
			return nil, fmt.Errorf("%s: %w; /api/streams: %s; go2rtc output:\n%s", kind, err, tail(string(streams), 2000), tail(b.g.Output(), 3000))
		}
	}
	for _, kind := range blipKinds {
		if err := waitVideoFor(ctx, b.readers.get(kind), 2*time.Second, 60*time.Second); err != nil {
			return nil, fmt.Errorf("%s: %w", kind, err)
		}
	}
	before, _ := producerCounters(ctx, b.g, streamName(kindHik, "blip", 0))
	if err := b.d.Freeze(freeze); err != nil {
		return nil, err
	}
	_, thawed := b.d.Frozen()
	select {
	case <-thawed:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	// from the device's own thaw: this goroutine wakes up later than that,
	// and video that came meanwhile counts (NextVideo remembers it)
	end := b.d.ThawedAt()
	got := map[string]blipResult{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, kind := range blipKinds {
		rd := b.readers.get(kind)
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
	// what the module did meanwhile (its counters in /api/streams)
	if after, err := producerCounters(ctx, b.g, streamName(kindHik, "blip", 0)); err == nil {
		res := got[kindHik]
		res.text += fmt.Sprintf(" (stalls +%d, attempts +%d)", after.Stalls-before.Stalls, after.Attempts-before.Attempts)
		got[kindHik] = res
	}
	return got, ctx.Err()
}

// hikCounters are a hikvision:// producer's counters in /api/streams.
type hikCounters struct {
	Attempts   int `json:"attempts"`
	Reconnects int `json:"reconnects"`
	Stalls     int `json:"stalls"`
}

func producerCounters(ctx context.Context, g *e2e.Go2rtc, stream string) (hikCounters, error) {
	status, body, err := g.Get(ctx, "/api/streams")
	if err != nil {
		return hikCounters{}, err
	}
	if status != 200 {
		return hikCounters{}, fmt.Errorf("bench: /api/streams: status %d", status)
	}
	var streams map[string]struct {
		Producers []hikCounters `json:"producers"`
	}
	if err := json.Unmarshal(body, &streams); err != nil {
		return hikCounters{}, fmt.Errorf("bench: /api/streams: %w", err)
	}
	s, ok := streams[stream]
	if !ok || len(s.Producers) == 0 {
		return hikCounters{}, fmt.Errorf("bench: /api/streams: no producer of %q", stream)
	}
	return s.Producers[0], nil
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
		out[i] = (4300*time.Millisecond + time.Duration(i)*(7400*time.Millisecond)/time.Duration(n-1)).Round(10 * time.Millisecond)
	}
	return out
}

// tail is the last n bytes of s.
func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
