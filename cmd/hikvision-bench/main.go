// Command hikvision-bench measures the hikvision:// source side by side with
// go2rtc's stock sources (rtsp:// for video, isapi:// for talk) on the same
// simulated devices, through one patched go2rtc (built and cached by
// internal/build), and prints a markdown table (for README) and, with --json,
// writes the same figures as JSON.
//
//	go run ./cmd/hikvision-bench [--quick] [--json FILE] [--only ttff,recovery,logins,talk,load,gobench]
//
// --quick is the CI mode (under 3 minutes on 2 cores, no thresholds). The
// simulator runs inside this process.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/bench"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("hikvision-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quick := fs.Bool("quick", false, "short run for CI: 3 TTFF runs, one 2 s outage, 1 and 4 streams, 20 s of wrong password")
	jsonFile := fs.String("json", "", "also write the report as JSON to `FILE`")
	only := fs.String("only", "", "comma-separated sections to run: "+strings.Join(bench.AllSections, ","))
	streams := fs.String("streams", "", "comma-separated stream counts of the load and sdkload sections (default 1,8,32; quick 1,4; quick sdkload: the largest only)")
	rounds := fs.Int("rounds", 0, "rounds per stream count in the load and sdkload sections (default 5; quick 1)")
	window := fs.Duration("window", 0, "CPU window of each load and sdkload phase (default 20s; quick 6s)")
	cpuprofile := fs.String("cpuprofile", "", "profile go2rtc's CPU over every load phase's window into `DIR` (builds go2rtc with -tags hikvision_pprof)")
	bin := fs.String("go2rtc", "", "go2rtc `binary` to use instead of building it (must contain the hikvision module)")
	binNoFlush := fs.String("go2rtc-without-play-flush", "", "go2rtc `binary` built without patch "+bench.PlayFlushPatch+" for the latency section (default: built, cached)")
	latRuns := fs.Int("latency-runs", 0, "starts per source, round trip and cold/warm in the latency section (default 5; quick 1)")
	rtsp554 := fs.Bool("rtsp-554", bench.CanBindRTSP554(), "latency section: each device on a loopback address of its own with RTSP on port 554, as real cameras (needs root or CAP_NET_BIND_SERVICE; default: on where port 554 can be bound)")
	blips := fs.Int("blips", 0, "device silences (4.3–11.7 s) of the blip section (default 7; quick 1)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: hikvision-bench [--quick] [--json FILE] [--only a,b]\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "hikvision-bench: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	sections, err := bench.ParseOnly(*only)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}

	counts, err := parseCounts(*streams)
	if err != nil {
		fmt.Fprintln(stderr, "hikvision-bench: --streams:", err)
		return 2
	}
	if *rounds < 0 || *window < 0 || *latRuns < 0 || *blips < 0 {
		fmt.Fprintln(stderr, "hikvision-bench: --rounds, --window, --latency-runs and --blips must not be negative")
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	report, err := bench.Run(ctx, bench.Options{Quick: *quick, Only: sections, Bin: *bin, Log: stderr,
		StreamCounts: counts, LoadRounds: *rounds, LoadWindow: *window, CPUProfile: *cpuprofile,
		BinWithoutPlayFlush: *binNoFlush, LatencyRuns: *latRuns, Blips: blipsOpt(*blips), RTSP554: *rtsp554})
	if report == nil {
		fmt.Fprintf(stderr, "hikvision-bench: %v\n", err)
		return 1
	}
	fmt.Fprint(stdout, report.Markdown())
	if *jsonFile != "" {
		data, jerr := report.JSON()
		if jerr == nil {
			jerr = os.WriteFile(*jsonFile, append(data, '\n'), 0o644)
		}
		if jerr != nil {
			fmt.Fprintf(stderr, "hikvision-bench: write JSON: %v\n", jerr)
			return 1
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "hikvision-bench: %v\n", err)
		return 1
	}
	for _, s := range report.Sections {
		if s.Error != "" {
			fmt.Fprintf(stderr, "hikvision-bench: section %s incomplete: %s\n", s.Name, s.Error)
			return 1
		}
	}
	return 0
}

// blipsOpt is the silences of n blips; 0 is nil (the mode's default).
func blipsOpt(n int) []time.Duration {
	if n == 0 {
		return nil
	}
	return bench.BlipLengths(n)
}

// parseCounts reads "1,8,32"; "" is nil (the mode's default).
func parseCounts(s string) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a stream count (a whole number ≥ 1)", f)
		}
		out = append(out, n)
	}
	return out, nil
}
