package sim

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math/rand/v2"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"weak"
)

// Snapshot faults (real snapshot failures are intermittent).
type SnapshotFault string

const (
	// SnapshotTimeout: the device accepts the request and never answers (until the client gives up, the
	// device reboots or closes).
	SnapshotTimeout SnapshotFault = "timeout"
	// SnapshotXML: HTTP 200 with a ResponseStatus body (statusCode 3, deviceError) instead of a JPEG.
	SnapshotXML SnapshotFault = "xml"
	// SnapshotTruncated: a JPEG cut short (SOI and headers, no EOI), with a Content-Length that matches
	// the short body, as a device whose encoder gave up would send it.
	SnapshotTruncated SnapshotFault = "truncated"
	// SnapshotHTML: HTTP 200 text/html (a proxy's or a broken firmware's error page).
	SnapshotHTML SnapshotFault = "html"
)

// AllSnapshotFaults lists every snapshot fault.
var AllSnapshotFaults = []SnapshotFault{SnapshotTimeout, SnapshotXML, SnapshotTruncated, SnapshotHTML}

// MaxSnapshotDimension is the largest width or height the simulator encodes.
const MaxSnapshotDimension = 4096

// SnapshotFaults makes a share of snapshot requests fail.
type SnapshotFaults struct {
	Rate  float64         // 0..1: share of authenticated picture requests that fail
	Modes []SnapshotFault // chosen at random for each failure; empty = all of AllSnapshotFaults
	Seed  uint64          // seeds the choice, so a run can be repeated
}

// SnapshotStats counts the picture requests that passed authentication.
type SnapshotStats struct {
	Requests int                   `json:"requests"` // authenticated picture requests (any outcome)
	Served   int                   `json:"served"`   // whole JPEGs sent
	Faults   map[SnapshotFault]int `json:"faults"`   // failures injected, by kind
	// Rejected are requests answered with an error by the device's own rules (bad channel, wrong path
	// for an NVR IP channel, bad size).
	Rejected int `json:"rejected"`
}

type snapshotState struct {
	mu     sync.Mutex
	faults SnapshotFaults
	rng    *rand.Rand
	next   []SnapshotFault // forced faults for the next requests, in order
	stats  SnapshotStats
	images map[[2]int][]byte // encoded JPEG per size (without the comment segment)
	seq    int
}

// snapshotStates holds each device's snapshot state without a field in Device (the state is dropped
// with the Device).
var snapshotStates sync.Map // weak.Pointer[Device] -> *snapshotState

func (d *Device) snapshots() *snapshotState {
	key := weak.Make(d)
	if s, ok := snapshotStates.Load(key); ok {
		return s.(*snapshotState)
	}
	s, loaded := snapshotStates.LoadOrStore(key, &snapshotState{
		rng:    rand.New(rand.NewPCG(1, 1)),
		images: map[[2]int][]byte{},
		stats:  SnapshotStats{Faults: map[SnapshotFault]int{}},
	})
	if !loaded {
		runtime.AddCleanup(d, func(k weak.Pointer[Device]) { snapshotStates.Delete(k) }, key)
	}
	return s.(*snapshotState)
}

// SetSnapshotFaults makes f.Rate of the following snapshot requests fail with one of f.Modes (chosen
// with a random generator seeded with f.Seed). Rate 0 turns rate-based faults off.
func (d *Device) SetSnapshotFaults(f SnapshotFaults) error {
	if f.Rate < 0 || f.Rate > 1 {
		return fmt.Errorf("sim: snapshot fault rate %v: want 0..1", f.Rate)
	}
	for _, m := range f.Modes {
		if !validFault(m) {
			return fmt.Errorf("sim: unknown snapshot fault %q (known: timeout, xml, truncated, html)", m)
		}
	}
	if len(f.Modes) == 0 {
		f.Modes = AllSnapshotFaults
	}
	f.Modes = append([]SnapshotFault(nil), f.Modes...)
	s := d.snapshots()
	s.mu.Lock()
	s.faults = f
	s.rng = rand.New(rand.NewPCG(f.Seed, f.Seed^0x9e3779b97f4a7c15))
	s.mu.Unlock()
	return nil
}

// FailNextSnapshots makes the next n snapshot requests fail with mode (before any rate-based fault).
func (d *Device) FailNextSnapshots(n int, mode SnapshotFault) error {
	if !validFault(mode) {
		return fmt.Errorf("sim: unknown snapshot fault %q", mode)
	}
	s := d.snapshots()
	s.mu.Lock()
	for range n {
		s.next = append(s.next, mode)
	}
	s.mu.Unlock()
	return nil
}

// SnapshotStats returns the snapshot counters.
func (d *Device) SnapshotStats() SnapshotStats {
	s := d.snapshots()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Faults = make(map[SnapshotFault]int, len(s.stats.Faults))
	for k, v := range s.stats.Faults {
		st.Faults[k] = v
	}
	return st
}

func validFault(m SnapshotFault) bool {
	for _, f := range AllSnapshotFaults {
		if m == f {
			return true
		}
	}
	return false
}

// snapshotFaultsControl is the control API's POST /snapshot-faults?rate=R&modes=a,b[&seed=N][&next=N&mode=M].
func (d *Device) snapshotFaultsControl(r *http.Request) (any, error) {
	q := r.URL.Query()
	if q.Has("rate") || q.Has("modes") || q.Has("seed") {
		rate, err := floatParam(r, "rate", false)
		if err != nil {
			return nil, err
		}
		f := SnapshotFaults{Rate: rate}
		if m := q.Get("modes"); m != "" {
			for _, s := range strings.Split(m, ",") {
				f.Modes = append(f.Modes, SnapshotFault(strings.TrimSpace(s)))
			}
		}
		if s := q.Get("seed"); s != "" {
			if f.Seed, err = strconv.ParseUint(s, 10, 64); err != nil {
				return nil, fmt.Errorf("seed: want a non-negative integer, got %q", s)
			}
		}
		if err := d.SetSnapshotFaults(f); err != nil {
			return nil, err
		}
	}
	if n := q.Get("next"); n != "" {
		count, err := strconv.Atoi(n)
		if err != nil || count < 0 {
			return nil, fmt.Errorf("next: want a non-negative integer, got %q", n)
		}
		if err := d.FailNextSnapshots(count, SnapshotFault(q.Get("mode"))); err != nil {
			return nil, err
		}
	}
	return d.SnapshotStats(), nil
}

// servePicture answers an authenticated .../channels/<id>/picture request and reports whether the path
// was one; other paths are left to route. bad is the malformed-XML fault (SetBadXML) for this request.
func (d *Device) servePicture(w http.ResponseWriter, r *http.Request, bad bool) bool {
	p := strings.TrimSuffix(r.URL.Path, "/")
	if !hasSuffixFold(p, "/picture") {
		return false
	}
	var rest string
	proxy := false
	switch {
	case hasPrefixFold(p, "/ISAPI/Streaming/channels/"):
		rest = p[len("/ISAPI/Streaming/channels/"):]
	case hasPrefixFold(p, "/ISAPI/ContentMgmt/StreamingProxy/channels/"):
		rest, proxy = p[len("/ISAPI/ContentMgmt/StreamingProxy/channels/"):], true
	default:
		return false
	}
	rest = rest[:len(rest)-len("/picture")]
	s := d.snapshots()
	ns := d.cfg.Namespace
	nvr := d.cfg.Personality == PersonalityNVR

	reject := func(status, code int, sub string) bool {
		s.mu.Lock()
		s.stats.Requests++
		s.stats.Rejected++
		s.mu.Unlock()
		writeXML(w, status, responseStatus(ns, r.RequestURI, code, sub))
		return true
	}
	if r.Method != http.MethodGet {
		return reject(http.StatusForbidden, 4, "methodNotAllowed")
	}
	switch {
	case proxy && !nvr:
		return reject(http.StatusForbidden, 4, "notSupport")
	case !proxy && nvr:
		// IP channels of an NVR take snapshots only through StreamingProxy.
		return reject(http.StatusBadRequest, 5, "badXmlContent")
	}
	id, err := strconv.Atoi(rest)
	var ch *Channel
	if err == nil {
		for i := range d.cfg.Channels {
			if d.cfg.Channels[i].ID == id/100 && (id%100 == 1 || id%100 == 2) {
				ch = &d.cfg.Channels[i]
			}
		}
	}
	if ch == nil {
		return reject(http.StatusBadRequest, 6, "badParameters")
	}
	width, height := ch.Width, ch.Height
	if id%100 == 2 || nvr { // NVR snapshots come at substream resolution unless a size is asked
		width, height = ch.SubWidth, ch.SubHeight
	}
	q := r.URL.Query()
	if ws, hs := q.Get("videoResolutionWidth"), q.Get("videoResolutionHeight"); ws != "" || hs != "" {
		wq, errW := strconv.Atoi(ws)
		hq, errH := strconv.Atoi(hs)
		if errW != nil || errH != nil || wq < 1 || hq < 1 || wq > MaxSnapshotDimension || hq > MaxSnapshotDimension {
			return reject(http.StatusBadRequest, 6, "badParameters")
		}
		width, height = wq, hq
	}

	s.mu.Lock()
	s.stats.Requests++
	var fault SnapshotFault
	switch {
	case len(s.next) > 0:
		fault, s.next = s.next[0], s.next[1:]
	case s.faults.Rate > 0 && s.rng.Float64() < s.faults.Rate:
		fault = s.faults.Modes[s.rng.IntN(len(s.faults.Modes))]
	}
	if fault != "" {
		s.stats.Faults[fault]++
	}
	s.seq++
	seq := s.seq
	s.mu.Unlock()

	if bad {
		writeXML(w, http.StatusOK, malformed(responseStatus(ns, r.RequestURI, 3, "deviceError")))
		return true
	}
	switch fault {
	case SnapshotTimeout:
		select {
		case <-r.Context().Done():
		case <-d.closed:
		}
		panic(http.ErrAbortHandler) // no answer at all, the connection is dropped
	case SnapshotXML:
		writeXML(w, http.StatusOK, responseStatus(ns, r.RequestURI, 3, "deviceError"))
		return true
	case SnapshotHTML:
		body := []byte("<!DOCTYPE html>\n<html><head><title>Error</title></head><body>Service Unavailable</body></html>\n")
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
		return true
	}

	img, err := s.image(width, height, ch.ID)
	if err != nil {
		writeXML(w, http.StatusInternalServerError, responseStatus(ns, r.RequestURI, 3, "deviceError"))
		return true
	}
	body := WithComment(img, fmt.Sprintf("sim snapshot seq=%d channel=%d size=%dx%d", seq, id, width, height))
	if fault == SnapshotTruncated {
		body = truncateJPEG(body)
	} else {
		s.mu.Lock()
		s.stats.Served++
		s.mu.Unlock()
	}
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
	return true
}

// image returns the encoded test picture of a size, encoding it on first use.
func (s *snapshotState) image(width, height, channel int) ([]byte, error) {
	key := [2]int{width, height*1000 + channel}
	s.mu.Lock()
	b, ok := s.images[key]
	s.mu.Unlock()
	if ok {
		return b, nil
	}
	b, err := EncodeTestJPEG(width, height, channel)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if len(s.images) >= 16 {
		clear(s.images)
	}
	s.images[key] = b
	s.mu.Unlock()
	return b, nil
}

// EncodeTestJPEG encodes a width×height test picture (colour bars shifted by channel).
func EncodeTestJPEG(width, height, channel int) ([]byte, error) {
	if width < 1 || height < 1 || width > MaxSnapshotDimension || height > MaxSnapshotDimension {
		return nil, fmt.Errorf("sim: snapshot size %dx%d: want 1..%d", width, height, MaxSnapshotDimension)
	}
	bars := []color.RGBA{{235, 235, 235, 255}, {235, 235, 16, 255}, {16, 235, 235, 255}, {16, 235, 16, 255},
		{235, 16, 235, 255}, {235, 16, 16, 255}, {16, 16, 235, 255}, {16, 16, 16, 255}}
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	for x := range width {
		c := bars[(x*len(bars)/width+channel)%len(bars)]
		for y := range height {
			img.SetRGBA(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 75}); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WithComment returns jpg with a COM segment holding text right after SOI (tests read it back with
// JPEGComment to tell which device answer they got).
func WithComment(jpg []byte, text string) []byte {
	if len(text) > 60000 {
		text = text[:60000]
	}
	out := make([]byte, 0, len(jpg)+4+len(text))
	out = append(out, jpg[:2]...)
	n := len(text) + 2
	out = append(out, 0xFF, 0xFE, byte(n>>8), byte(n))
	out = append(out, text...)
	return append(out, jpg[2:]...)
}

// JPEGComment returns the text of the first COM segment right after SOI, "" if there is none.
func JPEGComment(jpg []byte) string {
	if len(jpg) < 6 || jpg[0] != 0xFF || jpg[1] != 0xD8 || jpg[2] != 0xFF || jpg[3] != 0xFE {
		return ""
	}
	n := int(jpg[4])<<8 | int(jpg[5])
	if n < 2 || 4+n > len(jpg) {
		return ""
	}
	return string(jpg[6 : 4+n])
}

// truncateJPEG cuts a JPEG at two thirds, so that it has its headers but no EOI.
func truncateJPEG(b []byte) []byte {
	cut := len(b) * 2 / 3
	for cut > 4 && b[cut-2] == 0xFF && b[cut-1] == 0xD9 {
		cut--
	}
	return b[:cut]
}

func writeXML(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", contentTypeXML)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func hasSuffixFold(s, suffix string) bool {
	return len(s) >= len(suffix) && strings.EqualFold(s[len(s)-len(suffix):], suffix)
}
