package hikvision

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Test credentials: the password needs percent-encoding in a URL.
const (
	testUser = "admin"
	testPass = "p@ss/w?rd#1:x"
)

func md5hex(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

// parseDigest reads the fields of an "Authorization: Digest ..." header.
func parseDigest(h string) map[string]string {
	out := map[string]string{}
	h, ok := strings.CutPrefix(h, "Digest ")
	if !ok {
		return nil
	}
	for h != "" {
		h = strings.TrimLeft(h, " ,")
		k, rest, ok := strings.Cut(h, "=")
		if !ok {
			break
		}
		var v string
		if strings.HasPrefix(rest, `"`) {
			end := strings.IndexByte(rest[1:], '"')
			if end < 0 {
				break
			}
			v, h = rest[1:1+end], rest[2+end:]
		} else {
			v, h, _ = strings.Cut(rest, ",")
		}
		out[strings.TrimSpace(k)] = v
	}
	return out
}

// digestOK checks a digest answer (with or without qop) for user/pass.
func digestOK(header, method, user, pass, realm, nonce string) bool {
	f := parseDigest(header)
	if f == nil || f["username"] != user || f["nonce"] != nonce {
		return false
	}
	ha1 := md5hex(user + ":" + realm + ":" + pass)
	ha2 := md5hex(method + ":" + f["uri"])
	var want string
	if f["qop"] != "" {
		want = md5hex(ha1 + ":" + nonce + ":" + f["nc"] + ":" + f["cnonce"] + ":" + f["qop"] + ":" + ha2)
	} else {
		want = md5hex(ha1 + ":" + nonce + ":" + ha2)
	}
	return f["response"] == want
}

// fakeISAPI is a Hikvision-like ISAPI server with digest auth that counts
// requests.
type fakeISAPI struct {
	*httptest.Server
	pass       string
	deviceType string
	rtspPort   atomic.Int32
	channels   map[int]string // stream id -> video codec

	// talkCodec, when set, is the audioCompressionType of the one
	// TwoWayAudio channel the fake lists; empty: TwoWayAudio answers 404.
	talkCodec string
	// round, when set, lets the first authenticated request through (the
	// isapi client makes its first login alone), then holds the next ones
	// until round.n of them are in flight at once (released together), or
	// round.wait passes (then they answer 503): requests that are not
	// concurrent never all get through.
	round *roundBarrier

	mu          sync.Mutex
	requests    []string // "METHOD path auth|noauth|badauth"
	failedLogin int
}

type roundBarrier struct {
	n    int
	wait time.Duration

	mu      sync.Mutex
	first   bool
	arrived int
	full    chan struct{}
}

func newRoundBarrier(n int, wait time.Duration) *roundBarrier {
	return &roundBarrier{n: n, wait: wait, full: make(chan struct{})}
}

// enter reports whether n requests were in flight together before wait.
func (b *roundBarrier) enter() bool {
	b.mu.Lock()
	if !b.first {
		b.first = true
		b.mu.Unlock()
		return true
	}
	b.arrived++
	if b.arrived == b.n {
		close(b.full)
	}
	b.mu.Unlock()
	t := time.NewTimer(b.wait)
	defer t.Stop()
	select {
	case <-b.full:
		return true
	case <-t.C:
		return false
	}
}

const isapiNonce = "4e6a49324d6a55354d7a6b364e7a67794e6a4131:1700000000"

func newFakeISAPI(t *testing.T) *fakeISAPI {
	f := &fakeISAPI{pass: testPass, deviceType: "IPCamera", channels: map[int]string{101: "H.264", 102: "H.265"}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeISAPI) hostPort() string { return strings.TrimPrefix(f.URL, "http://") }

func (f *fakeISAPI) serve(w http.ResponseWriter, r *http.Request) {
	const realm = "IP Camera(K2195)"
	auth := r.Header.Get("Authorization")
	state := "auth"
	switch {
	case auth == "":
		state = "noauth"
	case !digestOK(auth, r.Method, testUser, f.pass, realm, isapiNonce):
		state = "badauth"
	}
	f.mu.Lock()
	f.requests = append(f.requests, r.Method+" "+r.URL.Path+" "+state)
	if state == "badauth" {
		f.failedLogin++
	}
	left := 7 - f.failedLogin
	f.mu.Unlock()

	if state != "auth" {
		w.Header().Set("WWW-Authenticate", `Digest qop="auth", realm="`+realm+`", nonce="`+isapiNonce+`", stale="FALSE"`)
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusUnauthorized)
		retry := ""
		if state == "badauth" {
			retry = "<retryLoginTime>" + strconv.Itoa(left) + "</retryLoginTime>"
		}
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><userCheck><statusValue>401</statusValue><statusString>Unauthorized</statusString><lockStatus>unlock</lockStatus><unlockTime>0</unlockTime>%s</userCheck>`, retry)
		return
	}

	if f.round != nil && !f.round.enter() {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}

	const ns = `xmlns="http://www.hikvision.com/ver20/XMLSchema" version="2.0"`
	w.Header().Set("Content-Type", "application/xml")
	switch {
	case r.URL.Path == "/ISAPI/System/TwoWayAudio/channels" && f.talkCodec != "":
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><TwoWayAudioChannelList %s><TwoWayAudioChannel><id>1</id><enabled>false</enabled><audioCompressionType>%s</audioCompressionType><audioInputType>MicIn</audioInputType><speakerVolume>50</speakerVolume><noisereduce>false</noisereduce><audioOutputType>Speaker</audioOutputType></TwoWayAudioChannel></TwoWayAudioChannelList>`, ns, f.talkCodec)
	case r.URL.Path == "/ISAPI/System/deviceInfo":
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><DeviceInfo %s><deviceName>Front</deviceName><deviceID>x</deviceID><model>DS-2CD2143G2-I</model><serialNumber>DS-2CD2143G2-I20230101AAWRJ00000000</serialNumber><macAddress>bc:ad:28:00:00:01</macAddress><firmwareVersion>V5.7.18</firmwareVersion><firmwareReleasedDate>build 240826</firmwareReleasedDate><deviceType>%s</deviceType><manufacturer>Hikvision</manufacturer></DeviceInfo>`, ns, f.deviceType)
	case r.URL.Path == "/ISAPI/Security/adminAccesses":
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><AdminAccessProtocolList %s><AdminAccessProtocol><id>1</id><enabled>true</enabled><protocol>HTTP</protocol><portNo>80</portNo></AdminAccessProtocol><AdminAccessProtocol><id>4</id><enabled>true</enabled><protocol>RTSP</protocol><portNo>%d</portNo></AdminAccessProtocol></AdminAccessProtocolList>`, ns, f.rtspPort.Load())
	case strings.HasPrefix(r.URL.Path, "/ISAPI/Streaming/channels/"):
		id, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/ISAPI/Streaming/channels/"))
		codec, ok := f.channels[id]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><ResponseStatus %s><requestURL>%s</requestURL><statusCode>4</statusCode><statusString>Invalid Operation</statusString><subStatusCode>notSupport</subStatusCode></ResponseStatus>`, ns, r.URL.Path)
			return
		}
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><StreamingChannel %s><id>%d</id><channelName>Front</channelName><enabled>true</enabled><Video><enabled>true</enabled><videoCodecType>%s</videoCodecType><videoResolutionWidth>2688</videoResolutionWidth><videoResolutionHeight>1520</videoResolutionHeight><maxFrameRate>2500</maxFrameRate></Video><Audio><enabled>true</enabled><audioCompressionType>G.711alaw</audioCompressionType></Audio></StreamingChannel>`, ns, id, codec)
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

func (f *fakeISAPI) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}
