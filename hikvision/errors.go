package hikvision

import (
	"errors"
	"fmt"
	"strings"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/redact"
)

// DialError is a Dial that failed at a step after the URL was accepted:
//
//	hikvision: probe deviceInfo on 192.168.1.64: wrong credentials (2 tries left before lock)
//
// Step is "probe deviceInfo", "probe streaming channel 101", "probe RTSP
// port", "probe InputProxy", "probe streaming proxy channel 101", "rtsp connect",
// "rtsp describe", "rtsp medias", "rtsp setup" (GetTrack) or "rtsp play" (Start).
// Host is host[:port] of the step's protocol. The message never holds the
// password; errors.Is/As reach the cause (isapi.ErrUnauthorized,
// *isapi.AuthError, ErrChannelNotFound, ...) unless the cause's own text
// quoted the password, in which case only errors.Is matching is kept.
type DialError struct {
	Step string
	Host string
	Err  error

	msg string // redacted text of Err
}

func (e *DialError) Error() string {
	return "hikvision: " + e.Step + " on " + e.Host + ": " + e.msg
}

func (e *DialError) Unwrap() error { return e.Err }

func newDialError(step, host string, err error, cfg *Config) *DialError {
	raw := describe(err)
	msg := redactText(raw, cfg)
	if msg != raw || redactText(err.Error(), cfg) != err.Error() {
		// the cause quotes the password: keep only Is-matching
		err = &redactedError{msg: msg, orig: err}
	}
	return &DialError{Step: step, Host: host, Err: err, msg: msg}
}

// describe renders a cause without the "isapi GET /path:" prefix of auth
// errors (the step already says what was asked).
func describe(err error) string {
	var ae *isapi.AuthError
	if errors.As(err, &ae) {
		return strings.TrimPrefix(ae.Error(), fmt.Sprintf("isapi %s %s: ", ae.Method, ae.Path))
	}
	return err.Error()
}

func redactText(s string, cfg *Config) string {
	if cfg == nil {
		return redact.String(s)
	}
	return redact.String(s, cfg.Password, cfg.Username+":"+cfg.Password)
}

func redactErr(err error, cfg *Config) string {
	if err == nil {
		return ""
	}
	return redactText(err.Error(), cfg)
}

// redactedError stands for an error whose text held a password.
type redactedError struct {
	msg  string
	orig error
}

func (e *redactedError) Error() string        { return e.msg }
func (e *redactedError) Is(target error) bool { return errors.Is(e.orig, target) }

// causeError adds a sentinel to a cause: "<sentinel>: <cause>".
type causeError struct {
	sentinel error
	cause    error
}

func (e *causeError) Error() string   { return e.sentinel.Error() + ": " + describe(e.cause) }
func (e *causeError) Unwrap() []error { return []error{e.sentinel, e.cause} }
