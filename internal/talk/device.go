package talk

import (
	"context"
	"errors"
	"io"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
)

// Device is one talk channel of a device (see the package doc), bound to its
// channel by the caller. Every call must return promptly once ctx is done.
type Device interface {
	// Open is PUT .../channels/<id>/open; sessionID may be "" (some firmware
	// answers a plain ResponseStatus).
	Open(ctx context.Context) (sessionID string, err error)
	// Close is PUT .../channels/<id>/close.
	Close(ctx context.Context) error
	// AudioData starts PUT .../channels/<id>/audioData and returns the writer
	// for raw audio bytes. Its Close must be safe to call while a Write is
	// blocked in another goroutine (a net.Conn is); the Session calls it at
	// most once.
	AudioData(ctx context.Context, sessionID string) (io.WriteCloser, error)
}

// ErrBusy reports that the device refused to open talk because another
// client's session is open (a door station call, another app). It wraps the
// device's answer: errors.Is(err, ErrBusy) and errors.As(err, **isapi.StatusError).
var ErrBusy = errors.New("talk: line busy, another client is talking")

// ErrGaveUp reports that talk stopped after MaxFailures opens in a row failed;
// it wraps the last failure.
var ErrGaveUp = errors.New("talk: gave up after repeated failures")

// isBusy tells whether an Open error is the device's refusal while a session
// is open (and not a permanent refusal): 403 without a finer reason, Invalid Operation (statusCode 4 /
// invalidOperation) or Device Busy (statusCode 2 / deviceBusy).
func isBusy(err error) bool {
	if isPermanent(err) {
		return false
	}
	if errors.Is(err, isapi.ErrDeviceBusy) {
		return true
	}
	var se *isapi.StatusError
	if errors.As(err, &se) {
		if se.StatusCode == 4 || se.SubStatusCode == "invalidOperation" {
			return true
		}
		return se.HTTPStatus == 403 && se.SubStatusCode == ""
	}
	return false
}

// isPermanent tells whether retrying cannot help: credentials, lock-out,
// activation, privilege, or an explicit notSupport.
func isPermanent(err error) bool {
	for _, target := range []error{isapi.ErrUnauthorized, isapi.ErrLocked, isapi.ErrNotActivated, isapi.ErrLowPrivilege} {
		if errors.Is(err, target) {
			return true
		}
	}
	var se *isapi.StatusError
	return errors.As(err, &se) && se.SubStatusCode == "notSupport"
}

// isDeviceAnswer tells whether err is the device's own answer (so the open
// certainly did not happen) rather than a transport failure or timeout after
// which the device may have opened a session.
func isDeviceAnswer(err error) bool {
	var se *isapi.StatusError
	var ae *isapi.AuthError
	return errors.As(err, &se) || errors.As(err, &ae)
}
