package e2e_test

import (
	"context"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/e2e"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

// slowRTSPProxy forwards TCP connections to target, holding the target's
// first answer on each connection back for delay (a slow recorder over a VPN:
// the DESCRIBE answer comes late, the rest flows).
func slowRTSPProxy(t *testing.T, target string, delay time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	track := func(c net.Conn) {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			track(c)
			track(up)
			wg.Add(2)
			go func() { defer wg.Done(); _, _ = io.Copy(up, c); _ = up.Close() }()
			go func() {
				defer wg.Done()
				buf := make([]byte, 64<<10)
				first := true
				for {
					n, err := up.Read(buf)
					if n > 0 {
						if first {
							first = false
							time.Sleep(delay)
						}
						if _, werr := c.Write(buf[:n]); werr != nil {
							break
						}
					}
					if err != nil {
						break
					}
				}
				_ = c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// TestPersonalitySlowRTSPAnswer: a recorder whose RTSP answers take 6 s plays
// with #timeout=9 (the patched go2rtc waits the source's #timeout for an RTSP
// answer when it is longer than its own 5 s), and fails with go2rtc's 5 s
// wait without it.
func TestPersonalitySlowRTSPAnswer(t *testing.T) {
	requireFFmpeg(t)
	bin := binary(t)
	dev := startSim(t, sim.Config{Users: map[string]string{"admin": e2ePassword}})
	proxy := slowRTSPProxy(t, dev.RTSPAddr(), 6*time.Second)
	_, port, _ := net.SplitHostPort(proxy)
	g := e2e.StartGo2rtc(t, bin, go2rtcConfig(map[string]string{
		"slow_long":  hikURL("admin", e2ePassword, dev, "?channel=1&stream=sub&rtsp_port="+port+"#backchannel=0#timeout=9"),
		"slow_stock": hikURL("admin", e2ePassword, dev, "?channel=1&stream=sub&rtsp_port="+port+"#backchannel=0"),
	}, "hikvision=debug"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	var wg sync.WaitGroup
	var longErr, stockErr error
	var longGot []probedStream
	wg.Add(2)
	go func() { defer wg.Done(); longGot, _, longErr = ffprobeStreams(ctx, "rtsp://"+g.RTSPAddr+"/slow_long") }()
	go func() { defer wg.Done(); _, _, stockErr = ffprobeStreams(ctx, "rtsp://"+g.RTSPAddr+"/slow_stock") }()
	wg.Wait()
	if longErr != nil {
		t.Errorf("#timeout=9 with a 6 s DESCRIBE answer: %v", longErr)
	} else if !slices.ContainsFunc(longGot, func(s probedStream) bool { return s.CodecType == "video" }) {
		t.Errorf("#timeout=9: ffprobe found %+v, want video", longGot)
	}
	if stockErr == nil {
		t.Error("without #timeout a 6 s DESCRIBE answer played: the delay did not exceed go2rtc's 5 s")
	}
	if out := g.Output(); !strings.Contains(out, "no answer within 5s") {
		t.Errorf("go2rtc's log lacks the 5 s timeout of the stream without #timeout:\n%s", out)
	}
	if t.Failed() {
		t.Logf("go2rtc output:\n%s", g.Output())
	}
}
