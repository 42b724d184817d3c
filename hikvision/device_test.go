package hikvision

import (
	"errors"
	"sync/atomic"
	"testing"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/guard"
)

type fakeAttachment struct{ closed atomic.Int32 }

func (a *fakeAttachment) Close() error { a.closed.Add(1); return nil }

// A device lives while it is referenced: one Device per host/port/user for
// every holder, its attachment made once and closed once with the last
// reference, after which it answers ErrDeviceClosed; the login guard
// outlives it.
func TestDeviceLifetime(t *testing.T) {
	t.Parallel()
	m := resetModule(t, Options{}, guard.Config{})
	cfg := mustParse(t, "hikvision://admin:pw@CAM.local:8080/?channel=1")
	d1 := m.device(cfg)
	d2 := m.device(mustParse(t, "hikvision://admin:pw@cam.local:8080/?channel=2&stream=sub"))
	if d1 != d2 {
		t.Fatal("two sources of one device got two Device values")
	}
	made := 0
	att := &fakeAttachment{}
	mk := func(*Device) (Attachment, error) { made++; return att, nil }
	for i := 0; i < 2; i++ {
		a, err := d1.Attachment("events", mk)
		if err != nil || a != att {
			t.Fatalf("Attachment: %v %v", a, err)
		}
	}
	if made != 1 {
		t.Fatalf("attachment made %d times, want once", made)
	}
	g := d1.guard
	d1.Release()
	if att.closed.Load() != 0 {
		t.Fatal("attachment closed while a reference is held")
	}
	d2.Release()
	if att.closed.Load() != 1 {
		t.Fatalf("attachment closed %d times after the last Release, want 1", att.closed.Load())
	}
	if _, err := d1.Attachment("sdk", mk); !errors.Is(err, ErrDeviceClosed) {
		t.Fatalf("Attachment after close: %v, want ErrDeviceClosed", err)
	}
	if _, err := d1.isapiClient(); !errors.Is(err, ErrDeviceClosed) {
		t.Fatalf("isapiClient after close: %v, want ErrDeviceClosed", err)
	}
	d3, err := m.Device("hikvision://admin:pw@cam.local:8080/?channel=3")
	if err != nil {
		t.Fatal(err)
	}
	defer d3.Release()
	if d3 == d1 || d3.guard != g {
		t.Fatal("after close: want a new Device with the same login guard")
	}
}
