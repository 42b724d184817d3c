package events_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
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
	t.Skip("mosquitto is not installed (apt-get install mosquitto): skipping")
	return ""
}

// broker is a real mosquitto on a loopback port.
type broker struct {
	t    testing.TB
	bin  string
	dir  string
	port int

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  bytes.Buffer
}

func startBroker(t testing.TB) *broker {
	t.Helper()
	b := &broker{t: t, bin: mosquittoPath(t), dir: t.TempDir()}
	var err error
	for try := 0; try < 5; try++ {
		ln, lerr := net.Listen("tcp", "127.0.0.1:0")
		if lerr != nil {
			t.Fatal(lerr)
		}
		b.port = ln.Addr().(*net.TCPAddr).Port
		_ = ln.Close()
		if err = b.start(); err == nil {
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

func (b *broker) start() error {
	conf := filepath.Join(b.dir, "mosquitto.conf")
	text := fmt.Sprintf("listener %d 127.0.0.1\npersistence false\nuser root\nallow_anonymous true\nlog_dest stderr\nlog_type error\nlog_type warning\n", b.port)
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
		if c, err := net.DialTimeout("tcp", b.addr(), time.Second); err == nil {
			_ = c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond) // a poll with a deadline
	}
	b.kill()
	return fmt.Errorf("mosquitto not accepting on %s within 15 s", b.addr())
}

// restart starts the broker again on the same port (no persistence: every
// retained message is gone, as after a broker that lost its store).
func (b *broker) restart() {
	b.t.Helper()
	var err error
	for try := 0; try < 50; try++ {
		if err = b.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.t.Fatalf("mosquitto did not restart on %s: %v\n%s", b.addr(), err, b.logText())
}

// kill stops the broker at once (SIGKILL).
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

type msg struct {
	Topic    string
	Payload  string
	Retained bool
	At       time.Time
}

// recorder is an MQTT subscriber that keeps every message.
type recorder struct {
	t      testing.TB
	client paho.Client

	mu      sync.Mutex
	msgs    []msg
	changed chan struct{}
}

func subscribe(t testing.TB, url, filter string) *recorder {
	t.Helper()
	r := &recorder{t: t, changed: make(chan struct{})}
	o := paho.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("e2e-sub-%d", time.Now().UnixNano())).
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).SetCleanSession(true)
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
	var b strings.Builder
	for _, m := range ms {
		p := m.Payload
		if len(p) > 200 {
			p = p[:200] + "..."
		}
		fmt.Fprintf(&b, "  %s %s retained=%v %s\n", m.At.Format("15:04:05.000"), m.Topic, m.Retained, p)
	}
	return b.String()
}

func decode(t testing.TB, m msg) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(m.Payload), &v); err != nil {
		t.Fatalf("%s: not JSON: %v: %s", m.Topic, err, m.Payload)
	}
	return v
}

// sseMsg is one Server-Sent Event of /api/hikvision/events.
type sseMsg struct {
	Device      string    `json:"device"`
	Channel     int       `json:"channel"`
	Stream      string    `json:"stream"`
	Streams     []string  `json:"streams"`
	Type        string    `json:"type"`
	Active      bool      `json:"active"`
	Time        time.Time `json:"time"`
	Raw         string    `json:"raw"`
	PictureSize int       `json:"picture_size"`
	event       string
}

// sse reads /api/hikvision/events.
type sse struct {
	t    testing.TB
	msgs chan sseMsg
}

func openSSE(t testing.TB, url string) *sse {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(res.Body)
		cancel()
		t.Fatalf("GET %s: %d %s: %s", url, res.StatusCode, res.Header.Get("Content-Type"), b)
	}
	s := &sse{t: t, msgs: make(chan sseMsg, 1000)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(res.Body)
		event := ""
		for sc.Scan() {
			line := sc.Text()
			if e, ok := strings.CutPrefix(line, "event: "); ok {
				event = e
			}
			if d, ok := strings.CutPrefix(line, "data: "); ok {
				var m sseMsg
				if err := json.Unmarshal([]byte(d), &m); err != nil {
					t.Errorf("SSE data %q: %v", d, err)
					continue
				}
				m.event = event
				s.msgs <- m
			}
		}
	}()
	t.Cleanup(func() { cancel(); res.Body.Close(); <-done })
	return s
}

// waitFor returns the first message that matches, failing after timeout.
func (s *sse) waitFor(what string, timeout time.Duration, pred func(sseMsg) bool) sseMsg {
	s.t.Helper()
	deadline := time.After(timeout)
	var seen []sseMsg
	for {
		select {
		case m := <-s.msgs:
			if pred(m) {
				return m
			}
			seen = append(seen, m)
		case <-deadline:
			s.t.Fatalf("SSE: no %s within %s; saw %+v", what, timeout, seen)
		}
	}
}

func getJSON(t testing.TB, url string, v any) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, res.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v: %s", url, err, b)
	}
}

func waitUntil(t testing.TB, what string, timeout time.Duration, pred func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !pred() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond) // a poll with a deadline
	}
}
