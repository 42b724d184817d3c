package sim

import (
	"fmt"
	"strings"
	"time"
)

// Personalities understood by Config.Personality.
const (
	PersonalityCamera = "camera"
	PersonalityNVR    = "nvr"
	// PersonalityDVR is an analog recorder (personality.go): deviceType DVR, analog channels only, an empty
	// IP-channel list.
	PersonalityDVR = "dvr"
	// PersonalityHybrid is a hybrid recorder: analog channels first, then IP channels (personality.go).
	PersonalityHybrid = "hybrid"
)

// XML namespaces seen on real devices.
const (
	NamespaceHikvision   = "http://www.hikvision.com/ver20/XMLSchema"
	NamespaceHikvisionV1 = "http://www.hikvision.com/ver10/XMLSchema"
	NamespaceISAPI       = "http://www.isapi.org/ver20/XMLSchema"
	NamespaceStdCGI      = "http://www.std-cgi.com/ver20/XMLSchema"
	NamespacePSIA        = "urn:psialliance-org"
)

// HTTP authentication modes (the device web setting "digest" / "digest/basic", and Basic-only old cameras).
const (
	AuthDigest      = "digest"
	AuthBasic       = "basic"
	AuthDigestBasic = "digest/basic"
)

// Digest algorithms a device may offer.
const (
	AlgorithmMD5    = "MD5"
	AlgorithmSHA256 = "SHA-256"
)

// StaleInvalidOperation makes an expired nonce answer 401 with a ResponseStatus invalidOperation body and
// a fresh stale="FALSE" challenge, as some firmware does, instead of stale="TRUE".
const StaleInvalidOperation = "invalidOperation"

// Answers to a right digest answer on a nonce the device does not know (it rebooted since it issued it):
// Config.UnknownNonce. Which one a given firmware sends is not known, so the simulator offers each.
const (
	// UnknownNonceStale (default): 401 with stale="TRUE", like an expired nonce.
	UnknownNonceStale = ""
	// UnknownNoncePlain: a plain 401 (stale="FALSE") with the userCheck body, not counted as a failed login.
	UnknownNoncePlain = "plain"
	// UnknownNonceCounted: a plain 401 that also counts as a failed login toward the lock.
	UnknownNonceCounted = "counted"
)

// Config describes one simulated device. The zero value is a camera on random loopback ports.
type Config struct {
	Personality string // PersonalityCamera (default, 1 channel), PersonalityNVR (4 IP channels), PersonalityDVR or PersonalityHybrid
	DeviceType  string // deviceInfo deviceType; default from the personality (IPCamera, NVR, DVR)
	Model       string // default "DS-2CD2143G2-I" (camera), "DS-7608NI-K2" (nvr)
	Firmware    string // default "V5.7.18" (camera), "V4.61.025" (nvr)
	DeviceName  string // default "IP CAMERA" / "Network Video Recorder"
	Serial      string // serialNumber; default derived from Model

	HTTPAddr    string // ISAPI listener, default "127.0.0.1:0"
	RTSPAddr    string // RTSP listener, default "127.0.0.1:0"
	ControlAddr string // fault-injection JSON API listener; "" = none (Go methods still work)
	// AdvertisedRTSPPort is the RTSP port the device reports (adminAccesses); 0 = the one it listens on.
	// A device behind a port forward or a proxy reports its own setting, not the port clients reach.
	AdvertisedRTSPPort int
	Users              map[string]string // default {"admin": "hik12345"}

	// Camera channel 1 codecs (ignored when Channels is set or for the NVR).
	Video string // "H.264" (default), "H.265", "MJPEG"
	Audio string // "PCMU" (default), "PCMA", "AAC", "none"
	// MainKbps is the main stream video bitrate (kbit/s) of every channel whose Channel.MainKbps is 0;
	// 0 = the test media as is.
	MainKbps int
	// Channels overrides the personality's default channel layout.
	Channels []Channel
	// TalkCodec is the TwoWayAudio audioCompressionType: "G.711ulaw" (default), "G.711alaw", "AAC",
	// "G.726", ... or "none" for a device without two-way audio.
	TalkCodec string
	// Talk is the voice-talk behaviour (idle hang-up, stale session, refusal style): see TalkConfig.
	Talk TalkConfig
	// Events is the alert stream (GET /ISAPI/Event/notification/alertStream): see events.go.
	Events EventsConfig
	// Triggers is GET /ISAPI/Event/triggers (which events notify the alert stream): see triggers.go.
	Triggers TriggersConfig
	// Door is the door-station side (call status, call signal, door unlock): see doorstation.go.
	Door DoorConfig
	// TalkChannels is the number of TwoWayAudio channels (ids 1..n; capabilities voicetalkNums). Default 1.
	TalkChannels int
	// AbsentStream maps a stream number (1..4) to the bare HTTP status (no body) the device answers for
	// GET .../Streaming/channels/<ch><stream> when the channel lacks that stream, e.g. {3: 400, 4: 403} on
	// a DVR. Streams not listed, and all of them when nil, answer 400 with a ResponseStatus badParameters.
	AbsentStream map[int]int

	Namespace string // XML namespace, default NamespaceHikvision

	// Authentication.
	Realm            string        // digest realm, default "IP Camera(K2195)" (camera), "DS-7608NI-K2" (nvr)
	Auth             string        // AuthDigest (default), AuthBasic, AuthDigestBasic
	DigestAlgorithms []string      // offered, one WWW-Authenticate header each; default {"MD5"}
	PlainNonce       bool          // nonce is plain hex instead of "<hex>:<unix-ts>"
	NonceLifetime    time.Duration // default 10 min; an older nonce gets stale="TRUE"
	StaleResponse    string        // "" (stale="TRUE") or StaleInvalidOperation
	UnknownNonce     string        // UnknownNonceStale (default), UnknownNoncePlain or UnknownNonceCounted
	StrictNC         bool          // nc must be strictly greater than the last one seen for the nonce
	// (default: any nc not seen before and not more than 64 below the highest is accepted, like Apache)

	// Illegal login lock (per client IP).
	LockDisabled   bool          // never lock (illegalLoginLock enabled=false)
	MaxFailures    int           // wrong passwords before the IP is locked, default 5
	LockDuration   time.Duration // default 30 min
	OmitLockFields bool          // 401 body without lockStatus/unlockTime/retryLoginTime (older firmware)

	// RTSP is the factory for the RTSP side; nil = the built-in simrtsp server.
	RTSP RTSPFactory

	// Now is the clock (tests use a fake one); default time.Now.
	Now func() time.Time
}

// Channel is one video channel of the device. Streams are id*100+1 (main), id*100+2 (sub) and, when
// Streams says so, id*100+3 and id*100+4.
type Channel struct {
	ID        int    // 1-based channel number
	Name      string // channelName, default "Camera 01"
	Video     string // "H.264" (default), "H.265", "MJPEG"
	Audio     string // "PCMU", "PCMA", "AAC" or "none"; "" = "PCMU"
	Width     int    // main stream, default 640 (testdata/media)
	Height    int    // default 360
	SubWidth  int    // sub stream, default 320 (640 for H.265: same media as main)
	SubHeight int    // default 180 (360 for H.265)
	FrameRate int    // fps, default 25
	// MainKbps is the main stream's video bitrate in kbit/s: the built-in RTSP side pads every access unit
	// with a filler-data NAL unit to reach it (as a CBR encoder does); ISAPI reports it as the stream's
	// constantBitRate. 0 = the test media as is (about 160 kbit/s H.264, 100 kbit/s H.265).
	MainKbps  int
	IPAddress string // NVR: address of the IP camera behind the channel
	Offline   bool   // NVR: InputProxy status online=false; RTSP refuses its streams (404)
	// Analog marks an analog input of a DVR or hybrid recorder: not in the InputProxy lists, listed under
	// System/Video/inputs/channels, snapshots on the plain Streaming picture path only.
	Analog bool
	// Streams lists the stream numbers the channel has, main (1) first: nil = {1, 2}. Streams 3 and 4
	// serve the sub stream's media at its size; e.g. {1, 2, 4} is an NVR channel with a fourth stream but
	// no third.
	Streams []int
	// SubVideo is the codec of streams 2..4: "" = Video, or "MJPEG" (older cameras' sub stream).
	SubVideo string
}

// StreamID returns the ISAPI/RTSP stream id of this channel: 1 main, 2 sub.
func (c Channel) StreamID(stream int) int { return c.ID*100 + stream }

// MainPath is the RTSP path of the main stream, e.g. "/Streaming/Channels/101".
func (c Channel) MainPath() string { return fmt.Sprintf("/Streaming/Channels/%d", c.StreamID(1)) }

// SubPath is the RTSP path of the sub stream, e.g. "/Streaming/Channels/102".
func (c Channel) SubPath() string { return fmt.Sprintf("/Streaming/Channels/%d", c.StreamID(2)) }

// isapiAudio is the audioCompressionType for a Channel.Audio value.
func isapiAudio(codec string) string {
	switch strings.ToUpper(codec) {
	case "PCMU", "G.711ULAW", "G711U":
		return "G.711ulaw"
	case "PCMA", "G.711ALAW", "G711A":
		return "G.711alaw"
	case "AAC", "MPEG4-GENERIC":
		return "AAC"
	}
	return codec
}

// normalize fills defaults and validates; it returns a copy.
func (cfg Config) normalize() (Config, error) {
	if cfg.AdvertisedRTSPPort < 0 || cfg.AdvertisedRTSPPort > 65535 {
		return cfg, fmt.Errorf("sim: AdvertisedRTSPPort %d: want 1-65535, or 0 for the port listened on", cfg.AdvertisedRTSPPort)
	}
	if cfg.Personality == "" {
		cfg.Personality = PersonalityCamera
	}
	nvr := false
	switch cfg.Personality {
	case PersonalityCamera:
	case PersonalityNVR:
		nvr = true
	case PersonalityDoorStation:
		cfg.doorStationDefaults() // doorstation.go
	case PersonalityDVR, PersonalityHybrid:
		nvr = true
		cfg.recorderDefaults()
	default:
		return cfg, fmt.Errorf("sim: unknown personality %q (want %q, %q, %q, %q or %q)", cfg.Personality,
			PersonalityCamera, PersonalityNVR, PersonalityDVR, PersonalityHybrid, PersonalityDoorStation)
	}
	def := func(s *string, camera, recorder string) {
		if *s == "" {
			if nvr {
				*s = recorder
			} else {
				*s = camera
			}
		}
	}
	def(&cfg.Model, "DS-2CD2143G2-I", "DS-7608NI-K2")
	def(&cfg.Firmware, "V5.7.18", "V4.61.025")
	def(&cfg.DeviceName, "IP CAMERA", "Network Video Recorder")
	def(&cfg.Realm, "IP Camera(K2195)", cfg.Model)
	if cfg.Serial == "" {
		cfg.Serial = cfg.Model + "20240826CCWRK21950000"
	}
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = "127.0.0.1:0"
	}
	if cfg.RTSPAddr == "" {
		cfg.RTSPAddr = "127.0.0.1:0"
	}
	if cfg.Users == nil {
		cfg.Users = map[string]string{"admin": "hik12345"}
	}
	users := make(map[string]string, len(cfg.Users))
	for u, p := range cfg.Users {
		users[u] = p
	}
	cfg.Users = users
	if cfg.Namespace == "" {
		cfg.Namespace = NamespaceHikvision
	}
	if cfg.TalkCodec == "" {
		cfg.TalkCodec = "G.711ulaw"
	}
	if cfg.TalkChannels <= 0 {
		cfg.TalkChannels = 1
	}
	if r := cfg.Talk.AACSampleRate; r != 0 && !adtsRate(r) {
		return cfg, fmt.Errorf("sim: Talk.AACSampleRate %d is not a sampling rate ADTS can carry", r)
	}
	if cfg.DeviceType == "" {
		cfg.DeviceType = map[string]string{PersonalityCamera: "IPCamera", PersonalityNVR: "NVR",
			PersonalityDVR: "DVR", PersonalityHybrid: "DVR", PersonalityDoorStation: "DoorStation"}[cfg.Personality]
	}
	for st, code := range cfg.AbsentStream {
		if st < 1 || st > 4 || code < 400 || code > 599 {
			return cfg, fmt.Errorf("sim: AbsentStream %d: %d (want stream 1..4, HTTP status 400..599)", st, code)
		}
	}
	switch cfg.Auth {
	case "":
		cfg.Auth = AuthDigest
	case AuthDigest, AuthBasic, AuthDigestBasic:
	default:
		return cfg, fmt.Errorf("sim: unknown auth mode %q", cfg.Auth)
	}
	if len(cfg.DigestAlgorithms) == 0 {
		cfg.DigestAlgorithms = []string{AlgorithmMD5}
	}
	algs := make([]string, 0, len(cfg.DigestAlgorithms))
	for _, a := range cfg.DigestAlgorithms {
		switch strings.ToUpper(a) {
		case "MD5":
			algs = append(algs, AlgorithmMD5)
		case "SHA-256":
			algs = append(algs, AlgorithmSHA256)
		default:
			return cfg, fmt.Errorf("sim: unsupported digest algorithm %q", a)
		}
	}
	cfg.DigestAlgorithms = algs
	if cfg.NonceLifetime <= 0 {
		cfg.NonceLifetime = 10 * time.Minute
	}
	if cfg.StaleResponse != "" && cfg.StaleResponse != StaleInvalidOperation {
		return cfg, fmt.Errorf("sim: unknown stale response %q", cfg.StaleResponse)
	}
	switch cfg.UnknownNonce {
	case UnknownNonceStale, UnknownNoncePlain, UnknownNonceCounted:
	default:
		return cfg, fmt.Errorf("sim: unknown UnknownNonce answer %q (want %q, %q or %q)", cfg.UnknownNonce,
			UnknownNonceStale, UnknownNoncePlain, UnknownNonceCounted)
	}
	if cfg.MaxFailures <= 0 {
		cfg.MaxFailures = 5
	}
	if cfg.LockDuration <= 0 {
		cfg.LockDuration = 30 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}

	if len(cfg.Channels) == 0 {
		if nvr {
			for i := 1; i <= 4; i++ {
				ch := Channel{ID: i, Video: "H.264", Audio: "PCMA", IPAddress: fmt.Sprintf("192.168.254.%d", i+1)}
				if i == 2 {
					ch.Video, ch.Audio = "H.265", "AAC"
				}
				cfg.Channels = append(cfg.Channels, ch)
			}
		} else {
			cfg.Channels = []Channel{{ID: 1, Video: cfg.Video, Audio: cfg.Audio}}
		}
	} else {
		cfg.Channels = append([]Channel(nil), cfg.Channels...)
	}
	seen := map[int]bool{}
	for i := range cfg.Channels {
		ch := &cfg.Channels[i]
		if ch.ID <= 0 {
			ch.ID = i + 1
		}
		if ch.ID > 99 {
			return cfg, fmt.Errorf("sim: channel id %d out of range 1..99", ch.ID)
		}
		if seen[ch.ID] {
			return cfg, fmt.Errorf("sim: duplicate channel id %d", ch.ID)
		}
		seen[ch.ID] = true
		if ch.Name == "" {
			ch.Name = fmt.Sprintf("Camera %02d", ch.ID)
		}
		if ch.Video == "" {
			ch.Video = "H.264"
		}
		if ch.Streams == nil {
			ch.Streams = []int{1, 2}
		}
		ch.Streams = append([]int(nil), ch.Streams...)
		for j, st := range ch.Streams {
			if st < 1 || st > 4 || (j == 0) != (st == 1) || (j > 0 && st <= ch.Streams[j-1]) {
				return cfg, fmt.Errorf("sim: channel %d: streams %v (want ascending numbers 1..4, main first)", ch.ID, ch.Streams)
			}
		}
		switch strings.ToUpper(ch.SubVideo) {
		case "":
		case "MJPEG":
			ch.SubVideo = "MJPEG"
		default:
			return cfg, fmt.Errorf("sim: channel %d: unsupported sub stream codec %q (want MJPEG or none)", ch.ID, ch.SubVideo)
		}
		switch strings.ToUpper(ch.Video) {
		case "H.264", "H264":
			ch.Video = "H.264"
		case "H.265", "H265", "HEVC":
			ch.Video = "H.265"
		case "MJPEG":
			ch.Video = "MJPEG"
		default:
			return cfg, fmt.Errorf("sim: channel %d: unsupported video codec %q", ch.ID, ch.Video)
		}
		if ch.Audio == "" {
			ch.Audio = "PCMU"
		}
		switch strings.ToUpper(ch.Audio) {
		case "PCMU", "G.711ULAW":
			ch.Audio = "PCMU"
		case "PCMA", "G.711ALAW":
			ch.Audio = "PCMA"
		case "AAC":
			ch.Audio = "AAC"
		case "NONE":
			ch.Audio = "none"
		default:
			return cfg, fmt.Errorf("sim: channel %d: unsupported audio codec %q", ch.ID, ch.Audio)
		}
		// defaults match testdata/media (what the built-in RTSP side serves)
		if ch.Width == 0 || ch.Height == 0 {
			ch.Width, ch.Height = 640, 360
		}
		if ch.SubWidth == 0 || ch.SubHeight == 0 {
			ch.SubWidth, ch.SubHeight = 320, 180
			if ch.Video == "H.265" { // only one H.265 file: the sub stream is the main one
				ch.SubWidth, ch.SubHeight = 640, 360
			}
		}
		if ch.FrameRate <= 0 {
			ch.FrameRate = 25
		}
		if ch.MainKbps == 0 {
			ch.MainKbps = cfg.MainKbps
		}
		if ch.MainKbps < 0 {
			return cfg, fmt.Errorf("sim: channel %d: negative main stream bitrate %d kbit/s", ch.ID, ch.MainKbps)
		}
		if nvr && !ch.Analog && ch.IPAddress == "" {
			ch.IPAddress = fmt.Sprintf("192.168.254.%d", ch.ID+1)
		}
	}
	return cfg, nil
}
