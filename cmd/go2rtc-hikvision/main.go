// Command go2rtc-hikvision builds go2rtc with the hikvision:// source (cached)
// and runs it, or builds a binary to copy elsewhere.
//
//	go run ./cmd/go2rtc-hikvision [run] [-config FILE]...
//	go run ./cmd/go2rtc-hikvision build -o PATH [-os GOOS] [-arch GOARCH] [-sdk]
//
// run: the config is -config FILE, else ./go2rtc.yaml if it exists, else the
// repository's go2rtc.yaml.example. When the config's sources point at the
// built-in simulator's addresses (the example does), the simulated camera
// and NVR are started in this process first. SIGINT/SIGTERM are forwarded to
// go2rtc; the exit status is go2rtc's.
//
// -sdk builds with the loader of Hikvision's device network SDK
// (transport=sdk; the binary then needs glibc). run uses it by itself when
// the config asks for transport=sdk or auto on a glibc Linux host.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"github.com/AlexxIT/go2rtc/pkg/yaml"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/build"
	"github.com/rs/zerolog"
)

const usage = `usage:
  go2rtc-hikvision [run] [-config FILE]... [-sdk]
                                               build go2rtc with the hikvision module (cached) and run it
  go2rtc-hikvision build -o PATH [-os GOOS] [-arch GOARCH] [-sdk]
                                               build the binary and copy it to PATH (e.g. for Frigate)

-sdk adds the device network SDK loader (transport=sdk; needs glibc, not Alpine).
run adds it by itself when the config asks for transport=sdk/auto on glibc Linux.

run uses -config FILE, else ./go2rtc.yaml if it exists, else go2rtc.yaml.example
from the repository. Build cache: $GO2RTC_HIKVISION_CACHE or the user cache dir.
`

func main() {
	os.Exit(Main(os.Args[1:], newLogger(os.Stderr)))
}

// newLogger writes go2rtc-style console lines ("15:04:05.000 INF ...").
func newLogger(w *os.File) zerolog.Logger {
	zerolog.TimeFieldFormat = zerolog.TimeFormatUnixMs
	noColor := true
	if info, err := w.Stat(); err == nil && info.Mode()&os.ModeCharDevice != 0 {
		noColor = false
	}
	return zerolog.New(zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05.000", NoColor: noColor}).
		With().Timestamp().Logger()
}

// Main runs the command line args and returns the process exit status.
func Main(args []string, log zerolog.Logger) int {
	cmd := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		return runCmd(args, log)
	case "build":
		return buildCmd(args, log)
	case "help":
		fmt.Fprint(os.Stdout, usage)
		return 0
	default:
		fmt.Fprintf(os.Stderr, "go2rtc-hikvision: unknown command %q\n%s", cmd, usage)
		return 2
	}
}

func buildCmd(args []string, log zerolog.Logger) int {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	out := fs.String("o", "", "copy the binary to `PATH` (required)")
	goos := fs.String("os", "", "target `GOOS` (default: the go command's)")
	goarch := fs.String("arch", "", "target `GOARCH`, e.g. arm64 (default: the go command's)")
	sdk := fs.Bool("sdk", false, "compile in the device network SDK loader (transport=sdk; the binary needs glibc)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *out == "" || fs.NArg() != 0 {
		fmt.Fprint(os.Stderr, "go2rtc-hikvision build: -o PATH is required\n"+usage)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	bin, err := buildBinary(ctx, log, build.Options{GOOS: *goos, GOARCH: *goarch, Tags: sdkTags(*sdk)})
	if err != nil {
		log.Error().Err(err).Msg("[go2rtc-hikvision] build failed")
		return 1
	}
	if err = copyExecutable(bin, *out); err != nil {
		log.Error().Err(err).Msg("[go2rtc-hikvision] copy failed")
		return 1
	}
	log.Info().Str("path", *out).Msg("[go2rtc-hikvision] wrote go2rtc binary")
	return 0
}

func buildBinary(ctx context.Context, log zerolog.Logger, opts build.Options) (string, error) {
	opts.Logger = log
	bin, err := build.Build(ctx, opts)
	if err != nil {
		return "", err
	}
	log.Info().Str("path", bin).Msg("[go2rtc-hikvision] go2rtc with the hikvision module")
	return bin, nil
}

// configFlag collects repeated -config values (go2rtc accepts several).
type configFlag []string

func (c *configFlag) String() string     { return strings.Join(*c, " ") }
func (c *configFlag) Set(v string) error { *c = append(*c, v); return nil }

func runCmd(args []string, log zerolog.Logger) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	var configs configFlag
	fs.Var(&configs, "config", "go2rtc config `FILE` (repeatable; inline YAML as go2rtc accepts it)")
	fs.Var(&configs, "c", "same as -config")
	sdk := fs.Bool("sdk", false, "compile in the device network SDK loader (default: when the config asks for transport=sdk/auto on glibc Linux)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(os.Stderr, "go2rtc-hikvision run: unexpected arguments %q\n%s", fs.Args(), usage)
		return 2
	}

	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()

	cleanup := func() {}
	defer func() { cleanup() }()
	if len(configs) == 0 {
		path, remove, err := defaultConfig(log)
		if err != nil {
			log.Error().Err(err).Msg("[go2rtc-hikvision] no config")
			return 1
		}
		cleanup = remove
		configs = configFlag{path}
	}

	texts, err := readConfigs(configs)
	if err != nil {
		log.Error().Err(err).Msg("[go2rtc-hikvision] read config")
		return 1
	}

	useSDK := *sdk || wantsSDK(texts)
	if useSDK && !*sdk {
		log.Info().Msg("[go2rtc-hikvision] the config asks for transport=sdk/auto: building with the device network SDK loader")
	}
	bin, err := buildBinary(ctx, log, build.Options{Tags: sdkTags(useSDK)})
	if err != nil {
		if ctx.Err() != nil {
			return 130
		}
		log.Error().Err(err).Msg("[go2rtc-hikvision] build failed")
		return 1
	}

	sims, err := startSimulators(strings.Join(texts, "\n"), log)
	if err != nil {
		log.Error().Err(err).Msg("[go2rtc-hikvision] simulator")
		return 1
	}
	defer sims.Close()

	if ctx.Err() != nil {
		return 130
	}
	stopSignals() // from here on signals are forwarded to go2rtc

	goArgs := make([]string, 0, 2*len(configs))
	for _, c := range configs {
		goArgs = append(goArgs, "-config", c)
	}
	if u := apiURL(texts); u != "" {
		log.Info().Msgf("[go2rtc-hikvision] starting go2rtc; open %s", u)
	}
	return runGo2rtc(bin, goArgs, os.Stdout, os.Stderr, log)
}

// defaultConfig returns ./go2rtc.yaml if it exists, else a temporary copy of
// the repository's go2rtc.yaml.example (a copy, so that changes made in the
// web UI, which go2rtc writes back to its config file, do not edit the
// example).
func defaultConfig(log zerolog.Logger) (path string, remove func(), err error) {
	if info, err := os.Stat("go2rtc.yaml"); err == nil && info.Mode().IsRegular() {
		log.Info().Str("config", "go2rtc.yaml").Msg("[go2rtc-hikvision] using ./go2rtc.yaml")
		return "go2rtc.yaml", func() {}, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", nil, err
	}
	root, err := build.FindRepoRoot(wd)
	if err != nil {
		return "", nil, fmt.Errorf("no -config, no ./go2rtc.yaml and no repository example: %w", err)
	}
	example := filepath.Join(root, "go2rtc.yaml.example")
	data, err := os.ReadFile(example)
	if err != nil {
		return "", nil, err
	}
	dir, err := os.MkdirTemp("", "go2rtc-hikvision-")
	if err != nil {
		return "", nil, err
	}
	path = filepath.Join(dir, "go2rtc.yaml")
	if err = os.WriteFile(path, data, 0o600); err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	log.Info().Str("config", example).Msg("[go2rtc-hikvision] using the example config " +
		"(a temporary copy: copy it to ./go2rtc.yaml to keep your own changes)")
	return path, func() { os.RemoveAll(dir) }, nil
}

// readConfigs returns the text of every -config value, as go2rtc reads them:
// inline YAML/JSON ("{...}") and key.path=value as is, anything else a file.
func readConfigs(configs []string) ([]string, error) {
	texts := make([]string, 0, len(configs))
	for _, c := range configs {
		if strings.HasPrefix(c, "{") {
			texts = append(texts, c)
			continue
		}
		data, err := os.ReadFile(c)
		if errors.Is(err, os.ErrNotExist) && strings.Contains(c, "=") {
			texts = append(texts, c) // go2rtc's key.path=value form
			continue
		}
		if err != nil {
			return nil, err
		}
		texts = append(texts, string(data))
	}
	return texts, nil
}

// apiURL is the web UI address go2rtc will have with these configs (later
// ones override earlier ones, default ":1984"), "" if the API is off or the
// address cannot be told.
func apiURL(texts []string) string {
	var cfg struct {
		API struct {
			Listen string `yaml:"listen"`
		} `yaml:"api"`
	}
	cfg.API.Listen = ":1984"
	for _, text := range texts {
		_ = yaml.Unmarshal([]byte(text), &cfg) // go2rtc itself reports bad YAML
	}
	host, port, err := net.SplitHostPort(cfg.API.Listen)
	if err != nil || port == "" {
		return ""
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}

// runGo2rtc runs go2rtc in the foreground, forwarding SIGINT/SIGTERM, and
// returns its exit status.
func runGo2rtc(bin string, args []string, stdout, stderr io.Writer, log zerolog.Logger) int {
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = stdout, stderr

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)

	if err := cmd.Start(); err != nil {
		log.Error().Err(err).Msg("[go2rtc-hikvision] start go2rtc")
		return 1
	}
	log.Info().Int("pid", cmd.Process.Pid).Msg("[go2rtc-hikvision] go2rtc started")

	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case sig := <-sigs:
			log.Info().Str("signal", sig.String()).Msg("[go2rtc-hikvision] forwarding to go2rtc")
			_ = cmd.Process.Signal(sig)
		case err := <-done:
			return exitStatus(err, log)
		}
	}
}

func exitStatus(err error, log zerolog.Logger) int {
	if err == nil {
		log.Info().Msg("[go2rtc-hikvision] go2rtc exited")
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			log.Info().Str("signal", ws.Signal().String()).Msg("[go2rtc-hikvision] go2rtc killed")
			return 128 + int(ws.Signal())
		}
		log.Info().Int("status", ee.ExitCode()).Msg("[go2rtc-hikvision] go2rtc exited")
		return ee.ExitCode()
	}
	log.Error().Err(err).Msg("[go2rtc-hikvision] go2rtc")
	return 1
}

func copyExecutable(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	if err = os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(to), ".go2rtc-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err = io.Copy(tmp, in); err != nil {
		tmp.Close()
		return err
	}
	if err = tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), to)
}

func sdkTags(on bool) []string {
	if on {
		return []string{build.SDKTag}
	}
	return nil
}

// wantsSDK: a source of the config asks for transport=sdk or auto, and this
// is a glibc Linux host on which the SDK loader can run.
func wantsSDK(texts []string) bool {
	all := strings.Join(texts, "\n")
	if !strings.Contains(all, "transport=sdk") && !strings.Contains(all, "transport=auto") {
		return false
	}
	return glibcHost()
}

// glibcHost: linux/amd64 or linux/arm64 with glibc's dynamic loader.
func glibcHost() bool {
	loader := map[string]string{"amd64": "/lib64/ld-linux-x86-64.so.2", "arm64": "/lib/ld-linux-aarch64.so.1"}[runtime.GOARCH]
	if runtime.GOOS != "linux" || loader == "" {
		return false
	}
	_, err := os.Stat(loader)
	return err == nil
}
