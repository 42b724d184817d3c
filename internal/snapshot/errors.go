package snapshot

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
)

// Reason names why a device request gave no usable image. The values are stable
// strings, fit for JSON bodies, metric labels and logs.
type Reason string

const (
	ReasonTimeout      Reason = "timeout"        // the device did not answer within the fetch timeout
	ReasonXML          Reason = "xml_body"       // the device answered XML (a ResponseStatus) instead of a JPEG
	ReasonHTML         Reason = "html_body"      // the device (or a proxy) answered an HTML page
	ReasonNotJPEG      Reason = "not_jpeg"       // the body does not start with a JPEG SOI (FF D8 FF)
	ReasonTruncated    Reason = "truncated_jpeg" // a JPEG start, but the image is not whole (no EOI, cut headers)
	ReasonEmpty        Reason = "empty_body"     // the device answered no bytes
	ReasonTooLarge     Reason = "too_large"      // the body exceeded the client's size cap
	ReasonUnauthorized Reason = "unauthorized"   // wrong credentials
	ReasonLocked       Reason = "locked"         // the device locked this client after failed logins
	ReasonLowPrivilege Reason = "low_privilege"  // the user may not take snapshots
	ReasonNotSupported Reason = "not_supported"  // the device does not offer this snapshot path
	ReasonBusy         Reason = "device_busy"    // the device said it is busy
	ReasonUnreachable  Reason = "unreachable"    // no connection (refused, no route, DNS)
	ReasonDevice       Reason = "device_error"   // any other failure reported by the fetcher
	ReasonCanceled     Reason = "canceled"       // the caller gave up before an answer was ready
	ReasonClosed       Reason = "closed"         // the cache was closed
)

// ErrClosed is returned (inside an *Error with ReasonClosed) by Get after Close.
var ErrClosed = errors.New("snapshot: cache closed")

// ErrBadSize is returned by Get and ParseSize for a width/height that cannot be asked of a device.
var ErrBadSize = errors.New("snapshot: bad snapshot size")

// FetchError is one device request that gave no usable image: the fetcher failed
// (Err set) or its body was not a whole JPEG (Err nil, Detail says what was wrong).
type FetchError struct {
	Reason Reason
	Err    error  // the fetcher's error; nil when the body was rejected
	Detail string // what was wrong with a rejected body
}

func (e *FetchError) Error() string {
	s := "snapshot: " + string(e.Reason)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return redact(s)
}

func (e *FetchError) Unwrap() error { return e.Err }

// Error means Get has no image to give: there never was a good image, the last
// good one is older than MaxStale, or the last-good fallback is turned off.
type Error struct {
	Reason   Reason        // why the last device request failed (see Reason constants)
	LastErr  error         // that failure, usually a *FetchError
	LastGood time.Time     // when the last good image was taken; zero if never
	Age      time.Duration // age of the last good image when the error was made; 0 if never
	MaxStale time.Duration // the staleness limit that was applied; <0 no limit
	Disabled bool          // the last-good fallback is turned off for this cache
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("snapshot: no usable image: ")
	if e.LastErr != nil {
		b.WriteString(strings.TrimPrefix(e.LastErr.Error(), "snapshot: "))
	} else {
		b.WriteString(string(e.Reason))
	}
	switch {
	case e.LastGood.IsZero():
		b.WriteString("; no good image yet")
	case e.Disabled:
		fmt.Fprintf(&b, "; last good image %s old, last-good fallback is off", e.Age.Round(time.Second))
	case e.MaxStale >= 0 && e.Age > e.MaxStale:
		fmt.Fprintf(&b, "; last good image %s old, over the %s staleness limit", e.Age.Round(time.Second), e.MaxStale)
	}
	return redact(b.String())
}

func (e *Error) Unwrap() error { return e.LastErr }

// classify turns a fetcher error into a FetchError. fetchCtxErr is the fetch
// context's own error (deadline from the fetch timeout, or cancel from Close).
func classify(err, fetchCtxErr error, closed bool) *FetchError {
	fe := &FetchError{Err: err}
	var ne net.Error
	var oe *net.OpError
	var de *net.DNSError
	var se *isapi.StatusError
	switch {
	case closed && (errors.Is(err, context.Canceled) || errors.Is(fetchCtxErr, context.Canceled)):
		fe.Reason = ReasonClosed
	case errors.Is(fetchCtxErr, context.DeadlineExceeded), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		fe.Reason = ReasonTimeout
	case errors.Is(err, context.Canceled):
		fe.Reason = ReasonCanceled
	case errors.Is(err, isapi.ErrLocked):
		fe.Reason = ReasonLocked
	case errors.Is(err, isapi.ErrUnauthorized):
		fe.Reason = ReasonUnauthorized
	case errors.Is(err, isapi.ErrLowPrivilege):
		fe.Reason = ReasonLowPrivilege
	case errors.Is(err, isapi.ErrNotSupported):
		fe.Reason = ReasonNotSupported
	case errors.Is(err, isapi.ErrDeviceBusy):
		fe.Reason = ReasonBusy
	case errors.Is(err, isapi.ErrTooLarge):
		fe.Reason = ReasonTooLarge
	case errors.As(err, &se):
		// A ResponseStatus body is XML where a JPEG was expected; a bare
		// non-2xx status is a plain device error.
		if se.StatusCode != 0 || se.SubStatusCode != "" || se.StatusString != "" {
			fe.Reason = ReasonXML
		} else {
			fe.Reason = ReasonDevice
		}
	case errors.Is(err, isapi.ErrProtocol):
		fe.Reason = ReasonNotJPEG
	case errors.As(err, &de), errors.As(err, &oe):
		fe.Reason = ReasonUnreachable
	default:
		fe.Reason = ReasonDevice
	}
	return fe
}

var (
	reURLUser  = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.\-]*://)[^/@\s"]*@`)
	reSecretKV = regexp.MustCompile(`(?i)\b(password|passwd|pwd|pass)=[^&\s"]*`)
)

// redact removes credentials from an error text: user:password@ in URLs and
// password=... pairs. Errors should come redacted already; this is a second guard.
func redact(s string) string {
	if strings.Contains(s, "@") {
		s = reURLUser.ReplaceAllString(s, "${1}***@")
	}
	if strings.Contains(s, "=") {
		s = reSecretKV.ReplaceAllString(s, "${1}=***")
	}
	return s
}
