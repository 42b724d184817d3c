package snapshot

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Headers set on stale answers.
const (
	HeaderStale    = "X-Hikvision-Stale"     // "true" on a stale answer
	HeaderStaleAge = "X-Hikvision-Stale-Age" // age of the stale image in whole seconds
	// HeaderStaleReason carries the Reason of the failure behind a stale answer.
	HeaderStaleReason = "X-Hikvision-Stale-Reason"
)

// ErrorBody is the JSON body of an error answer.
type ErrorBody struct {
	Error    string  `json:"error"`     // what went wrong, redacted
	Reason   Reason  `json:"reason"`    // machine-readable reason
	LastGood *string `json:"last_good"` // RFC 3339 time of the last good image; null if never
	AgeS     *int64  `json:"age_s"`     // age of the last good image in seconds; null if never
}

// ParseSize reads the optional width and height query parameters. Both or
// neither must be given; absent means 0, 0 (the device's default size).
func ParseSize(q url.Values) (width, height int, err error) {
	ws, hs := q.Get("width"), q.Get("height")
	if ws == "" && hs == "" {
		return 0, 0, nil
	}
	if ws == "" || hs == "" {
		return 0, 0, fmt.Errorf("%w: give both width and height", ErrBadSize)
	}
	w, errW := strconv.Atoi(ws)
	h, errH := strconv.Atoi(hs)
	if errW != nil || errH != nil || w <= 0 || h <= 0 || w > MaxDimension || h > MaxDimension {
		return 0, 0, fmt.Errorf("%w: width and height must be whole numbers 1..%d", ErrBadSize, MaxDimension)
	}
	return w, h, nil
}

// ServeHTTP answers a snapshot of the size in the width/height query
// parameters, with Serve.
func (c *Cache) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	width, height, err := ParseSize(r.URL.Query())
	if err != nil {
		Serve(w, r, nil, err)
		return
	}
	res, err := c.Get(r.Context(), width, height)
	Serve(w, r, res, err)
}

// Serve writes the answer of Get. A Result is sent as image/jpeg with
// Last-Modified, Age and Cache-Control: no-cache; a stale one also carries
// X-Hikvision-Stale: true, X-Hikvision-Stale-Age: <seconds>,
// X-Hikvision-Stale-Reason and Warning: 110 - "Response is Stale". An error is
// sent as JSON (ErrorBody) with 504 for a timeout, 503 when the device is
// locked, busy or the cache closed, 400 for a bad size, 502 otherwise.
// Error texts are redacted once more here.
func Serve(w http.ResponseWriter, r *http.Request, res *Result, err error) {
	h := w.Header()
	h.Set("Cache-Control", "no-cache")
	if err != nil || res == nil {
		if err == nil {
			err = errors.New("snapshot: no result")
		}
		serveError(w, r, err)
		return
	}
	h.Set("Content-Type", "image/jpeg")
	h.Set("Content-Length", strconv.Itoa(len(res.JPEG)))
	if !res.Taken.IsZero() {
		h.Set("Last-Modified", res.Taken.UTC().Format(http.TimeFormat))
	}
	age := strconv.FormatInt(int64(res.Age/time.Second), 10)
	h.Set("Age", age)
	if res.Stale {
		h.Set(HeaderStale, "true")
		h.Set(HeaderStaleAge, age)
		var fe *FetchError
		if errors.As(res.Err, &fe) {
			h.Set(HeaderStaleReason, string(fe.Reason))
		}
		h.Set("Warning", `110 - "Response is Stale"`)
	}
	w.WriteHeader(http.StatusOK)
	if r == nil || r.Method != http.MethodHead {
		_, _ = w.Write(res.JPEG)
	}
}

func serveError(w http.ResponseWriter, r *http.Request, err error) {
	body := ErrorBody{Error: redact(err.Error()), Reason: ReasonDevice}
	status := http.StatusBadGateway
	var se *Error
	var fe *FetchError
	switch {
	case errors.As(err, &se):
		body.Reason = se.Reason
		if !se.LastGood.IsZero() {
			t := se.LastGood.UTC().Format(time.RFC3339)
			a := int64(se.Age / time.Second)
			body.LastGood, body.AgeS = &t, &a
		}
		status = statusFor(se.Reason)
	case errors.As(err, &fe):
		body.Reason = fe.Reason
		status = statusFor(fe.Reason)
	case errors.Is(err, ErrBadSize):
		body.Reason = "bad_size"
		status = http.StatusBadRequest
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Del("Content-Length")
	b, _ := json.Marshal(body)
	b = append(b, '\n')
	w.WriteHeader(status)
	if r == nil || r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
}

func statusFor(r Reason) int {
	switch r {
	case ReasonTimeout:
		return http.StatusGatewayTimeout
	case ReasonLocked, ReasonBusy, ReasonClosed, ReasonCanceled:
		return http.StatusServiceUnavailable
	}
	return http.StatusBadGateway
}
