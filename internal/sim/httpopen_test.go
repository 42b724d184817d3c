package sim_test

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

// Stats.HTTPOpen counts ISAPI connections that are open now: a keep-alive
// client keeps one, and it goes back to 0 once the client closes it.
func TestHTTPOpenCountsKeepAlives(t *testing.T) {
	d, err := sim.Start(sim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	for i := 0; i < 2; i++ { // the second request reuses the connection
		res, err := c.Get("http://" + d.HTTPAddr() + "/ISAPI/System/deviceInfo")
		if err != nil {
			t.Fatal(err)
		}
		// Read to EOF: net/http reuses a connection only after its body
		// was read through; an unread 401 body made it dial a second one.
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
	}
	if n := d.Stats().HTTPOpen; n != 1 {
		t.Errorf("HTTPOpen = %d with one keep-alive connection, want 1", n)
	}
	tr.CloseIdleConnections()
	deadline := time.Now().Add(2 * time.Second)
	for d.Stats().HTTPOpen != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("HTTPOpen = %d 2 s after the client closed its connection, want 0", d.Stats().HTTPOpen)
		}
		time.Sleep(10 * time.Millisecond) // polling with a deadline
	}
}
