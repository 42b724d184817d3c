package hikvision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/guard"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/intercom"
)

// intercomTimeout bounds one intercom API call (its device requests).
const intercomTimeout = 15 * time.Second

// IntercomHandler drives a door station: POST with src=STREAM (a stream of
// the station) and action answer (take the ringing call), hangup (end the
// call or the ringing), reject (refuse the ringing call) or unlock (release
// door N, door=N, default 1). Each is one request to the device through its
// login guard. It answers {"ok":true,"action":...,"device":...} or a JSON
// error: 400 bad parameter, 404 no such stream, 405 not POST, 502 the device
// refused (its status in the message), 503 logins held (wrong password or
// locked), 504 no answer.
func (m *Module) IntercomHandler(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeJSONError(w, http.StatusMethodNotAllowed, "bad_request", "hikvision: intercom: use POST")
		return
	}
	q := req.URL.Query()
	action := strings.ToLower(q.Get("action"))
	door := 1
	if s := q.Get("door"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 99 {
			writeJSONError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("hikvision: intercom: door=%q: want a door number 1..99", s))
			return
		}
		door = n
	}
	var run func(ctx context.Context, do intercom.Doer) error
	switch action {
	case "answer":
		run = func(ctx context.Context, do intercom.Doer) error {
			return intercom.SendCallSignal(ctx, do, intercom.Answer)
		}
	case "hangup":
		run = func(ctx context.Context, do intercom.Doer) error {
			return intercom.SendCallSignal(ctx, do, intercom.HangUp)
		}
	case "reject":
		run = func(ctx context.Context, do intercom.Doer) error {
			return intercom.SendCallSignal(ctx, do, intercom.Reject)
		}
	case "unlock":
		run = func(ctx context.Context, do intercom.Doer) error { return intercom.OpenDoor(ctx, do, door) }
	default:
		writeJSONError(w, http.StatusBadRequest, "bad_request",
			fmt.Sprintf("hikvision: intercom: action=%q: want answer, hangup, reject or unlock", q.Get("action")))
		return
	}
	name := q.Get("src")
	if name == "" {
		writeJSONError(w, http.StatusBadRequest, "bad_request", "hikvision: intercom: missing src (a stream name)")
		return
	}
	sources, ok := m.reg.resolveStream(name)
	if !ok {
		writeJSONError(w, http.StatusServiceUnavailable, "no_resolver", "hikvision: intercom: streams cannot be resolved")
		return
	}
	if len(sources) == 0 {
		writeJSONError(w, http.StatusNotFound, "no_source",
			fmt.Sprintf("hikvision: intercom: stream %q does not exist or has no hikvision:// source", name))
		return
	}
	s, err := m.reg.source(sources[0])
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, "bad_source", fmt.Sprintf("hikvision: intercom: stream %q: %v", name, err))
		return
	}
	c, err := s.dev.isapiClient()
	if err != nil {
		writeJSONError(w, http.StatusServiceUnavailable, "closed", fmt.Sprintf("hikvision: intercom: stream %q: %v", name, err))
		return
	}
	ctx, cancel := context.WithTimeout(req.Context(), intercomTimeout)
	defer cancel()
	if err := run(ctx, deviceDoer(s.dev, c)); err != nil {
		err = s.dev.safeErr(err)
		status, reason := http.StatusBadGateway, "device_refused"
		var he *HoldError
		switch {
		case errors.Is(err, intercom.ErrBadParameter):
			status, reason = http.StatusBadRequest, "bad_request"
		case errors.As(err, &he):
			status, reason = http.StatusServiceUnavailable, "hold"
		default:
			switch guard.Classify(err) {
			case guard.KindUnreachable, guard.KindTimeout:
				status, reason = http.StatusGatewayTimeout, "unreachable"
			case guard.KindWrongCredentials, guard.KindLocked, guard.KindNoCredentials:
				status, reason = http.StatusServiceUnavailable, "auth"
			}
		}
		m.log.Warn().Str("device", s.dev.host).Str("action", action).Err(err).Msg("[hikvision] intercom")
		writeJSONError(w, status, reason, fmt.Sprintf("hikvision: intercom: %s on stream %q: %v", action, name, err))
		return
	}
	m.log.Info().Str("device", s.dev.host).Str("action", action).Int("door", door).Msg("[hikvision] intercom")
	out := map[string]any{"ok": true, "action": action, "device": s.dev.host}
	if action == "unlock" {
		out["door"] = door
	}
	b, _ := json.Marshal(out)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(append(b, '\n'))
}
