package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// HotPathPackages are the packages whose Go benchmarks the bench runs (the
// ones without a Benchmark function are skipped).
var HotPathPackages = []string{"./internal/talk", "./internal/snapshot", "./hikvision"}

// ParseGoBench parses `go test -bench -benchmem` output. Lines look like
//
//	pkg: github.com/.../internal/talk
//	BenchmarkWrite-2   1000000   1053 ns/op   0 B/op   0 allocs/op   0.12 ms-latency
//
// Every "value unit" pair after the iteration count is kept: ns/op, B/op and
// allocs/op in their fields, the rest in Extra. pkgDefault is used until a
// "pkg:" line names the package.
func ParseGoBench(out []byte, pkgDefault string) ([]GoBench, error) {
	var res []GoBench
	pkg := pkgDefault
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimSpace(p)
			continue
		}
		if !strings.HasPrefix(line, "Benchmark") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || len(f)%2 != 0 {
			continue // "BenchmarkX" alone (its output on the next line) or a log line
		}
		iter, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		g := GoBench{Package: pkg, Name: f[0], Iterations: iter}
		if i := strings.LastIndexByte(f[0], '-'); i > 0 {
			if n, err := strconv.Atoi(f[0][i+1:]); err == nil {
				g.Name, g.Procs = f[0][:i], n
			}
		}
		ok := false
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("bench: go test output: %s: value %q is not a number", g.Name, f[i])
			}
			switch unit := f[i+1]; unit {
			case "ns/op":
				g.NsPerOp, ok = v, true
			case "B/op":
				g.BytesPerOp = Num(v)
			case "allocs/op":
				g.AllocsOp = Num(v)
			default:
				if g.Extra == nil {
					g.Extra = map[string]float64{}
				}
				g.Extra[unit] = v
			}
		}
		if !ok {
			return nil, fmt.Errorf("bench: go test output: %s: no ns/op", g.Name)
		}
		res = append(res, g)
	}
	return res, sc.Err()
}

var benchFunc = regexp.MustCompile(`(?m)^func Benchmark\w*\(\w+ \*testing\.B\)`)

// hasBenchmarks reports whether a package directory has a Benchmark function
// in its _test.go files.
func hasBenchmarks(dir string) bool {
	files, _ := filepath.Glob(filepath.Join(dir, "*_test.go"))
	for _, f := range files {
		if data, err := os.ReadFile(f); err == nil && benchFunc.Match(data) {
			return true
		}
	}
	return false
}

// RunGoBench runs `go test -run=^$ -bench=. -benchmem` on each of pkgs (paths
// relative to root) that has benchmarks and returns the parsed results and
// the packages skipped for having none.
func RunGoBench(ctx context.Context, root string, pkgs []string, benchtime string) (res []GoBench, skipped []string, err error) {
	var run []string
	for _, p := range pkgs {
		if hasBenchmarks(filepath.Join(root, p)) {
			run = append(run, p)
		} else {
			skipped = append(skipped, p)
		}
	}
	if len(run) == 0 {
		return nil, skipped, nil
	}
	args := []string{"test", "-run=^$", "-bench=.", "-benchmem", "-count=1"}
	if benchtime != "" {
		args = append(args, "-benchtime="+benchtime)
	}
	args = append(args, run...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	res, perr := ParseGoBench(out, "")
	if err != nil {
		return res, skipped, fmt.Errorf("bench: go %s: %w\n%s", strings.Join(args, " "), err, lastLines(out, 20))
	}
	return res, skipped, perr
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
