// Package isapi is a client for Hikvision's ISAPI (HTTP/HTTPS) interface:
// digest authentication that respects the device's login lock, and typed calls
// for device, streaming and voice-talk resources.
//
// The package does not log; it returns typed errors (see errors.go) and never
// puts the password into an error.
//
// # What the devices do
//
// These are the device behaviours the client is built on, as seen in answers
// recorded from real cameras, recorders and door stations and in the vendor's
// manuals.
//
// Authentication. Every /ISAPI/ path needs a login. A request without
// credentials gets 401 with a Digest challenge (realm, qop "auth", a nonce that
// is plain hex or "hex:unix-time", an empty opaque, MD5; newer or OEM firmware
// may also or only offer SHA-256, sometimes in a second WWW-Authenticate
// header). A few old cameras accept Basic only. Devices do not answer a
// Basic-first request usefully, so the client always starts without
// credentials, reads the challenge and answers it, then keeps answering the
// cached challenge with a growing nonce count.
//
// Login lock. Only a request whose answer to a challenge is wrong counts as a
// failed login; a request without credentials never does. After a number of
// failures (manuals: 7 for admin, 5 for other users) the device locks the
// client's IP address for a while (30 minutes on many cameras, 60 s on some
// DVRs, 600 s on some newer models). The 401 body is a userCheck document
// that may say lockStatus ("lock" on real devices, "locked" in the
// documentation), unlockTime (seconds left) and retryLoginTime (tries left);
// not every firmware sends these fields. The client therefore lets one login
// at a time reach the device and reports AuthError with what the device said.
//
// Expired nonces. A device that no longer accepts a nonce answers 401 with
// stale=true in the new challenge, or a ResponseStatus invalidOperation
// (under 401 with a stale=false challenge, or under 200); the client then
// answers the new challenge once, and neither counts as a failed login. An
// invalidOperation under 403 or 404 is the device's answer about the
// resource (a talk channel in use, a channel it lacks), given after the
// login passed. A device that rebooted has forgotten its nonces; whether it
// then marks its answer to an old nonce stale=true or sends a plain 401 is
// not known for every firmware, nor whether it counts such a plain 401 as a
// failed login. The client tells a forgotten nonce from a refused password
// by what the device says in the userCheck body: a refused password leaves
// one try fewer than the most the device has shown (a successful login and a
// reboot both reset the count), a forgotten nonce that was not counted
// leaves the full count. Only then is the new challenge answered once; a
// plain 401 whose body lacks the counts, or shows one fewer, stays one failed
// login and is not retried, so a wrong password never costs two. A device
// that checks nonce counts refuses a count that arrives after a higher one
// the same way, uncounted: requests share the cached nonce and run on
// parallel connections, so their counts can reach the device out of order,
// which the client cannot prevent without sending one request at a time; it
// answers the new challenge once, as for a forgotten nonce. A nonce refused
// again after that one new challenge (it expired on its way) ends the
// request with ErrNonceRefused, never a refused password.
//
// Requests run concurrently, so the cached challenge can be dropped (another
// request met an expired or refused nonce) at any moment. A request sent
// outside the usual path (the alert stream, talk audio) that had to log in
// first therefore uses the challenge its own login answered, with a nonce
// count set aside by that login, rather than whatever is cached afterwards: a
// request without credentials would get a 401 that reads as a refused
// password. The alert stream answers a refused nonce's new challenge itself
// (no other request uses that nonce); talk audio cannot be sent again (the
// audio follows the headers), so a refused nonce ends the talk with
// ErrNonceRefused and ErrTalkEnded, and the next talk logs in afresh.
//
// A request that gets no answer at all (the device is down) drops the cached
// challenge, so the first request after a reboot the client noticed starts
// afresh. A challenge received before any request got no answer is not
// answered afterwards (a request may wait long for the login lock holding
// one): the device may have rebooted in between and forgotten its nonce, and
// firmware that counts a right answer to a forgotten nonce would count it.
// Such a request asks for a new challenge first.
//
// A device can also reboot while the client sends nothing, and then the
// client's first requests carry a nonce the device forgot. So a cached
// challenge that the device has not accepted an answer to for 10 s is
// answered by one request first; the others wait for its answer and then
// either use the same challenge or, if it was refused, log in afresh. This
// relies on a device reboot (the firmware starting again) taking longer
// than 10 s, as it does by far on cameras and recorders: a challenge
// accepted within that time is either still known or the device is down (no
// answer, nothing counted).
//
// Limits: the most tries the client has seen is the device's limit only if
// the client's first challenge came while no failures from the same address
// were pending; a device whose count does not go down when it counts a
// failure (for instance with its login lock disabled) makes a changed
// password cost two answers; and on firmware that counts the plain 401, a
// reboot the client did not notice costs that one counted failure (the next
// requests log in afresh).
//
// XML. Namespaces differ by product and firmware (hikvision.com ver20 and
// ver10, isapi.org, std-cgi.com on HiWatch, urn:psialliance-org on old
// recorders and door stations, or none): struct tags carry no namespace, so
// elements match by local name. Errors come as ResponseStatus (requestURL,
// statusCode, statusString, subStatusCode, sometimes errorCode/errorMsg) with
// statusCode 1 OK, 2 busy, 3 device error, 4 invalid operation, 5 invalid XML
// format, 6 invalid XML content, 7 reboot required. A ResponseStatus whose
// statusCode is not 1 is an error even under HTTP 200; features a device
// lacks often answer 403. A body naming notActivated means the device has
// never been given a password. Bodies are read up to a cap, since devices
// sometimes send garbage.
//
// Event triggers. GET /ISAPI/Event/triggers lists, for each event source of
// the device, an EventTrigger: an id ("VMD-1", "IO-1"), its eventType (VMD,
// linedetection, fielddetection, tamperdetection, videoloss, IO, and
// device-wide exceptions such as diskfull), the channel it watches
// (videoInputChannelID; recorders add dynVideoInputChannelID, the IP channel
// number, and may number videoInputChannelID from their first digital
// channel, e.g. 33) or the alarm input (inputIOPortID, dynInputIOPortID), and
// an EventTriggerNotificationList saying what the device does when it fires:
// one EventTriggerNotification per notificationMethod (center, record,
// email, beep, IO, FTP, HTTP, monitorAlarm, ...). Only "center" ("Notify
// Surveillance Center" in the web pages) sends the event to the alert
// stream: an event without it is never reported to an ISAPI client. The
// list may be empty or missing, as on many cameras for events nobody set
// up. The root is EventTriggerList; some firmware wraps it in
// EventNotification. Devices without the resource (door stations, some
// firmware) answer 404 or 403; EventTriggers reports that as
// ErrNotSupported.
//
// Voice talk. A talk channel is opened with PUT .../TwoWayAudio/channels/<id>/open
// (answer: a TwoWayAudioSession with a sessionId, or a bare ResponseStatus on
// some firmware), fed by one long PUT .../audioData request with no length that
// carries raw audio for as long as the talk lasts, and ended with PUT
// .../close, which devices accept even when nothing is open. Some firmware
// answers the audioData request with 200 at once and then keeps reading, so
// that answer does not end the talk. The device hangs up by itself after a few
// seconds (3–10 s reported) without audio, by closing or resetting the
// connection.
package isapi
