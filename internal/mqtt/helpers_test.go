package mqtt_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// mosquittoPath finds Debian's mosquitto; without it the test is skipped,
// unless CI=true, where that is a failure.
func mosquittoPath(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/mosquitto"); err == nil {
		return "/usr/sbin/mosquitto"
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("mosquitto is not installed (apt-get install mosquitto); CI=true needs it")
	}
	t.Skip("mosquitto is not installed (apt-get install mosquitto): skipping the broker tests")
	return ""
}

// broker is a real mosquitto on a loopback port, with a temp config.
type broker struct {
	t     testing.TB
	bin   string
	dir   string
	port  int
	extra string // more config lines

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  bytes.Buffer
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	return port
}

// startBroker starts mosquitto on a free port; extra is added to its config.
func startBroker(t testing.TB, extra string) *broker {
	t.Helper()
	b := &broker{t: t, bin: mosquittoPath(t), dir: t.TempDir(), extra: extra}
	var err error
	for try := 0; try < 5; try++ {
		b.port = freePort(t)
		if err = b.startErr(); err == nil {
			t.Cleanup(b.kill)
			return b
		}
	}
	t.Fatalf("mosquitto did not start: %v\n%s", err, b.logText())
	return nil
}

func (b *broker) url() string  { return "tcp://" + b.addr() }
func (b *broker) addr() string { return "127.0.0.1:" + strconv.Itoa(b.port) }

func (b *broker) logText() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.log.String()
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// startErr starts mosquitto on b.port and waits until it accepts
// connections (or exits).
func (b *broker) startErr() error {
	conf := filepath.Join(b.dir, "mosquitto.conf")
	text := fmt.Sprintf("listener %d 127.0.0.1\npersistence false\nuser root\nlog_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n%s\n", b.port, b.extra)
	if !bytes.Contains([]byte(b.extra), []byte("allow_anonymous")) {
		text += "allow_anonymous true\n"
	}
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		return err
	}
	cmd := exec.Command(b.bin, "-c", conf)
	w := lockedWriter{&b.mu, &b.log}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	b.mu.Lock()
	b.cmd, b.done = cmd, done
	b.mu.Unlock()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("mosquitto exited: %s", cmd.ProcessState)
		default:
		}
		c, err := net.DialTimeout("tcp", b.addr(), time.Second)
		if err == nil {
			_ = c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.kill()
	return fmt.Errorf("mosquitto not accepting on %s within 15 s", b.addr())
}

// restart starts the broker again on the same port.
func (b *broker) restart() {
	b.t.Helper()
	var err error
	for try := 0; try < 50; try++ { // the port may linger a moment after a kill
		if err = b.startErr(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.t.Fatalf("mosquitto did not restart on %s: %v\n%s", b.addr(), err, b.logText())
}

// kill stops the broker at once (SIGKILL: no clean goodbye to clients).
func (b *broker) kill() {
	b.mu.Lock()
	cmd, done := b.cmd, b.done
	b.cmd = nil
	b.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// msg is one message a recorder received.
type msg struct {
	Topic    string
	Payload  string
	Retained bool
	At       time.Time
}

// recorder is a subscriber that keeps every message.
type recorder struct {
	t      testing.TB
	client paho.Client

	mu      sync.Mutex
	msgs    []msg
	changed chan struct{}
}

// subscribe connects a recorder to the broker at url, subscribed to filter.
func subscribe(t testing.TB, url, filter string, opts ...func(*paho.ClientOptions)) *recorder {
	t.Helper()
	r := &recorder{t: t, changed: make(chan struct{})}
	o := paho.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("test-sub-%d", time.Now().UnixNano())).
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).SetCleanSession(true)
	for _, f := range opts {
		f(o)
	}
	r.client = paho.NewClient(o)
	if tok := r.client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber connect to %s: %v", url, tok.Error())
	}
	tok := r.client.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) {
		r.mu.Lock()
		r.msgs = append(r.msgs, msg{Topic: m.Topic(), Payload: string(m.Payload()), Retained: m.Retained(), At: time.Now()})
		close(r.changed)
		r.changed = make(chan struct{})
		r.mu.Unlock()
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
	t.Cleanup(r.close)
	return r
}

func (r *recorder) close() { r.client.Disconnect(100) }

// waitFor waits until pred holds over the messages received so far, failing
// the test after timeout.
func (r *recorder) waitFor(what string, timeout time.Duration, pred func(ms []msg) bool) []msg {
	r.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		ms := append([]msg(nil), r.msgs...)
		ch := r.changed
		r.mu.Unlock()
		if pred(ms) {
			return ms
		}
		select {
		case <-ch:
		case <-deadline.C:
			r.t.Fatalf("timed out after %s waiting for %s; got %d messages:\n%s", timeout, what, len(ms), dump(ms))
			return nil
		}
	}
}

// last is the latest message on topic.
func last(ms []msg, topic string) (msg, bool) {
	for i := len(ms) - 1; i >= 0; i-- {
		if ms[i].Topic == topic {
			return ms[i], true
		}
	}
	return msg{}, false
}

// waitLast waits until the latest message on topic has payload want.
func (r *recorder) waitLast(topic, want string, timeout time.Duration) msg {
	r.t.Helper()
	ms := r.waitFor(topic+" = "+want, timeout, func(ms []msg) bool {
		m, ok := last(ms, topic)
		return ok && m.Payload == want
	})
	m, _ := last(ms, topic)
	return m
}

func dump(ms []msg) string {
	var b bytes.Buffer
	for _, m := range ms {
		p := m.Payload
		if len(p) > 300 {
			p = p[:300] + "..."
		}
		fmt.Fprintf(&b, "  %s retained=%v %s\n", m.Topic, m.Retained, p)
	}
	return b.String()
}

// decode parses a JSON payload into a map.
func decode(t testing.TB, m msg) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(m.Payload), &v); err != nil {
		t.Fatalf("%s: payload is not JSON: %v: %q", m.Topic, err, m.Payload)
	}
	return v
}

// gate is a loopback TCP proxy in front of the broker that the test opens
// and shuts, so it decides when the publisher can reach the broker.
type gate struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	open   bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

func newGate(t testing.TB, target string) *gate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{ln: ln, target: target, open: true, conns: map[net.Conn]struct{}{}}
	g.wg.Add(1)
	go g.serve()
	t.Cleanup(func() {
		_ = ln.Close()
		g.setOpen(false)
		g.wg.Wait()
	})
	return g
}

func (g *gate) url() string { return "tcp://" + g.ln.Addr().String() }

// setOpen opens or shuts the gate; shutting also cuts the connections.
func (g *gate) setOpen(open bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open = open
	if !open {
		for c := range g.conns {
			_ = c.Close()
		}
	}
}

func (g *gate) serve() {
	defer g.wg.Done()
	for {
		c, err := g.ln.Accept()
		if err != nil {
			return
		}
		g.mu.Lock()
		open := g.open
		g.mu.Unlock()
		if !open {
			_ = c.Close()
			continue
		}
		up, err := net.DialTimeout("tcp", g.target, 5*time.Second)
		if err != nil {
			_ = c.Close()
			continue
		}
		g.mu.Lock()
		g.conns[c], g.conns[up] = struct{}{}, struct{}{}
		g.mu.Unlock()
		g.wg.Add(2)
		pipe := func(dst, src net.Conn) {
			defer g.wg.Done()
			_, _ = io.Copy(dst, src)
			_ = dst.Close()
			_ = src.Close()
			g.mu.Lock()
			delete(g.conns, dst)
			delete(g.conns, src)
			g.mu.Unlock()
		}
		go pipe(up, c)
		go pipe(c, up)
	}
}

// waitStats polls the publisher's counters until pred holds.
func waitUntil(t testing.TB, what string, timeout time.Duration, pred func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !pred() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var _ = context.Background
