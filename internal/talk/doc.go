// Package talk is the voice-talk (two-way audio backchannel) engine: it opens
// the device's talk session lazily on the first audio, holds the audio that
// arrives while opening, closes the session itself after a short silence, never
// cuts off another client's talk, and sends nothing more after Stop but the one
// close that ends what it had open.
//
// The package does not log: it reports through State, Err, Stats and OnState.
//
// # What the devices do
//
// A device lists its talk channels (TwoWayAudioChannel: id, codec, and for AAC
// the bit rate and sampling rate; audioOutputType Speaker means it can play
// audio). A talk is an open request, one long audioData upload of raw audio
// with no length, and a close. Codecs seen: G.711 µ-law and A-law (raw 8 kHz
// bytes, sent in chunks of 160 to 1024 bytes), G.726, AAC, MP2L2, PCM,
// G.722.1, MP3; never Opus. AAC talk (seen at 16 kHz on one camera model) is
// a stream of ADTS frames, each preceded by its length (ADTS header included)
// as a 4-byte big-endian number, one frame per 1024 samples (64 ms at
// 16 kHz); the microphone direction uses the same framing. On that firmware an
// advertised G.711 still answered 403 to open until the device's codec was
// switched, and a wrong sample rate answered 503.
//
// The device hangs up by itself after a few seconds without audio (3–10 s
// reported) and plays a "call ended" prompt through its speaker each time, so
// the session closes itself first after a shorter silence and is not reopened
// needlessly. A session nobody closed (a crashed client, another app, a door
// station's own call) makes open fail (403, invalid operation or device busy)
// until close is sent or 60–90 s pass. Sending close before open would free
// it, but it also ends another client's live talk, so a refused open is
// reported as busy and retried within a budget instead. A device has one talk
// session at a time: a second client is refused while one talks.
package talk
