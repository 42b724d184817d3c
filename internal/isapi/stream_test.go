package isapi_test

import (
	"bufio"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

const alertStream = "/ISAPI/Event/notification/alertStream"

// OpenStream returns the never-ending alert stream with its body unread,
// logs in once, and survives a reboot (the device forgot its nonces).
func TestOpenStream(t *testing.T) {
	d, c := startSim(t, sim.Config{Events: sim.EventsConfig{Heartbeat: 100 * time.Millisecond}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	read := func() {
		t.Helper()
		resp, err := c.OpenStream(ctx, alertStream)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "multipart/") {
			t.Fatalf("Content-Type %q", ct)
		}
		// two heartbeats arrive, longer apart than nothing: the body is live
		sc := bufio.NewScanner(resp.Body)
		n := 0
		for sc.Scan() && n < 2 {
			if strings.Contains(sc.Text(), "videoloss") {
				n++
			}
		}
		if n < 2 {
			t.Fatalf("read %d heartbeats: %v", n, sc.Err())
		}
	}
	read()
	read() // the cached challenge
	if err := d.Reboot(200 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	<-d.Up()
	read()
	if cs := d.Client("127.0.0.1"); cs.FailedLogins != 0 {
		t.Fatalf("%d failed logins with the right password", cs.FailedLogins)
	}
}

// A wrong password is one failed login, returned as *AuthError.
func TestOpenStreamWrongPassword(t *testing.T) {
	d, _ := startSim(t, sim.Config{})
	c, err := isapi.New(isapi.Config{Host: d.HTTPAddr(), Username: "admin", Password: "nope", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.OpenStream(context.Background(), alertStream)
	if !errors.Is(err, isapi.ErrUnauthorized) {
		t.Fatalf("OpenStream with a wrong password: %v", err)
	}
	if cs := d.Client("127.0.0.1"); cs.FailedLogins != 1 {
		t.Fatalf("%d failed logins, want 1", cs.FailedLogins)
	}
	if _, err := c.OpenStream(context.Background(), "no-slash"); err == nil {
		t.Fatal("a path without / was accepted")
	}
}
