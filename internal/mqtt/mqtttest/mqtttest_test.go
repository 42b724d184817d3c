package mqtttest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// fakeTB records a Fatal or Skip instead of ending the real test; like the
// real ones they end the goroutine, so calls go through run.
type fakeTB struct {
	testing.TB
	mu          sync.Mutex
	fatal, skip string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatal(args ...any) { f.end(&f.fatal, fmt.Sprint(args...)) }

func (f *fakeTB) Fatalf(format string, args ...any) { f.end(&f.fatal, fmt.Sprintf(format, args...)) }

func (f *fakeTB) Skip(args ...any) { f.end(&f.skip, fmt.Sprint(args...)) }

func (f *fakeTB) end(field *string, s string) {
	f.mu.Lock()
	*field = s
	f.mu.Unlock()
	runtime.Goexit()
}

// run calls fn on a goroutine of its own and waits for it to end.
func run(fn func()) {
	done := make(chan struct{})
	go func() { defer close(done); fn() }()
	<-done
}

func TestMosquittoMissing(t *testing.T) {
	notFound := func(string) (string, error) { return "", errors.New("not found") }
	nowhere := filepath.Join(t.TempDir(), "mosquitto")
	for _, ci := range []string{"", "true"} {
		t.Setenv("CI", ci)
		f := &fakeTB{TB: t}
		got := "returned"
		run(func() { got = mosquittoPath(f, notFound, nowhere) })
		if got != "returned" {
			t.Fatalf("CI=%q: mosquittoPath returned %q without a mosquitto", ci, got)
		}
		if ci == "true" && (f.fatal == "" || f.skip != "") {
			t.Errorf("CI=true: fatal %q, skip %q; want a failure", f.fatal, f.skip)
		}
		if ci == "" && (f.skip == "" || f.fatal != "") {
			t.Errorf("CI unset: fatal %q, skip %q; want a skip", f.fatal, f.skip)
		}
	}
	// The fallback (Debian's /usr/sbin) is used when mosquitto is not on PATH.
	if err := os.WriteFile(nowhere, nil, 0o700); err != nil {
		t.Fatal(err)
	}
	if p := mosquittoPath(t, notFound, nowhere); p != nowhere {
		t.Errorf("mosquittoPath = %q, want %s", p, nowhere)
	}
}

func publish(t *testing.T, url, topic, payload string, retained bool) {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID("mqtttest-pub"))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	if tok := c.Publish(topic, 1, retained, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
}

// A broker started, killed and restarted on the same port comes back empty;
// a recorder sees what is published, in order, with the retained flag.
func TestBrokerKillRestart(t *testing.T) {
	b := StartBroker(t, "max_keepalive 120")
	rec := Subscribe(t, b.URL(), "t/#")
	publish(t, b.URL(), "t/a", `{"n":1}`, true)
	publish(t, b.URL(), "t/a", `{"n":2}`, false)
	m := rec.WaitLast("t/a", `{"n":2}`, 10*time.Second)
	if m.Retained || Decode(t, m)["n"] != float64(2) {
		t.Errorf("last message %+v", m)
	}
	if ms := rec.Messages(); len(ms) != 2 || ms[0].Payload != `{"n":1}` || ms[0].At.After(ms[1].At) {
		t.Errorf("messages:\n%s", Dump(ms))
	}
	if late := Subscribe(t, b.URL(), "t/a"); !late.WaitFor("the retained message", 10*time.Second, func(ms []Msg) bool { return len(ms) > 0 })[0].Retained {
		t.Error("a later subscriber's first message is not retained")
	}

	b.Kill()
	if c, err := net.DialTimeout("tcp", b.Addr(), time.Second); err == nil {
		_ = c.Close()
		t.Fatal("the killed broker still accepts connections")
	}
	b.Kill() // a second kill does nothing
	addr := b.Addr()
	b.Restart()
	if b.Addr() != addr {
		t.Fatalf("restarted on %s, was %s", b.Addr(), addr)
	}
	fresh := Subscribe(t, b.URL(), "t/#")
	publish(t, b.URL(), "t/b", "after", false)
	ms := fresh.WaitFor("t/b", 10*time.Second, func(ms []Msg) bool { _, ok := Last(ms, "t/b"); return ok })
	if _, ok := Last(ms, "t/a"); ok {
		t.Errorf("the retained message outlived the restart:\n%s", Dump(ms))
	}
}

// The extra config reaches mosquitto: a directive it does not know stops
// it, and the failure shows the broker's log.
func TestBrokerBadConfig(t *testing.T) {
	MosquittoPath(t)
	f := &fakeTB{TB: t}
	run(func() { StartBroker(f, "no_such_directive 1") })
	if !strings.Contains(f.fatal, "mosquitto did not start") || !strings.Contains(f.fatal, "no_such_directive") {
		t.Errorf("failure %q; want one naming the start and the bad directive", f.fatal)
	}
}

// WaitFor fails after its timeout, naming what it waited for and listing
// what it got.
func TestWaitForTimeout(t *testing.T) {
	b := StartBroker(t, "")
	f := &fakeTB{TB: t}
	rec := Subscribe(f, b.URL(), "#")
	publish(t, b.URL(), "t/x", "hello", false)
	rec.WaitLast("t/x", "hello", 10*time.Second)
	run(func() { rec.WaitLast("t/x", "never", 50*time.Millisecond) })
	if !strings.Contains(f.fatal, "timed out after 50ms waiting for t/x = never") || !strings.Contains(f.fatal, "t/x retained=false hello") {
		t.Errorf("failure %q", f.fatal)
	}
}
