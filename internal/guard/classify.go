package guard

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
)

// Kind is the class of a failure, as far as retrying is concerned.
type Kind int

const (
	// KindNone: no failure (a nil error).
	KindNone Kind = iota
	// KindWrongCredentials: the device refused the user/password (a failed
	// login that counts toward the device's lock).
	KindWrongCredentials
	// KindNoCredentials: the device wants credentials and none were given
	// (RTSP "user/pass not provided"). Requests without credentials never
	// count toward the lock, so it is not a failed login, but retrying is
	// pointless until the configuration changes.
	KindNoCredentials
	// KindLocked: the device locked this client after too many failed logins.
	KindLocked
	// KindNotActivated: the device has never been given a password.
	KindNotActivated
	// KindLowPrivilege: the user lacks the rights for the request.
	KindLowPrivilege
	// KindNotSupported: the device does not support the request.
	KindNotSupported
	// KindUnreachable: no connection (refused, no route, DNS, reset, EOF).
	KindUnreachable
	// KindTimeout: the device did not answer in time.
	KindTimeout
	// KindBusy: the device is busy (statusCode 2, talk already open).
	KindBusy
	// KindProtocol: the device answered something we cannot read.
	KindProtocol
	// KindLoginPending: the guard holds because other logins to the device
	// are in flight while its credentials are not yet known to be good.
	KindLoginPending
	// KindOther: any other error.
	KindOther
)

var kindNames = [...]string{
	KindNone:             "ok",
	KindWrongCredentials: "wrong credentials",
	KindNoCredentials:    "no credentials",
	KindLocked:           "locked",
	KindNotActivated:     "not activated",
	KindLowPrivilege:     "low privilege",
	KindNotSupported:     "not supported",
	KindUnreachable:      "unreachable",
	KindTimeout:          "timeout",
	KindBusy:             "busy",
	KindProtocol:         "protocol error",
	KindLoginPending:     "login pending",
	KindOther:            "error",
}

func (k Kind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// MarshalText makes a Kind show as its name in JSON status pages.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// Permanent reports whether retrying after a failure of this kind is useless
// (or harmful) until something changes outside the program: the
// configuration, the device's settings, or the device's lock expiring.
func Permanent(k Kind) bool {
	switch k {
	case KindWrongCredentials, KindNoCredentials, KindLocked, KindNotActivated,
		KindLowPrivilege, KindNotSupported:
		return true
	}
	return false
}

// countsAsLogin reports whether a failure of this kind was a failed
// authenticated login as the device counts them (requests without
// credentials never count).
func countsAsLogin(k Kind) bool {
	return k == KindWrongCredentials || k == KindLocked
}

// go2rtc's pkg/rtsp reports an RTSP 401 as a plain string error
// (pkg/rtsp/client.go, Conn.Do), so these are matched by text. This is the
// one place that knows them.
const (
	// RTSP 401 although credentials were sent: a failed login.
	rtspWrongUserPass = "wrong user/pass"
	// RTSP 401 and the URL had no credentials: not a login attempt.
	rtspNoUserPass = "user/pass not provided"
)

// Classify returns the kind of err. A *HoldError is classified by its Reason.
func Classify(err error) Kind {
	if err == nil {
		return KindNone
	}

	var hold *HoldError
	if errors.As(err, &hold) {
		return hold.Reason
	}

	// Device answers first: the typed ISAPI errors.
	switch {
	case errors.Is(err, isapi.ErrLocked):
		return KindLocked
	case errors.Is(err, isapi.ErrUnauthorized):
		return KindWrongCredentials
	case errors.Is(err, isapi.ErrNotActivated):
		return KindNotActivated
	case errors.Is(err, isapi.ErrLowPrivilege):
		return KindLowPrivilege
	case errors.Is(err, isapi.ErrNotSupported):
		return KindNotSupported
	case errors.Is(err, isapi.ErrDeviceBusy):
		return KindBusy
	case errors.Is(err, isapi.ErrProtocol), errors.Is(err, isapi.ErrTooLarge):
		return KindProtocol
	}

	// go2rtc RTSP string errors (see the constants above).
	msg := err.Error()
	switch {
	case strings.Contains(msg, rtspWrongUserPass):
		return KindWrongCredentials
	case strings.Contains(msg, rtspNoUserPass):
		return KindNoCredentials
	}

	// Network errors.
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return KindTimeout
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return KindTimeout
	}
	switch {
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, net.ErrClosed):
		return KindUnreachable
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return KindUnreachable
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return KindUnreachable
	}

	return KindOther
}

// Result is what an authenticated attempt's outcome means for the guard.
type Result int

const (
	// ResultOK: the request succeeded.
	ResultOK Result = iota
	// ResultAccepted: the request failed, but after the device accepted the
	// credentials (it answered past the login: a ResponseStatus, a missing
	// channel, a busy line, an unreadable body...).
	ResultAccepted
	// ResultFailedLogin: the device refused the credentials or locked this
	// client: counts toward the budget.
	ResultFailedLogin
	// ResultFailed: any other failure (unreachable, timeout, not activated,
	// an RTSP answer that says nothing about the login): recorded, not
	// counted.
	ResultFailed
	// ResultAbandoned: the caller gave up before the device answered
	// (context cancelled): nothing is recorded.
	ResultAbandoned
)

// Accepter is implemented by errors that know whether the device accepted
// the credentials before failing (e.g. a channel the device says is
// offline). Outcome asks it through errors.As.
type Accepter interface {
	CredentialsAccepted() bool
}

// Outcome classifies the error of an authenticated attempt: the one rule Do
// applies to every request.
func Outcome(err error) Result {
	if err == nil {
		return ResultOK
	}
	switch Classify(err) {
	case KindWrongCredentials, KindLocked:
		return ResultFailedLogin
	case KindNotActivated, KindNoCredentials:
		return ResultFailed
	}
	if errors.Is(err, context.Canceled) {
		return ResultAbandoned
	}
	var acc Accepter
	if errors.As(err, &acc) && acc.CredentialsAccepted() {
		return ResultAccepted
	}
	var se *isapi.StatusError
	if errors.As(err, &se) || errors.Is(err, isapi.ErrProtocol) || errors.Is(err, isapi.ErrTooLarge) {
		return ResultAccepted
	}
	return ResultFailed
}
