// Package intercom drives the call and door side of Hikvision door stations over ISAPI. Requests go
// through a caller-supplied Doer (the device's login guard); this package never authenticates.
//
// # Requests
//
//   - Call status: GET /ISAPI/VideoIntercom/callStatus?format=json answers
//     {"CallStatus":{"status":"idle"}} with status idle, ring (a visitor pressed the call button) or
//     onCall. Many door stations report a ring only here, not on the alert stream, so it is polled
//     (about once a second is what other integrations do).
//   - Call control: PUT /ISAPI/VideoIntercom/callSignal?format=json with
//     {"CallSignal":{"cmdType":"answer"}}; cmdType answer, hangUp, reject or cancel. Success is a JSON
//     status {"statusCode":1,"statusString":"OK","subStatusCode":"ok"} (statusCode may come as a
//     string, some firmware adds errorCode / errorMsg).
//   - Door: PUT /ISAPI/AccessControl/RemoteControl/door/<N> with the XML body
//     <RemoteControlDoor><cmd>open</cmd></RemoteControlDoor> (N from 1; cmd also close, alwaysOpen,
//     alwaysClose, resume on models that list them in .../door/capabilities). The answer is an XML
//     ResponseStatus.
//
// # Talk while the station rings
//
// Opening a voice-talk session (TwoWayAudio open) does not answer a ringing call. Users of other
// clients report that the station keeps ringing and that two-way audio does not work until the call is
// answered or ended: koush/scrypted issue 533 (DS-KV6113: the station rings on during a HomeKit talk and
// its status has to be put to onCall), issue 1028 (a video door phone: no two-way audio while it rings),
// issue 2021 (KD8003 with a KH6320 indoor station: after a ring the talk audio goes to the indoor
// station). Scrypted's Hikvision doorbell plugin therefore sends callSignal "answer" and then "hangUp"
// to stop the ringing (issue 1736 quotes it; on a KD8003 with port 80 closed this had to be sent to the
// indoor station instead).
// TalkGate does the same: TalkStarting answers a ringing call, TalkEnded hangs up the call it
// answered. Caveats from the same reports: on some models "answer" only works after the station was
// once registered with Hik-Connect (pergolafabio/Hikvision-Addons issue 149), and where the station
// is paired with an indoor station the call may have to be answered there. When the indoor station
// answers, the call holds the station's single talk channel and a TwoWayAudio open is refused until
// the call ends.
package intercom
