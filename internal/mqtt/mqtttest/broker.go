package mqtttest

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// debianPath is where Debian's package mosquitto installs the broker (not
// on a user's PATH: it is in sbin).
const debianPath = "/usr/sbin/mosquitto"

// MosquittoPath returns the mosquitto binary. Without one the test is
// skipped, unless CI=true, where that is a failure (see the package doc).
func MosquittoPath(t testing.TB) string {
	t.Helper()
	return mosquittoPath(t, exec.LookPath, debianPath)
}

func mosquittoPath(t testing.TB, lookPath func(string) (string, error), fallback string) string {
	t.Helper()
	if p, err := lookPath("mosquitto"); err == nil {
		return p
	}
	if _, err := os.Stat(fallback); err == nil {
		return fallback
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("mosquitto is not installed (apt-get install mosquitto); CI=true needs it")
	}
	t.Skip("mosquitto is not installed (apt-get install mosquitto): skipping the broker tests")
	return ""
}

// FreePort returns a loopback TCP port that was free a moment ago (nothing
// listens on it, so a connection to it is refused).
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	return port
}

// Broker is a real mosquitto on a loopback port, with a temporary config.
type Broker struct {
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

// StartBroker starts mosquitto on a free loopback port and waits until it
// accepts connections; extra (may be empty) is added to its config, one
// directive a line ("allow_anonymous false\npassword_file ...", "certfile
// ..."). The broker is killed when the test ends. Without mosquitto the
// test is skipped or fails, see MosquittoPath.
func StartBroker(t testing.TB, extra string) *Broker {
	t.Helper()
	b := &Broker{t: t, bin: MosquittoPath(t), dir: t.TempDir(), extra: extra}
	var err error
	for try := 0; try < 5; try++ { // the free port may be taken meanwhile
		b.port = FreePort(t)
		if err = b.start(); err == nil {
			t.Cleanup(b.Kill)
			return b
		}
	}
	t.Fatalf("mosquitto did not start: %v\n%s", err, b.logText())
	return nil
}

// URL is the broker's address for an MQTT client: tcp://127.0.0.1:PORT.
func (b *Broker) URL() string { return "tcp://" + b.Addr() }

// Addr is the broker's host:port.
func (b *Broker) Addr() string { return "127.0.0.1:" + strconv.Itoa(b.port) }

func (b *Broker) logText() string {
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

// config is the broker's config file text.
func (b *Broker) config() string {
	text := fmt.Sprintf("listener %d 127.0.0.1\npersistence false\nuser root\nlog_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n%s\n", b.port, b.extra)
	if !strings.Contains(b.extra, "allow_anonymous") {
		text += "allow_anonymous true\n"
	}
	return text
}

// start starts mosquitto on b.port and waits until it accepts connections
// (or exits).
func (b *Broker) start() error {
	conf := filepath.Join(b.dir, "mosquitto.conf")
	if err := os.WriteFile(conf, []byte(b.config()), 0o600); err != nil {
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
		if c, err := net.DialTimeout("tcp", b.Addr(), time.Second); err == nil {
			_ = c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond) // a poll with a deadline
	}
	b.Kill()
	return fmt.Errorf("mosquitto not accepting on %s within 15 s", b.Addr())
}

// Restart starts the broker again on the same port, after Kill. It comes
// back empty: no persistence, so every retained message is gone, as after a
// broker that lost its store. It fails the test if mosquitto does not start
// within about 5 s of tries (the port may linger a moment after a kill).
func (b *Broker) Restart() {
	b.t.Helper()
	var err error
	for try := 0; try < 50; try++ {
		if err = b.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.t.Fatalf("mosquitto did not restart on %s: %v\n%s", b.Addr(), err, b.logText())
}

// Kill stops the broker at once (SIGKILL: no clean goodbye to its clients,
// which see their connections break) and waits for the process to end. It
// does nothing on a broker already killed.
func (b *Broker) Kill() {
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
