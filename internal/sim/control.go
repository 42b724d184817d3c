package sim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// controlHandler is the fault-injection JSON API (Config.ControlAddr). Every answer is JSON:
// {"ok":true,...} or {"error":"..."} with a 4xx status.
//
//	POST /reboot?seconds=N             down for N seconds (fractions allowed), same ports afterwards
//	POST /stall?on=1|0                 ISAPI and RTSP accept but never answer
//	POST /freeze?seconds=N             silent for N seconds: connections stay open, nothing read or sent
//	POST /refuse-rtsp?on=1|0           RTSP refuses new connections
//	POST /drop-rtsp                    close every RTSP connection
//	POST /lock?ip=A[&seconds=N]        lock a client IP (default Config.LockDuration)
//	POST /unlock?ip=A                  lift the lock of a client IP
//	POST /bad-xml?count=N              the next N ISAPI answers are malformed XML
//	POST /password?user=U&password=P   set a password (empty password removes the user)
//	POST /snapshot-faults?rate=R&modes=timeout,xml,truncated,html[&seed=N][&next=N&mode=M]
//	GET  /stats                        counters (Stats as JSON)
//	GET  /status                       addresses, personality, rebooting
func (d *Device) controlHandler() http.Handler {
	mux := http.NewServeMux()
	post := func(path string, f func(r *http.Request) (any, error)) {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost {
				writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "use POST"})
				return
			}
			res, err := f(r)
			if err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
				return
			}
			if res == nil {
				res = map[string]bool{"ok": true}
			}
			writeJSON(w, http.StatusOK, res)
		})
	}
	post("/reboot", func(r *http.Request) (any, error) {
		sec, err := floatParam(r, "seconds", true)
		if err != nil {
			return nil, err
		}
		return nil, d.Reboot(time.Duration(sec * float64(time.Second)))
	})
	post("/freeze", func(r *http.Request) (any, error) {
		sec, err := floatParam(r, "seconds", true)
		if err != nil {
			return nil, err
		}
		return nil, d.Freeze(time.Duration(sec * float64(time.Second)))
	})
	post("/stall", func(r *http.Request) (any, error) {
		on, err := boolParam(r, "on")
		if err == nil {
			d.SetStall(on)
		}
		return nil, err
	})
	post("/refuse-rtsp", func(r *http.Request) (any, error) {
		on, err := boolParam(r, "on")
		if err == nil {
			d.SetRefuseRTSP(on)
		}
		return nil, err
	})
	post("/drop-rtsp", func(r *http.Request) (any, error) {
		d.DropRTSP()
		return nil, nil
	})
	post("/lock", func(r *http.Request) (any, error) {
		sec, err := floatParam(r, "seconds", false)
		if err != nil {
			return nil, err
		}
		return nil, d.LockIP(r.URL.Query().Get("ip"), time.Duration(sec*float64(time.Second)))
	})
	post("/unlock", func(r *http.Request) (any, error) {
		ip := r.URL.Query().Get("ip")
		if ip == "" {
			return nil, fmt.Errorf("missing ip")
		}
		d.UnlockIP(ip)
		return nil, nil
	})
	post("/bad-xml", func(r *http.Request) (any, error) {
		n, err := strconv.Atoi(r.URL.Query().Get("count"))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("count: want a non-negative integer, got %q", r.URL.Query().Get("count"))
		}
		d.SetBadXML(n)
		return nil, nil
	})
	post("/password", func(r *http.Request) (any, error) {
		q := r.URL.Query()
		return nil, d.SetPassword(q.Get("user"), q.Get("password"))
	})
	post("/snapshot-faults", d.snapshotFaultsControl) // snapshot.go
	mux.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, d.Stats())
	})
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{
			"personality": d.cfg.Personality,
			"model":       d.cfg.Model,
			"http":        d.httpAddr,
			"rtsp":        d.rtspAddr,
			"rebooting":   d.Rebooting(),
		})
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"encoding failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func boolParam(r *http.Request, name string) (bool, error) {
	switch v := r.URL.Query().Get(name); v {
	case "1", "true", "on", "":
		return true, nil
	case "0", "false", "off":
		return false, nil
	default:
		return false, fmt.Errorf("%s: want 1 or 0, got %q", name, v)
	}
}

func floatParam(r *http.Request, name string, required bool) (float64, error) {
	v := r.URL.Query().Get(name)
	if v == "" && !required {
		return 0, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("%s: want a non-negative number, got %q", name, v)
	}
	return f, nil
}
