// Package guard keeps one login guard per device (host, port and user), so
// that every producer, snapshot and talk session of a device shares one
// budget of failed logins and respects the device's login lock.
//
// The guard is pure logic: it never touches the network itself and never
// logs. Every authenticated request is run through Guard.Do, which decides
// whether the request may be sent, runs it, and records its outcome with one
// classifier (Outcome). There is no other way to spend a login.
//
// # What the device does
//
// Hikvision devices count failed logins per client IP address: after a few
// wrong passwords in a row (typically 5 for operators, 7 for admin) the
// device locks that address for a while (30 min on most cameras; 60 s to
// 10 min on some recorders). A good login resets the count. A request
// without credentials never counts; a request whose digest answer is wrong
// does, over ISAPI and RTSP alike.
//
// A refused ISAPI request (401) carries a userCheck body that says whether
// the client is locked, the seconds until it unlocks (unlockTime) and the
// tries left before the lock (retryLoginTime). The device sends the same
// body with the challenge to a request without credentials, so the count can
// be read at no cost. Not every firmware sends these fields.
//
// # Rules (defaults in Config)
//
//   - Budget: at most MaxFailedLogins (2) failed logins per device in any
//     Window (30 min); then Do holds until the oldest failure leaves the
//     window. Only wrong-credentials and locked answers count.
//   - Tries left: after a failed login the device may say how many tries are
//     left before it locks. The guard tries again only if more than
//     ReserveTries (1) are left, so at least ReserveTries tries always stay
//     unused for a person at the device; otherwise it holds for Window after
//     that failure.
//   - Other processes: the device's count is shared by every client on the
//     same address (other go2rtc processes with this module, other
//     integrations), and a count our own failure returned is stale as soon as
//     another client fails. So once the device has refused the credentials
//     (and until they work again), Do reads the current count without
//     credentials (the Peek the caller passes) before each login, at most
//     once per PeekHold, and logs in only if more than
//     ReserveTries+PeerReserve tries are left. Several processes deciding on
//     the same reading at the same moment each spend one try, so up to
//     PeerReserve+1 of them together still leave ReserveTries unused; a
//     process that sees too few tries holds for PeekHold (1 min) and reads
//     again. Other clients that keep failing drive the count down: then our
//     processes stop trying until the count is restored (a good login by
//     anyone, or the lock running out).
//   - Lock: when the device says it locked this client (after a login, or in
//     a peek), Do holds until unlockTime has passed plus LockMargin (if the
//     device did not say when, for LockHold, 30 min).
//   - In flight: until a login has succeeded, at most as many logins as the
//     budget has left may be in flight at once, so concurrent sessions cannot
//     overrun it together; Do waits for the outcome of the logins in flight.
//     After a success (credentials known good) there is no such limit.
//   - A changed password (a different secret in Registry.Get) resets all of
//     it. A guard outlives the sessions that use it: a stream deleted and
//     added again keeps its budget.
//
// # Outcomes
//
// Outcome sorts an attempt's error: a success, or a failure after the device
// accepted the credentials (it answered past the login: ResponseStatus
// errors, a missing channel, unreadable bodies) both prove the credentials
// and clear the history; wrong credentials and lock answers count; a
// cancelled request is forgotten; anything else (unreachable, timeout, not
// activated) is recorded without counting. go2rtc's RTSP client reports a 401
// only as text: "wrong user/pass" after credentials were sent (a failed
// login), "user/pass not provided" when the URL had none (not a login).
package guard
