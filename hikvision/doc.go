// Package hikvision is the go2rtc source for Hikvision cameras, door stations
// and NVRs (scheme hikvision://).
//
//	hikvision://USER:PASS@HOST[:HTTP_PORT]/?channel=1&stream=main
//
// # Structure
//
// Module (module.go) is the whole source: its options (the hikvision:
// section of go2rtc.yaml), logger, devices, probe cache, login guards and the
// registry of sources behind the HTTP endpoints. go2rtc's glue makes one with
// New and registers its DialTracked and handlers; nothing else in the package
// holds state.
//
// Device (device.go) is one device as the module talks to it (scheme, host,
// port, user): its ISAPI client, its login guard (kept by the module beyond
// the device), and attachments that live as long as it (Device.Attachment:
// a vendor-SDK session, an event subscription). Producers, go2rtc stream
// sources and snapshot caches hold references; the last Release closes it.
// Every authenticated request goes through Device.Do.
//
// Producer (producer.go) is one channel/stream for go2rtc. Dial checks the
// URL (parse.go), probes the device over ISAPI (probe.go; cached per device
// and stream for ProbeTTL so that go2rtc's redials make no ISAPI request),
// and opens a session of its Backend (backend.go; RTSP over TCP with go2rtc's
// pkg/rtsp client in rtsp.go). Start's supervisor (supervisor.go) plays
// sessions one after another into the same go2rtc receivers (forward.go),
// reconnecting after drops; after a stall it tries a new session beside the
// silent one and keeps whichever delivers first. Voice talk (talk.go) is a sendonly
// audio media fed to the internal/talk engine. The registry (sources.go,
// snapshots.go, health.go, api.go, metrics.go) serves snapshots, health and
// metrics.
//
// # Device facts the package relies on
//
// Login. Every ISAPI path needs credentials. The client starts without them
// and answers the device's challenge (digest, MD5 or SHA-256; Basic on some
// old cameras, which sends the password base64-encoded: warned once per
// device over plain HTTP). GET /ISAPI/System/deviceInfo is the first request
// of a probe and, alone, its login: a wrong password costs one failed login,
// nothing more is asked. A device locks a client address after a few failed
// logins (ISAPI and RTSP count together); a request without credentials never
// counts, and its 401 answer (GET /ISAPI/Security/userCheck) tells the lock
// state and the tries left for free (the guard's peek). internal/guard has
// the rules built on this.
//
// Probe. After deviceInfo (model, firmware, deviceType; NVR or not), one
// concurrent round: /ISAPI/Streaming/channels/<id> (codec, size; 404 or
// statusCode 6 badParameters means no such channel), /ISAPI/Security/
// adminAccesses (the RTSP port, 554 if it does not say), /ISAPI/System/
// TwoWayAudio/channels (talk channel and codec), and on NVRs (or devices that
// do not say their type) /ISAPI/ContentMgmt/InputProxy/channels[/status]
// (IP channels and whether their camera is online). An NVR's IP channel may
// only be described under /ISAPI/ContentMgmt/StreamingProxy/channels/<id>.
// Stream ids are channel*100 + stream (101 main, 102 sub, 103 third).
//
// Real play. rtsp://HOST:PORT/Streaming/Channels/<id> over TCP, digest
// authentication on every request (DESCRIBE, SETUP, TEARDOWN). Devices limit
// concurrent RTSP sessions: a session is TEARDOWN'd when it ends so the
// device frees it at once (only while the credentials are known good: a
// TEARDOWN carries them). go2rtc reports an RTSP 401 only as the text "wrong
// user/pass" (credentials sent) or "user/pass not provided".
//
// Silence. A camera, or the link to it, can go silent for seconds without
// closing anything (a hung encoder, Wi-Fi or 4G dropping every packet) and
// then carry on over the same TCP connection; new connections meanwhile get
// no answer. A kept session then resumes at once, where a new one would wait
// for the device's answers (and on a real link for TCP's retransmissions).
//
// Snapshots. GET /ISAPI/Streaming/channels/<id>/picture (NVR IP channels:
// /ISAPI/ContentMgmt/StreamingProxy/channels/<id>/picture), a JPEG on
// success, XML on failure whatever the status.
//
// Talk. One talk channel per device: PUT .../TwoWayAudio/channels/<id>/open,
// then a long PUT .../audioData carrying raw audio (G.711 at 8 kHz; AAC as
// length-prefixed ADTS frames, 16 kHz unless the channel says otherwise),
// then PUT .../close. The device ends a silent session by itself after a few
// seconds; a session someone else holds makes open fail until it is closed.
package hikvision
