package bench

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/e2e"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

// Talk burst: TalkBurst of G.711 (20 ms packets) from an RTSP consumer that
// holds go2rtc's backchannel (?backchannel=1), then silence on the same
// connection for Options.TalkWindow.
var (
	TalkBurst  = 3 * time.Second
	talkPacket = 20 * time.Millisecond
)

type talkResult struct {
	latency                              *float64 // ms, first audio packet sent -> first byte at the device
	opens, requests                      float64  // during the burst (from connect to the end of the burst)
	idleOpens, idleRequests, idlePrompts float64  // during the silent window
	sentBytes, deviceBytes               float64
	openAfter                            bool    // a session is open on the device after the consumer left
	stopOpens, stopRequests              float64 // in afterStop once go2rtc stopped the producer
}

// afterStop is how long the device is watched once go2rtc stopped the
// stream's producer: nothing may reach it then (suppress-reconnect).
func afterStop(window time.Duration) time.Duration { return min(window, 10*time.Second) }

// talk: each source on its own simulated camera (a device takes one talk
// session at a time), all measured at the same time through one go2rtc.
func (r *runner) talk(ctx context.Context) Section {
	s := Section{Name: SectionTalk, Title: fmt.Sprintf("Talk: %s of audio, then a silent held backchannel for %s", fmtDur(TalkBurst), fmtDur(r.opts.TalkWindow)), Stock: "isapi://"}
	// two device variants: one that answers the audioData PUT at once, and
	// the simulator's default that does not answer while the talk lasts
	variants := []struct {
		key, label string
		answer     bool
	}{{"answer", "device answers audioData", true}, {"silent", "device does not answer audioData", false}}
	devs := map[string]*sim.Device{}
	defer func() {
		for _, d := range devs {
			_ = d.Close()
		}
	}()
	streams := map[string]string{}
	for vi, v := range variants {
		for _, kind := range []string{kindHik, kindStock} {
			d, err := sim.Start(sim.Config{Talk: sim.TalkConfig{AnswerAudioData: v.answer}})
			if err != nil {
				s.Error = err.Error()
				return s
			}
			devs[v.key+kind] = d
			if kind == kindHik {
				streams[streamName(kind, "talk", vi)] = hikURL(d, simPassword)
			} else {
				// stock: the usual go2rtc config for a Hikvision camera with
				// talk, video from rtsp:// and the backchannel from isapi://
				streams[streamName(kind, "talk", vi)] = rtspURL(d, simPassword) + "\n" +
					"isapi://" + url.UserPassword(simUser, simPassword).String() + "@" + d.HTTPAddr() + "/"
			}
		}
	}
	g, err := e2e.Start(ctx, e2e.Options{Bin: r.bin, Config: streamsYAML(streams)})
	if err != nil {
		s.Error = err.Error()
		return s
	}
	defer g.Stop()
	r.logf("talk: %v burst, %v silent", TalkBurst, r.opts.TalkWindow)

	res := map[string]talkResult{}
	errs := map[string]error{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for vi, v := range variants {
		for _, kind := range []string{kindHik, kindStock} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tr, err := measureTalk(ctx, g, devs[v.key+kind], streamName(kind, "talk", vi), r.opts.TalkWindow)
				mu.Lock()
				res[v.key+kind], errs[v.key+kind] = tr, err
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	var msgs []string
	for _, v := range variants {
		for _, kind := range []string{kindHik, kindStock} {
			if err := errs[v.key+kind]; err != nil {
				msgs = append(msgs, fmt.Sprintf("%s (%s): %v", kind, v.label, err))
			}
		}
	}
	if len(msgs) > 0 {
		s.Error = strings.Join(msgs, "; ")
	}
	win := fmtDur(r.opts.TalkWindow)
	pct := func(t talkResult) *float64 {
		if t.sentBytes == 0 {
			return nil
		}
		return Num(100 * t.deviceBytes / t.sentBytes)
	}
	for _, v := range variants {
		h, st := res[v.key+kindHik], res[v.key+kindStock]
		p := v.label + ": "
		s.Rows = append(s.Rows,
			NewRow(p+"first audio packet to first byte at the device", "ms", h.latency, st.latency),
			NewRow(p+"audio of the burst that reached the device", "%", pct(h), pct(st)),
			NewRow(p+"talk sessions opened for the burst", "", Num(h.opens), Num(st.opens)),
			NewRow(p+"HTTP requests for the burst (ISAPI, incl. 401 challenges)", "", Num(h.requests), Num(st.requests)),
			NewRow(fmt.Sprintf("%s\"call ended\" prompts in the %s after the burst", p, win), "", Num(h.idlePrompts), Num(st.idlePrompts)),
			NewRow(fmt.Sprintf("%ssessions opened in the %s after the burst", p, win), "", Num(h.idleOpens), Num(st.idleOpens)),
			NewRow(fmt.Sprintf("%sHTTP requests in the %s after the burst", p, win), "", Num(h.idleRequests), Num(st.idleRequests)),
			Row{Metric: p + "session left open on the device after the consumer left", HikvisionText: yesNo(h.openAfter), StockText: yesNo(st.openAfter)},
			NewRow(fmt.Sprintf("%stalk sessions opened in the %s after the producer stopped", p, fmtDur(afterStop(r.opts.TalkWindow))), "", Num(h.stopOpens), Num(st.stopOpens)),
			NewRow(fmt.Sprintf("%srequests reaching the device in the %s after the producer stopped (ISAPI + RTSP connections)", p, fmtDur(afterStop(r.opts.TalkWindow))), "", Num(h.stopRequests), Num(st.stopRequests)))
	}
	s.Notes = append(s.Notes,
		"Two device variants, each with its own simulated camera per source, all measured at the same time: one answers the audioData PUT at once (internal/sim TalkConfig.AnswerAudioData), the other (the simulator's default) answers nothing while the talk lasts; stock isapi:// waits for that answer before it sends any audio.",
		"Stock stream: [rtsp://, isapi://] on the same camera (go2rtc's documented setup for Hikvision two-way audio); hikvision:// is one source for both.",
		"Consumer: the bench's RTSP reader on go2rtc with ?backchannel=1, sending 20 ms G.711 packets; it stays connected and silent afterwards (OPTIONS keepalive every 20 s so go2rtc keeps it), like a muted browser microphone.",
		"The simulated device hangs up a session after 4 s without audio and counts a \"call ended\" prompt (internal/sim TalkConfig defaults). Latency is polled on the simulator's byte counter every 2 ms.",
		"\"For the burst\" counts from the consumer's connect to the end of the burst (stock isapi:// opens its session when the consumer connects).")
	return s
}

func requestCount(cs sim.ClientStats) float64 {
	n := 0
	for _, v := range cs.Requests {
		n += v
	}
	return float64(n)
}

// quietG711 is one 20 ms G.711 packet for the backchannel codec: a quiet but
// not silent signal (the device must see audio bytes).
func quietG711(codec string) ([]byte, error) {
	var silence byte
	switch {
	case strings.HasPrefix(codec, "PCMU/8000"):
		silence = 0xFF
	case strings.HasPrefix(codec, "PCMA/8000"):
		silence = 0xD5
	default:
		return nil, fmt.Errorf("backchannel codec %q, want PCMU/8000 or PCMA/8000", codec)
	}
	payload := make([]byte, 160)
	for i := range payload {
		payload[i] = silence ^ byte(i&1)
	}
	return payload, nil
}

func measureTalk(ctx context.Context, g *e2e.Go2rtc, dev *sim.Device, stream string, window time.Duration) (talkResult, error) {
	const ip = "127.0.0.1"
	var tr talkResult
	req0, talk0 := requestCount(dev.Client(ip)), dev.TalkClient(ip)

	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rd, err := DialReader(cctx, consumerURL(g, stream)+"?backchannel=1")
	if err != nil {
		return tr, err
	}
	defer rd.Close()
	payload, err := quietG711(rd.Backchannel())
	if err != nil {
		return tr, err
	}

	// first byte at the device, polled
	firstByte := make(chan time.Time, 1)
	pollCtx, stopPoll := context.WithTimeout(ctx, TalkBurst+10*time.Second)
	defer stopPoll()
	go func() {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			if dev.TalkClient(ip).Bytes > talk0.Bytes {
				firstByte <- time.Now()
				return
			}
			select {
			case <-pollCtx.Done():
				close(firstByte)
				return
			case <-tick.C:
			}
		}
	}()

	tick := time.NewTicker(talkPacket)
	start := time.Now()
	n := int(TalkBurst / talkPacket)
	for i := 0; i < n; i++ {
		if err := rd.WriteAudio(payload, uint32(len(payload))); err != nil {
			return tr, fmt.Errorf("send audio: %w", err)
		}
		tr.sentBytes += float64(len(payload))
		select {
		case <-tick.C:
		case <-ctx.Done():
			tick.Stop()
			return tr, ctx.Err()
		}
	}
	tick.Stop()
	if t, ok := <-firstByte; ok {
		tr.latency = Num(ms(t.Sub(start)))
	}
	stopPoll()
	req1, talk1 := requestCount(dev.Client(ip)), dev.TalkClient(ip)
	tr.opens = float64(talk1.Opens - talk0.Opens)
	tr.requests = req1 - req0

	// held, silent
	hold := time.NewTimer(window)
	keep := time.NewTicker(20 * time.Second)
	defer keep.Stop()
hold:
	for {
		select {
		case <-hold.C:
			break hold
		case <-keep.C:
			_ = rd.Keepalive()
		case <-rd.Done():
			hold.Stop()
			return tr, fmt.Errorf("go2rtc closed the consumer during the silent window: %v", rd.Err())
		case <-ctx.Done():
			hold.Stop()
			return tr, ctx.Err()
		}
	}
	req2, talk2 := requestCount(dev.Client(ip)), dev.TalkClient(ip)
	tr.idleOpens = float64(talk2.Opens - talk1.Opens)
	tr.idlePrompts = float64(talk2.Prompts - talk1.Prompts)
	tr.idleRequests = req2 - req1
	tr.deviceBytes = float64(talk2.Bytes - talk0.Bytes)

	rd.Close()
	if err := waitProducerStopped(ctx, g, stream, 10*time.Second); err != nil {
		return tr, errors.Join(err)
	}
	_, tr.openAfter = dev.TalkSession()

	// stopped: nothing more may reach the device
	c3, talk3 := dev.Client(ip), dev.TalkClient(ip)
	quiet := time.NewTimer(afterStop(window))
	select {
	case <-quiet.C:
	case <-ctx.Done():
		quiet.Stop()
		return tr, ctx.Err()
	}
	c4, talk4 := dev.Client(ip), dev.TalkClient(ip)
	tr.stopOpens = float64(talk4.Opens - talk3.Opens)
	tr.stopRequests = requestCount(c4) - requestCount(c3) + float64(c4.RTSPConnections-c3.RTSPConnections)
	return tr, nil
}
