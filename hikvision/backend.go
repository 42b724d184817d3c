package hikvision

import (
	"context"

	"github.com/AlexxIT/go2rtc/pkg/core"
)

// Backend is how a Producer gets a device's real-play media: the seam
// between the producer's supervisor (Dial, GetTrack, Start's reconnect loop,
// stall timer, forwarding into go2rtc's receivers, status, Stop) and one
// protocol. RTSP over TCP with go2rtc's pkg/rtsp client (rtspBackend) is the
// first implementation; a backend need not use go2rtc's RTSP client at all.
//
// # Writing a backend
//
// A backend is made per producer by newBackend, from the parsed URL, the
// producer's Device and the ISAPI probe (use what you need of it: the RTSP
// backend uses only its RTSP port). It then opens sessions, one at a time,
// except after a stall: the supervisor keeps the silent session while it
// opens a new one beside it, and closes whichever of the two delivers last
// (never more than two).
//
//  1. Open(ctx) connects and logs in, and returns a Session that knows its
//     medias (Medias). Every request that carries credentials (a login, an
//     RTSP DESCRIBE or SETUP, a vendor-SDK login) must run inside
//     Device.Do: it holds logins the device would count against a lock, and
//     records every outcome with one classifier. Return the request's own
//     error from the Do callback; Do answers *HoldError without calling it
//     when the guard holds.
//  2. Setup(ctx, tracks) asks for the medias the consumers want. Each Track
//     names the producer's media and codec (from the Dial's session: on a
//     later session match them to your own medias by kind and codec name,
//     and fail with a *DialError whose cause is ErrStreamChanged when one is
//     gone) and the handler Out that takes that track's RTP packets. Setup
//     may be called several times before Play (go2rtc adds tracks one by one).
//  3. Play() delivers packets until the session ends and returns why: never
//     nil. Call Out from a single goroutine per track, in order, with a
//     *rtp.Packet you own until Out returns (Out rewrites its sequence
//     number and timestamp in place, allocates nothing, and does not keep
//     the packet). Play should not end a session for silence alone before
//     a minute or so: the supervisor decides about silence (StallTimeout),
//     and a link that resumes keeps its session. A backend that demuxes another format (an MPEG-PS byte
//     stream) packs its own RTP packets per track and can reuse one packet
//     value per track. Sequence numbers count per track from any start;
//     timestamps use the codec's clock rate (90 kHz video).
//  4. Close() ends the session (logout, TEARDOWN) and makes a running Play
//     return soon. It may be called before Play, during it (from another
//     goroutine) and more than once. After Close returns, no goroutine of the
//     session may run and Out must not be called again.
//
// Cancelling the ctx of Open or Setup (Stop does) must make them return
// promptly with ctx's error (or an error that matches context.Canceled).
//
// Errors end in typed values the supervisor sorts with errors.As/Is: wrap
// the cause in a *DialError (newDialError: Step "<protocol> <step>", Host
// the address you talk to) so that a refused login, a lock or a missing
// channel keeps its isapi/guard classification (permanent errors end Start;
// others are retried with backoff while the device answers Addr). A session
// that ends by itself (the device closed it, an SDK exception) is a
// *DialError from Play with Step "<protocol> play".
//
// While the device does not answer, the supervisor probes Addr with a plain
// TCP connect (no request, no credentials) before it asks for a new session.
type Backend interface {
	// Protocol names the transport in /api/streams ("rtsp+tcp").
	Protocol() string
	// Addr is the host:port sessions connect to: the supervisor's TCP probe
	// target, and the Host of errors.
	Addr() string
	// Open connects, logs in and prepares a session.
	Open(ctx context.Context) (Session, error)
}

// Session is one real-play session of a Backend. See Backend for the rules.
type Session interface {
	// Medias are the recvonly medias the session offers (before the
	// producer keeps only the codecs it can pass on).
	Medias() []*core.Media
	// SDP is the session description, if the protocol has one ("" if not).
	SDP() string
	// RemoteAddr is the peer address for /api/streams.
	RemoteAddr() string
	// Setup asks for tracks; their packets go to each Track's Out.
	Setup(ctx context.Context, tracks []Track) error
	// Play delivers packets until the session ends; never returns nil.
	Play() error
	// Close ends the session; safe before, during and after Play, and twice.
	Close() error
}

// Track is one media the consumers want from a session.
type Track struct {
	Media *core.Media // the producer's media (from the Dial's session)
	Codec *core.Codec // one of Media's codecs
	// Out takes the track's RTP packets (see Backend: one goroutine, in
	// order, packet owned by the backend, no allocation inside).
	Out core.HandlerFunc
}

// Transports a hikvision:// URL may ask for with transport=.
const (
	TransportRTSP = "rtsp"
	TransportSDK  = "sdk"  // the vendor's device network SDK (sdk.go)
	TransportAuto = "auto" // RTSP, or the SDK when the RTSP port is closed
)

// newBackend returns the producer's backend for the URL's transport
// (Config.Transport, from transport=). Only rtsp exists so far; ParseURL
// refuses the others with a ConfigError. A second backend (a vendor SDK:
// transport=sdk) is accepted in parse.go's "transport" case and chosen here;
// auto would choose between them from the probe.
func newBackend(cfg *Config, dev *Device, probe *deviceProbe) Backend {
	if b := newSDKBackendFor(cfg, dev, probe); b != nil {
		return b // transport=sdk, or auto with the RTSP port closed
	}
	switch cfg.Transport {
	default: // "", TransportRTSP
		port := cfg.RTSPPort
		if port == 0 {
			port = probe.RTSPPort
		}
		return newRTSPBackend(cfg, dev, port)
	}
}
