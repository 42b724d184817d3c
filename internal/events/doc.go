// Package events reads the event stream of Hikvision cameras, NVRs and door stations and turns it into
// on/off states per channel and event type, fanned out to consumers (Server-Sent Events, MQTT).
//
// It is transport-agnostic: the caller opens the stream through the device's login guard (Opener), so
// this package never authenticates and can never lock a device out. It does not log; it reports through
// callbacks, counters and typed errors.
//
// # The alert stream
//
// GET /ISAPI/Event/notification/alertStream answers 200 and never ends. The body is multipart
// (multipart/mixed, on some firmware multipart/x-mixed-replace). Each part is one report:
//
//   - XML <EventNotificationAlert> with channelID, dynChannelID, inputIOPortID (alarm inputs), dateTime,
//     eventType, eventState (active / inactive) and eventDescription. Devices use different namespaces
//     (hikvision.com ver10 and ver20, isapi.org ver20) and version attributes, so elements are matched
//     by local name only. NVRs write protocolType where cameras write protocol.
//   - JSON objects with the same field names on door stations and newer firmware, sometimes with nested
//     objects: AccessControllerEvent {majorEventType, subEventType, doorNo} for locks and door contacts
//     (major 5: minor 21 lock released, 22 locked, 25 door open, 26 door closed), VoiceTalkEvent
//     {cmdType request / answer / hangUp / reject / cancel} for calls. channelID may be a number, a
//     string or empty. Door stations use the boundary "MIME_boundary".
//   - image/jpeg after a smart event (line crossing, intrusion) when the event says
//     detectionPictureTransType binary with detectionPicturesNumber N (JSON: picturesNumber). With
//     "url" the picture is only referenced and no part follows.
//
// What real devices get wrong, and what the reader does about it:
//
//   - The boundary in Content-Type and the one in the body differ on some recorders: the body's first
//     "--" line decides. A part whose headers come without a delimiter line, blank lines after a
//     delimiter, a stray duplicate delimiter line, and a delimiter glued to the last line of the XML are
//     all accepted.
//   - Content-Length is sometimes missing and not always right. A part with a length is returned as
//     soon as that many bytes arrived and form a complete document (the next delimiter may only come
//     with the next report, seconds later); one without is returned once its XML root element closes
//     or its JSON is complete. A length that runs into a delimiter, or stops short of a complete
//     document, is corrected from the delimiter.
//   - Text may hold a bare '&' (channel names such as "Garage & Yard"): it is escaped before decoding.
//   - eventType "duration" wraps the real type in DurationList/Duration/relationEvent; the nested type
//     is used and Raw reads "duration/<type>".
//   - NVRs leave channelID empty and carry the IP channel in dynChannelID, or number IP channels from
//     the first digital channel (33 on most NVRs: channelID 33 is IP channel 1). NVRChannels maps
//     both; the device object passes its own ChannelMapper if it knows better. Alarm inputs (IO) use
//     inputIOPortID as the channel; rings and calls are device-wide (channel 0), as in callStatus.
//   - Keep-alives are reports too: "videoloss" with eventState "inactive" (usually every 1 s to 10 s,
//     with channelID 1 on cameras and empty channel fields on NVRs), eventType "heartBeat", or an
//     eventDescription "Heartbeat". They are marked Alert.Heartbeat. A real video loss is reported
//     "active", so a "videoloss inactive" for a channel whose video loss is active also ends it.
//   - Many devices repeat "active" about once a second while the cause lasts and never send
//     "inactive"; others send "inactive" and nothing in between.
//
// # State
//
// State keys on (device, channel, type). The first "active" starts a period and is emitted; repeats
// only move its deadline; "inactive" or InactiveTimeout (default 10 s) after the last repeat ends it.
// Once a device has sent an explicit "inactive" for a type, the deadline for that type becomes
// ExplicitTimeout (default 2 min), a safety net only. After a lost stream (Disconnected) every active
// period of the device must be re-confirmed within InactiveTimeout or it ends: a quick reconnect
// therefore does not flap, and nothing stays "active" because its "inactive" was lost with the stream.
// Stopping the subscription (Subscriber.Close, State.Forget) ends the device's periods at once.
// Event.Time is when we received the report: device clocks are often unsynchronised or without zone.
//
// # Subscriber
//
// Subscriber keeps one stream per device open. Reconnects wait Backoff(attempt) (1 s doubling to 1 min,
// with jitter; restarted after a stream that delivered data). The watchdog learns the heartbeat
// cadence: once heartbeats were seen, a stream silent for 3× the longest interval (at least 5 s) is
// reopened. A stream that never showed a heartbeat is only reopened after IdleTimeout (10 min): some
// devices send nothing between events, and reconnecting them every few seconds would only load them. If
// the cadence learned on one stream does not show on the next, it is forgotten after one more
// reconnect. Close cancels the request, closes the body and waits for the goroutine.
//
// # Delivery
//
// Hub fans events out with a bounded queue per subscriber: Publish never blocks; a full queue drops its
// oldest event and counts it. ServeSSE writes a Hub subscription as text/event-stream.
package events
