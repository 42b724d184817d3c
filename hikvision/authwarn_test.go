package hikvision

import (
	"bytes"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/guard"
	"strings"
	"sync"
	"testing"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
	"github.com/rs/zerolog"
)

// syncBuf is a log sink safe for concurrent writers.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) lines(with ...string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
next:
	for _, l := range strings.Split(s.b.String(), "\n") {
		for _, w := range with {
			if !strings.Contains(l, w) {
				continue next
			}
		}
		out = append(out, l)
	}
	return out
}

// captureLog sends the module's log to a buffer for the test.
func captureLog(t *testing.T) *syncBuf {
	buf := &syncBuf{}
	mod(t).log = zerolog.New(buf).Level(zerolog.DebugLevel)
	return buf
}

// A device that accepts only HTTP Basic over plain HTTP gets one warning,
// however often it is dialled; a device that also offers Digest gets none.
func TestBasicOverHTTPWarnsOncePerDevice(t *testing.T) {
	t.Parallel()
	resetModule(t, Options{}, guard.Config{})
	buf := captureLog(t)
	const pass = "hik/12@45"
	basic := apiStartSim(t, sim.Config{Auth: sim.AuthBasic, Users: map[string]string{"admin": pass}})
	dual := apiStartSim(t, sim.Config{Auth: sim.AuthDigestBasic, Users: map[string]string{"admin": pass}})
	for i := 0; i < 2; i++ {
		for _, d := range []*sim.Device{basic, dual} {
			p := dialProducer(t, apiSimURL(d, "admin", pass, "#backchannel=0"))
			if err := p.Stop(); err != nil {
				t.Fatal(err)
			}
		}
		// forget the probes (not the warnings): the next Dial logs in again
		m := mod(t)
		m.probes.mu.Lock()
		m.probes.m = map[string]probeEntry{}
		m.probes.mu.Unlock()
	}
	got := buf.lines(`"device":"`+basic.HTTPAddr()+`"`, "Basic")
	if len(got) != 1 {
		t.Fatalf("%d Basic warnings for the Basic-only device, want 1:\n%s", len(got), strings.Join(got, "\n"))
	}
	for _, w := range []string{`"level":"warn"`, "base64", "enable digest", "https=1"} {
		if !strings.Contains(got[0], w) {
			t.Errorf("warning %q lacks %q", got[0], w)
		}
	}
	if strings.Contains(got[0], pass) || strings.Contains(got[0], "hik%2F12") {
		t.Fatalf("warning carries the password: %q", got[0])
	}
	if other := buf.lines(`"device":"`+dual.HTTPAddr()+`"`, "Basic"); len(other) != 0 {
		t.Fatalf("Basic warning for the digest/basic device (answered with Digest): %q", other)
	}
}
