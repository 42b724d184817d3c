// Package mqtt delivers Hikvision events and device health to an MQTT broker,
// in a topic layout meant for Home Assistant and Frigate automations, with
// Home Assistant MQTT discovery.
//
// # Topics
//
// PREFIX is Config.TopicPrefix (default "hikvision"). DEVICE is the device
// address (host:port) made into one topic level: lower case, every byte that
// is not a letter, digit, '-' or '_' replaced by '_' ("192.168.1.10:80" →
// "192_168_1_10_80"). CH is the channel number (0 for the device itself) and
// TYPE the event type as the device names it, lower case (motion,
// linedetection, fielddetection, regionentrance, regionexiting, videoloss,
// tamper, io, ring, call, ...).
//
//	PREFIX/bridge/availability            online | offline   retained; offline is also the connection's last will
//	PREFIX/DEVICE/availability            online | offline   retained; from the device's health
//	PREFIX/DEVICE/CH/TYPE/state           ON | OFF           retained
//	PREFIX/DEVICE/CH/TYPE/attributes      JSON               retained: device, stream, channel, type, active, since, picture
//	PREFIX/DEVICE/CH/TYPE/picture         JPEG bytes         retained; the latest picture sent with an event of that type
//	PREFIX/DEVICE/CH/ring/event           JSON               not retained: {"event_type":"ring", ...} once per ring
//	PREFIX/events                         JSON               not retained: every change of every entity
//
// Retained messages are retained only with Config.Retain on (the default).
// The JSON of PREFIX/events and of a ring event holds device (host:port),
// device_id (the DEVICE level), stream, channel, type, active, time (RFC 3339,
// UTC) and picture (whether the event carried one).
//
// # Home Assistant discovery
//
// Home Assistant reads one retained config per entity under
// DISCOVERY/COMPONENT/NODE/OBJECT/config, where DISCOVERY is its discovery
// prefix (default "homeassistant"), NODE is "PREFIX_DEVICE" and OBJECT is
// "chCH_TYPE"; both may only hold [a-zA-Z0-9_-], hence the topic ids above.
// Every (device, channel, type) seen in an event or declared gets a
// binary_sensor reading the state topic with payload_on "ON" and payload_off
// "OFF", and the attributes topic as json_attributes_topic. Its device_class
// follows the event: motion for motion and the smart detections (line
// crossing, intrusion, region entrance/exit), occupancy for faces, tamper for
// tampering and scene change, problem for video loss and disk errors, sound
// for audio exceptions, none for alarm inputs and door-station call states.
// The type "ring" also gets an event entity (device_class doorbell,
// event_types [ring]) on the ring event topic. Home Assistant ignores an event
// message that comes retained (it would replay on every restart), which is
// why ring events are never retained. An entity whose events once carried a
// picture also gets an image entity (image_topic: the picture topic,
// content_type image/jpeg; Home Assistant takes the payload as the raw image).
//
// Every config carries unique_id (NODE_OBJECT, with "_event" for the event
// entity and "_picture" for the image entity), object_id and its successor
// default_entity_id (component + "." + PREFIX_DEVICE_OBJECT and the same
// suffix; newer Home Assistant releases read only the latter), a device block (identifiers: NODE and, once the device's health
// gave it, "hikvision_" + serial number; name, model, serial_number,
// sw_version, manufacturer Hikvision), an origin block, and an availability
// list of the bridge's and the device's availability topics with
// availability_mode "all": an entity is available only while this bridge is
// connected and the device is online. Home Assistant merges devices whose
// identifiers overlap, so a device keeps its entities when its serial number
// arrives after the first event.
//
// Home Assistant announces its own start with "online" on DISCOVERY/status;
// on that message every config and state is published again, so set-ups
// without retained messages still recover.
//
// # Keeping retained state true
//
// On every connection (the first, and after the broker restarted or the
// network failed) the publisher first reads the retained state and
// availability topics under PREFIX and turns every one it does not know ON or
// online (left by an earlier run, a device since removed) OFF and offline;
// the end of the retained messages is found by a marker message it publishes
// to itself after subscribing, which the broker delivers after them. Then it
// publishes every discovery config, availability, state, attributes and held
// picture it knows, and only then the bridge's "online". A device reported
// offline turns its active states OFF; after it comes back, states stay OFF
// until it reports events again. Only one publisher may use a topic prefix on
// a broker.
//
// # Never blocking the video path
//
// Publish, UpdateDevice and Declare only update the state the publisher holds
// and wake its goroutine; they never wait for the network. States are
// coalesced: while the broker is away only the latest value of each topic is
// kept (an ON and OFF while disconnected arrive as the OFF; the events topic
// keeps each change, within its bound). While connected no ON is lost: an
// event that went active and inactive again before the sender took it is
// sent as ON then OFF. Event messages (ring
// events, PREFIX/events) wait in a queue of Config.Queue messages; when it is
// full the oldest are dropped and counted. Pictures are held within
// Config.PictureMemory bytes. The number of entities is bounded.
//
// One goroutine owns the connection. Each attempt (dial, TLS or WebSocket,
// MQTT CONNECT) is bounded by Config.ConnectTimeout and aborted at once by
// Close (TCP and TLS; a WebSocket attempt ends within the timeout); failed
// attempts back off from 0.5 s doubling to 60 s with jitter. Publishes are
// pipelined, up to 256 awaiting the broker's acknowledgement, so a delayed
// acknowledgement (mosquitto does not disable Nagle's algorithm on its client
// sockets by default) never holds back the next event. A publish not
// acknowledged within 10 s ends the connection and starts a new one. Close
// publishes the bridge's offline, disconnects and waits for the goroutine, at
// most CloseTimeout.
//
// Passwords never appear in errors, logs or Stats.
package mqtt
