package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestUsageErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--only", "ttff,nope"}, 2, `unknown section "nope"`},
		{[]string{"extra"}, 2, `unexpected argument "extra"`},
		{[]string{"--bogus"}, 2, "flag provided but not defined"},
		{[]string{"--help"}, 0, "usage: hikvision-bench"},
		{[]string{"--streams", "1,x"}, 2, `--streams: "x" is not a stream count`},
		{[]string{"--streams", "0"}, 2, `--streams: "0" is not a stream count`},
		{[]string{"--rounds", "-1"}, 2, "--rounds, --window, --latency-runs and --blips must not be negative"},
		{[]string{"--blips", "-2"}, 2, "--rounds, --window, --latency-runs and --blips must not be negative"},
	} {
		var out, errb bytes.Buffer
		if code := run(tt.args, &out, &errb); code != tt.code || !strings.Contains(errb.String(), tt.want) {
			t.Errorf("run(%q) = %d, stderr %q; want %d and %q", tt.args, code, errb.String(), tt.code, tt.want)
		}
		if out.Len() != 0 {
			t.Errorf("run(%q) wrote to stdout: %q", tt.args, out.String())
		}
	}
}

// The gobench section alone needs no go2rtc: it runs go test on the hot-path
// packages and prints their table.
func TestOnlyGoBench(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go test -bench (seconds)")
	}
	var out, errb bytes.Buffer
	code := run([]string{"--only", "gobench", "--quick"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errb.String())
	}
	for _, want := range []string{"### Go benchmarks (hot paths, -benchmem)", "| internal/talk | Benchmark"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
