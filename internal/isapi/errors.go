package isapi

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Sentinel errors for matching with errors.Is. The typed errors below carry the
// device's own answer and report themselves as one of these.
var (
	// ErrUnauthorized: the device refused the credentials (a failed login).
	ErrUnauthorized = errors.New("isapi: wrong credentials")
	// ErrLocked: the device locked this client IP after too many failed logins.
	ErrLocked = errors.New("isapi: client locked by device")
	// ErrNotActivated: the device has never been given a password.
	ErrNotActivated = errors.New("isapi: device not activated")
	// ErrNotSupported: the device does not support the request (403, notSupport).
	ErrNotSupported = errors.New("isapi: not supported by device")
	// ErrDeviceBusy: the device is busy (statusCode 2, deviceBusy, talk already open).
	ErrDeviceBusy = errors.New("isapi: device busy")
	// ErrLowPrivilege: the user lacks the rights for this request.
	ErrLowPrivilege = errors.New("isapi: user lacks privilege")
	// ErrProtocol: the device answered something we cannot read (bad XML, wrong content).
	ErrProtocol = errors.New("isapi: unexpected device answer")
	// ErrTooLarge: a response body exceeded the size cap.
	ErrTooLarge = errors.New("isapi: response body too large")
	// ErrNonceRefused: the device refused the nonce of a right answer (it
	// said the nonce expired, or refused the answer without counting a
	// failed login) after the client had already answered a new challenge
	// once, or on a request that cannot be sent again (talk audio). Not a
	// failed login: a later request logs in afresh.
	ErrNonceRefused = errors.New("isapi: the device refused its nonce again (not a failed login)")
)

// AuthError is a 401 answer to an authenticated request, with the userCheck
// fields the device sent (see "Login lock" in the package doc).
type AuthError struct {
	Method string
	Path   string
	// Locked is true when lockStatus is "lock" or "locked".
	Locked bool
	// UnlockTime is how long until the device unlocks this client; 0 if unknown.
	UnlockTime time.Duration
	// RetryLoginTime is how many tries are left before the lock; -1 if not sent.
	RetryLoginTime int
}

func (e *AuthError) Error() string {
	s := fmt.Sprintf("isapi %s %s: ", e.Method, e.Path)
	if e.Locked {
		s += "client locked by device"
		if e.UnlockTime > 0 {
			s += fmt.Sprintf(", unlocks in %s", e.UnlockTime)
		}
		return s
	}
	s += "wrong credentials"
	if e.RetryLoginTime >= 0 {
		s += fmt.Sprintf(" (%d tries left before lock)", e.RetryLoginTime)
	}
	return s
}

func (e *AuthError) Is(target error) bool {
	if e.Locked {
		return target == ErrLocked
	}
	return target == ErrUnauthorized
}

// StatusError is a ResponseStatus with a non-OK statusCode, or a non-2xx HTTP
// status, from the device.
type StatusError struct {
	Method        string
	Path          string
	HTTPStatus    int
	StatusCode    int    // ResponseStatus statusCode (1 OK, 2 busy, 3 error, 4 invalid op, ...); 0 if none
	StatusString  string // ResponseStatus statusString
	SubStatusCode string // ResponseStatus subStatusCode
	ErrorMsg      string // errorMsg some firmware adds
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("isapi %s %s: HTTP %d", e.Method, e.Path, e.HTTPStatus)
	if e.StatusCode != 0 {
		s += fmt.Sprintf(", statusCode %d", e.StatusCode)
	}
	if e.StatusString != "" {
		s += " " + e.StatusString
	}
	if e.SubStatusCode != "" {
		s += " (" + e.SubStatusCode + ")"
	}
	if e.ErrorMsg != "" {
		s += ": " + e.ErrorMsg
	}
	return s
}

func (e *StatusError) Is(target error) bool {
	switch target {
	case ErrNotSupported:
		return e.SubStatusCode == "notSupport" || (e.HTTPStatus == 403 && e.SubStatusCode == "")
	case ErrDeviceBusy:
		return e.StatusCode == 2 || e.SubStatusCode == "deviceBusy"
	case ErrLowPrivilege:
		return e.SubStatusCode == "lowPrivilege"
	case ErrNotActivated:
		return e.SubStatusCode == "notActivated"
	}
	return false
}

// TimeoutError: the device did not answer (connect, headers or body) within
// After, the client's Timeout or the caller's shorter deadline. It reads the
// same whichever timer fired ("no answer within 10s"), matches
// errors.Is(err, context.DeadlineExceeded) and is a net.Error with Timeout()
// true.
type TimeoutError struct {
	After      time.Duration
	Connecting bool  // the TCP connection was not made in time
	Err        error // what the timer produced (for errors.Unwrap)
}

func (e *TimeoutError) Error() string {
	s := "no answer within " + roundLimit(e.After).String()
	if e.Connecting {
		s += " (connecting)"
	}
	return s
}

func (e *TimeoutError) Unwrap() error   { return e.Err }
func (e *TimeoutError) Timeout() bool   { return true }
func (e *TimeoutError) Temporary() bool { return true }
func (e *TimeoutError) Is(target error) bool {
	return target == context.DeadlineExceeded
}

func roundLimit(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Millisecond)
}
