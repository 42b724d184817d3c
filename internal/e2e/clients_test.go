package e2e_test

// Home Assistant and Frigate as they really run, replayed against the real
// patched go2rtc: the HTTP and WebSocket exchanges of Home Assistant's go2rtc
// integration (and its client library), the exchange of a custom card that
// talks, and Frigate's way of starting go2rtc.
//
// What Home Assistant does, as read in its go2rtc integration and client:
//   - GET /api: {"version": V}; it refuses V < 1.9.13 and V >= 2.0.0;
//   - it hands go2rtc only camera sources whose scheme is on a fixed list
//     (haSchemes: no hikvision);
//   - before each WebRTC offer and each snapshot it reads GET /api/streams
//     (a producer without a string "url" makes the whole answer unreadable),
//     and unless one producer URL of the camera's stream equals the camera's
//     source it re-adds the stream: PUT /api/streams?name=N&src=SOURCE
//     &src=ffmpeg:N#audio=opus#query=log_level=debug&src=ffmpeg:N#video=mjpeg
//     (go2rtc recreates the stream and rewrites its config file);
//   - offer: WebSocket /api/ws?src=N, {"type":"webrtc","value":{"type":"offer",
//     "sdp":SDP,"ice_servers":[...]}}; answer {"type":"webrtc","value":{"type":
//     "answer","sdp":...}}, candidates {"type":"webrtc/candidate","value":...},
//     errors {"type":"error","value":...};
//   - snapshot: GET /api/frame.jpeg?src=N.
// A custom card (go2rtc's player, as the WebRTC Camera card uses it) sends
// {"type":"webrtc/offer","value":SDP} and gets {"type":"webrtc/answer",...}.
//
// Frigate starts go2rtc as `go2rtc -config=<homekit file> -config=<generated>`
// (the homekit file first, so that go2rtc writes streams added through the API
// there), the generated file setting api.origin "*", ffmpeg.bin, log.format,
// hass.config and webrtc.candidates.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image/jpeg"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"gopkg.in/yaml.v3"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/build"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/e2e"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

// haSchemes is Home Assistant's fixed list of camera source schemes it hands
// to go2rtc.
var haSchemes = []string{"bubble", "dvrip", "expr", "ffmpeg", "gopro", "homekit", "http", "https", "httpx",
	"isapi", "ivideon", "kasa", "nest", "onvif", "roborock", "rtmp", "rtmps", "rtmpx", "rtsp", "rtsps",
	"rtspx", "tapo", "tcp", "webrtc", "webtorrent"}

// The go2rtc versions Home Assistant's client accepts: min <= v < max.
var haMinVersion, haMaxVersion = []int{1, 9, 13}, []int{2, 0, 0}

const (
	clientsHikPass  = "Door/9@Bell:#1" // the hikvision:// user's password: never printed
	clientsRTSPUser = "viewer"
	clientsRTSPPass = "View%3r:1"    // the rtsp:// source's password: read back as added
	haCamera        = "camera.porch" // Home Assistant's go2rtc stream name for the camera entity
)

// haClient re-implements what Home Assistant's go2rtc integration does over
// HTTP, counting the streams it (re-)adds. Every answer body is kept for the
// password check.
type haClient struct {
	t          *testing.T
	base       string // "http://127.0.0.1:PORT"
	user, pass string // go2rtc's api username/password, "" for none

	mu     sync.Mutex
	bodies []string
	adds   int
}

func (c *haClient) keep(what string, body []byte) {
	c.mu.Lock()
	c.bodies = append(c.bodies, what+": "+string(body))
	c.mu.Unlock()
}

func (c *haClient) do(method, path string, params url.Values) (int, []byte) {
	c.t.Helper()
	u := c.base + path
	if len(params) > 0 {
		u += "?" + params.Encode()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // the client's total timeout
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	if c.user != "" {
		req.SetBasicAuth(c.user, c.pass)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	c.keep(method+" "+path, body)
	return res.StatusCode, body
}

// ok is do plus the client's raise_for_status.
func (c *haClient) ok(method, path string, params url.Values) []byte {
	c.t.Helper()
	status, body := c.do(method, path, params)
	if status >= 400 {
		c.t.Fatalf("%s %s?%s: HTTP %d: %s", method, path, params.Encode(), status, body)
	}
	return body
}

// validateServerVersion is the client's version check.
func (c *haClient) validateServerVersion() string {
	c.t.Helper()
	var info struct {
		Version string `json:"version"`
	}
	if err := json.Unmarshal(c.ok(http.MethodGet, "/api", nil), &info); err != nil {
		c.t.Fatalf("GET /api: %v", err)
	}
	v, err := parseVersion(info.Version)
	if err != nil {
		c.t.Fatalf("GET /api: version %q: %v", info.Version, err)
	}
	if compareVersion(v, haMinVersion) < 0 || compareVersion(v, haMaxVersion) >= 0 {
		c.t.Fatalf("Home Assistant refuses go2rtc %s (it accepts %v <= v < %v)", info.Version, haMinVersion, haMaxVersion)
	}
	return info.Version
}

// parseVersion reads MAJOR.MINOR.PATCH of a SemVer string; build metadata
// ("1.9.14+dev." of a build without VCS data) does not take part in the
// comparison (Home Assistant's AwesomeVersion reads that string as SemVer 1.9.14).
func parseVersion(s string) ([]int, error) {
	core, _, _ := strings.Cut(strings.TrimPrefix(s, "v"), "+")
	var v []int
	for _, f := range strings.Split(core, ".") {
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, err
		}
		v = append(v, n)
	}
	return v, nil
}

func compareVersion(a, b []int) int {
	for i := 0; i < len(a) || i < len(b); i++ {
		var x, y int
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			return x - y
		}
	}
	return 0
}

// schemes is GET /api/schemes, a set of strings.
func (c *haClient) schemes() map[string]bool {
	c.t.Helper()
	var list []string
	if err := json.Unmarshal(c.ok(http.MethodGet, "/api/schemes", nil), &list); err != nil {
		c.t.Fatalf("GET /api/schemes: %v", err)
	}
	set := map[string]bool{}
	for _, s := range list {
		set[s] = true
	}
	return set
}

// listStreams decodes GET /api/streams as the client does: every stream must
// have "producers" (null is an empty list) and every producer a string "url",
// or the whole answer is an error.
func (c *haClient) listStreams() (map[string][]string, error) {
	var raw map[string]map[string]json.RawMessage
	if err := json.Unmarshal(c.ok(http.MethodGet, "/api/streams", nil), &raw); err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for name, stream := range raw {
		prods, ok := stream["producers"]
		if !ok {
			return nil, fmt.Errorf("stream %q: no producers field", name)
		}
		var list []map[string]any
		if err := json.Unmarshal(prods, &list); err != nil {
			return nil, fmt.Errorf("stream %q: producers: %w", name, err)
		}
		urls := []string{}
		for i, p := range list {
			u, ok := p["url"].(string)
			if !ok {
				return nil, fmt.Errorf("stream %q: producer %d has no string url: %v", name, i, p)
			}
			urls = append(urls, u)
		}
		out[name] = urls
	}
	return out, nil
}

// haSources is what Home Assistant adds for a camera.
func haSources(name, source string) []string {
	return []string{source, "ffmpeg:" + name + "#audio=opus#query=log_level=debug", "ffmpeg:" + name + "#video=mjpeg"}
}

// updateStreamSource is the integration's check before each offer and each
// snapshot: re-add the stream unless one of its producer URLs equals source.
func (c *haClient) updateStreamSource(name, source string) {
	c.t.Helper()
	streams, err := c.listStreams()
	if err != nil {
		c.t.Fatalf("Home Assistant cannot read GET /api/streams: %v", err)
	}
	for _, u := range streams[name] {
		if u == source {
			return
		}
	}
	c.mu.Lock()
	c.adds++
	c.mu.Unlock()
	c.ok(http.MethodPut, "/api/streams", url.Values{"name": {name}, "src": haSources(name, source)})
}

func (c *haClient) addCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.adds
}

// snapshot is async_get_image: the check, then GET /api/frame.jpeg?src=N.
func (c *haClient) snapshot(name, source string) []byte {
	c.t.Helper()
	c.updateStreamSource(name, source)
	return c.ok(http.MethodGet, "/api/frame.jpeg", url.Values{"src": {name}})
}

// peer is a real WebRTC peer (pion) offering receive-only video and
// send-receive audio (a microphone track), as a browser with a talk button.
type peer struct {
	pc    *webrtc.PeerConnection
	mic   *webrtc.TrackLocalStaticSample
	video chan struct{} // closed at the first video RTP packet
	wg    sync.WaitGroup
}

func newPeer(t *testing.T) *peer {
	t.Helper()
	var se webrtc.SettingEngine
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetIncludeLoopbackCandidate(true)
	var me webrtc.MediaEngine
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	api := webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(&me))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{pc: pc, video: make(chan struct{})}
	t.Cleanup(p.close)
	if _, err = pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo,
		webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	p.mic, err = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000}, "audio", "mic")
	if err != nil {
		t.Fatal(err)
	}
	if _, err = pc.AddTransceiverFromTrack(p.mic,
		webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv}); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		p.wg.Add(1)
		go func() { // ends when the connection closes
			defer p.wg.Done()
			for {
				if _, _, err := tr.ReadRTP(); err != nil {
					return
				}
				if tr.Kind() == webrtc.RTPCodecTypeVideo {
					once.Do(func() { close(p.video) })
				}
			}
		}()
	})
	return p
}

// offer is a complete offer (all host candidates gathered).
func (p *peer) offer(t *testing.T) string {
	t.Helper()
	offer, err := p.pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(p.pc)
	if err = p.pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gathered:
	case <-time.After(10 * time.Second):
		t.Fatal("ICE gathering did not complete within 10 s")
	}
	sdp := p.pc.LocalDescription().SDP
	if dir := sdpDirection(sdp, "audio"); dir != "sendrecv" {
		t.Fatalf("our offer's audio is %q, want sendrecv:\n%s", dir, sdp)
	}
	return sdp
}

func (p *peer) close() {
	_ = p.pc.Close()
	p.wg.Wait()
}

// sdpDirection is the direction attribute of the first m=kind section.
func sdpDirection(sdp, kind string) string {
	for _, sec := range strings.Split(sdp, "\nm=")[1:] {
		if !strings.HasPrefix(sec, kind+" ") {
			continue
		}
		for _, line := range strings.Split(sec, "\n") {
			switch a := strings.TrimSpace(line); a {
			case "a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive":
				return a[2:]
			}
		}
		return "sendrecv" // the default
	}
	return ""
}

// wsSession is a WebSocket /api/ws session: it reads go2rtc's messages into
// msgs (every one kept for the password check) until closed.
type wsSession struct {
	conn *websocket.Conn
	msgs chan map[string]json.RawMessage
	done chan struct{}
}

func dialWS(t *testing.T, c *haClient, src string) *wsSession {
	t.Helper()
	u := "ws" + strings.TrimPrefix(c.base, "http") + "/api/ws?" + url.Values{"src": {src}}.Encode()
	header := http.Header{}
	if c.user != "" {
		header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(c.user+":"+c.pass)))
	}
	conn, res, err := websocket.DefaultDialer.Dial(u, header)
	if err != nil {
		t.Fatalf("WebSocket %s: %v", u, err)
	}
	res.Body.Close()
	s := &wsSession{conn: conn, msgs: make(chan map[string]json.RawMessage, 64), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer close(s.msgs)
		for {
			_, b, err := conn.ReadMessage()
			if err != nil {
				return
			}
			c.keep("WebSocket message", b)
			var m map[string]json.RawMessage
			if json.Unmarshal(b, &m) != nil {
				t.Errorf("WebSocket: not a JSON object: %s", b)
				continue
			}
			select {
			case s.msgs <- m:
			default:
				t.Errorf("WebSocket: message dropped (nobody reading): %s", b)
			}
		}
	}()
	t.Cleanup(s.close)
	return s
}

func (s *wsSession) close() {
	_ = s.conn.Close()
	<-s.done
}

func (s *wsSession) send(t *testing.T, v any) {
	t.Helper()
	if err := s.conn.WriteJSON(v); err != nil {
		t.Fatalf("WebSocket send: %v", err)
	}
}

// exchange reads messages until the answer, feeding candidates to p, and
// returns the answer SDP. haForm: the answer must be Home Assistant's
// {"type":"webrtc","value":{"type":"answer","sdp":...}}; else the card's
// {"type":"webrtc/answer","value":SDP}.
func (s *wsSession) exchange(t *testing.T, p *peer, haForm bool) string {
	t.Helper()
	timeout := time.After(20 * time.Second)
	answer := ""
	var pending []string
	for answer == "" {
		var m map[string]json.RawMessage
		select {
		case m = <-s.msgs:
		case <-timeout:
			t.Fatal("no WebRTC answer within 20 s")
		}
		if m == nil {
			t.Fatal("go2rtc closed the WebSocket before answering")
		}
		var typ string
		_ = json.Unmarshal(m["type"], &typ)
		switch typ {
		case "webrtc/candidate":
			var c string
			if err := json.Unmarshal(m["value"], &c); err != nil {
				t.Fatalf("candidate: %v", err)
			}
			pending = append(pending, c)
		case "webrtc":
			if !haForm {
				t.Fatalf("the card's offer got a Home Assistant style answer: %s", m["value"])
			}
			var v struct {
				Type string `json:"type"`
				SDP  string `json:"sdp"`
			}
			if err := json.Unmarshal(m["value"], &v); err != nil || v.Type != "answer" || v.SDP == "" {
				t.Fatalf("Home Assistant cannot read the answer (want value {type: answer, sdp}): %s (%v)", m["value"], err)
			}
			answer = v.SDP
		case "webrtc/answer":
			if haForm {
				t.Fatalf("Home Assistant's offer got a webrtc/answer message, which it does not read: %s", m["value"])
			}
			if err := json.Unmarshal(m["value"], &answer); err != nil || answer == "" {
				t.Fatalf("answer: %s (%v)", m["value"], err)
			}
		case "error":
			t.Fatalf("go2rtc answered the offer with an error: %s", m["value"])
		default:
			t.Fatalf("a message Home Assistant does not read: %v", m)
		}
	}
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatalf("the answer does not apply: %v\n%s", err, answer)
	}
	add := func(c string) {
		if err := p.pc.AddICECandidate(webrtc.ICECandidateInit{Candidate: c}); err != nil {
			t.Errorf("candidate %q: %v", c, err)
		}
	}
	for _, c := range pending {
		add(c)
	}
	go func() { // later candidates, until the session closes
		for m := range s.msgs {
			var typ, c string
			_ = json.Unmarshal(m["type"], &typ)
			if typ == "webrtc/candidate" && json.Unmarshal(m["value"], &c) == nil {
				_ = p.pc.AddICECandidate(webrtc.ICECandidateInit{Candidate: c})
			}
		}
	}()
	return answer
}

func waitVideo(t *testing.T, p *peer, g *proc) {
	t.Helper()
	select {
	case <-p.video:
	case <-time.After(30 * time.Second):
		t.Fatalf("no video RTP over WebRTC within 30 s\ngo2rtc:\n%s", g.output())
	}
}

// streamJSON is GET /api/streams?src=name as a generic value.
func streamJSON(t *testing.T, c *haClient, name string) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(c.ok(http.MethodGet, "/api/streams", url.Values{"src": {name}}), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// producerActive reports whether the producer of stream name whose URL is u
// is connected (go2rtc shows the connection, with remote_addr, instead of
// {"url": ...}).
func producerActive(t *testing.T, c *haClient, name, u string) bool {
	t.Helper()
	prods, _ := streamJSON(t, c, name)["producers"].([]any)
	for _, p := range prods {
		if m, _ := p.(map[string]any); m != nil && m["url"] == u {
			_, ok := m["remote_addr"]
			return ok
		}
	}
	t.Fatalf("stream %s has no producer with url %q: %v", name, u, prods)
	return false
}

func pollUntil(t *testing.T, g *proc, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s\ngo2rtc:\n%s", timeout, what, g.output())
		}
		time.Sleep(50 * time.Millisecond) // polling with a deadline
	}
}

// TestHomeAssistantReplay replays Home Assistant's exchanges with go2rtc for
// a camera whose source is rtsp:// (the only way a Hikvision camera reaches
// Home Assistant's go2rtc: hikvision is not on its list), and a custom card's
// talk offer on a hikvision:// stream, and checks that Home Assistant never
// needs to re-add its stream (idle or active) and that the hikvision://
// password appears in no answer and no log line.
func TestHomeAssistantReplay(t *testing.T) {
	requireFFmpeg(t)
	bin := e2e.Go2rtcBinary(t)
	dev := startSim(t, sim.Config{Users: map[string]string{"admin": clientsHikPass, clientsRTSPUser: clientsRTSPPass}})
	// The camera's source is the camera's own RTSP URL with a password: the
	// case a masked URL broke.
	t.Run("open api", func(t *testing.T) { haReplay(t, bin, dev, "", "") })
	// README's set-up: the API protected as go2rtc documents it (basic auth
	// also from localhost, only the paths Home Assistant and the snapshot
	// endpoint use, so /api/config is not served, exec limited to ffmpeg,
	// RTSP with a password), the camera's source being go2rtc's RTSP restream
	// of the hikvision:// stream.
	t.Run("protected api, restream source", func(t *testing.T) { haReplay(t, bin, dev, "ha", "Api:Pass/1") })
}

// haAllowPaths is the api.allow_paths of the protected variant: Home
// Assistant's own list for its managed go2rtc without the web UI, plus this
// module's snapshot endpoint.
var haAllowPaths = []string{"/api", "/api/frame.jpeg", "/api/schemes", "/api/streams", "/api/webrtc", "/api/ws", "/api/hikvision/snapshot"}

func haReplay(t *testing.T, bin string, dev *sim.Device, apiUser, apiPass string) {
	door := hikURL("admin", clientsHikPass, dev, "?channel=1&stream=sub")
	apiAddr, err := e2e.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	rtspAddr, err := e2e.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	api := fmt.Sprintf("api:\n  listen: %s\n", apiAddr)
	if apiUser != "" {
		paths, _ := json.Marshal(haAllowPaths)
		api += fmt.Sprintf("  username: %s\n  password: %q\n  local_auth: true\n  allow_paths: %s\nexec:\n  allow_paths: [ffmpeg]\n",
			apiUser, apiPass, paths)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "go2rtc.yaml")
	rtsp := fmt.Sprintf("rtsp:\n  listen: %s\n", rtspAddr)
	if apiUser != "" {
		rtsp += fmt.Sprintf("  username: %s\n  password: %q\n", clientsRTSPUser, clientsRTSPPass)
	}
	if err := os.WriteFile(cfg, []byte(api+rtsp+fmt.Sprintf(`log:
  level: debug
webrtc:
  listen: ""
  ice_servers: []
  filters:
    loopback: true
    interfaces: [lo]
    networks: [udp4]
streams:
  door: %q
`, door)), 0o600); err != nil {
		t.Fatal(err)
	}
	g := startProc(t, bin, dir, "http://"+apiAddr, apiUser, apiPass, "-config", cfg)
	c := &haClient{t: t, base: g.api, user: apiUser, pass: apiPass}
	forms := allSecretForms("admin", clientsHikPass)
	t.Cleanup(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, text := range append(c.bodies, "go2rtc output: "+g.output()) {
			for _, line := range strings.Split(text, "\n") {
				if f := containsSecret(line, forms); f != "" {
					t.Errorf("the hikvision:// password (as %q) is printed: %.300s", f, line)
				}
			}
		}
	})

	if apiUser != "" {
		anon := &haClient{t: t, base: g.api}
		if status, _ := anon.do(http.MethodGet, "/api/streams", nil); status != http.StatusUnauthorized {
			t.Errorf("GET /api/streams without credentials: HTTP %d, want 401", status)
		}
		if status, body := c.do(http.MethodGet, "/api/config", nil); status != http.StatusNotFound {
			t.Errorf("GET /api/config with credentials: HTTP %d, want 404 (not in allow_paths): %.200s", status, body)
		}
		if b := c.ok(http.MethodGet, "/api/hikvision/snapshot", url.Values{"src": {"door"}}); len(b) < 4 || b[0] != 0xFF || b[1] != 0xD8 {
			t.Errorf("GET /api/hikvision/snapshot: not a JPEG (%d bytes)", len(b))
		}
	}

	// Version and schemes.
	version := c.validateServerVersion()
	if want := strings.TrimPrefix(build.Go2rtcVersion, "v"); version != want && !strings.HasPrefix(version, want+"+") {
		t.Errorf("GET /api version %q, want %q (the go2rtc this binary is built from)", version, want)
	}
	t.Logf("GET /api version %q: accepted", version)
	schemes := c.schemes()
	for _, s := range []string{"rtsp", "ffmpeg", "hikvision"} {
		if !schemes[s] {
			t.Errorf("GET /api/schemes lacks %q", s)
		}
	}
	for _, s := range haSchemes {
		if s == "hikvision" {
			t.Fatal("haSchemes lists hikvision: Home Assistant's list does not")
		}
	}

	// The camera's stream source.
	source := "rtsp://" + url.UserPassword(clientsRTSPUser, clientsRTSPPass).String() + "@" + dev.RTSPAddr() + dev.Channels()[0].MainPath()
	if apiUser != "" {
		source = "rtsp://" + url.UserPassword(clientsRTSPUser, clientsRTSPPass).String() + "@" + rtspAddr + "/door"
	}

	// First offer: the stream does not exist, Home Assistant adds it.
	c.updateStreamSource(haCamera, source)
	if n := c.addCount(); n != 1 {
		t.Fatalf("Home Assistant added the stream %d times, want 1", n)
	}
	streams, err := c.listStreams()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := streams[haCamera], haSources(haCamera, source); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("GET /api/streams %s producers %q, want them as added %q", haCamera, got, want)
	}
	// The idle hikvision:// stream: masked, with go2rtc's mask.
	if got, want := streams["door"], "hikvision://admin:***@"+dev.HTTPAddr()+"/?channel=1&stream=sub"; len(got) != 1 || got[0] != want {
		t.Errorf("idle door producers %q, want %q", got, want)
	}

	// Idle again (nothing played yet): no re-add.
	c.updateStreamSource(haCamera, source)
	if n := c.addCount(); n != 1 {
		t.Fatalf("Home Assistant re-added the idle stream (adds %d): the idle producer URL does not read back as added: %q",
			n, streams[haCamera])
	}

	// Home Assistant's WebRTC offer (its card is receive-only; this offer also
	// sends audio, as a talking card would).
	ha := newPeer(t)
	ws := dialWS(t, c, haCamera)
	ws.send(t, map[string]any{"type": "webrtc", "value": map[string]any{
		"type": "offer", "sdp": ha.offer(t), "ice_servers": []map[string]any{{"urls": []string{"stun:127.0.0.1:9"}}}}})
	answer := ws.exchange(t, ha, true)
	if dir := sdpDirection(answer, "video"); dir != "sendonly" {
		t.Errorf("answer video %q, want sendonly:\n%s", dir, answer)
	}
	if dir := sdpDirection(answer, "audio"); dir == "" || dir == "inactive" {
		t.Errorf("answer audio %q, want audio to the viewer:\n%s", dir, answer)
	}
	waitVideo(t, ha, g)
	if !producerActive(t, c, haCamera, source) {
		t.Fatalf("the rtsp:// producer is not connected while video flows: %v", streamJSON(t, c, haCamera))
	}
	// Active: the connected producer's URL reads back as added too.
	c.updateStreamSource(haCamera, source)
	if n := c.addCount(); n != 1 {
		t.Fatalf("Home Assistant re-added the active stream (adds %d): %v", n, streamJSON(t, c, haCamera))
	}
	ws.close()
	ha.close()
	pollUntil(t, g, "the rtsp:// producer to stop after the viewer left", 20*time.Second, func() bool {
		return !producerActive(t, c, haCamera, source)
	})

	// Snapshot (idle stream, go2rtc's JPEG through ffmpeg).
	img := c.snapshot(haCamera, source)
	pic, err := jpeg.DecodeConfig(bytes.NewReader(img))
	if err != nil || pic.Width == 0 {
		t.Errorf("GET /api/frame.jpeg: not a JPEG picture (%d bytes): %v", len(img), err)
	} else {
		t.Logf("snapshot: %dx%d JPEG, %d bytes", pic.Width, pic.Height, len(img))
	}
	if n := c.addCount(); n != 1 {
		t.Errorf("Home Assistant re-added the stream for a snapshot (adds %d)", n)
	}

	// A custom card's talk on the hikvision:// stream: {"type":"webrtc/offer"}
	// with a send-receive audio m-line; the answer must take the microphone.
	card := newPeer(t)
	cws := dialWS(t, c, "door")
	cws.send(t, map[string]any{"type": "webrtc/offer", "value": card.offer(t)})
	answer = cws.exchange(t, card, false)
	if dir := sdpDirection(answer, "audio"); dir != "sendrecv" {
		t.Errorf("the card's answer audio is %q, want sendrecv (talk):\n%s", dir, answer)
	}
	waitVideo(t, card, g)
	active := streamJSON(t, c, "door")
	if b, _ := json.Marshal(active); !strings.Contains(string(b), `"remote_addr"`) || !strings.Contains(string(b), "admin:***@") {
		t.Errorf("active door stream: want a connected producer showing admin:***@: %s", b)
	}
	// Speak: PCMU silence frames until the device has received a second of talk.
	talkBefore := dev.TalkClient(talkClientIP).Bytes
	stop := make(chan struct{})
	var talkWG sync.WaitGroup
	talkWG.Add(1)
	go func() {
		defer talkWG.Done()
		tick := time.NewTicker(20 * time.Millisecond) // the audio's own pace
		defer tick.Stop()
		frame := bytes.Repeat([]byte{0xFF}, 160)
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				_ = card.mic.WriteSample(media.Sample{Data: frame, Duration: 20 * time.Millisecond})
			}
		}
	}()
	pollUntil(t, g, "the device to receive 1 s of talk from the card's microphone", 20*time.Second, func() bool {
		return dev.TalkClient(talkClientIP).Bytes >= talkBefore+8000
	})
	t.Logf("talk: the device received %d bytes of G.711 from the card's microphone", dev.TalkClient(talkClientIP).Bytes-talkBefore)
	close(stop)
	talkWG.Wait()
	cws.close()
	card.close()
	// The card left: the device's talk line is free again (our close, not
	// the device's idle hang-up); the next client can talk at once.
	pollUntil(t, g, "the device's talk line to be closed after the card left", 20*time.Second, func() bool {
		_, open := dev.TalkSession()
		return !open
	})

	// Last check, idle again: no re-add over the whole session.
	c.updateStreamSource(haCamera, source)
	if n := c.addCount(); n != 1 {
		t.Errorf("Home Assistant added the stream %d times over the session, want 1", n)
	}
	t.Logf("Home Assistant's stream check ran 5 times (idle, active, snapshot, idle): 1 add, 0 re-adds")
}

// proc is a go2rtc started with the given command line.
type proc struct {
	api    string
	user   string // go2rtc's api username/password, "" for none
	pass   string
	cmd    *exec.Cmd
	out    bytes.Buffer
	outMu  sync.Mutex
	done   chan struct{}
	result error
	stop   sync.Once
}

func (f *proc) Write(p []byte) (int, error) {
	f.outMu.Lock()
	defer f.outMu.Unlock()
	return f.out.Write(p)
}

func (f *proc) output() string {
	f.outMu.Lock()
	defer f.outMu.Unlock()
	return f.out.String()
}

func startProc(t *testing.T, bin, dir, api, user, pass string, args ...string) *proc {
	t.Helper()
	f := &proc{api: api, user: user, pass: pass, done: make(chan struct{})}
	f.cmd = exec.Command(bin, args...)
	f.cmd.Dir = dir
	f.cmd.Stdout, f.cmd.Stderr = f, f
	if err := f.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { f.result = f.cmd.Wait(); close(f.done) }()
	t.Cleanup(func() { f.terminate(t) })
	f.waitReady(t)
	return f
}

// terminate sends SIGTERM and checks go2rtc exits with status 0 (once).
func (f *proc) terminate(t *testing.T) {
	t.Helper()
	f.stop.Do(func() {
		select {
		case <-f.done:
			t.Errorf("go2rtc exited on its own (%v):\n%s", f.result, f.output())
			return
		default:
		}
		_ = f.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-f.done:
			if f.result != nil {
				t.Errorf("go2rtc exited after SIGTERM with %v:\n%s", f.result, f.output())
			}
		case <-time.After(e2e.StopTimeout):
			_ = f.cmd.Process.Kill()
			<-f.done
			t.Errorf("go2rtc did not exit within %v of SIGTERM", e2e.StopTimeout)
		}
	})
}

func (f *proc) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(e2e.ReadyTimeout)
	for {
		// Ready once the late modules registered their schemes: go2rtc
		// answers its API before the rest of its modules start, and a
		// SIGTERM before the last one is up kills it instead of a clean exit.
		req, _ := http.NewRequest(http.MethodGet, f.api+"/api/schemes", nil)
		if f.user != "" {
			req.SetBasicAuth(f.user, f.pass)
		}
		if res, err := http.DefaultClient.Do(req); err == nil {
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			var schemes []string
			if res.StatusCode == http.StatusOK && json.Unmarshal(body, &schemes) == nil && slices.Contains(schemes, "isapi") {
				return
			}
		}
		select {
		case <-f.done:
			t.Fatalf("go2rtc exited at start (%v):\n%s", f.result, f.output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("go2rtc did not list its schemes within %v:\n%s", e2e.ReadyTimeout, f.output())
		}
		time.Sleep(50 * time.Millisecond) // polling with a deadline
	}
}

// TestFrigateStart starts the binary as Frigate does: its homekit file first
// (empty, in both forms Frigate's start script leaves it), then the file
// Frigate generates from the go2rtc section of its config (api.origin,
// ffmpeg.bin, log.format, hass.config, webrtc.candidates), and checks the
// hikvision:// stream plays and snapshots through Frigate's ffmpeg, CORS is
// open, and a stream added through the API lands in the homekit file while
// the generated file stays as Frigate wrote it.
func TestFrigateStart(t *testing.T) {
	requireFFmpeg(t)
	bin := e2e.Go2rtcBinary(t)
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatal(err)
	}
	dev := startSim(t, sim.Config{Users: map[string]string{"admin": clientsHikPass, clientsRTSPUser: clientsRTSPPass}})
	for _, homekit := range []string{"{}\n", ""} {
		t.Run(fmt.Sprintf("homekit=%q", homekit), func(t *testing.T) {
			dir := t.TempDir()
			calls := filepath.Join(dir, "ffmpeg-calls")
			wrapper := filepath.Join(dir, "frigate-ffmpeg")
			if err := os.WriteFile(wrapper, []byte("#!/bin/sh\necho \"$@\" >> "+strconv.Quote(calls)+"\nexec "+strconv.Quote(ffmpeg)+" \"$@\"\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			apiAddr, err := e2e.FreeAddr()
			if err != nil {
				t.Fatal(err)
			}
			rtspAddr, err := e2e.FreeAddr()
			if err != nil {
				t.Fatal(err)
			}
			homekitPath := filepath.Join(dir, "go2rtc_homekit.yml")
			if err := os.WriteFile(homekitPath, []byte(homekit), 0o644); err != nil {
				t.Fatal(err)
			}
			// As Frigate's generator writes it (ruamel.yaml): the user's go2rtc
			// section (streams, listen addresses) plus what Frigate sets.
			generated := fmt.Sprintf(`streams:
  front_door: %s
api:
  listen: %s
  origin: '*'
rtsp:
  listen: %s
webrtc:
  listen: ''
  candidates:
  - 127.0.0.1:8555
  - stun:8555
hass:
  config: /homeassistant
log:
  format: text
ffmpeg:
  bin: %s
`, strconv.Quote(hikURL("admin", clientsHikPass, dev, "?channel=1&stream=sub")), apiAddr, rtspAddr, wrapper)
			generatedPath := filepath.Join(dir, "go2rtc.yaml")
			if err := os.WriteFile(generatedPath, []byte(generated), 0o644); err != nil {
				t.Fatal(err)
			}
			args := []string{"-config=" + homekitPath, "-config=" + generatedPath}
			f := startProc(t, bin, dir, "http://"+apiAddr, "", "", args...)
			c := &haClient{t: t, base: f.api}

			// CORS for Frigate's UI and its Home Assistant card.
			req, _ := http.NewRequest(http.MethodGet, f.api+"/api/streams", nil)
			req.Header.Set("Origin", "http://frigate.local:5000")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			c.keep("GET /api/streams", body)
			if got := res.Header.Get("Access-Control-Allow-Origin"); got != "*" {
				t.Errorf("Access-Control-Allow-Origin %q, want * (api.origin)", got)
			}

			// A snapshot of the hikvision:// stream goes through Frigate's ffmpeg.
			img := c.ok(http.MethodGet, "/api/frame.jpeg", url.Values{"src": {"front_door"}})
			if cfg, err := jpeg.DecodeConfig(bytes.NewReader(img)); err != nil || cfg.Width == 0 {
				t.Errorf("GET /api/frame.jpeg: not a JPEG (%d bytes): %v", len(img), err)
			}
			if b, err := os.ReadFile(calls); err != nil || len(b) == 0 {
				t.Errorf("go2rtc did not run ffmpeg.bin (%s): %v", wrapper, err)
			}

			// A stream added through the API lands in the first file.
			added := "rtsp://" + url.UserPassword(clientsRTSPUser, clientsRTSPPass).String() + "@" + dev.RTSPAddr() + dev.Channels()[0].SubPath()
			c.ok(http.MethodPut, "/api/streams", url.Values{"name": {"garden"}, "src": {added}})
			var hk struct {
				Streams map[string][]string `yaml:"streams"`
			}
			b, err := os.ReadFile(homekitPath)
			if err != nil {
				t.Fatal(err)
			}
			if err := yaml.Unmarshal(b, &hk); err != nil {
				t.Fatalf("homekit file after PUT: %v\n%s", err, b)
			}
			if got := hk.Streams["garden"]; len(got) != 1 || got[0] != added {
				t.Errorf("homekit file after PUT has garden=%q, want [%q]:\n%s", got, added, b)
			}
			if b, _ := os.ReadFile(generatedPath); string(b) != generated {
				t.Errorf("go2rtc rewrote Frigate's generated file:\n%s", b)
			}
			streams, err := c.listStreams()
			if err != nil {
				t.Fatal(err)
			}
			if got := streams["garden"]; len(got) != 1 || got[0] != added {
				t.Errorf("GET /api/streams garden %q, want [%q] (as added)", got, added)
			}
			if got := streams["front_door"]; len(got) != 1 || !strings.Contains(got[0], "admin:***@") {
				t.Errorf("GET /api/streams front_door %q, want the password masked", got)
			}

			// go2rtc restarted with the same files still has it.
			f.terminate(t)
			f2 := startProc(t, bin, dir, "http://"+apiAddr, "", "", args...)
			if streams, err = c.listStreams(); err != nil {
				t.Fatal(err)
			}
			if got := streams["garden"]; len(got) != 1 || got[0] != added {
				t.Errorf("after a restart GET /api/streams garden %q, want [%q]; homekit file:\n%s", got, added, b)
			}

			forms := allSecretForms("admin", clientsHikPass)
			for _, text := range append(c.bodies, f.output(), f2.output()) {
				if s := containsSecret(text, forms); s != "" {
					t.Errorf("the hikvision:// password (as %q) is printed", s)
				}
			}
			if t.Failed() {
				t.Logf("go2rtc output:\n%s", f.output())
			}
		})
	}
}
