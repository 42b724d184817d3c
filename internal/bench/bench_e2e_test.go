package bench

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestQuickBench runs the whole quick bench against the real patched go2rtc
// (built and cached by internal/build) and checks that every section produced
// its figures for both sources. It checks that the bench works, not how fast
// anything is (no thresholds: CI machines are noisy).
//
//	HIKVISION_BENCH=1 go test -run TestQuickBench -v -timeout 10m ./internal/bench
func TestQuickBench(t *testing.T) {
	if os.Getenv("HIKVISION_BENCH") != "1" {
		t.Skip("set HIKVISION_BENCH=1 to run the quick bench (about 3 minutes)")
	}
	base := runtime.NumGoroutine()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	start := time.Now()
	rep, err := Run(ctx, Options{Quick: true, Log: testLog{t}, Bin: os.Getenv("HIKVISION_BENCH_GO2RTC")})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	t.Logf("quick bench took %v\n%s", time.Since(start).Round(time.Second), rep.Markdown())

	byName := map[string]Section{}
	for _, s := range rep.Sections {
		if s.Error != "" {
			t.Errorf("section %s: %s", s.Name, s.Error)
		}
		byName[s.Name] = s
	}
	for _, name := range AllSections {
		if _, ok := byName[name]; !ok {
			t.Errorf("section %s missing", name)
		}
	}
	numbers := func(section string, want int) {
		t.Helper()
		n := 0
		for _, row := range byName[section].Rows {
			if row.Hikvision != nil && row.Stock != nil {
				n++
				if *row.Hikvision < 0 || *row.Stock < 0 {
					t.Errorf("%s: %q: negative figure %v / %v", section, row.Metric, *row.Hikvision, *row.Stock)
				}
			}
		}
		if n < want {
			t.Errorf("%s: %d rows with both figures, want at least %d", section, n, want)
		}
	}
	numbers(SectionTTFF, 4)
	numbers(SectionLoad, 6)
	numbers(SectionLogins, 3)
	numbers(SectionSDK, 7) // ttff cold and warm, talk (burst, after stop: opens, requests), recovery, failed logins
	for _, row := range byName[SectionSDK].Rows {
		if strings.Contains(row.Metric, "opened by a") && (row.Hikvision == nil || *row.Hikvision < 1 || row.Stock == nil || *row.Stock < 1) {
			t.Errorf("sdk %q: the burst opened no talk session (%v / %v)", row.Metric, row.Hikvision, row.Stock)
		}
	}
	// sdkload (quick: the largest count only, 4 streams)
	numbers(SectionSDKLoad, 3)
	for _, row := range byName[SectionSDKLoad].Rows {
		if strings.Contains(row.Metric, "go2rtc CPU") && (*row.Hikvision <= 0 || *row.Stock <= 0 || row.Ratio == nil) {
			t.Errorf("sdkload %q: no CPU or ratio measured", row.Metric)
		}
		if strings.Contains(row.Metric, "packets") && (*row.Hikvision < 10 || *row.Stock < 10) {
			t.Errorf("sdkload %q: consumers got almost no packets", row.Metric)
		}
	}
	if notes := strings.Join(byName[SectionSDKLoad].Notes, "\n"); strings.Count(notes, "noise band ±") != 1 {
		t.Errorf("sdkload: want one verdict against the noise band, notes:\n%s", notes)
	}
	for _, row := range byName[SectionTTFF].Rows {
		if row.Hikvision != nil && (*row.Hikvision <= 0 || *row.Stock <= 0) {
			t.Errorf("ttff %q: zero time %v / %v", row.Metric, *row.Hikvision, *row.Stock)
		}
	}
	if rows := byName[SectionRecovery].Rows; len(rows) != 2 {
		t.Errorf("recovery: %d rows, want 2 (one outage in quick mode)", len(rows))
	}
	for _, row := range byName[SectionLoad].Rows {
		if strings.Contains(row.Metric, "go2rtc CPU") && (*row.Hikvision <= 0 || *row.Stock <= 0) {
			t.Errorf("load %q: no CPU measured", row.Metric)
		}
		if strings.Contains(row.Metric, "packets") && (*row.Hikvision < 10 || *row.Stock < 10) {
			t.Errorf("load %q: consumers got almost no packets", row.Metric)
		}
	}
	ratioRows := 0
	for _, row := range byName[SectionLoad].Rows {
		if strings.Contains(row.Metric, "CPU ratio of each round") {
			ratioRows++
			if row.HikvisionText == "" || row.StockText == "" {
				t.Errorf("load %q: no per-round ratios (%q / %q)", row.Metric, row.HikvisionText, row.StockText)
			}
		}
		if strings.Contains(row.Metric, "go2rtc CPU") && row.Ratio == nil {
			t.Errorf("load %q: no ratio", row.Metric)
		}
	}
	if ratioRows != 2 {
		t.Errorf("load: %d per-round ratio rows, want 2 (1 and 4 streams)", ratioRows)
	}
	if notes := strings.Join(byName[SectionLoad].Notes, "\n"); strings.Count(notes, "noise band ±") != 2 {
		t.Errorf("load: want a verdict against the noise band for each stream count, notes:\n%s", notes)
	}
	if rows := byName[SectionTalk].Rows; len(rows) != 20 {
		t.Errorf("talk: %d rows, want 20 (10 per device variant)", len(rows))
	}
	for _, row := range byName[SectionTalk].Rows {
		if strings.Contains(row.Metric, "after the producer stopped") && (row.Hikvision == nil || row.Stock == nil) {
			t.Errorf("talk %q: not measured", row.Metric)
		}
	}
	// latency (quick: 0 and 80 ms, one start each): a first frame and a
	// first-frame row per phase, and a counted round trip row, for both
	numbers(SectionLatency, 8)
	for _, row := range byName[SectionLatency].Rows {
		if row.Hikvision == nil || row.Stock == nil {
			continue
		}
		if strings.Contains(row.Metric, "round trips") && (*row.Hikvision < 1 || *row.Stock < 1) {
			t.Errorf("latency %q: no round trip counted (%v / %v)", row.Metric, *row.Hikvision, *row.Stock)
		}
		// 80 ms RTT: a start needs at least a connect and a request
		if strings.Contains(row.Metric, "first video frame, 80 ms") && (*row.Hikvision < 160 || *row.Stock < 160) {
			t.Errorf("latency %q: %v / %v ms, less than two 80 ms round trips: the proxy does not delay", row.Metric, *row.Hikvision, *row.Stock)
		}
	}
	if rows := byName[SectionBlip].Rows; len(rows) != 6 {
		t.Errorf("blip: %d rows, want 6 (lone and in a row: median, worst, lost)", len(rows))
	} else if rows[0].Hikvision == nil || rows[0].Stock == nil || rows[3].Hikvision == nil || rows[3].Stock == nil {
		t.Errorf("blip: video not back after the silence (%+v / %+v)", rows[0], rows[3])
	}
	if len(rep.GoBench) == 0 {
		t.Error("no Go benchmark results")
	}
	if _, err := rep.JSON(); err != nil {
		t.Error(err)
	}
	waitGoroutines(t, base)
}

// TestLoadCPUProfile runs one load round with --cpuprofile: go2rtc is built
// with the hikvision_pprof tag and each go2rtc of the round's two phases
// leaves a CPU profile (gzipped protobuf) covering its window.
//
//	HIKVISION_BENCH=1 go test -run TestLoadCPUProfile -v ./internal/bench
func TestLoadCPUProfile(t *testing.T) {
	if os.Getenv("HIKVISION_BENCH") != "1" {
		t.Skip("set HIKVISION_BENCH=1 to run (builds go2rtc with -tags hikvision_pprof)")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Options{Quick: true, Only: []string{SectionLoad}, Log: testLog{t},
		StreamCounts: []int{1}, LoadRounds: 1, LoadWindow: 2 * time.Second, CPUProfile: dir})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(rep.Sections) != 1 || rep.Sections[0].Error != "" {
		t.Fatalf("load section: %+v", rep.Sections)
	}
	for _, name := range []string{"load-1-r1-1-hik.pprof", "load-1-r1-1-stock.pprof", "load-1-r1-2-stockA.pprof", "load-1-r1-2-stockB.pprof"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Error(err)
			continue
		}
		if len(data) < 100 || data[0] != 0x1f || data[1] != 0x8b {
			t.Errorf("%s: %d bytes, not a gzipped pprof profile", name, len(data))
		}
	}
}
