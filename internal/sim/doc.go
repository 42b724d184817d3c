// Package sim is a simulated Hikvision camera or NVR: ISAPI over HTTP with the device's digest login and
// illegal-login lock, an RTSP server (package simrtsp), and fault injection (reboot, stall, refused RTSP,
// locked IPs, malformed XML, password change) through Go methods and an optional JSON control API.
//
// It never imports the client's packages: it is written from answers recorded from real devices and
// from the vendor's documentation, so a mistake on either side shows up as a failing test.
//
// # What real devices do, and the simulator copies
//
// Login: every /ISAPI/ path wants a digest login; a request without credentials gets 401, a Digest
// challenge (MD5, qop auth, nonce "hex:unix-time", optionally a second SHA-256 challenge) and a userCheck
// body. Only wrong answers to a challenge count toward the login lock; after the configured number of
// failures the client IP is locked, and the 401 body says lockStatus "lock", unlockTime (seconds left)
// and retryLoginTime (tries left). An expired nonce gets 401 with stale=true.
//
// XML: answers use one of the namespaces devices use (hikvision.com ver20 or ver10, isapi.org, std-cgi.com,
// urn:psialliance-org). Errors are ResponseStatus documents (statusCode 1 OK, 2 busy, 3 device error,
// 4 invalid operation, 5 invalid XML format, 6 invalid XML content, 7 reboot required, with a
// subStatusCode word such as notSupport or badXmlContent); unsupported features answer 403.
//
// Streams: RTSP path /Streaming/Channels/<id> with id = channel × 100 + stream (01 main, 02 sub,
// 03 third). The ISAPI StreamingChannel list describes each (codec, size, frame rate × 100). A recorder
// lists its IP channels under ContentMgmt/InputProxy/channels and their state under .../status.
//
// Snapshots: GET /ISAPI/Streaming/channels/<id>/picture answers a raw JPEG, or XML on failure. A
// recorder's IP channels take pictures only through /ISAPI/ContentMgmt/StreamingProxy/channels/<id>/picture;
// the plain path answers 400 badXmlContent there. Real snapshot failures are intermittent: a missing or
// white image for a moment, then fine again.
//
// Voice talk: TwoWayAudio channels with open, one long audioData upload without a length, and close
// (accepted even when nothing is open). A device has one talk session at a time; it hangs up by itself
// after a few seconds without audio, and a session whose client vanished keeps the line busy until close
// or a minute or so passes. Some firmware answers the audioData request with 200 at once and then reads
// the audio; others send no answer while the talk lasts.
package sim
