package snapshot_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/snapshot"
)

const secret = "hunter2-S3cret"

func TestServeFreshAndStale(t *testing.T) {
	img := frame(t)
	taken := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

	rec := httptest.NewRecorder()
	snapshot.Serve(rec, httptest.NewRequest("GET", "/x", nil), &snapshot.Result{JPEG: img, Taken: taken, Age: 1500 * time.Millisecond}, nil)
	h := rec.Result().Header
	if rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), img) || h.Get("Content-Type") != "image/jpeg" ||
		h.Get("Last-Modified") != "Sun, 01 Mar 2026 12:00:00 GMT" || h.Get("Age") != "1" ||
		h.Get("Cache-Control") != "no-cache" || h.Get(snapshot.HeaderStale) != "" || h.Get("Warning") != "" ||
		h.Get("Content-Length") != strconv.Itoa(len(img)) {
		t.Fatalf("fresh: %d %v", rec.Code, h)
	}

	rec = httptest.NewRecorder()
	stale := &snapshot.Result{JPEG: img, Taken: taken, Stale: true, Age: 42 * time.Second,
		Err: &snapshot.FetchError{Reason: snapshot.ReasonTimeout, Err: context.DeadlineExceeded}}
	snapshot.Serve(rec, httptest.NewRequest("GET", "/x", nil), stale, nil)
	h = rec.Result().Header
	if rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), img) || h.Get(snapshot.HeaderStale) != "true" ||
		h.Get(snapshot.HeaderStaleAge) != "42" || h.Get("Age") != "42" || h.Get(snapshot.HeaderStaleReason) != "timeout" ||
		h.Get("Warning") != `110 - "Response is Stale"` {
		t.Fatalf("stale: %d %v", rec.Code, h)
	}

	rec = httptest.NewRecorder()
	snapshot.Serve(rec, httptest.NewRequest("HEAD", "/x", nil), stale, nil)
	if rec.Code != 200 || rec.Body.Len() != 0 || rec.Result().Header.Get(snapshot.HeaderStale) != "true" {
		t.Fatalf("HEAD: %d, %d body bytes", rec.Code, rec.Body.Len())
	}
}

func decodeErrorBody(t *testing.T, rec *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	if ct := rec.Result().Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("error Content-Type %q", ct)
	}
	var m map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatalf("error body %q: %v", rec.Body, err)
	}
	for _, k := range []string{"error", "reason", "last_good", "age_s"} {
		if _, ok := m[k]; !ok {
			t.Fatalf("error body %s lacks %q", rec.Body, k)
		}
	}
	return m
}

func TestServeErrors(t *testing.T) {
	lastGood := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	leaky := fmt.Errorf("GET http://admin:%s@192.0.2.7/ISAPI/Streaming/channels/101/picture?user=admin&password=%s: %w",
		secret, secret, context.DeadlineExceeded)
	for _, tc := range []struct {
		name   string
		err    error
		status int
		reason string
		age    any
	}{
		{"timeout with last good", &snapshot.Error{Reason: snapshot.ReasonTimeout,
			LastErr:  &snapshot.FetchError{Reason: snapshot.ReasonTimeout, Err: leaky},
			LastGood: lastGood, Age: 700 * time.Second, MaxStale: 600 * time.Second}, 504, "timeout", float64(700)},
		{"locked never good", &snapshot.Error{Reason: snapshot.ReasonLocked,
			LastErr: &snapshot.FetchError{Reason: snapshot.ReasonLocked, Err: &isapi.AuthError{Method: "GET", Path: "/p", Locked: true}}},
			503, "locked", nil},
		{"xml", &snapshot.Error{Reason: snapshot.ReasonXML,
			LastErr: &snapshot.FetchError{Reason: snapshot.ReasonXML, Detail: "device answered XML"}}, 502, "xml_body", nil},
		{"closed", &snapshot.Error{Reason: snapshot.ReasonClosed, LastErr: snapshot.ErrClosed}, 503, "closed", nil},
		{"bad size", fmt.Errorf("%w: 0x-1", snapshot.ErrBadSize), 400, "bad_size", nil},
		{"plain error", leaky, 502, "device_error", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			snapshot.Serve(rec, httptest.NewRequest("GET", "/x", nil), nil, tc.err)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d", rec.Code, tc.status)
			}
			m := decodeErrorBody(t, rec)
			if m["reason"] != tc.reason || m["age_s"] != tc.age || m["error"] == "" {
				t.Fatalf("body %s", rec.Body)
			}
			if tc.age != nil && m["last_good"] != "2026-03-01T12:00:00Z" {
				t.Fatalf("last_good in %s", rec.Body)
			}
			if strings.Contains(rec.Body.String(), secret) || strings.Contains(fmt.Sprint(rec.Result().Header), secret) {
				t.Fatalf("password in answer: %s", rec.Body)
			}
			if rec.Result().Header.Get(snapshot.HeaderStale) != "" {
				t.Fatal("error marked stale")
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	for q, want := range map[string][3]int{ // w, h, ok
		"":                        {0, 0, 1},
		"width=640&height=360":    {640, 360, 1},
		"width=640":               {0, 0, 0},
		"width=0&height=0":        {0, 0, 0},
		"width=a&height=1":        {0, 0, 0},
		"width=-5&height=5":       {0, 0, 0},
		"width=99999&height=5000": {0, 0, 0},
	} {
		v, _ := url.ParseQuery(q)
		w, h, err := snapshot.ParseSize(v)
		if ok := err == nil; ok != (want[2] == 1) || w != want[0] || h != want[1] {
			t.Errorf("ParseSize(%q) = %d, %d, %v", q, w, h, err)
		}
		if err != nil && !errors.Is(err, snapshot.ErrBadSize) {
			t.Errorf("ParseSize(%q) error %v is not ErrBadSize", q, err)
		}
	}
}

// chaos is a device whose snapshots fail 30% of the time, in every way.
type chaos struct {
	t     *testing.T
	rng   *rand.Rand
	n     int
	good  [][]byte
	mode  string // what the last fetch did
	last  []byte // the good image the last successful fetch gave
	modes map[string]int
}

var chaosReasons = map[string]snapshot.Reason{
	"timeout":   snapshot.ReasonTimeout,
	"xml":       snapshot.ReasonXML,
	"html":      snapshot.ReasonHTML,
	"truncated": snapshot.ReasonTruncated,
	"error":     snapshot.ReasonDevice,
	"empty":     snapshot.ReasonEmpty,
	"garbage":   snapshot.ReasonNotJPEG,
}

func (c *chaos) fetch(ctx context.Context, _, _ int) ([]byte, error) {
	c.n++
	if c.rng.Float64() >= 0.30 {
		img := c.good[c.n%len(c.good)]
		c.mode, c.last = "ok", img
		if c.rng.IntN(3) == 0 { // some devices pad with zeros: still good
			img = append(append([]byte{}, img...), make([]byte, 1+c.rng.IntN(64))...)
		}
		c.modes["ok"]++
		return img, nil
	}
	kinds := []string{"timeout", "xml", "html", "truncated", "error", "empty", "garbage"}
	c.mode = kinds[c.rng.IntN(len(kinds))]
	c.modes[c.mode]++
	switch c.mode {
	case "timeout":
		<-ctx.Done()
		return nil, ctx.Err()
	case "xml":
		return []byte(`<?xml version="1.0" encoding="UTF-8"?><ResponseStatus version="2.0" xmlns="http://www.isapi.org/ver20/XMLSchema"><statusCode>3</statusCode><statusString>Device Error</statusString><subStatusCode>deviceError</subStatusCode></ResponseStatus>`), nil
	case "html":
		return []byte("<html><body><h1>500 Internal Server Error</h1></body></html>"), nil
	case "truncated":
		img := c.good[c.rng.IntN(len(c.good))]
		return append([]byte{}, img[:1+c.rng.IntN(len(img)-1)]...), nil
	case "error":
		return nil, fmt.Errorf("GET http://admin:%s@192.0.2.7/ISAPI/Streaming/channels/101/picture: connection reset by peer", secret)
	case "empty":
		return []byte{}, nil
	default:
		return []byte("\x00\x00\x00\x00garbage"), nil
	}
}

// The cache's acceptance test: 500 requests with 30% failures of every kind →
// never a broken or non-JPEG body, every stale answer marked with its age, an
// explained error once past MaxStale.
func TestChaos500(t *testing.T) {
	base := runtime.NumGoroutine()
	clk := newClock()
	dev := &chaos{t: t, rng: rand.New(rand.NewPCG(5, 30)), modes: map[string]int{}}
	dev.good = [][]byte{frame(t), makeJPEG(t, 1), makeJPEG(t, 2), makeJPEG(t, 3)}
	const maxStale = 2 * time.Second
	c := snapshot.New(dev.fetch, snapshot.Options{
		MinInterval: time.Second, MaxStale: maxStale, FetchTimeout: 10 * time.Millisecond, Now: clk.Now,
	})

	var (
		goodImg           []byte
		goodAt            time.Time
		fresh, stale, bad int
		staleErrs         int // errors after a good image (past MaxStale)
	)
	for i := range 500 {
		clk.Add(time.Second) // every request reaches the device
		rec := httptest.NewRecorder()
		c.ServeHTTP(rec, httptest.NewRequest("GET", "/api/hikvision/snapshot?src=cam", nil))
		now := clk.Now()
		h := rec.Result().Header
		if dev.mode == "ok" {
			goodImg, goodAt = dev.last, now
		}
		if strings.Contains(rec.Body.String(), secret) || strings.Contains(fmt.Sprint(h), secret) {
			t.Fatalf("#%d: password in answer", i)
		}
		if rec.Code == http.StatusOK {
			b := rec.Body.Bytes()
			if h.Get("Content-Type") != "image/jpeg" {
				t.Fatalf("#%d: Content-Type %q", i, h.Get("Content-Type"))
			}
			if err := decodes(b); err != nil {
				t.Fatalf("#%d (%s): body does not decode: %v", i, dev.mode, err)
			}
			if _, err := snapshot.Validate(b); err != nil || !bytes.Equal(b, goodImg) {
				t.Fatalf("#%d (%s): served %d bytes, not the last good image (%v)", i, dev.mode, len(b), err)
			}
			if h.Get("Last-Modified") != goodAt.UTC().Format(http.TimeFormat) {
				t.Fatalf("#%d: Last-Modified %q, want %v", i, h.Get("Last-Modified"), goodAt)
			}
			age := strconv.Itoa(int(now.Sub(goodAt) / time.Second))
			if h.Get("Age") != age {
				t.Fatalf("#%d: Age %q, want %s", i, h.Get("Age"), age)
			}
			if dev.mode == "ok" {
				fresh++
				if h.Get(snapshot.HeaderStale) != "" || h.Get("Warning") != "" || age != "0" {
					t.Fatalf("#%d: fresh answer marked stale: %v", i, h)
				}
				continue
			}
			stale++
			if h.Get(snapshot.HeaderStale) != "true" || h.Get(snapshot.HeaderStaleAge) != age ||
				h.Get("Warning") != `110 - "Response is Stale"` ||
				h.Get(snapshot.HeaderStaleReason) != string(chaosReasons[dev.mode]) {
				t.Fatalf("#%d (%s): stale answer not marked: %v", i, dev.mode, h)
			}
			if now.Sub(goodAt) > maxStale {
				t.Fatalf("#%d: served an image %s old, over MaxStale", i, now.Sub(goodAt))
			}
			continue
		}
		// An error answer: only when the fetch failed and there is no usable image.
		bad++
		if dev.mode == "ok" {
			t.Fatalf("#%d: error %d after a good fetch: %s", i, rec.Code, rec.Body)
		}
		m := decodeErrorBody(t, rec)
		if m["reason"] != string(chaosReasons[dev.mode]) {
			t.Fatalf("#%d (%s): reason %v: %s", i, dev.mode, m["reason"], rec.Body)
		}
		want := http.StatusBadGateway
		if dev.mode == "timeout" {
			want = http.StatusGatewayTimeout
		}
		if rec.Code != want {
			t.Fatalf("#%d (%s): status %d, want %d", i, dev.mode, rec.Code, want)
		}
		if goodImg == nil {
			if m["last_good"] != nil || !strings.Contains(m["error"].(string), "no good image yet") {
				t.Fatalf("#%d: never-good error: %s", i, rec.Body)
			}
			continue
		}
		staleErrs++
		if now.Sub(goodAt) <= maxStale {
			t.Fatalf("#%d: error although the last good image is only %s old: %s", i, now.Sub(goodAt), rec.Body)
		}
		if m["age_s"] != float64(now.Sub(goodAt)/time.Second) || m["last_good"] != goodAt.Format(time.RFC3339) ||
			!strings.Contains(m["error"].(string), "staleness limit") {
			t.Fatalf("#%d: past-MaxStale error body %s", i, rec.Body)
		}
	}
	st := c.Stats()
	c.Close()
	checkGoroutines(t, base)

	t.Logf("fresh %d, stale %d, errors %d (past MaxStale %d), device modes %v", fresh, stale, bad, staleErrs, dev.modes)
	for _, m := range []string{"ok", "timeout", "xml", "html", "truncated", "error", "empty", "garbage"} {
		if dev.modes[m] == 0 {
			t.Errorf("failure mode %q never happened: the test did not cover it", m)
		}
	}
	if stale == 0 || staleErrs == 0 {
		t.Errorf("stale %d, past-MaxStale errors %d: both must happen", stale, staleErrs)
	}
	failures := uint64(0)
	for _, n := range st.Failures {
		failures += n
	}
	if st.DeviceRequests != 500 || failures != uint64(500-dev.modes["ok"]) ||
		st.ServedFresh != uint64(fresh) || st.ServedStale != uint64(stale) || st.ServedErrors != uint64(bad) {
		t.Errorf("stats %+v; fresh %d stale %d errors %d", st, fresh, stale, bad)
	}
	if st.Failures[snapshot.ReasonTimeout] != uint64(dev.modes["timeout"]) || st.Failures[snapshot.ReasonHTML] != uint64(dev.modes["html"]) {
		t.Errorf("failures by reason %v, device modes %v", st.Failures, dev.modes)
	}
	if strings.Contains(st.LastError, secret) {
		t.Errorf("password in Stats.LastError: %q", st.LastError)
	}
}

// The same failing device hit by concurrent HTTP clients through a real server
// on real time: no broken body, every stale answer marked.
func TestChaosConcurrentHTTP(t *testing.T) {
	base := runtime.NumGoroutine()
	var mu sync.Mutex
	dev := &chaos{t: t, rng: rand.New(rand.NewPCG(7, 7)), modes: map[string]int{}}
	dev.good = [][]byte{frame(t), makeJPEG(t, 4)}
	c := snapshot.New(func(ctx context.Context, w, h int) ([]byte, error) {
		mu.Lock() // the chaos device keeps unshared state; requests are coalesced anyway
		defer mu.Unlock()
		return dev.fetch(ctx, w, h)
	}, snapshot.Options{MinInterval: -1, MaxStale: -1, FetchTimeout: 5 * time.Millisecond})
	srv := httptest.NewServer(c)
	client := srv.Client()

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 40 {
				resp, err := client.Get(srv.URL + "/?width=64&height=36")
				if err != nil {
					errs <- err
					return
				}
				var buf bytes.Buffer
				_, _ = buf.ReadFrom(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					if err := decodes(buf.Bytes()); err != nil {
						errs <- fmt.Errorf("broken body served: %v", err)
						return
					}
					if resp.Header.Get(snapshot.HeaderStale) == "true" &&
						(resp.Header.Get(snapshot.HeaderStaleAge) == "" || resp.Header.Get("Warning") == "") {
						errs <- fmt.Errorf("stale answer without age: %v", resp.Header)
						return
					}
				} else if resp.StatusCode < 500 || !strings.Contains(buf.String(), `"reason"`) {
					errs <- fmt.Errorf("error answer %d: %s", resp.StatusCode, buf.String())
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	srv.Close()
	c.Close()
	client.CloseIdleConnections()
	checkGoroutines(t, base)
	if st := c.Stats(); st.DeviceRequests == 0 || st.ServedFresh == 0 {
		t.Errorf("stats %+v", st)
	}
}
