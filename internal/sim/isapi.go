package sim

import (
	"crypto/sha256"
	"net"
	"net/http"
	"strconv"
	"strings"
)

const contentTypeXML = `application/xml; charset="UTF-8"`

// serveISAPI authenticates every request, then routes it.
func (d *Device) serveISAPI(w http.ResponseWriter, r *http.Request) {
	ip := clientIP(r.RemoteAddr)
	d.mu.Lock()
	d.clientLocked(ip).Requests[r.URL.Path]++
	d.mu.Unlock()
	if !d.stall(r.Context()) {
		// stalled until the client gave up or the device went away: never answer. Returning would make
		// net/http send an empty 200; aborting closes the connection without a response.
		panic(http.ErrAbortHandler)
	}

	d.mu.Lock()
	outcome := d.checkAuthLocked(r, ip)
	if outcome != authOK {
		d.unauthorizedLocked(w, r, ip, outcome)
		d.mu.Unlock()
		return
	}
	bad := d.badXML > 0
	if bad {
		d.badXML--
	}
	d.mu.Unlock()

	if d.servePicture(w, r, bad) { // snapshots: snapshot.go
		return
	}
	if d.serveTalkAudio(w, r, ip) {
		return // PUT .../TwoWayAudio/channels/<id>/audioData: raw audio on the connection (talk.go)
	}
	if d.serveAlertStream(w, r) || d.serveDoorStation(w, r) {
		return // events.go, doorstation.go
	}
	status, body := d.route(r)
	if bad && body != nil {
		body = malformed(body)
	}
	if body != nil { // nil: a bare status, as some firmware answers absent streams
		w.Header().Set("Content-Type", contentTypeXML)
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// unauthorizedLocked answers 401 with a challenge and the userCheck body. Caller holds d.mu.
func (d *Device) unauthorizedLocked(w http.ResponseWriter, r *http.Request, ip string, outcome authOutcome) {
	cs := d.clientLocked(ip)
	stale := false
	var body []byte
	switch outcome {
	case authNone:
		cs.Challenges++
	case authRejected:
		cs.RejectedAuth++
	case authLocked:
		cs.LockedRejects++
	case authUnknown:
		cs.UnknownNonces++
	case authStale:
		cs.StaleNonces++
		if d.cfg.StaleResponse == StaleInvalidOperation {
			body = responseStatus(d.cfg.Namespace, r.RequestURI, 4, "invalidOperation")
		} else {
			stale = true
		}
	}
	if body == nil {
		locked, unlock, retries := d.lockInfoLocked(ip)
		body = render("userCheck", struct {
			NS, StatusString                        string
			StatusValue, UnlockTime, RetryLoginTime int
			Lock, Locked                            bool
		}{
			NS: d.cfg.Namespace, StatusString: "Unauthorized", StatusValue: 401,
			UnlockTime: unlock, RetryLoginTime: retries,
			Lock: !d.cfg.OmitLockFields, Locked: locked,
		})
	}
	for _, v := range d.challengeHeadersLocked(stale) {
		w.Header().Add("WWW-Authenticate", v)
	}
	w.Header().Set("Content-Type", contentTypeXML)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusUnauthorized)
	_, _ = w.Write(body)
}

// route answers an authenticated request.
func (d *Device) route(r *http.Request) (int, []byte) {
	ns := d.cfg.Namespace
	p := strings.TrimSuffix(r.URL.Path, "/")
	nvr := d.cfg.recorder()
	get := func(f func() []byte) (int, []byte) {
		if r.Method != http.MethodGet {
			return http.StatusForbidden, responseStatus(ns, r.RequestURI, 4, "methodNotAllowed")
		}
		return http.StatusOK, f()
	}
	notSupported := func() (int, []byte) {
		return http.StatusForbidden, responseStatus(ns, r.RequestURI, 4, "notSupport")
	}

	switch {
	case strings.EqualFold(p, "/ISAPI/System/deviceInfo"):
		return get(d.deviceInfoXML)
	case strings.EqualFold(p, "/ISAPI/System/capabilities"):
		return get(d.capabilitiesXML) // personality.go
	case strings.EqualFold(p, "/ISAPI/System/Video/inputs/channels"):
		return get(d.videoInputsXML)
	case strings.EqualFold(p, "/ISAPI/Security/userCheck"):
		return get(func() []byte {
			return render("userCheck", struct {
				NS, StatusString                        string
				StatusValue, UnlockTime, RetryLoginTime int
				Lock, Locked                            bool
			}{NS: ns, StatusString: "OK", StatusValue: 200})
		})
	case strings.EqualFold(p, "/ISAPI/Security/adminAccesses"):
		return get(func() []byte {
			return render("adminAccesses", struct {
				NS                 string
				HTTPPort, RTSPPort int
			}{ns, portOf(d.httpAddr), d.advertisedRTSPPort()})
		})
	case strings.EqualFold(p, "/ISAPI/Security/illegalLoginLock"):
		return get(func() []byte {
			return render("illegalLoginLock", struct {
				NS                    string
				Enabled               bool
				MaxTimes, LockSeconds int
			}{ns, !d.cfg.LockDisabled, d.cfg.MaxFailures, int(d.cfg.LockDuration.Seconds())})
		})
	case strings.EqualFold(p, "/ISAPI/Streaming/channels"),
		nvr && strings.EqualFold(p, "/ISAPI/ContentMgmt/StreamingProxy/channels"):
		return get(func() []byte {
			return render("streamingChannelList", struct {
				NS      string
				Streams []streamView
			}{ns, d.streams()})
		})
	case hasPrefixFold(p, "/ISAPI/Streaming/channels/"):
		return d.streamingChannel(r, p[len("/ISAPI/Streaming/channels/"):])
	case nvr && hasPrefixFold(p, "/ISAPI/ContentMgmt/StreamingProxy/channels/"):
		return d.streamingChannel(r, p[len("/ISAPI/ContentMgmt/StreamingProxy/channels/"):])
	case hasPrefixFold(p, "/ISAPI/ContentMgmt/InputProxy/channels") ||
		hasPrefixFold(p, "/ISAPI/ContentMgmt/StreamingProxy/"):
		if !nvr {
			return notSupported()
		}
		switch {
		case strings.EqualFold(p, "/ISAPI/ContentMgmt/InputProxy/channels"):
			return get(func() []byte { return render("inputProxyChannels", d.channelsView()) })
		case strings.EqualFold(p, "/ISAPI/ContentMgmt/InputProxy/channels/status"):
			return get(func() []byte { return render("inputProxyStatus", d.channelsView()) })
		}
		return http.StatusNotFound, responseStatus(ns, r.RequestURI, 4, "invalidOperation")
	case strings.EqualFold(p, "/ISAPI/Event/triggers"):
		return d.triggers(r) // triggers.go
	case strings.EqualFold(p, "/ISAPI/System/TwoWayAudio/channels"):
		if d.cfg.TalkCodec == "none" {
			return notSupported()
		}
		return get(d.twoWayAudioXML)
	case hasPrefixFold(p, "/ISAPI/System/TwoWayAudio/channels/"):
		// Voice-talk sessions (capabilities, open, close) in talk.go; audioData is
		// served by serveTalkAudio before routing.
		return d.talkRequest(r, p[len("/ISAPI/System/TwoWayAudio/channels/"):])
	}
	return http.StatusNotFound, responseStatus(ns, r.RequestURI, 4, "invalidOperation")
}

// streamingChannel answers .../channels/<rest>.
func (d *Device) streamingChannel(r *http.Request, rest string) (int, []byte) {
	ns := d.cfg.Namespace
	id, err := strconv.Atoi(rest)
	if err != nil {
		// sub-resources (picture, capabilities...) are not simulated yet
		return http.StatusNotFound, responseStatus(ns, r.RequestURI, 4, "invalidOperation")
	}
	if code := d.absentStream(id); code != 0 {
		return code, nil // bare status, no body (personality.go)
	}
	for _, s := range d.streams() {
		if s.ID == id {
			if r.Method != http.MethodGet {
				return http.StatusForbidden, responseStatus(ns, r.RequestURI, 4, "methodNotAllowed")
			}
			return http.StatusOK, render("streamingChannel", s)
		}
	}
	return http.StatusBadRequest, responseStatus(ns, r.RequestURI, 6, "badParameters")
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

func (d *Device) deviceInfoXML() []byte {
	return render("deviceInfo", struct {
		NS, DeviceID, MAC, DeviceType string
		NVR                           bool
		Cfg                           Config
	}{
		NS: d.cfg.Namespace, DeviceID: d.deviceID(), MAC: d.macAddress(), DeviceType: d.cfg.DeviceType,
		NVR: d.cfg.recorder(), Cfg: d.cfg,
	})
}

// deviceID is a stable UUID-looking id derived from the serial number.
func (d *Device) deviceID() string {
	h := hashHex(sha256.New, d.cfg.Serial)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func (d *Device) macAddress() string {
	h := hashHex(sha256.New, "mac"+d.cfg.Serial)
	return "c0:56:e3:" + h[0:2] + ":" + h[2:4] + ":" + h[4:6]
}

// streamView is the data of one StreamingChannel.
type streamView struct {
	NS                                   string
	ID, Channel                          int
	Name, Video, Audio                   string
	Width, Height, BitRate, MaxFrameRate int
	GovLength                            int
	AudioEnabled                         bool
}

func (d *Device) streams() []streamView {
	var out []streamView
	for _, ch := range d.cfg.Channels {
		mainKbps := 4096
		if ch.MainKbps > 0 {
			mainKbps = ch.MainKbps
		}
		audio, audioOn := isapiAudio(ch.Audio), ch.Audio != "none"
		if !audioOn {
			audio = "G.711ulaw"
		}
		out = append(out, streamView{
			NS: d.cfg.Namespace, ID: ch.StreamID(1), Channel: ch.ID, Name: ch.Name,
			Video: ch.Video, Audio: audio, AudioEnabled: audioOn,
			Width: ch.Width, Height: ch.Height, BitRate: mainKbps,
			MaxFrameRate: ch.FrameRate * 100, GovLength: ch.FrameRate * 2,
		})
		sub := ch.Video
		if ch.SubVideo != "" {
			sub = ch.SubVideo
		}
		for _, st := range ch.Streams[1:] {
			out = append(out, streamView{
				NS: d.cfg.Namespace, ID: ch.StreamID(st), Channel: ch.ID, Name: ch.Name,
				Video: sub, Audio: audio, AudioEnabled: audioOn,
				Width: ch.SubWidth, Height: ch.SubHeight, BitRate: 512,
				MaxFrameRate: ch.FrameRate * 100, GovLength: ch.FrameRate * 2,
			})
		}
	}
	return out
}

func (d *Device) channelsView() any {
	return struct {
		NS       string
		Channels []Channel
	}{d.cfg.Namespace, d.ipChannels()}
}

func (d *Device) twoWayAudioXML() []byte {
	type talkView struct {
		ID, Codec string
		Enabled   bool
		KHz       int // AAC sampling rate
	}
	var chs []talkView
	d.mu.Lock()
	for i := 1; i <= d.cfg.TalkChannels; i++ {
		id := strconv.Itoa(i)
		chs = append(chs, talkView{ID: id, Codec: d.cfg.TalkCodec, Enabled: d.talkOpenLocked(id), KHz: d.talkCfg().AACSampleRate / 1000})
	}
	d.mu.Unlock()
	return render("twoWayAudioChannels", struct {
		NS       string
		Channels []talkView
	}{d.cfg.Namespace, chs})
}

// malformed turns a good XML body into one no parser accepts: cut inside the root element, then garbage.
func malformed(body []byte) []byte {
	out := append([]byte(nil), body[:len(body)/2]...)
	return append(out, "<\x00\xff&<</"...)
}

func clientIP(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return remoteAddr
	}
	return host
}
