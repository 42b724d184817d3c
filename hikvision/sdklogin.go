package hikvision

import (
	"context"
	"errors"
	"strconv"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/hcnetsdk"
)

// sdkLogin is the device's one SDK login, shared by every transport=sdk
// real-play and talk of the device (a Device attachment per SDK port): made
// on first use through the device's guard, logged in again when the SDK
// says it is gone, logged out when the device closes.
type sdkLogin struct {
	dev  *Device
	cfg  *Config // credentials and host (the same for every user of the device)
	port int
	addr string

	sem   chan struct{} // held while logging in: one login at a time, cancellable wait
	login *hcnetsdk.Session
	done  bool // closed
}

// sdkLoginOf returns b's device's shared login for b's SDK port.
func (b *sdkBackend) sdkLoginOf() (*sdkLogin, error) {
	port := b.cfg.SDKPort
	if port == 0 {
		port = DefaultSDKPort
	}
	a, err := b.dev.Attachment("sdk:"+strconv.Itoa(port), func(d *Device) (Attachment, error) {
		l := &sdkLogin{dev: d, cfg: b.cfg, port: port, addr: b.addr, sem: make(chan struct{}, 1)}
		l.sem <- struct{}{}
		return l, nil
	})
	if err != nil {
		return nil, err
	}
	return a.(*sdkLogin), nil
}

// get returns the login, logging in (one authenticated attempt of the
// device's guard) when there is none.
func (l *sdkLogin) get(ctx context.Context) (*hcnetsdk.Session, error) {
	select {
	case <-l.sem:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { l.sem <- struct{}{} }()
	if l.done {
		return nil, ErrDeviceClosed
	}
	if l.login != nil {
		return l.login, nil
	}
	sdk, err := l.dev.m.sdkOpen()
	if err != nil {
		return nil, err
	}
	err = l.dev.Do(ctx, func(ctx context.Context) error {
		ss, err := sdk.Login(ctx, hcnetsdk.LoginParams{Address: l.cfg.Host, Port: l.port,
			User: l.cfg.Username, Password: l.cfg.Password})
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return newDialError("sdk login", l.addr, sdkCause(err), l.cfg)
		}
		l.login = ss
		return nil
	})
	if err != nil {
		return nil, err
	}
	return l.login, nil
}

// drop forgets ss (the SDK said it is gone, or it failed) and logs it out,
// which stops what still plays on it; a newer login is kept.
func (l *sdkLogin) drop(ss *hcnetsdk.Session) {
	<-l.sem
	if l.login == ss {
		l.login = nil
	}
	l.sem <- struct{}{}
	_ = ss.Logout()
}

// Close logs the login out (the device's last reference is gone).
func (l *sdkLogin) Close() error {
	<-l.sem
	l.done = true
	ss := l.login
	l.login = nil
	l.sem <- struct{}{}
	if ss == nil {
		return nil
	}
	return ss.Logout()
}

// loginGone: the SDK refused a call because the login is no longer valid
// (logged out, or stale after the device went away).
func loginGone(err error) bool {
	return errors.Is(err, hcnetsdk.ErrLoginGone) || errors.Is(err, hcnetsdk.ErrClosed) ||
		errors.Is(err, hcnetsdk.ErrNetwork)
}

// withLogin runs f with the shared login; when f says the login is gone it
// drops it and tries once more with a new one.
func (l *sdkLogin) withLogin(ctx context.Context, f func(*hcnetsdk.Session) error) error {
	for try := 0; ; try++ {
		ss, err := l.get(ctx)
		if err != nil {
			return err
		}
		err = f(ss)
		if err == nil || try > 0 || !loginGone(err) || ctx.Err() != nil {
			return err
		}
		l.drop(ss)
	}
}
