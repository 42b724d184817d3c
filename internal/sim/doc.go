// Package sim is a simulated Hikvision camera or NVR: ISAPI over HTTP with the device's digest login and
// illegal-login lock, an RTSP server (package simrtsp), and fault injection (reboot, freeze, stall, refused RTSP,
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
// the plain path answers 400 (statusCode 6) badXmlContent there. Real snapshot failures are intermittent:
// a missing or white image for a moment, then fine again.
//
// Voice talk: TwoWayAudio channels with open, one long audioData upload without a length, and close
// (accepted even when nothing is open). A device has one talk session at a time; it hangs up by itself
// after a few seconds without audio, and a session whose client vanished keeps the line busy until close
// or a minute or so passes. Some firmware answers the audioData request with 200 at once and then reads
// the audio; others send no answer while the talk lasts. AAC talk is a stream of ADTS frames, each after
// its length as 4 big-endian bytes, at the sampling rate the channel lists (16 kHz on most devices, 32 kHz
// on one); recorders may list two talk channels.
//
// # Device kinds
//
// Besides the camera and the NVR, the simulator has the device kinds below (presets.go), from answers
// recorded on real devices:
//   - An analog DVR says deviceType DVR. Its InputProxy channel list is empty (the list element is there,
//     sized for the IP channels it could take, with no entries); its cameras are analog inputs listed
//     under System/Video/inputs/channels, and System/capabilities counts them (videoInputPortNums) beside
//     the IP channels it accepts (inputProxyNums). Such DVRs answer stream x03 with a bare 400 and x04
//     with a bare 403 (no body).
//   - A hybrid recorder numbers its analog inputs first; its IP channels follow (a 4-input recorder's
//     first IP camera is channel 5).
//   - Snapshots of analog channels work on the plain /ISAPI/Streaming/channels/<id>/picture path; the
//     StreamingProxy path is for IP channels. On a recorder's IP channel the plain path answers 400 with
//     statusCode 6 badXmlContent; on an analog channel the simulator answers the StreamingProxy path with
//     403 and statusCode 6 (the client must fall back to the plain path and remember it).
//   - NVRs list two talk channels (voicetalkNums 2 in System/capabilities). Their absent streams (x03,
//     and x04 on most) answer a bare 403; some NVRs do have an x04 stream (a small H.264 one).
//   - Current cameras have four streams (101..104). An older camera model has an MJPEG sub stream (102)
//     and answers 103 and 104 with a bare HTTP 500.
package sim
