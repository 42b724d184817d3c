package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/build"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/e2e"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

// PlayFlushPatch is the go2rtc patch that writes what a consumer's packet
// writers held back until PLAY was answered right after the answer; the
// latency section also measures go2rtc built without it.
const PlayFlushPatch = "0010-rtsp-play-flushes-held-packets.patch"

// proxyHost is the loopback address the delaying proxies listen on: the
// same ports as the device (which listens on 127.0.0.1), so the RTSP port
// the device reports over ISAPI leads hikvision:// through the proxy too.
const proxyHost = "127.0.0.2"

// slowHosts numbers the loopback addresses of port-554 devices.
var slowHosts atomic.Int32

// slowDevice is a simulated device behind two delaying proxies (ISAPI and
// RTSP) on proxyHost.
type slowDevice struct {
	dev        *sim.Device
	http, rtsp *DelayProxy
}

// CanBindRTSP554 reports whether this process may listen on port 554 of a
// loopback address (root or CAP_NET_BIND_SERVICE), as the latency section's
// port-554 devices do.
func CanBindRTSP554() bool {
	ln, err := net.Listen("tcp", "127.0.1.254:554")
	if err != nil {
		return false
	}
	_ = ln.Close()
	return true
}

// With port554 the device sits on a loopback address of its own
// (127.0.1.N) with its RTSP on the standard port 554, which it also reports
// over ISAPI, as most real cameras: a client that tries 554 before asking
// finds it there.
func startSlowDevice(rtt time.Duration, cfg sim.Config, port554 bool) (*slowDevice, error) {
	if port554 {
		cfg.AdvertisedRTSPPort = 554
	}
	d, err := sim.Start(cfg)
	if err != nil {
		return nil, err
	}
	s := &slowDevice{dev: d}
	httpAt, rtspAt := samePort(d.HTTPAddr()), samePort(d.RTSPAddr())
	if port554 {
		host := fmt.Sprintf("127.0.1.%d", slowHosts.Add(1)%250+1)
		_, port, _ := net.SplitHostPort(d.HTTPAddr())
		httpAt, rtspAt = net.JoinHostPort(host, port), net.JoinHostPort(host, "554")
	}
	if s.http, err = NewDelayProxy("isapi", httpAt, d.HTTPAddr(), rtt/2); err == nil {
		s.rtsp, err = NewDelayProxy("rtsp", rtspAt, d.RTSPAddr(), rtt/2)
	}
	if err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func samePort(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return net.JoinHostPort(proxyHost, port)
}

func (s *slowDevice) close() {
	if s.http != nil {
		_ = s.http.Close()
	}
	if s.rtsp != nil {
		_ = s.rtsp.Close()
	}
	_ = s.dev.Close()
}

func (s *slowDevice) hikURL() string {
	return "hikvision://" + url.UserPassword(simUser, simPassword).String() + "@" + s.http.Addr() + "/?channel=1&stream=main"
}

func (s *slowDevice) rtspURL() string {
	return "rtsp://" + url.UserPassword(simUser, simPassword).String() + "@" + s.rtsp.Addr() + "/Streaming/Channels/101"
}

// roundTrips is the chain of sequential device round trips between from
// and to: both proxies for hikvision:// (ISAPI and RTSP), the RTSP one for
// stock. The previous session's TEARDOWN, which go2rtc may still be sending
// when the next start begins, is no part of a start.
func (s *slowDevice) roundTrips(kind string, from, to time.Time) []RoundTrip {
	trips := s.rtsp.RoundTrips(from, to)
	if kind == kindHik {
		trips = append(trips, s.http.RoundTrips(from, to)...)
	}
	trips = slices.DeleteFunc(trips, func(t RoundTrip) bool { return strings.HasPrefix(t.Request, "TEARDOWN ") })
	return SequentialChain(trips)
}

// chainText is a chain of round trips as "rtsp#1 connect → rtsp#1 DESCRIBE ...".
func chainText(chain []RoundTrip) string {
	steps := make([]string, len(chain))
	for i, t := range chain {
		steps[i] = t.String()
	}
	return strings.Join(steps, " → ")
}

// startSample is one measured start of a stream.
type startSample struct {
	video float64     // ms from the consumer's connect to its first video packet
	trips int         // sequential device round trips in that time
	chain []RoundTrip // those round trips
}

// latencyResult holds the samples of one go2rtc build: [rtt][kind][cold/warm].
type latencyResult map[time.Duration]map[string][2][]startSample

// latency: time to the first video frame over links with a round trip, and
// the device round trips of a start, with and without the PLAY patch.
func (r *runner) latency(ctx context.Context) Section {
	s := Section{Name: SectionLatency, Title: "Time to first video frame over a slow link (delaying proxy between go2rtc and the device)", Stock: "rtsp://"}
	rtts := r.opts.RTTs
	r.logf("latency: RTTs %v, %d runs per source", rtts, r.opts.LatencyRuns)

	var devs [][]*slowDevice // [rtt][run]
	defer func() {
		for _, ds := range devs {
			for _, d := range ds {
				d.close()
			}
		}
	}()
	streams := map[string]string{}
	for ri, rtt := range rtts {
		var ds []*slowDevice
		for i := 0; i < r.opts.LatencyRuns; i++ {
			d, err := startSlowDevice(rtt, sim.Config{}, r.opts.RTSP554)
			if err != nil {
				devs = append(devs, ds)
				s.Error = err.Error()
				return s
			}
			ds = append(ds, d)
			streams[latStream(kindHik, ri, i)] = d.hikURL()
			streams[latStream(kindStock, ri, i)] = d.rtspURL()
		}
		devs = append(devs, ds)
	}

	type variant struct {
		name, bin string
	}
	variants := []variant{{"all patches", r.bin}}
	if !r.opts.Quick {
		bin := r.opts.BinWithoutPlayFlush
		if bin == "" {
			r.logf("latency: building go2rtc without %s (cached)", PlayFlushPatch)
			var err error
			if bin, err = build.Build(ctx, build.Options{RepoRoot: r.root, WithoutPatches: []string{PlayFlushPatch}}); err != nil {
				s.Error = err.Error()
				return s
			}
		}
		variants = append(variants, variant{"without " + PlayFlushPatch[:4], bin})
	}
	r.logf("latency: snapshots")
	snaps, err := r.latencySnapshots(ctx, r.bin, rtts, devs, streams)
	if err != nil {
		s.Error = "snapshots: " + err.Error()
		return s
	}
	r.logf("latency: talk")
	talks, err := r.latencyTalk(ctx, rtts)
	if err != nil {
		s.Error = "talk: " + err.Error()
		return s
	}
	results := make([]latencyResult, len(variants))
	for vi, v := range variants {
		r.logf("latency: go2rtc with %s", v.name)
		res, err := r.latencyRun(ctx, v.bin, rtts, devs, streams)
		if err != nil {
			s.Error = fmt.Sprintf("%s: %v", v.name, err)
			return s
		}
		results[vi] = res
	}

	videos := func(ss []startSample) []float64 {
		out := make([]float64, len(ss))
		for i, x := range ss {
			out[i] = x.video
		}
		return out
	}
	trips := func(ss []startSample) []float64 {
		out := make([]float64, len(ss))
		for i, x := range ss {
			out[i] = float64(x.trips)
		}
		return out
	}
	rangeNote := func(h, st []float64) string {
		hl, hh := MinMax(h)
		sl, sh := MinMax(st)
		return fmt.Sprintf("range %s–%s vs %s–%s", formatNum(hl), formatNum(hh), formatNum(sl), formatNum(sh))
	}
	res := results[0]
	for _, rtt := range rtts {
		for w, phase := range []string{"cold", "warm"} {
			h, st := res[rtt][kindHik][w], res[rtt][kindStock][w]
			row := NewRow(fmt.Sprintf("%s, first video frame, %s RTT, median of %d", phase, fmtMS(rtt), len(h)), "ms", Num(Median(videos(h))), Num(Median(videos(st))))
			row.Note = rangeNote(videos(h), videos(st))
			s.Rows = append(s.Rows, row)
			trow := NewRow(fmt.Sprintf("%s, sequential device round trips, %s RTT, median", phase, fmtMS(rtt)), "", Num(Median(trips(h))), Num(Median(trips(st))))
			trow.Note = "counts " + countsText(trips(h)) + " vs " + countsText(trips(st))
			s.Rows = append(s.Rows, trow)
		}
	}
	for _, rtt := range rtts {
		for w, phase := range []string{"cold", "warm"} {
			h, st := snaps[rtt][kindHik][w], snaps[rtt][kindStock][w]
			row := NewRow(fmt.Sprintf("%s snapshot, first byte of the JPEG, %s RTT, median of %d", phase, fmtMS(rtt), len(h)), "ms", Num(Median(videos(h))), Num(Median(videos(st))))
			row.Note = rangeNote(videos(h), videos(st)) + "; round trips " + countsText(trips(h)) + " vs " + countsText(trips(st))
			s.Rows = append(s.Rows, row)
		}
	}
	for _, rtt := range rtts {
		h, st := talks[rtt][kindHik][0], talks[rtt][kindStock][0]
		row := NewRow(fmt.Sprintf("talk start, first audio packet to first byte at the device, %s RTT, median of %d", fmtMS(rtt), len(h)), "ms", Num(Median(videos(h))), Num(Median(videos(st))))
		row.Note = rangeNote(videos(h), videos(st)) + "; ISAPI round trips " + countsText(trips(h)) + " vs " + countsText(trips(st))
		s.Rows = append(s.Rows, row)
	}
	if len(results) > 1 {
		without := results[1]
		for _, rtt := range rtts {
			for w, phase := range []string{"cold", "warm"} {
				h, st := without[rtt][kindHik][w], without[rtt][kindStock][w]
				row := NewRow(fmt.Sprintf("%s, first video frame, %s RTT, go2rtc without patch %s, median of %d", phase, fmtMS(rtt), PlayFlushPatch[:4], len(h)), "ms", Num(Median(videos(h))), Num(Median(videos(st))))
				row.Note = rangeNote(videos(h), videos(st))
				s.Rows = append(s.Rows, row)
			}
		}
		// spread where the race lives: on the shortest link the source's
		// first packets can beat the consumer's PLAY; later ones cannot
		rtt := rtts[0]
		for vi, name := range []string{"with", "without"} {
			var hx, sx []float64
			for w := range 2 {
				hx = append(hx, videos(results[vi][rtt][kindHik][w])...)
				sx = append(sx, videos(results[vi][rtt][kindStock][w])...)
			}
			late := func(v []float64) float64 {
				n := 0
				for _, x := range v {
					if x > raceLate {
						n++
					}
				}
				return float64(n)
			}
			row := NewRow(fmt.Sprintf("%s RTT, cold and warm starts whose first video frame took over %s ms, %s patch %s (of %d)", fmtMS(rtt), formatNum(raceLate), name, PlayFlushPatch[:4], len(hx)), "", Num(late(hx)), Num(late(sx)))
			hl, hh := MinMax(hx)
			sl, sh := MinMax(sx)
			row.Note = fmt.Sprintf("first-frame spread %s–%s vs %s–%s ms, median %s vs %s", formatNum(hl), formatNum(hh), formatNum(sl), formatNum(sh), formatNum(Median(hx)), formatNum(Median(sx)))
			s.Rows = append(s.Rows, row)
		}
	}
	last := rtts[len(rtts)-1]
	for _, kind := range []string{kindHik, kindStock} {
		for w, phase := range []string{"cold", "warm"} {
			if ss := res[last][kind][w]; len(ss) > 0 {
				s.Notes = append(s.Notes, fmt.Sprintf("Round trips of the first %s %s start at %s RTT: %s.", phase, sourceName(kind), fmtMS(last), chainText(ss[0].chain)))
			}
		}
	}
	// A start that took more round trips than the first one, at any RTT
	// but 0 ms (where concurrent and sequential cannot be told apart).
	for _, rtt := range rtts {
		for _, kind := range []string{kindHik, kindStock} {
			for w, phase := range []string{"cold", "warm"} {
				ss := res[rtt][kind][w]
				if rtt == 0 || len(ss) == 0 {
					continue
				}
				longest := slices.MaxFunc(ss, func(a, b startSample) int { return a.trips - b.trips })
				if longest.trips <= ss[0].trips {
					continue
				}
				s.Notes = append(s.Notes, fmt.Sprintf("Longest %s %s start at %s RTT (%d round trips): %s.", phase, sourceName(kind), fmtMS(rtt), longest.trips, chainText(longest.chain)))
			}
		}
	}
	for _, kind := range []string{kindHik, kindStock} {
		if ss := talks[last][kind][0]; len(ss) > 0 {
			s.Notes = append(s.Notes, fmt.Sprintf("ISAPI round trips of the first %s talk start at %s RTT: %s.", sourceName(kind), fmtMS(last), chainText(ss[0].chain)))
		}
	}
	if r.opts.RTSP554 {
		s.Notes = append(s.Notes, "Each device on a loopback address of its own (127.0.1.N) with RTSP on port 554, which it reports over ISAPI (--rtsp-554).")
	} else {
		s.Notes = append(s.Notes, "RTSP on the simulator's own port, not 554 (--rtsp-554=false, or port 554 could not be bound): hikvision:// tries 554 beside its login, as real cameras listen there, and learns the port over ISAPI only after the login; stock rtsp:// is given the port.")
	}
	s.Notes = append(s.Notes,
		"Link: an in-process TCP proxy between go2rtc and each simulated device (ISAPI and RTSP), half the round trip each way, unlimited bandwidth; a connect costs one round trip. The consumer talks to go2rtc directly.",
		"First video frame: from the consumer's TCP connect to go2rtc to its first video RTP packet. Cold: first consumer since go2rtc started; warm: the next one after go2rtc stopped the producer.",
		"Sequential device round trips: counted by the proxy, not estimated: each request→answer turn-around of each connection (and each connect) between the consumer's connect and its first video packet, counting only those that took place one after another (concurrent ones count once). hikvision:// counts its ISAPI and RTSP connections, stock rtsp:// its RTSP connection.",
		"Snapshot: hikvision:// /api/hikvision/snapshot (the device's own JPEG over ISAPI) vs stock /api/frame.jpeg (go2rtc plays the RTSP stream, waits for a keyframe and has ffmpeg make the JPEG), in a go2rtc of their own started for them (cold: first ask since it started, warm: the next); from the request to the first byte of the JPEG.",
		"Talk: the consumer plays the stream with go2rtc's backchannel (?backchannel=1); once video flows it sends 20 ms G.711 packets; from its first audio packet to the first audio byte at the device, with the ISAPI round trips in that time. Stock: rtsp:// video + isapi:// talk (the usual config), each source on its own device (one that answers the audioData PUT at once: stock sends nothing to one that does not), in a go2rtc of their own.",
		fmt.Sprintf("Sources alternate which goes first; each run has its own device. Without %s: the same starts through go2rtc built from every patch but that one (PLAY's answer then leaves packets that reached the consumer before it waiting for the next marker packet).", PlayFlushPatch))
	return s
}

// latencyRun starts go2rtc (bin) on the streams and measures every device's
// cold then warm start for both sources.
func (r *runner) latencyRun(ctx context.Context, bin string, rtts []time.Duration, devs [][]*slowDevice, streams map[string]string) (latencyResult, error) {
	return eachStart(ctx, bin, rtts, devs, streams, func(g *e2e.Go2rtc, name string, d *slowDevice, kind string) (startSample, error) {
		return slowStart(ctx, g, name, d, kind)
	})
}

// eachStart starts go2rtc (bin) on the streams and measures, with start,
// every device's cold then warm start of both sources, alternating which
// source goes first.
func eachStart(ctx context.Context, bin string, rtts []time.Duration, devs [][]*slowDevice, streams map[string]string,
	start func(g *e2e.Go2rtc, name string, d *slowDevice, kind string) (startSample, error)) (latencyResult, error) {
	g, err := startGo2rtc(ctx, bin, streams)
	if err != nil {
		return nil, err
	}
	defer g.Stop()
	res := latencyResult{}
	for ri, rtt := range rtts {
		res[rtt] = map[string][2][]startSample{}
		for i, d := range devs[ri] {
			order := []string{kindHik, kindStock}
			if i%2 == 1 {
				order = []string{kindStock, kindHik}
			}
			for _, kind := range order {
				name := latStream(kind, ri, i)
				for w := range 2 {
					smp, err := start(g, name, d, kind)
					if err != nil {
						return nil, err
					}
					got := res[rtt][kind]
					got[w] = append(got[w], smp)
					res[rtt][kind] = got
				}
			}
		}
	}
	return res, nil
}

// slowStart plays stream once: time to the first video packet and the
// device round trips until then; then it waits for the producer to stop.
func slowStart(ctx context.Context, g *e2e.Go2rtc, stream string, d *slowDevice, kind string) (startSample, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rd, err := DialReader(ctx, consumerURL(g, stream))
	if err != nil {
		return startSample{}, fmt.Errorf("%s: %w", stream, err)
	}
	video, err := rd.WaitFirstVideo(ctx)
	rd.Close()
	if err != nil {
		return startSample{}, err
	}
	chain := d.roundTrips(kind, rd.Start, rd.Start.Add(video))
	smp := startSample{video: ms(video), trips: len(chain), chain: chain}
	if err = waitProducerStopped(ctx, g, stream, 10*time.Second); err != nil {
		return startSample{}, err
	}
	return smp, nil
}

func sourceName(kind string) string {
	if kind == kindHik {
		return "hikvision://"
	}
	return "rtsp://"
}

func latStream(kind string, rtt, i int) string { return fmt.Sprintf("%s_lat%d_%d", kind, rtt, i) }

func fmtMS(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', -1, 64) + " ms"
}

// raceLate (ms): a first frame later than this on a 0 ms link waited for
// a marker packet (a 25 fps frame is 40 ms) or for the machine.
const raceLate = 30.0

// countsText lists integer counts: "5,5,6".
func countsText(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = strconv.Itoa(int(x))
	}
	return strings.Join(parts, ",")
}

// latencySnapshots starts go2rtc (bin) on the streams and asks every device
// for a snapshot twice per source (cold: first request since go2rtc
// started; warm: the next one): hikvision:// through the module's snapshot
// endpoint, stock through go2rtc's /api/frame.jpeg (a keyframe from the
// RTSP stream, turned into a JPEG by ffmpeg).
func (r *runner) latencySnapshots(ctx context.Context, bin string, rtts []time.Duration, devs [][]*slowDevice, streams map[string]string) (latencyResult, error) {
	return eachStart(ctx, bin, rtts, devs, streams, func(g *e2e.Go2rtc, name string, d *slowDevice, kind string) (startSample, error) {
		path := "/api/frame.jpeg?src=" + name
		if kind == kindHik {
			path = "/api/hikvision/snapshot?src=" + name
		}
		smp, err := snapshotStart(ctx, g, path, d, kind)
		if err != nil {
			return startSample{}, fmt.Errorf("%s: %w", name, err)
		}
		if kind == kindStock {
			// frame.jpeg's producer: stopped before the next ask
			err = waitProducerStopped(ctx, g, name, 10*time.Second)
		}
		return smp, err
	})
}

// snapshotStart GETs path and returns the time to the first byte of the
// JPEG (FF D8) and the device round trips until then.
func snapshotStart(ctx context.Context, g *e2e.Go2rtc, path string, d *slowDevice, kind string) (startSample, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.URL(path), nil)
	if err != nil {
		return startSample{}, err
	}
	start := time.Now()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return startSample{}, err
	}
	defer res.Body.Close()
	var soi [2]byte
	_, err = io.ReadFull(res.Body, soi[:])
	first := time.Now()
	if err != nil || res.StatusCode != http.StatusOK || soi != [2]byte{0xFF, 0xD8} {
		body, _ := io.ReadAll(io.LimitReader(res.Body, 200))
		return startSample{}, fmt.Errorf("snapshot %s: status %d, starts %x %q (%v): not a JPEG", path, res.StatusCode, soi, body, err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	chain := d.roundTrips(kind, start, first)
	return startSample{video: ms(first.Sub(start)), trips: len(chain), chain: chain}, nil
}

// startGo2rtc starts go2rtc and waits until the hikvision scheme is
// registered: go2rtc's RTSP server listens before the module's Init runs
// (its line comes later in go2rtc's module table), and a consumer in that
// window gets 404 "unsupported scheme".
func startGo2rtc(ctx context.Context, bin string, streams map[string]string) (*e2e.Go2rtc, error) {
	g, err := e2e.Start(ctx, e2e.Options{Bin: bin, Config: streamsYAML(streams)})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		schemes, err := g.Schemes(ctx)
		if err == nil && slices.Contains(schemes, "hikvision") {
			return g, nil
		}
		t := time.NewTimer(10 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			_ = g.Stop()
			return nil, fmt.Errorf("bench: go2rtc has no hikvision scheme after 30 s (%v)", err)
		}
	}
}

// latencyTalk measures talk start over the slow links: a consumer plays the
// stream with go2rtc's backchannel (?backchannel=1), and once video flows it
// sends 20 ms G.711 packets; the figure is from its first audio packet to the
// first audio byte at the device. Each source has its own device per run (a
// device takes one talk session at a time); stock is the usual go2rtc
// config for a Hikvision camera with talk: rtsp:// video and isapi:// talk.
func (r *runner) latencyTalk(ctx context.Context, rtts []time.Duration) (latencyResult, error) {
	type pair struct{ hik, stock *slowDevice }
	var devs [][]pair
	defer func() {
		for _, ps := range devs {
			for _, p := range ps {
				for _, d := range []*slowDevice{p.hik, p.stock} {
					if d != nil {
						d.close()
					}
				}
			}
		}
	}()
	streams := map[string]string{}
	for ri, rtt := range rtts {
		var ps []pair
		for i := 0; i < r.opts.LatencyRuns; i++ {
			var p pair
			var err error
			// a device that answers the audioData PUT at once: stock
			// isapi:// sends no audio to one that does not
			cfg := sim.Config{Talk: sim.TalkConfig{AnswerAudioData: true}}
			if p.hik, err = startSlowDevice(rtt, cfg, r.opts.RTSP554); err == nil {
				p.stock, err = startSlowDevice(rtt, cfg, r.opts.RTSP554)
			}
			ps = append(ps, p)
			if err != nil {
				devs = append(devs, ps)
				return nil, err
			}
			streams[talkStream(kindHik, ri, i)] = p.hik.hikURL()
			streams[talkStream(kindStock, ri, i)] = p.stock.rtspURL() + "\n" +
				"isapi://" + url.UserPassword(simUser, simPassword).String() + "@" + p.stock.http.Addr() + "/"
		}
		devs = append(devs, ps)
	}
	g, err := startGo2rtc(ctx, r.bin, streams)
	if err != nil {
		return nil, err
	}
	defer g.Stop()
	res := latencyResult{}
	for ri, rtt := range rtts {
		res[rtt] = map[string][2][]startSample{}
		for i, p := range devs[ri] {
			order := []string{kindHik, kindStock}
			if i%2 == 1 {
				order = []string{kindStock, kindHik}
			}
			for _, kind := range order {
				d := p.hik
				if kind == kindStock {
					d = p.stock
				}
				smp, err := talkStart(ctx, g, talkStream(kind, ri, i), d)
				if err != nil {
					return nil, err
				}
				got := res[rtt][kind]
				got[0] = append(got[0], smp)
				res[rtt][kind] = got
			}
		}
	}
	return res, nil
}

func talkStream(kind string, rtt, i int) string { return fmt.Sprintf("%s_tlat%d_%d", kind, rtt, i) }

// talkStart: see latencyTalk. The round trips are those of the device's
// ISAPI side (the talk session) from the first audio packet on.
func talkStart(ctx context.Context, g *e2e.Go2rtc, stream string, d *slowDevice) (startSample, error) {
	const ip = "127.0.0.1" // the proxies dial the device from loopback
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rd, err := DialReader(ctx, consumerURL(g, stream)+"?backchannel=1")
	if err != nil {
		return startSample{}, fmt.Errorf("%s: %w", stream, err)
	}
	defer rd.Close()
	if _, err = rd.WaitFirstVideo(ctx); err != nil {
		return startSample{}, err
	}
	var silence byte
	switch codec := rd.Backchannel(); {
	case strings.HasPrefix(codec, "PCMU/8000"):
		silence = 0xFF
	case strings.HasPrefix(codec, "PCMA/8000"):
		silence = 0xD5
	default:
		return startSample{}, fmt.Errorf("%s: backchannel codec %q, want PCMU/8000 or PCMA/8000", stream, codec)
	}
	payload := make([]byte, 160)
	for i := range payload {
		payload[i] = silence ^ byte(i&1) // quiet, not silent: the device must see bytes
	}
	before := d.dev.TalkClient(ip).Bytes
	tick := time.NewTicker(talkPacket)
	defer tick.Stop()
	poll := time.NewTicker(2 * time.Millisecond)
	defer poll.Stop()
	start := time.Now()
	for sent := 0; ; {
		if d.dev.TalkClient(ip).Bytes > before {
			at := time.Now()
			chain := SequentialChain(d.http.RoundTrips(start, at))
			return startSample{video: ms(at.Sub(start)), trips: len(chain), chain: chain}, nil
		}
		select {
		case <-tick.C:
			if sent*int(talkPacket) > int(TalkBurst) {
				return startSample{}, fmt.Errorf("%s: no audio at the device after %v of talk", stream, TalkBurst)
			}
			if err := rd.WriteAudio(payload, uint32(len(payload))); err != nil {
				return startSample{}, fmt.Errorf("%s: send audio: %w", stream, err)
			}
			sent++
		case <-poll.C:
		case <-ctx.Done():
			return startSample{}, ctx.Err()
		}
	}
}
