package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// echoServer answers every line with the same line.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func startProxy(t *testing.T, target string, oneWay time.Duration) *DelayProxy {
	t.Helper()
	p, err := NewDelayProxy("test", "127.0.0.1:0", target, oneWay)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// Each request waits at least a round trip, the first one a second one for
// the connect; the bytes come back whole and in order; the proxy counts one
// round trip per sequential request plus the connect.
func TestDelayProxySequentialRequests(t *testing.T) {
	const oneWay = 30 * time.Millisecond
	p := startProxy(t, echoServer(t), oneWay)
	start := time.Now()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	const n = 4
	for i := range n {
		sent := time.Now()
		line := fmt.Sprintf("request %d %s\n", i, bytes.Repeat([]byte{'x'}, 100_000))
		if _, err := io.WriteString(c, line); err != nil {
			t.Fatal(err)
		}
		got, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if got != line {
			t.Fatalf("request %d: echo differs (%d bytes, want %d)", i, len(got), len(line))
		}
		min := 2 * oneWay
		if i == 0 {
			// connect + request, from before the dial: the emulated
			// connect starts at the proxy's accept, which may come before
			// the client's Dial has returned
			min, sent = 4*oneWay, start
		}
		if el := time.Since(sent); el < min {
			t.Errorf("request %d answered after %v, want at least %v", i, el, min)
		}
	}
	trips := p.RoundTrips(start, time.Now())
	if got := SequentialRoundTrips(trips); got != n+1 {
		t.Errorf("sequential round trips = %d, want %d (connect + %d requests); trips %+v", got, n+1, n, trips)
	}
}

// Concurrent connections and requests overlap: they count as one round trip
// for the connects and one for the requests. The delay is long against the
// scheduling jitter of a loaded machine (the connects of 8 goroutines must
// land within one round trip of each other).
func TestDelayProxyConcurrentCountOnce(t *testing.T) {
	const oneWay = 300 * time.Millisecond
	p := startProxy(t, echoServer(t), oneWay)
	start := time.Now()
	const conns = 8
	var (
		wg      sync.WaitGroup
		dialled sync.WaitGroup
		errs    = make(chan error, conns)
		send    = make(chan struct{})
	)
	dialled.Add(conns)
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", p.Addr())
			dialled.Done()
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			<-send // every client connected: the requests leave together
			if _, err := io.WriteString(c, "hello\n"); err != nil {
				errs <- err
				return
			}
			if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
				errs <- err
			}
		}()
	}
	dialled.Wait()
	close(send)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	trips := p.RoundTrips(start, time.Now())
	if len(trips) != 2*conns {
		t.Fatalf("recorded %d round trips, want %d (a connect and a request per connection)", len(trips), 2*conns)
	}
	if got := SequentialRoundTrips(trips); got != 2 {
		t.Errorf("sequential round trips = %d, want 2 (connects together, then requests together); trips %+v", got, trips)
	}
}

// Close ends open connections (the client reads EOF) and returns once the
// proxy's goroutines are gone; a closed device side closes the client side.
func TestDelayProxyClose(t *testing.T) {
	p := startProxy(t, echoServer(t), time.Millisecond)
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "x\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("client read after Close: %v, want EOF", err)
	}
}

func TestSequentialRoundTripsChain(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	trips := []RoundTrip{
		{Start: at(0), End: at(10)},   // connect
		{Start: at(10), End: at(20)},  // challenge
		{Start: at(20), End: at(30)},  // login
		{Start: at(30), End: at(40)},  // probe a
		{Start: at(31), End: at(41)},  // probe b, concurrent
		{Start: at(41), End: at(51)},  // rtsp
		{Start: at(45), End: at(100)}, // long, overlaps
	}
	if got := SequentialRoundTrips(trips); got != 5 {
		t.Errorf("SequentialRoundTrips = %d, want 5", got)
	}
	if got := SequentialRoundTrips(nil); got != 0 {
		t.Errorf("SequentialRoundTrips(nil) = %d, want 0", got)
	}
}
