// Package build makes a go2rtc binary that contains the hikvision:// source.
//
// go2rtc has no plugin hook and an outside module cannot import its
// internal/ packages, so Build copies the pinned go2rtc module source,
// applies every patches/*.patch of this repository in order (the first one
// adds the internal/hikvision glue and its line in main.go), points a
// require+replace at this repository and runs
//
//	CGO_ENABLED=0 go build -mod=mod -trimpath -ldflags "-s -w"
//
// The result is cached by content (see Key), so a second call with nothing
// changed returns at once.
package build

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

const (
	// ModulePath is this repository's Go module path.
	ModulePath = "github.com/go2rtc-hikvision/go2rtc-hikvision"
	// Go2rtcModule is the upstream go2rtc module path.
	Go2rtcModule = "github.com/AlexxIT/go2rtc"
	// Go2rtcVersion is the go2rtc version the patches are written against.
	Go2rtcVersion = "v1.9.14"
	// CacheEnv names the environment variable that overrides the cache base
	// directory.
	CacheEnv = "GO2RTC_HIKVISION_CACHE"

	// recipe is part of the cache key: bump it when the build steps below
	// change in a way that changes the binary.
	recipe = "go2rtc-hikvision-build/1 CGO_ENABLED=0 -mod=mod -trimpath -ldflags=-s -w -buildvcs=false"
)

// Options control Build. The zero value builds for the host with the
// repository found from the working directory and the default cache.
type Options struct {
	// RepoRoot is this repository's root (the directory of its go.mod).
	// Empty: found by walking up from the working directory.
	RepoRoot string
	// CacheDir is the cache base directory. Empty: $GO2RTC_HIKVISION_CACHE,
	// else os.UserCacheDir()/go2rtc-hikvision.
	CacheDir string
	// GOOS and GOARCH select the target; empty means the go command's
	// default (the host unless GOOS/GOARCH are set in the environment).
	GOOS, GOARCH string
	// Tags are extra build tags (go build -tags), e.g. "hikvision_pprof" for
	// the bench's profiling build. They are part of the cache key.
	Tags []string
	// WithoutPatches names patches (file names, e.g. "0008-....patch") to
	// leave out, for measuring what a patch changes; the key differs.
	WithoutPatches []string
	// Logger receives progress lines; the zero value discards them.
	Logger zerolog.Logger
}

// Errors that name which step went wrong.
var (
	// ErrRepoRootNotFound: no go.mod of ModulePath in the directory or above.
	ErrRepoRootNotFound = errors.New("build: repository root not found (no go.mod of " + ModulePath + " in this directory or above)")
	// ErrNoPatches: the repository has no patches/*.patch.
	ErrNoPatches = errors.New("build: no patches/*.patch in the repository")
)

// StepError is a failed external command (go, git) of the build.
type StepError struct {
	Step   string // "go mod download", "git apply 0001-...", "go build", ...
	Dir    string // working directory of the command
	Output string // combined output, last part only
	Err    error
}

func (e *StepError) Error() string {
	msg := fmt.Sprintf("build: %s (in %s): %v", e.Step, e.Dir, e.Err)
	if out := strings.TrimSpace(e.Output); out != "" {
		msg += "\n" + out
	}
	return msg
}

func (e *StepError) Unwrap() error { return e.Err }

// fillRepoRoot sets RepoRoot, when empty, to the repository around the
// working directory.
func (o *Options) fillRepoRoot() error {
	if o.RepoRoot != "" {
		return nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return fmt.Errorf("build: working directory: %w", err)
	}
	o.RepoRoot, err = FindRepoRoot(wd)
	return err
}

// Build returns the path of a go2rtc binary with this repository's module
// built in, building it if the cache has none for the current inputs.
func Build(ctx context.Context, opts Options) (binPath string, err error) {
	if err := opts.fillRepoRoot(); err != nil {
		return "", err
	}
	if opts.CacheDir == "" {
		if opts.CacheDir, err = DefaultCacheDir(); err != nil {
			return "", err
		}
	}
	// Absolute: the build runs go commands in another directory, and the
	// replace directive needs this repository's absolute path.
	if opts.RepoRoot, err = filepath.Abs(opts.RepoRoot); err != nil {
		return "", fmt.Errorf("build: %w", err)
	}
	if opts.CacheDir, err = filepath.Abs(opts.CacheDir); err != nil {
		return "", fmt.Errorf("build: %w", err)
	}
	log := opts.Logger

	env, err := goEnv(ctx, opts)
	if err != nil {
		return "", err
	}
	key, err := computeKey(opts.RepoRoot, env, opts.Tags, opts.WithoutPatches)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(opts.CacheDir, key)
	binPath = filepath.Join(dir, binName(env.GOOS))

	if isFile(binPath) {
		touch(dir)
		log.Info().Str("key", key).Msg("[build] up to date (cache hit)")
		return binPath, nil
	}

	if err = os.MkdirAll(opts.CacheDir, 0o755); err != nil {
		return "", fmt.Errorf("build: cache dir: %w", err)
	}
	unlock, err := lockFile(ctx, filepath.Join(opts.CacheDir, key+".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()

	// Another process may have built it while we waited for the lock.
	if isFile(binPath) {
		log.Debug().Str("path", binPath).Msg("[build] built by another process")
		return binPath, nil
	}

	start := time.Now()
	log.Info().Str("go2rtc", Go2rtcVersion).Str("go", env.GOVERSION).
		Str("target", env.GOOS+"/"+env.GOARCH).Msg("[build] building go2rtc with the hikvision module (first time: a minute or two)")

	work, err := os.MkdirTemp(opts.CacheDir, "work-")
	if err != nil {
		return "", fmt.Errorf("build: work dir: %w", err)
	}
	defer os.RemoveAll(work)

	tmpBin := filepath.Join(work, binName(env.GOOS))
	if err = buildInto(ctx, opts, filepath.Join(work, "src"), tmpBin); err != nil {
		return "", err
	}

	if err = os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("build: cache dir: %w", err)
	}
	// Same file system: rename is atomic, a reader never sees half a binary.
	if err = os.Rename(tmpBin, binPath); err != nil {
		return "", fmt.Errorf("build: store binary: %w", err)
	}
	log.Info().Str("path", binPath).Str("took", time.Since(start).Round(time.Second).String()).Msg("[build] done")
	prune(opts.CacheDir, key, time.Now())
	return binPath, nil
}

// DefaultCacheDir is $GO2RTC_HIKVISION_CACHE, else
// os.UserCacheDir()/go2rtc-hikvision.
func DefaultCacheDir() (string, error) {
	if dir := os.Getenv(CacheEnv); dir != "" {
		return filepath.Abs(dir)
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("build: no cache dir (set %s): %w", CacheEnv, err)
	}
	return filepath.Join(dir, "go2rtc-hikvision"), nil
}

// FindRepoRoot walks up from dir to the directory whose go.mod declares
// ModulePath.
func FindRepoRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("build: %w", err)
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && modulePath(data) == ModulePath {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", ErrRepoRootNotFound
		}
		dir = parent
	}
}

func modulePath(gomod []byte) string {
	for _, line := range strings.Split(string(gomod), "\n") {
		line = strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(line, "module"); ok && (rest == "" || rest[0] == ' ' || rest[0] == '\t') {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	return ""
}

// Patches lists the repository's patches/*.patch in the order they apply.
func Patches(repoRoot string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(repoRoot, "patches", "*.patch"))
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	if len(files) == 0 {
		return nil, ErrNoPatches
	}
	return files, nil // Glob sorts
}

// selectPatches is Patches without the ones named in without (file names);
// a name that is not a patch of the repository is an error.
func selectPatches(repoRoot string, without []string) ([]string, error) {
	all, err := Patches(repoRoot)
	if err != nil || len(without) == 0 {
		return all, err
	}
	var out []string
	left := map[string]bool{}
	for _, w := range without {
		left[w] = true
	}
	for _, p := range all {
		if left[filepath.Base(p)] {
			delete(left, filepath.Base(p))
			continue
		}
		out = append(out, p)
	}
	for w := range left {
		return nil, fmt.Errorf("build: WithoutPatches: %q is not in %s", w, filepath.Join(repoRoot, "patches"))
	}
	return out, nil
}

type goEnvironment struct {
	GOVERSION, GOOS, GOARCH string
}

func goEnv(ctx context.Context, opts Options) (goEnvironment, error) {
	cmd := exec.CommandContext(ctx, "go", "env", "-json", "GOVERSION", "GOOS", "GOARCH")
	cmd.Dir = opts.RepoRoot
	cmd.Env = buildEnv(opts)
	out, err := cmd.Output()
	if err != nil {
		return goEnvironment{}, stepError("go env", cmd.Dir, out, err)
	}
	var env goEnvironment
	if err = json.Unmarshal(out, &env); err != nil {
		return goEnvironment{}, fmt.Errorf("build: go env output: %w", err)
	}
	return env, nil
}

// buildEnv is the environment of every go command the build runs.
func buildEnv(opts Options) []string {
	env := append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off")
	if opts.GOOS != "" {
		env = append(env, "GOOS="+opts.GOOS)
	}
	if opts.GOARCH != "" {
		env = append(env, "GOARCH="+opts.GOARCH)
	}
	return env
}

func buildInto(ctx context.Context, opts Options, src, out string) error {
	if err := prepareSource(ctx, opts, src); err != nil {
		return err
	}
	// -mod=mod lets go add go.sum lines for our dependencies.
	opts.Logger.Info().Msg("[build] go build (CGO_ENABLED=0 -trimpath)")
	args := []string{"build", "-mod=mod", "-buildvcs=false", "-trimpath", "-ldflags", "-s -w"}
	if len(opts.Tags) > 0 {
		args = append(args, "-tags", strings.Join(opts.Tags, ","))
	}
	return run(ctx, src, buildEnv(opts), "go build", "go", append(args, "-o", out, ".")...)
}

// PrepareSource writes the patched go2rtc source tree to dst (which must not
// exist or be empty): a writable copy of go2rtc Go2rtcVersion from the module
// cache, every patches/*.patch applied in order, and go.mod requiring this
// repository with a replace pointing at opts.RepoRoot. Build uses it; tests
// use it to run the patches' own tests in go2rtc's tree.
func PrepareSource(ctx context.Context, opts Options, dst string) error {
	if err := opts.fillRepoRoot(); err != nil {
		return err
	}
	root, err := filepath.Abs(opts.RepoRoot)
	if err != nil {
		return fmt.Errorf("build: %w", err)
	}
	opts.RepoRoot = root
	if dst, err = filepath.Abs(dst); err != nil {
		return fmt.Errorf("build: %w", err)
	}
	return prepareSource(ctx, opts, dst)
}

func prepareSource(ctx context.Context, opts Options, src string) error {
	log := opts.Logger
	goenv := buildEnv(opts)

	// 1. Locate the pinned go2rtc source in the module cache.
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", Go2rtcModule+"@"+Go2rtcVersion)
	cmd.Dir = opts.RepoRoot
	cmd.Env = goenv
	data, err := cmd.Output()
	if err != nil {
		return stepError("go mod download "+Go2rtcModule+"@"+Go2rtcVersion, cmd.Dir, data, err)
	}
	var mod struct{ Dir, Error string }
	if err = json.Unmarshal(data, &mod); err != nil {
		return fmt.Errorf("build: go mod download output: %w", err)
	}
	if mod.Error != "" || mod.Dir == "" {
		return &StepError{Step: "go mod download " + Go2rtcModule + "@" + Go2rtcVersion, Dir: cmd.Dir, Err: errors.New(mod.Error)}
	}

	// 2. Writable copy (the module cache is read-only).
	log.Debug().Str("from", mod.Dir).Str("to", src).Msg("[build] copying go2rtc source")
	if err = copyTree(mod.Dir, src); err != nil {
		return fmt.Errorf("build: copy go2rtc source: %w", err)
	}

	// 3. Patches, in order.
	patches, err := selectPatches(opts.RepoRoot, opts.WithoutPatches)
	if err != nil {
		return err
	}
	for _, p := range patches {
		log.Info().Str("patch", filepath.Base(p)).Msg("[build] applying")
		if err = run(ctx, src, nil, "git apply "+filepath.Base(p), "git", "apply", "-p1", "--whitespace=nowarn", p); err != nil {
			return err
		}
	}

	// 4. Point go2rtc at this repository.
	return run(ctx, src, goenv, "go mod edit", "go", "mod", "edit",
		"-require="+ModulePath+"@v0.0.0", "-replace="+ModulePath+"="+opts.RepoRoot)
}

// PatchedPackages lists the go2rtc packages (as "./dir" patterns, sorted)
// that the repository's patches add or change files in.
func PatchedPackages(repoRoot string) ([]string, error) {
	patches, err := Patches(repoRoot)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var pkgs []string
	for _, p := range patches {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("build: %w", err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			path, ok := strings.CutPrefix(line, "+++ b/")
			if !ok || !strings.HasSuffix(path, ".go") {
				continue
			}
			dir := "./" + filepath.ToSlash(filepath.Dir(filepath.FromSlash(strings.TrimSpace(path))))
			if dir == "./." {
				dir = "."
			}
			if !seen[dir] {
				seen[dir] = true
				pkgs = append(pkgs, dir)
			}
		}
	}
	slices.Sort(pkgs)
	return pkgs, nil
}

// run runs one command in dir; env nil means the process environment plus
// GIT_CEILING_DIRECTORIES so that git never treats an enclosing repository
// as its own (git apply would then silently skip paths).
func run(ctx context.Context, dir string, env []string, step, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	if env == nil {
		env = append(os.Environ(), "GIT_CEILING_DIRECTORIES="+filepath.Dir(dir))
	}
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return stepError(step, dir, out, err)
	}
	return nil
}

func stepError(step, dir string, out []byte, err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(out) == 0 {
		out = ee.Stderr
	}
	const max = 4000
	if len(out) > max {
		out = append([]byte("..."), out[len(out)-max:]...)
	}
	return &StepError{Step: step, Dir: dir, Output: string(bytes.TrimSpace(out)), Err: err}
}

// copyTree copies a module directory, making everything writable.
func copyTree(from, to string) error {
	return filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(from, path)
		if err != nil {
			return err
		}
		target := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil // module zips hold regular files only
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		mode := fs.FileMode(0o644)
		if info.Mode()&0o111 != 0 {
			mode = 0o755
		}
		return copyFile(path, target, mode)
	})
}

func copyFile(from, to string, mode fs.FileMode) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err = io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func binName(goos string) string {
	if goos == "windows" {
		return "go2rtc.exe"
	}
	return "go2rtc"
}

func isFile(path string) bool {
	info, err := os.Stat(path)
	return err == nil && info.Mode().IsRegular() && (runtime.GOOS == "windows" || info.Mode()&0o100 != 0)
}
