package build_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/build"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/e2e"
	"github.com/rs/zerolog"
)

// A patch that does not apply fails the build with a StepError naming the
// patch, leaves no binary and no work directory behind.
func TestBuildFailsOnPatchThatDoesNotApply(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go mod download and git")
	}
	root := t.TempDir()
	mustWrite(t, filepath.Join(root, "go.mod"), "module "+build.ModulePath+"\n\ngo 1.24.0\n")
	mustWrite(t, filepath.Join(root, "patches", "0001-broken.patch"), `diff --git a/main.go b/main.go
--- a/main.go
+++ b/main.go
@@ -1,3 +1,3 @@
-package notmain
+package main
 
 import (
`)
	cache := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	bin, err := build.Build(ctx, build.Options{RepoRoot: root, CacheDir: cache})
	var se *build.StepError
	if !errors.As(err, &se) {
		t.Fatalf("Build = %q, %v; want a *build.StepError", bin, err)
	}
	if se.Step != "git apply 0001-broken.patch" {
		t.Errorf("StepError.Step = %q, want git apply 0001-broken.patch (err: %v)", se.Step, err)
	}
	left, _ := filepath.Glob(filepath.Join(cache, "*", "*"))
	for _, f := range left {
		if !strings.HasSuffix(f, ".lock") {
			t.Errorf("left behind in the cache: %s", f)
		}
	}
}

// The patched go2rtc builds, a second Build is a cache hit, and the binary
// has the hikvision:// scheme registered by the module (not "unsupported
// scheme"), lists a hikvision:// stream, and exits cleanly on SIGTERM.
func TestPatchedGo2rtcRegistersHikvision(t *testing.T) {
	if testing.Short() {
		t.Skip("builds go2rtc")
	}
	keyBefore, err := build.Key(context.Background(), build.Options{})
	if err != nil {
		t.Fatal(err)
	}
	bin := e2e.Go2rtcBinary(t) // normal cache: CI builds once for all packages
	info1, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}

	// Second call: nothing changed, so no rebuild.
	var logs bytes.Buffer
	start := time.Now()
	bin2, err := build.Build(context.Background(), build.Options{Logger: zerolog.New(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	keyAfter, err := build.Key(context.Background(), build.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if keyBefore != keyAfter {
		// Someone edited the repository while the test ran (developers share
		// a work tree); key stability itself is TestKeyChangesWithInputs'.
		t.Logf("repository changed during the test (key %s -> %s): cache-hit checks skipped", keyBefore, keyAfter)
	} else {
		if bin2 != bin {
			t.Errorf("second Build = %s, first = %s", bin2, bin)
		}
		info2, err := os.Stat(bin2)
		if err != nil {
			t.Fatal(err)
		}
		if !os.SameFile(info1, info2) || !info1.ModTime().Equal(info2.ModTime()) {
			t.Errorf("second Build replaced the binary")
		}
		if !strings.Contains(logs.String(), "cache hit") || strings.Contains(logs.String(), "building") {
			t.Errorf("second Build did not report a cache hit (took %v):\n%s", time.Since(start), logs.String())
		}
	}
	bin = bin2

	// A port nothing listens on: the module fails fast with its own error.
	closed, err := e2e.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	const password = "e2e-Secret-9137"
	config := "streams:\n" +
		"  cam: hikvision://admin:" + password + "@" + closed + "/?channel=1&stream=main\n" +
		"  control: nosuchscheme://127.0.0.1/\n" +
		"log:\n  level: info\n  hikvision: debug\n"
	g := e2e.StartGo2rtc(t, bin, config)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	schemes, err := g.Schemes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(schemes, "hikvision") {
		t.Fatalf("/api/schemes has no hikvision: %q", schemes)
	}
	if !slices.Contains(schemes, "isapi") {
		t.Errorf("/api/schemes lost the stock isapi scheme: %q", schemes)
	}

	streams := g.Streams(t)
	cam, ok := streams["cam"]
	if !ok || len(cam.Producers) != 1 || !strings.HasPrefix(cam.Producers[0].URL, "hikvision://") {
		t.Fatalf("/api/streams cam = %+v (ok=%v), want one hikvision:// producer; all: %+v", cam, ok, streams)
	}

	// Control: go2rtc's own error for a scheme nobody registered.
	status, body, err := g.Get(ctx, "/api/streams?src=control&video=all&audio=all")
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusInternalServerError || !strings.Contains(string(body), "unsupported scheme") {
		t.Fatalf("control stream: %d %q, want 500 with go2rtc's unsupported scheme error", status, body)
	}

	// The hikvision stream reaches the module, whose error comes back.
	status, body, err = g.Get(ctx, "/api/streams?src=cam&video=all&audio=all")
	if err != nil {
		t.Fatal(err)
	}
	text := string(body)
	t.Logf("module's error for a closed port: %s", text)
	if status != http.StatusInternalServerError {
		t.Fatalf("probe of cam against a closed port: %d %q, want 500 with the module's error", status, text)
	}
	if strings.Contains(text, "unsupported scheme") || strings.Contains(text, "not supported") {
		t.Fatalf("hikvision scheme not registered: %q", text)
	}
	if !strings.Contains(strings.ToLower(text), "hikvision") {
		t.Errorf("probe error %q does not come from the hikvision module", text)
	}
	if strings.Contains(text, password) {
		t.Errorf("probe error shows the password: %q", text)
	}
	if out := g.Output(); strings.Contains(out, password) {
		t.Errorf("go2rtc's log shows the password:\n%s", out)
	}
}

func mustWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// The patches' own tests (and go2rtc's existing tests in the packages the
// patches touch) pass in the patched go2rtc tree, with the race detector.
func TestPatchedGo2rtcPackageTests(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles and tests go2rtc packages")
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root, err := build.FindRepoRoot(wd)
	if err != nil {
		t.Fatal(err)
	}
	pkgs, err := build.PatchedPackages(root)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(pkgs, "./internal/hikvision") {
		t.Fatalf("PatchedPackages = %q, want ./internal/hikvision among them", pkgs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	src := filepath.Join(t.TempDir(), "go2rtc")
	if err := build.PrepareSource(ctx, build.Options{RepoRoot: root}, src); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(src, "internal", "hikvision", "hikvision.go")); err != nil {
		t.Fatalf("patched tree lacks the glue: %v", err)
	}

	// Only packages with tests: the main package cannot be built with cgo
	// (go2rtc's alsa/v4l2 packages carry C files), and -race needs cgo.
	var tested []string
	for _, p := range pkgs {
		if files, _ := filepath.Glob(filepath.Join(src, filepath.FromSlash(p), "*_test.go")); len(files) > 0 {
			tested = append(tested, p)
		}
	}
	if len(tested) == 0 {
		t.Skipf("no tests in the patched packages %q", pkgs)
	}
	args := append([]string{"test", "-race", "-count=1", "-mod=mod", "-buildvcs=false"}, tested...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go %s in the patched go2rtc: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("go %s:\n%s", strings.Join(args, " "), out)
}
