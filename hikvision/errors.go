package hikvision

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/guard"
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

// CredentialsAccepted: a missing channel, a stream without usable media or
// a changed stream is the device's answer after the login (for the login
// guard).
func (e *causeError) CredentialsAccepted() bool {
	return e.sentinel == ErrChannelNotFound || e.sentinel == ErrNoMedia || e.sentinel == ErrStreamChanged
}

// Permanent reports whether redialling cannot help until something changes
// outside the program: wrong or missing credentials, the device's login lock,
// a device that is not activated, a user without the rights, an unsupported
// request, or a channel/stream the device does not have. The patched go2rtc
// stops reconnecting a source whose Dial or Start returns such an error.
func (e *DialError) Permanent() bool { return permanentCause(e.Err) }

func permanentCause(err error) bool {
	if errors.Is(err, ErrChannelNotFound) || errors.Is(err, ErrNoMedia) {
		return true
	}
	return guard.Permanent(guard.Classify(err))
}

// HoldError is the answer of Dial (and of Start while reconnecting) when the
// device's login guard holds authenticated requests: nothing was sent to the
// device. One guard per device (host:port + user) is shared by every
// producer, snapshot and talk session of the process. It is the guard's own
// error type, so there is one hold error in the module:
//
//	hikvision: 192.168.1.64:8080: wrong credentials: not trying again before 15:04:05 (wrong credentials twice in 30m0s)
//	hikvision: 192.168.1.64:8080: locked until 15:34:05 (device locked this client); no login tried
//
// errors.Is(err, isapi.ErrUnauthorized) works on a hold for wrong
// credentials; Permanent() is true after wrong credentials or a lock (go2rtc
// stops redialling) and false for a short "login pending" hold.
type HoldError = guard.HoldError

// ErrStreamChanged: after a reconnect the device no longer offers a track the
// consumers were given (e.g. the codec changed while the device rebooted).
var ErrStreamChanged = errors.New("hikvision: the device's stream changed (a track set up before is gone)")

// ReconnectError is Start's answer when the RTSP link dropped and could not
// be restored for GiveUpAfter although the device's RTSP port answered
// (errors that cannot be fixed by retrying end Start at once instead, as
// *DialError or *HoldError). It is not permanent: go2rtc may dial again.
type ReconnectError struct {
	Host     string
	Since    time.Time     // first failed attempt of this reconnect
	For      time.Duration // how long it failed
	Attempts int           // authenticated attempts made
	Err      error         // the last attempt's error (redacted)
}

func (e *ReconnectError) Error() string {
	return fmt.Sprintf("hikvision: rtsp reconnect to %s: gave up after %s and %d attempts: %v",
		e.Host, e.For.Round(time.Second), e.Attempts, e.Err)
}

func (e *ReconnectError) Unwrap() error { return e.Err }

// Permanent is false: the device answers, so a later dial may succeed.
func (e *ReconnectError) Permanent() bool { return false }

// StallError ends a session that carried no RTP for the stall timeout (the
// link may still be open, e.g. with RTCP flowing). Start reconnects after it;
// it shows as the last error in the status.
type StallError struct {
	Host string
	For  time.Duration // time since the last RTP packet
}

func (e *StallError) Error() string {
	return fmt.Sprintf("hikvision: rtsp on %s: no media for %s (stalled)", e.Host, e.For.Round(100*time.Millisecond))
}

// ErrChannelOffline: the NVR reports the requested IP channel offline (its
// camera is not connected to the NVR). Matched by *ChannelOfflineError.
var ErrChannelOffline = errors.New("hikvision: NVR channel offline")

// ChannelOfflineError is Dial's answer when the NVR's
// /ISAPI/ContentMgmt/InputProxy/channels/status says the channel is offline:
//
//	hikvision: NVR channel 3 is offline (camera not connected to the NVR; NVR 192.168.1.70:80 reports netUnreachable)
//
// It is not permanent: the camera may come back, and go2rtc dials again.
type ChannelOfflineError struct {
	Host    string // the NVR's HTTP host[:port]
	Channel int
	Detect  string // chanDetectResult ("netUnreachable", ...); "" if not sent
}

func (e *ChannelOfflineError) Error() string {
	s := fmt.Sprintf("hikvision: NVR channel %d is offline (camera not connected to the NVR; NVR %s", e.Channel, e.Host)
	if e.Detect != "" {
		return s + " reports " + e.Detect + ")"
	}
	return s + " reports it offline)"
}

func (e *ChannelOfflineError) Is(target error) bool { return target == ErrChannelOffline }

// CredentialsAccepted: the NVR answered past the login (for the login guard).
func (e *ChannelOfflineError) CredentialsAccepted() bool { return true }

// Permanent is false: the camera may be connected again.
func (e *ChannelOfflineError) Permanent() bool { return false }
