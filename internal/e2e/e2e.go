// Package e2e runs a real go2rtc process for end-to-end tests: start it with
// a config on free loopback ports, wait until its API answers, query it, and
// stop it checking that it exited cleanly.
//
// Typical use in a test:
//
//	bin := e2e.Go2rtcBinary(t)          // build.Build, cached
//	g := e2e.StartGo2rtc(t, bin, `streams: {cam: "hikvision://..."}`)
//	streams := g.Streams(t)
//	// g is stopped by t.Cleanup, which fails the test if go2rtc did not
//	// exit with status 0 after SIGTERM.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/build"
)

// Timeouts used by the helpers.
var (
	// BuildTimeout bounds Go2rtcBinary (a cold build takes about a minute on
	// two cores).
	BuildTimeout = 10 * time.Minute
	// ReadyTimeout bounds how long StartGo2rtc waits for the API to answer.
	ReadyTimeout = 20 * time.Second
	// StopTimeout bounds how long Stop waits for go2rtc to exit after SIGTERM
	// before it kills it (and reports that as an error).
	StopTimeout = 10 * time.Second
)

// Go2rtcBinary builds (or takes from the cache) the patched go2rtc and
// returns its path; it fails the test if that does not work.
func Go2rtcBinary(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), BuildTimeout)
	defer cancel()
	bin, err := build.Build(ctx, build.Options{})
	if err != nil {
		t.Fatalf("build go2rtc: %v", err)
	}
	return bin
}

// FreeAddr returns a loopback TCP address that was free a moment ago. (The
// port could be taken again before it is used; that race is accepted.)
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("e2e: free port: %w", err)
	}
	addr := ln.Addr().String()
	if err = ln.Close(); err != nil {
		return "", fmt.Errorf("e2e: free port: %w", err)
	}
	return addr, nil
}

// Go2rtc is a running go2rtc process.
type Go2rtc struct {
	APIAddr    string // "127.0.0.1:PORT" (api listen)
	RTSPAddr   string // "127.0.0.1:PORT" (rtsp listen)
	ConfigPath string // the config file go2rtc was started with

	cmd    *exec.Cmd
	output *syncBuffer
	done   chan struct{} // closed when the process has exited
	err    error         // cmd.Wait's result, valid after done

	stopOnce sync.Once
	stopErr  error
}

// Options for Start. Zero values pick free ports.
type Options struct {
	Bin    string // go2rtc binary (required)
	Config string // YAML: streams, log levels, ... (api/rtsp/webrtc/srtp listen are set by Start)
	Dir    string // where to write the config file; "" = a new temp dir removed by Stop
	Env    []string
}

// Start writes opts.Config to a file and starts go2rtc with it, plus an
// inline config that moves every listener to free loopback ports (api, rtsp)
// or turns it off (webrtc, srtp), so tests never collide with a go2rtc on the
// default ports or with each other. It waits until the API answers.
func Start(ctx context.Context, opts Options) (*Go2rtc, error) {
	if opts.Bin == "" {
		return nil, errors.New("e2e: Options.Bin is empty")
	}
	apiAddr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	rtspAddr, err := FreeAddr()
	if err != nil {
		return nil, err
	}

	dir, removeDir := opts.Dir, false
	if dir == "" {
		if dir, err = os.MkdirTemp("", "go2rtc-e2e-"); err != nil {
			return nil, fmt.Errorf("e2e: %w", err)
		}
		removeDir = true
	}
	configPath := filepath.Join(dir, "go2rtc.yaml")
	if err = os.WriteFile(configPath, []byte(opts.Config), 0o600); err != nil {
		return nil, fmt.Errorf("e2e: write config: %w", err)
	}
	listen := fmt.Sprintf(`{"api":{"listen":%q},"rtsp":{"listen":%q},"webrtc":{"listen":""},"srtp":{"listen":""}}`,
		apiAddr, rtspAddr)

	g := &Go2rtc{
		APIAddr:    apiAddr,
		RTSPAddr:   rtspAddr,
		ConfigPath: configPath,
		output:     &syncBuffer{},
		done:       make(chan struct{}),
	}
	g.cmd = exec.Command(opts.Bin, "-config", configPath, "-config", listen)
	g.cmd.Dir = dir
	g.cmd.Env = append(os.Environ(), opts.Env...)
	g.cmd.Stdout = g.output
	g.cmd.Stderr = g.output
	if err = g.cmd.Start(); err != nil {
		return nil, fmt.Errorf("e2e: start go2rtc: %w", err)
	}
	go func() {
		g.err = g.cmd.Wait()
		if removeDir {
			os.RemoveAll(dir)
		}
		close(g.done)
	}()

	if err = g.WaitReady(ctx, ReadyTimeout); err != nil {
		_ = g.Stop()
		return nil, err
	}
	return g, nil
}

// StartGo2rtc is Start for tests: it fails the test on error and stops
// go2rtc in t.Cleanup, failing the test if go2rtc did not exit cleanly.
func StartGo2rtc(t testing.TB, bin, config string) *Go2rtc {
	t.Helper()
	g, err := Start(context.Background(), Options{Bin: bin, Config: config})
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		if err := g.Stop(); err != nil {
			t.Errorf("%v\ngo2rtc output:\n%s", err, g.Output())
		}
	})
	return g
}

// URL is the API URL for path (e.g. "/api/streams").
func (g *Go2rtc) URL(path string) string { return "http://" + g.APIAddr + path }

// WaitReady polls until go2rtc's API answers and its modules are set up, go2rtc
// exits, ctx ends or timeout passes. go2rtc starts its API before the other
// modules: ready means GET /api/schemes lists hikvision and isapi (isapi comes
// after hikvision in go2rtc's module order), so a request right after
// WaitReady never meets a scheme that is not registered yet.
func (g *Go2rtc) WaitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, g.URL("/api/schemes"), nil)
		if res, err := client.Do(req); err == nil {
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			var schemes []string
			if res.StatusCode == http.StatusOK && json.Unmarshal(body, &schemes) == nil &&
				slices.Contains(schemes, "hikvision") && slices.Contains(schemes, "isapi") {
				return nil
			}
		}
		select {
		case <-g.done:
			return fmt.Errorf("e2e: go2rtc exited before its API answered (%v); output:\n%s", g.err, g.Output())
		case <-ctx.Done():
			return fmt.Errorf("e2e: go2rtc API on %s did not answer within %v; output:\n%s", g.APIAddr, timeout, g.Output())
		case <-tick.C:
		}
	}
}

// Get does GET path on the API and returns status and body.
func (g *Go2rtc) Get(ctx context.Context, path string) (status int, body []byte, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.URL(path), nil)
	if err != nil {
		return 0, nil, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("e2e: GET %s: %w", path, err)
	}
	defer res.Body.Close()
	body, err = io.ReadAll(io.LimitReader(res.Body, 4<<20))
	if err != nil {
		return res.StatusCode, body, fmt.Errorf("e2e: GET %s: %w", path, err)
	}
	return res.StatusCode, body, nil
}

// Stream is one entry of GET /api/streams.
type Stream struct {
	Producers []struct {
		URL string `json:"url"`
	} `json:"producers"`
	Consumers []json.RawMessage `json:"consumers"`
}

// GetStreams returns GET /api/streams.
func (g *Go2rtc) GetStreams(ctx context.Context) (map[string]Stream, error) {
	status, body, err := g.Get(ctx, "/api/streams")
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("e2e: GET /api/streams: status %d: %s", status, body)
	}
	var streams map[string]Stream
	if err = json.Unmarshal(body, &streams); err != nil {
		return nil, fmt.Errorf("e2e: GET /api/streams: %w: %s", err, body)
	}
	return streams, nil
}

// Streams is GetStreams for tests.
func (g *Go2rtc) Streams(t testing.TB) map[string]Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	streams, err := g.GetStreams(ctx)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return streams
}

// Schemes returns GET /api/schemes: the source schemes go2rtc knows.
func (g *Go2rtc) Schemes(ctx context.Context) ([]string, error) {
	status, body, err := g.Get(ctx, "/api/schemes")
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("e2e: GET /api/schemes: status %d: %s", status, body)
	}
	var schemes []string
	if err = json.Unmarshal(body, &schemes); err != nil {
		return nil, fmt.Errorf("e2e: GET /api/schemes: %w: %s", err, body)
	}
	return schemes, nil
}

// Output is everything go2rtc printed so far.
func (g *Go2rtc) Output() string { return g.output.String() }

// Done is closed when the process has exited.
func (g *Go2rtc) Done() <-chan struct{} { return g.done }

// Stop sends SIGTERM and waits for go2rtc to exit. It returns an error if
// go2rtc had already exited on its own, did not exit within StopTimeout (it
// is then killed), or exited with a non-zero status. Safe to call twice.
func (g *Go2rtc) Stop() error {
	g.stopOnce.Do(func() { g.stopErr = g.stop() })
	return g.stopErr
}

func (g *Go2rtc) stop() error {
	select {
	case <-g.done:
		return fmt.Errorf("e2e: go2rtc had exited before Stop: %v", g.err)
	default:
	}
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("e2e: SIGTERM go2rtc: %w", err)
	}
	timer := time.NewTimer(StopTimeout)
	defer timer.Stop()
	select {
	case <-g.done:
		if g.err != nil {
			return fmt.Errorf("e2e: go2rtc exited after SIGTERM with %v", g.err)
		}
		return nil
	case <-timer.C:
		_ = g.cmd.Process.Kill()
		<-g.done
		return fmt.Errorf("e2e: go2rtc did not exit within %v of SIGTERM (killed)", StopTimeout)
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
