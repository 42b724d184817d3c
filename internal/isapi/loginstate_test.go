package isapi_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

// ReadLoginState reads the tries left and the lock from the device's answer
// to a request without credentials, which the device does not count.
func TestReadLoginState(t *testing.T) {
	t.Parallel()
	dev, err := sim.Start(sim.Config{Users: map[string]string{"admin": "right"}, MaxFailures: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	ctx := context.Background()
	bad, err := isapi.New(isapi.Config{Host: dev.HTTPAddr(), Username: "admin", Password: "wrong", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()

	st, err := bad.ReadLoginState(ctx)
	if err != nil || st.Locked || st.RetryLoginTime != 5 {
		t.Fatalf("before any login: %+v %v, want 5 tries left", st, err)
	}
	if _, err := bad.DeviceInfo(ctx); !errors.Is(err, isapi.ErrUnauthorized) {
		t.Fatalf("DeviceInfo with a wrong password: %v", err)
	}
	for i := 0; i < 3; i++ { // reading is free: the count does not move
		st, err = bad.ReadLoginState(ctx)
		if err != nil || st.Locked || st.RetryLoginTime != 4 {
			t.Fatalf("after one failed login: %+v %v, want 4 tries left", st, err)
		}
	}
	if cs := dev.Client("127.0.0.1"); cs.FailedLogins != 1 {
		t.Fatalf("the device counted %d failed logins, want 1 (reads must not count)", cs.FailedLogins)
	}
	if err := dev.LockIP("127.0.0.1", time.Minute); err != nil {
		t.Fatal(err)
	}
	st, err = bad.ReadLoginState(ctx)
	if err != nil || !st.Locked || st.UnlockTime <= 0 || st.UnlockTime > time.Minute {
		t.Fatalf("locked: %+v %v, want locked for up to a minute", st, err)
	}
}
