package e2e_test

// Time to first frame (TTFF) through go2rtc, hikvision:// versus go2rtc's
// stock rtsp:// source on the same simulated camera, cold and warm, with the
// device round trips each costs.
//
// "First frame" is measured by a small RTSP client in this test (go2rtc's own
// pkg/rtsp client, TCP interleaved) reading go2rtc's RTSP output, timed from
// before its TCP connect. That has less noise than ffprobe, whose start-up
// and stream probing add ~100+ ms of its own. Three times per run:
//
//	DESCRIBE:       go2rtc answered DESCRIBE, i.e. it has dialled the source
//	                (hikvision: ISAPI probe + RTSP DESCRIBE; rtsp: RTSP DESCRIBE).
//	                This is where the two sources differ; it has little noise.
//	first packet:   first video RTP packet. go2rtc starts the producer during
//	                DESCRIBE, so this is quantised by the 25 fps frame clock
//	                (~2 ms or ~42 ms) whatever the source.
//	first keyframe: first SPS/IDR packet, the first frame a player can decode.
//	                When the stream's first IDR reaches go2rtc before the
//	                consumer's PLAY it is lost, and the next one comes a GOP
//	                (1 s) later: counted as "missed the first IDR".
//
//	cold: a fresh simulated camera and a fresh go2rtc stream name per run, so
//	      the hikvision probe cache and go2rtc know nothing of the device;
//	warm: the same stream again after the previous consumer left and go2rtc
//	      stopped the producer: go2rtc dials the source again (a reconnect).
//
// Device round trips are counted by the simulator (per client IP): ISAPI
// requests (each one round trip, challenges included), digest challenges, and
// RTSP connections.
//
// Run the benchmark (never a pass/fail timing):
//
//	go test ./internal/e2e -run '^$' -bench TTFF -benchtime 10x
//
// TestTTFF logs the same figures (median of a few runs) and asserts only the
// request counts: a warm hikvision:// dial makes no ISAPI request.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/AlexxIT/go2rtc/pkg/core"
	"github.com/AlexxIT/go2rtc/pkg/rtsp"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/e2e"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

// ttffTimeout bounds one first-frame measurement.
const ttffTimeout = 15 * time.Second

// ttffSources are the two sources compared, as a source URL for a device.
var ttffSources = []struct {
	name string
	url  func(d *sim.Device) string
}{
	{"hikvision", func(d *sim.Device) string {
		return "hikvision://admin:hik12345@" + d.HTTPAddr() + "/?channel=1&stream=main"
	}},
	{"rtsp", func(d *sim.Device) string { // go2rtc's stock source, as a user would write it
		return "rtsp://admin:hik12345@" + d.RTSPAddr() + "/Streaming/Channels/101"
	}},
}

// deviceCount is what one run cost the device.
type deviceCount struct {
	ISAPI      int // ISAPI requests (round trips), challenges included
	Challenges int // 401 digest challenges
	RTSPConns  int // RTSP connections accepted
	Failed     int // failed logins (ISAPI + RTSP): must stay 0
}

func countDevice(d *sim.Device) deviceCount {
	cs := d.Client("127.0.0.1")
	n := deviceCount{Challenges: cs.Challenges, RTSPConns: cs.RTSPConnections,
		Failed: cs.FailedLogins + cs.RTSPFailedLogins}
	for _, v := range cs.Requests {
		n.ISAPI += v
	}
	return n
}

func (a deviceCount) sub(b deviceCount) deviceCount {
	return deviceCount{a.ISAPI - b.ISAPI, a.Challenges - b.Challenges, a.RTSPConns - b.RTSPConns, a.Failed - b.Failed}
}

// apiDo sends a request without body to go2rtc's API.
func apiDo(ctx context.Context, g *e2e.Go2rtc, method, path string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, g.URL(path), nil)
	if err != nil {
		return 0, nil, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	return res.StatusCode, body, err
}

// addStream adds a stream to go2rtc (PUT /api/streams).
func addStream(ctx context.Context, g *e2e.Go2rtc, name, src string) error {
	status, body, err := apiDo(ctx, g, http.MethodPut,
		"/api/streams?name="+url.QueryEscape(name)+"&src="+url.QueryEscape(src))
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("PUT /api/streams %s: status %d: %s", name, status, body)
	}
	return nil
}

// deleteStream removes a stream (DELETE /api/streams; patches/0002 stops its
// producers).
func deleteStream(ctx context.Context, g *e2e.Go2rtc, name string) error {
	status, body, err := apiDo(ctx, g, http.MethodDelete, "/api/streams?src="+url.QueryEscape(name))
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("DELETE /api/streams %s: status %d: %s", name, status, body)
	}
	return nil
}

// waitProducerStopped polls until go2rtc shows no connected producer for the
// stream (go2rtc stops the producer when its last consumer leaves).
func waitProducerStopped(ctx context.Context, g *e2e.Go2rtc, name string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, body, err := g.Get(ctx, "/api/streams?src="+url.QueryEscape(name))
		if err != nil {
			return err
		}
		if status != http.StatusOK {
			return fmt.Errorf("GET /api/streams?src=%s: status %d: %s", name, status, body)
		}
		prods, err := parseProducers(body)
		if err != nil {
			return err
		}
		running := false
		for _, p := range prods {
			running = running || p.FormatName != ""
		}
		if !running {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("producer of %s still running after its consumer left: %s", name, body)
		}
		time.Sleep(10 * time.Millisecond) // polling with a deadline
	}
}

// ttffTimes are the times of one run, from before the TCP connect to go2rtc.
type ttffTimes struct {
	Describe time.Duration // go2rtc answered DESCRIBE: it has dialled the source (probe, RTSP DESCRIBE)
	Frame    time.Duration // first video RTP packet (any frame)
	Key      time.Duration // first packet of a keyframe (SPS or IDR): the first frame a player can decode
}

// firstFrame connects to go2rtc's RTSP output of stream name, sets up its
// video track, plays, and returns the times to go2rtc's DESCRIBE answer and
// to the first video RTP packet. The connection is closed (and its goroutine
// ended) before it returns.
func firstFrame(ctx context.Context, g *e2e.Go2rtc, name string) (ttffTimes, error) {
	var tt ttffTimes
	ctx, cancel := context.WithTimeout(ctx, ttffTimeout)
	defer cancel()

	start := time.Now()
	c := rtsp.NewClient("rtsp://" + g.RTSPAddr + "/" + name)
	c.Timeout = int(ttffTimeout / time.Second)
	if err := c.Dial(); err != nil {
		return tt, fmt.Errorf("rtsp dial go2rtc: %w", err)
	}
	closeConn := func() {
		if cl, ok := c.Connection.Transport.(io.Closer); ok {
			_ = cl.Close()
		}
	}
	stop := context.AfterFunc(ctx, closeConn) // ctx ends: unblock Describe/Setup/read
	defer stop()

	if err := c.Describe(); err != nil {
		closeConn()
		return tt, fmt.Errorf("rtsp describe %s: %w", name, err)
	}
	tt.Describe = time.Since(start)
	var video *core.Media
	for _, m := range c.Medias {
		if m.Kind == core.KindVideo && m.Direction == core.DirectionRecvonly {
			video = m
			break
		}
	}
	if video == nil {
		closeConn()
		return tt, fmt.Errorf("go2rtc offers no video for %s: %v", name, c.Medias)
	}
	r, err := c.GetTrack(video, video.Codecs[0])
	if err != nil {
		closeConn()
		return tt, fmt.Errorf("rtsp setup %s: %w", name, err)
	}
	got, gotKey := make(chan time.Duration, 1), make(chan time.Duration, 1)
	var once, onceKey atomic.Bool
	codec := video.Codecs[0].Name
	r.AppendChild(&core.Node{Codec: r.Codec, Input: func(pkt *core.Packet) {
		if once.CompareAndSwap(false, true) {
			got <- time.Since(start)
		}
		if isKeyStart(codec, pkt.Payload) && onceKey.CompareAndSwap(false, true) {
			gotKey <- time.Since(start)
		}
	}})

	played := make(chan error, 1)
	go func() { played <- c.Start() }()

	startEnded := false
	select {
	case tt.Frame = <-got:
		select {
		case tt.Key = <-gotKey:
		case err = <-played:
			startEnded = true
			err = fmt.Errorf("rtsp play %s: no keyframe: %v", name, err)
		case <-ctx.Done():
			err = fmt.Errorf("rtsp play %s: no keyframe within %v", name, ttffTimeout)
		}
	case err = <-played:
		startEnded = true
		if err == nil {
			err = errors.New("session ended")
		}
		err = fmt.Errorf("rtsp play %s: no video packet: %w", name, err)
	case <-ctx.Done():
		err = fmt.Errorf("rtsp play %s: no video packet within %v", name, ttffTimeout)
	}
	// End the read loop by closing the socket first (rtsp.Conn.Stop changes
	// state the loop reads, see hikvision.Producer.Stop), then wait for it.
	closeConn()
	if !startEnded {
		<-played // a closed-socket error: expected
	}
	_ = c.Stop()
	return tt, err
}

// isKeyStart: the RTP payload starts an H.264 keyframe (SPS or IDR, also
// as the first NAL of a STAP-A or the start of an FU-A).
func isKeyStart(codec string, p []byte) bool {
	if len(p) < 3 || codec != core.CodecH264 {
		return false
	}
	t := p[0] & 0x1f
	switch t {
	case 24:
		t = p[3] & 0x1f
	case 28:
		if p[1]&0x80 == 0 {
			return false
		}
		t = p[1] & 0x1f
	}
	return t == 5 || t == 7
}

// ttffRig is one go2rtc with a counter for fresh stream names.
type ttffRig struct {
	g *e2e.Go2rtc
	n int
}

// cold: a fresh device and stream; returns the stream, its device and the run.
func (r *ttffRig) cold(ctx context.Context, t testing.TB, source int) (string, *sim.Device, ttffTimes, deviceCount) {
	t.Helper()
	dev := startSim(t, sim.Config{}) // admin / hik12345, H.264 + PCMU
	r.n++
	name := fmt.Sprintf("ttff_%s_%d", ttffSources[source].name, r.n)
	if err := addStream(ctx, r.g, name, ttffSources[source].url(dev)); err != nil {
		t.Fatal(err)
	}
	tt, cnt := r.run(ctx, t, name, dev)
	return name, dev, tt, cnt
}

// run measures one first frame on stream name and waits until go2rtc has
// stopped the producer again; it returns the device's counts for the run.
func (r *ttffRig) run(ctx context.Context, t testing.TB, name string, dev *sim.Device) (ttffTimes, deviceCount) {
	t.Helper()
	before := countDevice(dev)
	tt, err := firstFrame(ctx, r.g, name)
	if err != nil {
		t.Fatalf("%v\ngo2rtc output:\n%s", err, r.g.Output())
	}
	if err := waitProducerStopped(ctx, r.g, name); err != nil {
		t.Fatal(err)
	}
	return tt, countDevice(dev).sub(before)
}

// done removes the stream from go2rtc before its device is closed (at the
// end of the test), so go2rtc does not redial a closed device.
func (r *ttffRig) done(ctx context.Context, t testing.TB, name string) {
	t.Helper()
	if err := deleteStream(ctx, r.g, name); err != nil {
		t.Error(err)
	}
}

// ttffStats summarises runs: medians of the times, how many runs waited for
// a later keyframe (the first one was lost), and the device counts per run
// (averaged).
type ttffStats struct {
	Describe, Frame, Key         time.Duration
	KeyLate, Runs                int
	ISAPI, Challenges, RTSPConns float64
	Failed                       int
}

// keyLate: a first keyframe later than this missed the stream's first IDR
// and waited for the next GOP (1 s in the simulator's media).
const keyLate = 500 * time.Millisecond

func summarise(tts []ttffTimes, cnts []deviceCount) ttffStats {
	var desc, frame, key []time.Duration
	s := ttffStats{Runs: len(tts)}
	for _, tt := range tts {
		desc, frame, key = append(desc, tt.Describe), append(frame, tt.Frame), append(key, tt.Key)
		if tt.Key > keyLate {
			s.KeyLate++
		}
	}
	s.Describe, s.Frame, s.Key = median(desc), median(frame), median(key)
	for _, c := range cnts {
		s.ISAPI += float64(c.ISAPI)
		s.Challenges += float64(c.Challenges)
		s.RTSPConns += float64(c.RTSPConns)
		s.Failed += c.Failed
	}
	n := float64(len(cnts))
	s.ISAPI, s.Challenges, s.RTSPConns = s.ISAPI/n, s.Challenges/n, s.RTSPConns/n
	return s
}

func (s ttffStats) String() string {
	return fmt.Sprintf("DESCRIBE %5.1f ms, first packet %5.1f ms, first keyframe %6.1f ms (%d of %d runs missed the first IDR); "+
		"per run: %.1f ISAPI requests (%.1f challenges), %.1f RTSP connections",
		ms(s.Describe), ms(s.Frame), ms(s.Key), s.KeyLate, s.Runs, s.ISAPI, s.Challenges, s.RTSPConns)
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// TestTTFF measures cold and warm time to first frame for both sources and
// logs the medians. It asserts only the device round trips: a warm
// hikvision:// dial makes zero ISAPI requests (the probe is cached), a cold
// one makes some (the counter works), no run fails a login.
func TestTTFF(t *testing.T) {
	bin := binary(t)
	const runs = 5
	r := &ttffRig{g: e2e.StartGo2rtc(t, bin, "log:\n  level: info\n")}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base := runtime.NumGoroutine()

	for si, src := range ttffSources {
		var cold, warm []ttffTimes
		var coldCnt, warmCnt []deviceCount
		for i := 0; i < runs; i++ {
			name, dev, tt, cnt := r.cold(ctx, t, si)
			cold, coldCnt = append(cold, tt), append(coldCnt, cnt)
			tt, cnt = r.run(ctx, t, name, dev)
			warm, warmCnt = append(warm, tt), append(warmCnt, cnt)
			r.done(ctx, t, name)
			if err := dev.Close(); err != nil {
				t.Error(err)
			}
		}
		t.Logf("%-9s cold (median of %d): %v", src.name, runs, summarise(cold, coldCnt))
		t.Logf("%-9s warm (median of %d): %v", src.name, runs, summarise(warm, warmCnt))

		for i := range runs {
			if c := coldCnt[i]; c.Failed != 0 || c.RTSPConns == 0 {
				t.Errorf("%s cold run %d: device counts %+v, want no failed login and an RTSP connection", src.name, i, c)
			}
			if c := warmCnt[i]; c.Failed != 0 || c.RTSPConns == 0 {
				t.Errorf("%s warm run %d: device counts %+v, want no failed login and an RTSP connection (a new dial)", src.name, i, c)
			}
			switch src.name {
			case "hikvision":
				if coldCnt[i].ISAPI == 0 {
					t.Errorf("hikvision cold run %d made no ISAPI request: the device was not cold (%+v)", i, coldCnt[i])
				}
				if warmCnt[i].ISAPI != 0 || warmCnt[i].Challenges != 0 {
					t.Errorf("hikvision warm run %d: %d ISAPI requests (%d challenges), want 0 (cached probe)",
						i, warmCnt[i].ISAPI, warmCnt[i].Challenges)
				}
			case "rtsp":
				if coldCnt[i].ISAPI != 0 || warmCnt[i].ISAPI != 0 {
					t.Errorf("stock rtsp:// made ISAPI requests: cold %+v warm %+v", coldCnt[i], warmCnt[i])
				}
			}
		}
	}
	// the RTSP client's and the devices' goroutines are gone
	http.DefaultClient.CloseIdleConnections()
	waitGoroutines(t, base)
}

// BenchmarkTTFF reports, per source and cold/warm: the median time to
// go2rtc's DESCRIBE answer and to the first video packet (ms), and the device
// round trips per run. Ignore ns/op: it is a whole iteration, including the
// wait for the keyframe and for go2rtc to stop the producer again.
//
//	go test ./internal/e2e -run '^$' -bench TTFF -benchtime 10x
func BenchmarkTTFF(b *testing.B) {
	if testing.Short() {
		b.Skip("builds go2rtc")
	}
	bin := e2e.Go2rtcBinary(b)
	r := &ttffRig{g: e2e.StartGo2rtc(b, bin, "log:\n  level: info\n")}
	ctx := context.Background()

	report := func(b *testing.B, tts []ttffTimes, cnts []deviceCount) {
		s := summarise(tts, cnts)
		b.ReportMetric(ms(s.Describe), "ms-describe")
		b.ReportMetric(ms(s.Frame), "ms-first-packet")
		b.ReportMetric(ms(s.Key), "ms-first-keyframe")
		b.ReportMetric(float64(s.KeyLate)/float64(s.Runs), "idr-missed/op")
		b.ReportMetric(s.ISAPI, "isapi-req/op")
		b.ReportMetric(s.Challenges, "challenges/op")
		b.ReportMetric(s.RTSPConns, "rtsp-conns/op")
		if s.Failed != 0 {
			b.Errorf("%d failed logins", s.Failed)
		}
	}

	for si, src := range ttffSources {
		b.Run(src.name+"-cold", func(b *testing.B) {
			var tts []ttffTimes
			var cnts []deviceCount
			for i := 0; i < b.N; i++ {
				name, _, tt, cnt := r.cold(ctx, b, si)
				tts, cnts = append(tts, tt), append(cnts, cnt)
				b.StopTimer()
				r.done(ctx, b, name)
				b.StartTimer()
			}
			report(b, tts, cnts)
		})
		b.Run(src.name+"-warm", func(b *testing.B) {
			b.StopTimer()
			name, dev, _, _ := r.cold(ctx, b, si)
			b.StartTimer()
			var tts []ttffTimes
			var cnts []deviceCount
			for i := 0; i < b.N; i++ {
				tt, cnt := r.run(ctx, b, name, dev)
				tts, cnts = append(tts, tt), append(cnts, cnt)
			}
			b.StopTimer()
			r.done(ctx, b, name)
			report(b, tts, cnts)
		})
	}
}
