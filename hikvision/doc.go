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
// pkg/rtsp client in rtsp.go); a cold start opens RTSP beside the probe
// (cold.go). Start's supervisor (supervisor.go) plays
// sessions one after another into the same go2rtc receivers (forward.go),
// reconnecting after drops; after a stall it tries a new session beside the
// silent one and keeps whichever delivers video first. Voice talk (talk.go) is a sendonly
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
// statusCode 6 badParameters means no such channel; recorders and older
// cameras answer a stream they lack (x03, x04) with a bare 400, 403 or 500
// and no body, though a bare 403 is also how some firmware refuses a user
// without rights), /ISAPI/Security/
// adminAccesses (the RTSP port, 554 if it does not say), /ISAPI/System/
// TwoWayAudio/channels (talk channel and codec), and on NVRs (or devices that
// do not say their type) /ISAPI/ContentMgmt/InputProxy/channels[/status]
// (IP channels and whether their camera is online). An NVR's IP channel may
// only be described under /ISAPI/ContentMgmt/StreamingProxy/channels/<id>.
// Stream ids are channel*100 + stream (101 main, 102 sub, 103 third, 104 fourth).
//
// Real play. rtsp://HOST:PORT/Streaming/Channels/<id> over TCP, digest
// authentication on every request (DESCRIBE, SETUP, TEARDOWN). Devices limit
// concurrent RTSP sessions: a session is TEARDOWN'd when it ends so the
// device frees it at once (only while the credentials are known good: a
// TEARDOWN carries them). go2rtc reports an RTSP 401 only as the text "wrong
// user/pass" (credentials sent) or "user/pass not provided".
//
// Cold start. Over a slow link a start costs its sequential round trips.
// Nearly every device keeps RTSP on its default port, 554, and a DESCRIBE
// without credentials is answered with the RTSP challenge and counts as no
// login. So a cold start connects to rtsp_port, else the port the device
// named in an earlier probe, else 554, and fetches that
// challenge while the ISAPI login runs (cold.go); only after the login has
// succeeded does the DESCRIBE answer it, beside the probe's round. When
// adminAccesses then names another port, that session is closed and the
// stream opens at the named port. (Behind port forwarding where the host's
// 554 leads to another device, that device sees one DESCRIBE with these
// credentials; give rtsp_port there.) With go2rtc's UseChallenge (patch
// 0012) the DESCRIBE after the login is one request; a cold start then
// costs one round trip more than a plain RTSP start (the ISAPI login's
// answer), a warm one none.
//
// Silence. A camera, or the link to it, can go silent for seconds without
// closing anything (a hung encoder, Wi-Fi or 4G dropping every packet) and
// then carry on over the same TCP connection; new connections meanwhile get
// no answer. A kept session then resumes at once, where a new one would wait
// for the device's answers (and on a real link for TCP's retransmissions).
//
// Snapshots. GET /ISAPI/Streaming/channels/<id>/picture (a recorder's IP
// channels: /ISAPI/ContentMgmt/StreamingProxy/channels/<id>/picture; its
// analog inputs, which its IP-channel lists do not name, the plain path), a
// JPEG on success, XML on failure whatever the status. A recorder answers
// the wrong one of the two paths with statusCode 6 (400 or 403).
//
// Talk. One talk channel per device: PUT .../TwoWayAudio/channels/<id>/open,
// then a long PUT .../audioData carrying raw audio (G.711 at 8 kHz; AAC as
// length-prefixed ADTS frames, 16 kHz unless the channel says otherwise),
// then PUT .../close. The device ends a silent session by itself after a few
// seconds; a session someone else holds makes open fail until it is closed.
//
// Events. GET /ISAPI/Event/notification/alertStream, one per device (it
// carries every channel), answers a multipart body that never ends (read by
// internal/events). Door stations answer GET /ISAPI/VideoIntercom/callStatus
// (idle, ring, onCall); other devices refuse that path (404 or a
// notSupport ResponseStatus), which is how a door station is told apart.
// Many door stations show a ring only there, so it is read about once a
// second. Call control and door release are ISAPI PUTs (internal/intercom).
// Door stations also name themselves in deviceInfo (deviceType DoorStation).
// A talk session opened while a door station rings does not answer the call
// (it rings on, the visitor hears nothing), so talk answers a ringing call
// before it opens and hangs up the call it answered when it closes
// (talk.go, ringTalk); a call answered elsewhere holds the talk channel and
// the open is refused as busy.
//
// Event triggers. A device sends an event on the alert stream only when the
// event's trigger lists the notification method "center" ("Notify
// Surveillance Center" in its web pages); GET /ISAPI/Event/triggers lists
// every trigger with its channel fields and methods (internal/isapi). So the
// events attachment reads it once (through the login guard, after the
// identity) and knows, before any event, which (channel, type) the device
// will report: their MQTT entities are declared at once, and the events that
// will never come are logged and shown in the health view (triggers.go). The
// trigger's channel fields are mapped by the alert stream's own channel
// mapping, so a declared entity is the one a later event of that kind
// updates. Door stations and some firmware lack the resource (404/403): the
// entities then appear with their first event.
//
// # The device network SDK (transport=sdk)
//
// Facts the SDK backend (sdk.go, sdktalk.go) relies on; the binding's own
// (entry points, layouts, threads) are in internal/hcnetsdk.
//
//   - The SDK is one library per process: initialised once, cleaned up once,
//     and every login, real-play and talk is a handle of that one instance.
//     So the module shares one load between its streams (and between modules
//     of one process) and cleans it up when the last module closes.
//   - A login (NET_DVR_Login_V40) is the device's login: a refused one counts
//     toward the device's lock like a refused ISAPI or RTSP request. Its answer
//     carries the lock facts when the device supports locking: tries left
//     after a wrong password, time left when the user is locked (error 153).
//     Error 1 is a wrong password, 7 a device that cannot be reached, 10 a
//     device that did not answer in time.
//   - Real-play (NET_DVR_RealPlay_V40) names an SDK channel number, not the
//     ISAPI channel: a camera's channels start at the login's first analog
//     channel (1); a recorder's IP channels start at its first digital
//     channel (33 on most NVRs), after its analog ones. It delivers the
//     40-byte media header, then MPEG-PS, on the SDK's own threads.
//   - With the SDK's own reconnect off (the binding turns it off), a device
//     that goes away sends a lost-link exception (EXCEPTION_EXCHANGE,
//     EXCEPTION_PREVIEW) once and never resumes the real-play; the login
//     handle is then useless (error 47): the session must stop, log out and
//     log in again, which is the supervisor's reconnect. A login carries
//     any number of real-plays and talks, so the streams of one device
//     share one login; a call on a login the SDK no longer knows answers
//     error 47, which is when it is made again.
//   - Voice talk (NET_DVR_StartVoiceCom_MR_V30) takes audio already encoded
//     in the device's talk encoding (NET_DVR_GetCurrentAudioCompress: G.711
//     µ-law or A-law at 8 kHz on most devices). A channel someone else holds
//     answers error 31 (occupied); nothing the SDK offers frees it without
//     cutting that client off, so it is reported busy.
//   - The SDK's service port (8000 by default) is a plain TCP port: a connect
//     without a request tells whether the device is back, as for RTSP.
package hikvision
