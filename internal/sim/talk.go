package sim

// Voice talk (two-way audio) over ISAPI:
//
//	GET /ISAPI/System/TwoWayAudio/channels[/<id>]     enabled=true while a session is open
//	GET .../channels/<id>/capabilities                codec options in opt attributes
//	PUT .../channels/<id>/open                        TwoWayAudioSession/sessionId; one session at a time
//	PUT .../channels/<id>/audioData[?sessionId=]      raw audio after the headers, for as long as the talk lasts
//	PUT .../channels/<id>/close                       OK, also when nothing is open
//
// The device hangs up by itself after TalkConfig.IdleHangup without audio on the audioData connection
// (closing it and counting a "call ended" prompt). A session whose client went away without close keeps
// the line busy until close or TalkConfig.StaleTimeout (measured on Config.Now).

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Refusal styles of an open while a session is open (TalkConfig.Refusal).
const (
	TalkRefuseInvalidOperation = "invalidOperation" // 403, statusCode 4 invalidOperation (default)
	TalkRefuseDeviceBusy       = "deviceBusy"       // 403, statusCode 2 deviceBusy
	TalkRefusePlain403         = "plain403"         // 403 with an empty body
)

// TalkLocalClient is the client "IP" of the device's own call (SetLocalTalk: a door station ringing).
const TalkLocalClient = "local"

// TalkConfig is the voice-talk behaviour of the device. Zero values take the defaults.
type TalkConfig struct {
	// IdleHangup: the device ends a session after this long without audio on its audioData connection,
	// and plays a "call ended" prompt. Default 4 s (real devices: 3–10 s).
	IdleHangup time.Duration
	// StaleTimeout: a session without an audioData connection (client crashed, never closed) blocks
	// open until close or this long after its last activity. Default 90 s. Measured on Config.Now.
	StaleTimeout time.Duration
	// Refusal is how open is refused while a session is open: TalkRefuseInvalidOperation (default),
	// TalkRefuseDeviceBusy or TalkRefusePlain403.
	Refusal string
	// KeepAudio bounds the received audio kept for TalkAudio (the newest is kept). Default 60 s.
	KeepAudio time.Duration
	// AnswerAudioData makes the device answer the audioData request with "200 OK" headers (a
	// ResponseStatus OK body) as soon as it accepts it, then read the audio. Default: no answer while
	// the talk lasts.
	AnswerAudioData bool
}

func (c TalkConfig) withDefaults() TalkConfig {
	if c.IdleHangup <= 0 {
		c.IdleHangup = 4 * time.Second
	}
	if c.StaleTimeout <= 0 {
		c.StaleTimeout = 90 * time.Second
	}
	if c.Refusal == "" {
		c.Refusal = TalkRefuseInvalidOperation
	}
	if c.KeepAudio <= 0 {
		c.KeepAudio = 60 * time.Second
	}
	return c
}

// TalkClientStats are the voice-talk counters of one client IP.
type TalkClientStats struct {
	Opens            int `json:"opens"`             // sessions opened
	RefusedOpens     int `json:"refused_opens"`     // opens refused because a session was open
	Closes           int `json:"closes"`            // close requests (also when nothing was open)
	ClosedSessions   int `json:"closed_sessions"`   // of Closes: those that ended an open session
	AudioConnections int `json:"audio_connections"` // audioData connections accepted
	RefusedAudio     int `json:"refused_audio"`     // audioData requests refused (no session, chunked...)
	Bytes            int `json:"bytes"`             // audio bytes received after the headers
	Prompts          int `json:"prompts"`           // "call ended" prompts: the device hung up this client's session
	FramingErrors    int `json:"framing_errors"`    // AAC: bad length prefix or ADTS header (one per loss of sync)
	StaleExpiries    int `json:"stale_expiries"`    // sessions of this client dropped after StaleTimeout
}

// TalkSessionInfo describes the open talk session.
type TalkSessionInfo struct {
	ID        string // sessionId
	Channel   string // TwoWayAudio channel id
	Client    string // client IP that opened it, or TalkLocalClient
	Streaming bool   // an audioData connection is attached
	Opened    time.Time
}

// talkSession is an open voice-talk session (in Device.talk, keyed by channel id).
type talkSession struct {
	id      string
	channel string
	ip      string
	opened  time.Time // Config.Now
	last    time.Time // Config.Now: last activity (open, audio)
	conn    net.Conn  // the attached audioData connection, nil if none
}

// talkSide is the device's voice-talk state besides Device.talk. Guarded by Device.mu except wg.
type talkSide struct {
	stats  map[string]*TalkClientStats
	conns  map[net.Conn]struct{} // hijacked audioData connections
	wg     sync.WaitGroup        // audioData handlers (their connections are hijacked: http.Server forgets them)
	nextID int
	audio  []audioChunk
	dur    time.Duration // of audio
}

type audioChunk struct {
	b   []byte
	dur time.Duration
}

const talkChannelID = "1"

func (d *Device) talkCfg() TalkConfig { return d.cfg.Talk.withDefaults() }

// talkStatsLocked returns the talk counters of ip, creating them. Caller holds d.mu.
func (d *Device) talkStatsLocked(ip string) *TalkClientStats {
	if d.tk.stats == nil {
		d.tk.stats = map[string]*TalkClientStats{}
	}
	s := d.tk.stats[ip]
	if s == nil {
		s = &TalkClientStats{}
		d.tk.stats[ip] = s
	}
	return s
}

// talkSessionLocked returns the open session of a channel after dropping it if it went stale.
// Caller holds d.mu.
func (d *Device) talkSessionLocked(ch string) *talkSession {
	s := d.talk[ch]
	if s == nil {
		return nil
	}
	if s.conn == nil && s.ip != TalkLocalClient && d.cfg.Now().Sub(s.last) >= d.talkCfg().StaleTimeout {
		delete(d.talk, ch)
		d.talkStatsLocked(s.ip).StaleExpiries++
		return nil
	}
	return s
}

// talkOpenLocked tells whether a session is open on the channel. Caller holds d.mu.
func (d *Device) talkOpenLocked(ch string) bool { return d.talkSessionLocked(ch) != nil }

// talkRequest answers .../TwoWayAudio/channels/<rest> except PUT audioData (serveTalkAudio).
func (d *Device) talkRequest(r *http.Request, rest string) (int, []byte) {
	ns := d.cfg.Namespace
	ip := clientIP(r.RemoteAddr)
	id, op, _ := strings.Cut(rest, "/")
	if d.cfg.TalkCodec == "none" {
		return http.StatusForbidden, responseStatus(ns, r.RequestURI, 4, "notSupport")
	}
	if id != talkChannelID {
		return http.StatusNotFound, responseStatus(ns, r.RequestURI, 4, "invalidOperation")
	}
	method := func(want string) (int, []byte, bool) {
		if r.Method != want {
			return http.StatusForbidden, responseStatus(ns, r.RequestURI, 4, "methodNotAllowed"), false
		}
		return 0, nil, true
	}
	switch strings.ToLower(op) {
	case "":
		if st, b, ok := method(http.MethodGet); !ok {
			return st, b
		}
		d.mu.Lock()
		open := d.talkOpenLocked(id)
		d.mu.Unlock()
		return http.StatusOK, []byte(xmlHeader + d.talkChannelXML(id, open, false))
	case "capabilities":
		if st, b, ok := method(http.MethodGet); !ok {
			return st, b
		}
		return http.StatusOK, []byte(xmlHeader + d.talkChannelXML(id, false, true))
	case "open":
		if st, b, ok := method(http.MethodPut); !ok {
			return st, b
		}
		return d.talkOpen(r, ip, id)
	case "close":
		if st, b, ok := method(http.MethodPut); !ok {
			return st, b
		}
		d.mu.Lock()
		cs := d.talkStatsLocked(ip)
		cs.Closes++
		var conn net.Conn
		if s := d.talkSessionLocked(id); s != nil {
			cs.ClosedSessions++
			conn = s.conn
			delete(d.talk, id)
		}
		d.mu.Unlock()
		if conn != nil {
			_ = conn.Close()
		}
		return http.StatusOK, responseStatus(ns, r.RequestURI, 1, "ok")
	case "audiodata":
		// PUT is served by serveTalkAudio; the microphone stream (GET) is not simulated.
		return http.StatusForbidden, responseStatus(ns, r.RequestURI, 4, "notSupport")
	}
	return http.StatusNotFound, responseStatus(ns, r.RequestURI, 4, "invalidOperation")
}

func (d *Device) talkOpen(r *http.Request, ip, id string) (int, []byte) {
	ns := d.cfg.Namespace
	cfg := d.talkCfg()
	d.mu.Lock()
	defer d.mu.Unlock()
	cs := d.talkStatsLocked(ip)
	if d.talkSessionLocked(id) != nil {
		cs.RefusedOpens++
		switch cfg.Refusal {
		case TalkRefuseDeviceBusy:
			return http.StatusForbidden, responseStatus(ns, r.RequestURI, 2, "deviceBusy")
		case TalkRefusePlain403:
			return http.StatusForbidden, nil
		}
		return http.StatusForbidden, responseStatus(ns, r.RequestURI, 4, "invalidOperation")
	}
	d.tk.nextID++
	now := d.cfg.Now()
	s := &talkSession{id: strconv.Itoa(d.tk.nextID), channel: id, ip: ip, opened: now, last: now}
	d.talk[id] = s
	cs.Opens++
	return http.StatusOK, []byte(fmt.Sprintf(xmlHeader+`<TwoWayAudioSession version="2.0" xmlns="%s">
<sessionId>%s</sessionId>
</TwoWayAudioSession>
`, xmlEscape(ns), s.id))
}

// talkChannelXML is one TwoWayAudioChannel, or its capabilities.
func (d *Device) talkChannelXML(id string, enabled, caps bool) string {
	ns := xmlEscape(d.cfg.Namespace)
	codec := xmlEscape(d.cfg.TalkCodec)
	opt := func(s string) string {
		if caps {
			return ` opt="` + s + `"`
		}
		return ""
	}
	rng := func(lo, hi int) string {
		if caps {
			return fmt.Sprintf(` min="%d" max="%d"`, lo, hi)
		}
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "<TwoWayAudioChannel version=\"2.0\" xmlns=\"%s\">\n<id>%s</id>\n", ns, xmlEscape(id))
	fmt.Fprintf(&b, "<enabled%s>%t</enabled>\n", opt("true,false"), enabled)
	fmt.Fprintf(&b, "<audioCompressionType%s>%s</audioCompressionType>\n", opt("G.711ulaw,G.711alaw,G.726,AAC"), codec)
	if d.cfg.TalkCodec == "AAC" {
		fmt.Fprintf(&b, "<audioBitRate%s>32</audioBitRate>\n<audioSamplingRate%s>16</audioSamplingRate>\n",
			opt("16,32,64"), opt("16"))
	}
	fmt.Fprintf(&b, "<audioInputType%s>MicIn</audioInputType>\n", opt("MicIn,LineIn"))
	fmt.Fprintf(&b, "<speakerVolume%s>50</speakerVolume>\n", rng(0, 100))
	fmt.Fprintf(&b, "<noisereduce%s>false</noisereduce>\n", opt("true,false"))
	fmt.Fprintf(&b, "<microphoneVolume%s>50</microphoneVolume>\n", rng(0, 100))
	fmt.Fprintf(&b, "<audioOutputType%s>Speaker</audioOutputType>\n", opt("Speaker"))
	b.WriteString("</TwoWayAudioChannel>\n")
	return b.String()
}

func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&apos;").Replace(s)
}

// isTalkAudioPut tells whether r is PUT .../TwoWayAudio/channels/<id>/audioData.
func isTalkAudioPut(r *http.Request) (id string, ok bool) {
	const prefix = "/ISAPI/System/TwoWayAudio/channels/"
	p := strings.TrimSuffix(r.URL.Path, "/")
	if r.Method != http.MethodPut || !hasPrefixFold(p, prefix) {
		return "", false
	}
	id, op, _ := strings.Cut(p[len(prefix):], "/")
	return id, strings.EqualFold(op, "audioData")
}

// serveTalkAudio serves an authenticated PUT .../audioData: it takes over the connection and reads the raw
// audio after the headers until the client closes it, the session is closed, or the device hangs up
// after IdleHangup without audio. It reports false (nothing written) for any other request.
func (d *Device) serveTalkAudio(w http.ResponseWriter, r *http.Request, ip string) bool {
	id, ok := isTalkAudioPut(r)
	if !ok {
		return false
	}
	ns := d.cfg.Namespace
	refuse := func(status, code int, sub string) bool {
		d.mu.Lock()
		d.talkStatsLocked(ip).RefusedAudio++
		d.mu.Unlock()
		body := responseStatus(ns, r.RequestURI, code, sub)
		// The client may already be sending audio: answer and hang up (and never wait for a
		// chunked body's end, which net/http would do before answering).
		w.Header().Set("Connection", "close")
		w.Header().Set("Content-Type", contentTypeXML)
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(status)
		_, _ = w.Write(body)
		return true
	}
	switch {
	case d.cfg.TalkCodec == "none":
		return refuse(http.StatusForbidden, 4, "notSupport")
	case id != talkChannelID:
		return refuse(http.StatusNotFound, 4, "invalidOperation")
	case len(r.TransferEncoding) > 0:
		// Devices read raw bytes: a chunked body would play its chunk headers as audio.
		return refuse(http.StatusBadRequest, 6, "badParameters")
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		return refuse(http.StatusInternalServerError, 3, "deviceError")
	}

	d.mu.Lock()
	s := d.talkSessionLocked(id)
	var why string
	switch {
	case s == nil:
		why = "no session open"
	case s.ip == TalkLocalClient || s.conn != nil:
		why = "line in use"
	case r.URL.Query().Has("sessionId") && r.URL.Query().Get("sessionId") != s.id:
		why = "wrong sessionId"
	}
	d.mu.Unlock()
	if why != "" {
		return refuse(http.StatusForbidden, 4, "invalidOperation")
	}

	conn, brw, err := hj.Hijack()
	if err != nil {
		return true
	}
	d.mu.Lock()
	if d.isClosed() || d.down || d.talk[id] != s || s.conn != nil {
		d.mu.Unlock()
		_ = conn.Close()
		return true
	}
	s.conn = conn
	s.last = d.cfg.Now()
	if d.tk.conns == nil {
		d.tk.conns = map[net.Conn]struct{}{}
	}
	d.tk.conns[conn] = struct{}{}
	d.tk.wg.Add(1)
	d.talkStatsLocked(ip).AudioConnections++
	d.mu.Unlock()
	defer d.tk.wg.Done()

	cfg := d.talkCfg()
	if cfg.AnswerAudioData {
		body := responseStatus(ns, r.RequestURI, 1, "ok")
		_, _ = fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s",
			contentTypeXML, len(body), body)
	}
	d.readTalkAudio(conn, brw.Reader, s, ip, cfg)
	return true
}

// readTalkAudio is the device's speaker side of one audioData connection.
func (d *Device) readTalkAudio(conn net.Conn, rd *bufio.Reader, s *talkSession, ip string, cfg TalkConfig) {
	var chk audioChecker
	switch d.cfg.TalkCodec {
	case "AAC":
		chk.aac = true
	}
	buf := make([]byte, 4096)
	hungUp := false
	for {
		_ = conn.SetReadDeadline(time.Now().Add(cfg.IdleHangup))
		n, err := rd.Read(buf)
		if n > 0 {
			frames, dur, ferrs := chk.feed(buf[:n])
			d.mu.Lock()
			cs := d.talkStatsLocked(ip)
			cs.Bytes += n
			cs.FramingErrors += ferrs
			if d.talk[s.channel] == s {
				s.last = d.cfg.Now()
			}
			d.keepAudioLocked(frames, dur, cfg.KeepAudio)
			d.mu.Unlock()
		}
		if err != nil {
			var ne net.Error
			hungUp = errors.As(err, &ne) && ne.Timeout()
			break
		}
	}
	_ = conn.Close()
	d.mu.Lock()
	delete(d.tk.conns, conn)
	if d.talk[s.channel] == s && s.conn == conn {
		s.conn = nil
		s.last = d.cfg.Now()
		if hungUp {
			// The device ends the call by itself and says so through its speaker.
			delete(d.talk, s.channel)
			d.talkStatsLocked(s.ip).Prompts++
		}
	}
	d.mu.Unlock()
}

// keepAudioLocked appends received audio, keeping at most keep of it. Caller holds d.mu.
func (d *Device) keepAudioLocked(b []byte, dur, keep time.Duration) {
	if len(b) == 0 {
		return
	}
	d.tk.audio = append(d.tk.audio, audioChunk{b: b, dur: dur})
	d.tk.dur += dur
	for len(d.tk.audio) > 1 && d.tk.dur-d.tk.audio[0].dur >= keep {
		d.tk.dur -= d.tk.audio[0].dur
		d.tk.audio[0] = audioChunk{}
		d.tk.audio = d.tk.audio[1:]
	}
}

// audioChecker checks the framing of talk audio. G.711: any bytes. AAC: each frame a 4-byte big-endian
// length, then an ADTS frame of that length (sync word, 16 kHz, mono).
type audioChecker struct {
	aac     bool
	pending []byte
	desync  bool
}

const (
	aacMaxFrame   = 1<<13 - 1
	aacFrameDur   = 64 * time.Millisecond // 1024 samples at 16 kHz
	aacMaxPending = 64 << 10
)

// feed returns the audio to keep (G.711 bytes, or the good ADTS frames without their length prefix), its
// duration, and the framing errors found.
func (c *audioChecker) feed(p []byte) (audio []byte, dur time.Duration, errs int) {
	if !c.aac {
		return append([]byte(nil), p...), time.Duration(len(p)) * time.Second / 8000, 0
	}
	c.pending = append(c.pending, p...)
	for len(c.pending) >= 4 {
		n := int(binary.BigEndian.Uint32(c.pending))
		if n < 7 || n > aacMaxFrame {
			errs += c.lostSync()
			continue
		}
		if len(c.pending) < 4+7 {
			break
		}
		if !goodADTS(c.pending[4:], n) {
			errs += c.lostSync()
			continue
		}
		if len(c.pending) < 4+n {
			break
		}
		audio = append(audio, c.pending[4:4+n]...)
		dur += aacFrameDur
		c.pending = c.pending[4+n:]
		c.desync = false
	}
	if len(c.pending) > aacMaxPending {
		c.pending = nil
	}
	c.pending = append([]byte(nil), c.pending...) // do not pin the caller's buffer
	return audio, dur, errs
}

// lostSync drops one byte to search for the next frame; the loss counts as one error.
func (c *audioChecker) lostSync() int {
	c.pending = c.pending[1:]
	if c.desync {
		return 0
	}
	c.desync = true
	return 1
}

// goodADTS checks an ADTS header: sync word, MPEG layer 0, frame_length n, 16 kHz (index 8), mono.
func goodADTS(h []byte, n int) bool {
	if h[0] != 0xFF || h[1]&0xF6 != 0xF0 {
		return false
	}
	freq := (h[2] >> 2) & 0x0F
	ch := (h[2]&0x01)<<2 | h[3]>>6
	length := int(h[3]&0x03)<<11 | int(h[4])<<3 | int(h[5])>>5
	return freq == 8 && ch == 1 && length == n
}

// dropTalkLocked forgets every session (reboot, close) and returns the audioData connections to close.
// Caller holds d.mu.
func (d *Device) dropTalkLocked() []net.Conn {
	for id := range d.talk {
		delete(d.talk, id)
	}
	conns := make([]net.Conn, 0, len(d.tk.conns))
	for c := range d.tk.conns {
		conns = append(conns, c)
	}
	return conns
}

// closeTalk closes the hijacked audioData connections; with wait it also waits for their handlers.
func (d *Device) closeTalk(wait bool) {
	d.mu.Lock()
	conns := d.dropTalkLocked()
	d.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	if wait {
		d.tk.wg.Wait()
	}
}

// TalkStats returns a copy of the voice-talk counters by client IP.
func (d *Device) TalkStats() map[string]TalkClientStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]TalkClientStats, len(d.tk.stats))
	for ip, s := range d.tk.stats {
		out[ip] = *s
	}
	return out
}

// TalkClient returns the voice-talk counters of one client IP (zero if it never talked).
func (d *Device) TalkClient(ip string) TalkClientStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s := d.tk.stats[ip]; s != nil {
		return *s
	}
	return TalkClientStats{}
}

// TalkSession reports the open talk session, if any.
func (d *Device) TalkSession() (TalkSessionInfo, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.talkSessionLocked(talkChannelID)
	if s == nil {
		return TalkSessionInfo{}, false
	}
	return TalkSessionInfo{ID: s.id, Channel: s.channel, Client: s.ip, Streaming: s.conn != nil, Opened: s.opened}, true
}

// TalkAudio returns the talk audio the device received, newest TalkConfig.KeepAudio of it: G.711 bytes
// as sent, or for AAC the good ADTS frames back to back (without their length prefixes).
func (d *Device) TalkAudio() []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []byte
	for _, c := range d.tk.audio {
		out = append(out, c.b...)
	}
	return out
}

// ResetTalkAudio forgets the received talk audio.
func (d *Device) ResetTalkAudio() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.tk.audio, d.tk.dur = nil, 0
}

// SetLocalTalk starts (on) or ends the device's own call on talk channel 1, as a door station does when
// a visitor rings: while on, open is refused like for another client's session. A close from any client
// ends it, as on the device. Turning it on fails if a client's session is open.
func (d *Device) SetLocalTalk(on bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.isClosed() {
		return ErrClosed
	}
	s := d.talkSessionLocked(talkChannelID)
	if !on {
		if s != nil && s.ip == TalkLocalClient {
			delete(d.talk, talkChannelID)
		}
		return nil
	}
	if s != nil {
		if s.ip == TalkLocalClient {
			return nil
		}
		return fmt.Errorf("sim: local talk: a session of %s is open", s.ip)
	}
	d.tk.nextID++
	now := d.cfg.Now()
	d.talk[talkChannelID] = &talkSession{id: strconv.Itoa(d.tk.nextID), channel: talkChannelID, ip: TalkLocalClient, opened: now, last: now}
	d.talkStatsLocked(TalkLocalClient).Opens++
	return nil
}
