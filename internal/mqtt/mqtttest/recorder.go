package mqtttest

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Msg is one message a Recorder received.
type Msg struct {
	Topic    string
	Payload  string
	Retained bool      // as delivered: a broker clears it on live deliveries
	At       time.Time // when the client's handler got it
}

// clientSeq makes the subscribers' client ids unique within the process.
var clientSeq atomic.Int64

// SubscribeFunc connects an MQTT client to the broker at url (clean
// session, no automatic reconnect) and subscribes it to filter at qos, with
// handle called for every message on paho's goroutine. opts change the
// client's options before it connects (credentials, TLS, client id...). It
// fails the test if the connect or the subscription does not succeed within
// 10 s; the client disconnects when the test ends.
func SubscribeFunc(t testing.TB, url, filter string, qos byte, handle func(paho.Message), opts ...func(*paho.ClientOptions)) paho.Client {
	t.Helper()
	o := paho.NewClientOptions().AddBroker(url).
		SetClientID(fmt.Sprintf("mqtttest-sub-%d-%d", os.Getpid(), clientSeq.Add(1))).
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).SetCleanSession(true)
	for _, f := range opts {
		f(o)
	}
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber connect to %s: %v", url, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	tok := c.Subscribe(filter, qos, func(_ paho.Client, m paho.Message) { handle(m) })
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
	return c
}

// Recorder is a subscriber that keeps every message it receives.
type Recorder struct {
	t      testing.TB
	client paho.Client

	mu      sync.Mutex
	msgs    []Msg
	changed chan struct{} // closed and replaced on every message
}

// Subscribe connects a Recorder to the broker at url, subscribed to filter
// at QoS 1; see SubscribeFunc for opts and failures.
func Subscribe(t testing.TB, url, filter string, opts ...func(*paho.ClientOptions)) *Recorder {
	t.Helper()
	r := &Recorder{t: t, changed: make(chan struct{})}
	r.client = SubscribeFunc(t, url, filter, 1, r.add, opts...)
	return r
}

// Close disconnects the subscriber before the test ends (it keeps the
// messages it has); the test's cleanup does it otherwise.
func (r *Recorder) Close() { r.client.Disconnect(100) }

func (r *Recorder) add(m paho.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, Msg{Topic: m.Topic(), Payload: string(m.Payload()), Retained: m.Retained(), At: time.Now()})
	close(r.changed)
	r.changed = make(chan struct{})
}

// Messages returns a copy of every message received so far, oldest first.
func (r *Recorder) Messages() []Msg {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Msg(nil), r.msgs...)
}

// WaitFor waits until pred holds over the messages received so far and
// returns them; after timeout it fails the test, naming what and listing
// the messages it got.
func (r *Recorder) WaitFor(what string, timeout time.Duration, pred func(ms []Msg) bool) []Msg {
	r.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		ms := append([]Msg(nil), r.msgs...)
		ch := r.changed
		r.mu.Unlock()
		if pred(ms) {
			return ms
		}
		select {
		case <-ch:
		case <-deadline.C:
			r.t.Fatalf("timed out after %s waiting for %s; got %d messages:\n%s", timeout, what, len(ms), Dump(ms))
			return nil
		}
	}
}

// WaitLast waits until the latest message on topic has payload want and
// returns that message; see WaitFor for the timeout.
func (r *Recorder) WaitLast(topic, want string, timeout time.Duration) Msg {
	r.t.Helper()
	ms := r.WaitFor(topic+" = "+want, timeout, func(ms []Msg) bool {
		m, ok := Last(ms, topic)
		return ok && m.Payload == want
	})
	m, _ := Last(ms, topic)
	return m
}

// Last is the latest message on topic in ms.
func Last(ms []Msg, topic string) (Msg, bool) {
	for i := len(ms) - 1; i >= 0; i-- {
		if ms[i].Topic == topic {
			return ms[i], true
		}
	}
	return Msg{}, false
}

// Dump lists messages for a failure message, one a line: time, topic, the
// retained flag and the payload (cut after 300 bytes).
func Dump(ms []Msg) string {
	var b strings.Builder
	for _, m := range ms {
		p := m.Payload
		if len(p) > 300 {
			p = p[:300] + "..."
		}
		fmt.Fprintf(&b, "  %s %s retained=%v %s\n", m.At.Format("15:04:05.000"), m.Topic, m.Retained, p)
	}
	return b.String()
}

// Decode parses a JSON object payload into a map, failing the test when it
// is not one.
func Decode(t testing.TB, m Msg) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(m.Payload), &v); err != nil {
		t.Fatalf("%s: payload is not JSON: %v: %q", m.Topic, err, m.Payload)
	}
	return v
}
