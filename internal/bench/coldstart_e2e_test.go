package bench

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/build"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

// TestColdStartRoundTrips counts, at a delaying proxy, the sequential device
// round trips of hikvision:// and stock rtsp:// starts through the real
// patched go2rtc: a cold hikvision:// start costs at most one more than
// stock, a warm one no more. Counted, not timed: the figure does not depend
// on the machine's speed. RTSP listens on port 554 as on real cameras where
// this process may bind it; elsewhere the URL names the RTSP port
// (rtsp_port), which takes the same path.
func TestColdStartRoundTrips(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts go2rtc")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	root, err := build.FindRepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	bin, err := build.Build(ctx, build.Options{RepoRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	const rtt = 40 * time.Millisecond
	port554 := CanBindRTSP554()
	d, err := startSlowDevice(rtt, sim.Config{}, port554)
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	hik := d.hikURL()
	if !port554 {
		hik += "&rtsp_port=" + d.rtsp.Addr()[strings.LastIndexByte(d.rtsp.Addr(), ':')+1:]
	}
	streams := map[string]string{latStream(kindHik, 0, 0): hik, latStream(kindStock, 0, 0): d.rtspURL()}
	r := &runner{opts: Options{Log: testLog{t}}}
	res, err := r.latencyRun(ctx, bin, []time.Duration{rtt}, [][]*slowDevice{{d}}, streams)
	if err != nil {
		t.Fatal(err)
	}
	chain := func(s startSample) string { return strconv.Itoa(s.trips) + ": " + chainText(s.chain) }
	for w, phase := range []string{"cold", "warm"} {
		h, st := res[rtt][kindHik][w][0], res[rtt][kindStock][w][0]
		allowed := st.trips
		if phase == "cold" {
			allowed++
		}
		t.Logf("%s: hikvision:// %s\nrtsp:// %s", phase, chain(h), chain(st))
		if st.trips < 5 {
			t.Errorf("%s rtsp:// start: %d round trips counted; the proxy does not count (connect, DESCRIBE ×2, SETUP, PLAY at least)", phase, st.trips)
		}
		if h.trips > allowed {
			t.Errorf("%s hikvision:// start: %d sequential round trips, stock %d: more than %d", phase, h.trips, st.trips, allowed)
		}
	}
}
