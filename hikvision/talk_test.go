//lint:file-ignore SA1019 go2rtc v1.9.14 marks core.Producer Start/Stop, Receiver.WriteRTP and Sender.HandleRTP deprecated, yet they are the interface it calls; the tests drive the producer as go2rtc does.

package hikvision

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"net/url"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/AlexxIT/go2rtc/pkg/core"
	"github.com/pion/rtp"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/talk"
)

const (
	talkTestPass = "hik/12@45"
	ourIP        = "127.0.0.1"
	otherIP      = "127.0.0.2" // a second talker on the loopback
	simHangup    = 1500 * time.Millisecond
	ourIdle      = 400 * time.Millisecond
)

// shortTalk makes the talk engine's timings short for the tests (our idle
// close well before the simulator's hang-up).
func shortTalk(t *testing.T) {
	mod(t).talkHook = func(c *talk.Config) {
		c.IdleTimeout = ourIdle
		c.BusyRetry = 150 * time.Millisecond
		c.BusyTries = 50
		c.CloseTimeout = 2 * time.Second
	}
}

func startTalkSim(t *testing.T, cfg sim.Config) (*sim.Device, string) {
	t.Helper()
	mod(t) // the test's own module (shortTalk may have set it up)
	cfg.Users = map[string]string{"admin": talkTestPass}
	if cfg.Talk.IdleHangup == 0 {
		cfg.Talk.IdleHangup = simHangup
	}
	dev, err := sim.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dev.Close() })
	return dev, "hikvision://" + url.UserPassword("admin", talkTestPass).String() + "@" + dev.HTTPAddr() + "/?channel=1&stream=main"
}

func dialProducer(t *testing.T, src string) *Producer {
	t.Helper()
	prod, err := mod(t).Dial(src)
	if err != nil {
		t.Fatal(err)
	}
	return prod.(*Producer)
}

func sendonly(p *Producer) *core.Media {
	for _, m := range p.GetMedias() {
		if m.Direction == core.DirectionSendonly {
			return m
		}
	}
	return nil
}

// feeder is go2rtc's side of AddTrack: a consumer's receiver we write RTP into.
type feeder struct {
	recv *core.Receiver
	seq  uint16
	ts   uint32
}

func addTrack(t *testing.T, p *Producer) *feeder {
	t.Helper()
	m := sendonly(p)
	if m == nil {
		t.Fatal("no sendonly media")
	}
	codec := m.Codecs[0]
	recv := core.NewReceiver(m, codec)
	if err := p.AddTrack(m, codec, recv); err != nil {
		t.Fatal(err)
	}
	return &feeder{recv: recv}
}

func (f *feeder) write(payload []byte, samples uint32) {
	f.seq++
	f.recv.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: f.seq, Timestamp: f.ts},
		Payload: payload})
	f.ts += samples
}

// talkG711 sends audio in 20 ms packets, paced like a microphone.
func (f *feeder) talkG711(audio []byte) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for i := 0; i < len(audio); i += 160 {
		f.write(audio[i:min(i+160, len(audio))], 160)
		<-tick.C
	}
}

func g711Tone(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(0x80 + 40*((i/9)%2)) // a square wave, byte pattern easy to compare
	}
	return b
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond) // polling with a deadline, not synchronisation
	}
}

// observe lets time pass for a window in which something must NOT happen.
func observe(d time.Duration) { <-time.After(d) }

func talkRequests(dev *sim.Device) int {
	n := 0
	for _, c := range dev.Stats().Clients {
		for path, v := range c.Requests {
			if strings.HasPrefix(path, "/ISAPI/System/TwoWayAudio/channels/") {
				n += v
			}
		}
	}
	return n
}

func TestTalkG711EndToEnd(t *testing.T) {
	shortTalk(t)
	dev, src := startTalkSim(t, sim.Config{})
	base := runtime.NumGoroutine()

	p := dialProducer(t, src)
	m := sendonly(p)
	if m == nil || m.Kind != core.KindAudio || len(m.Codecs) != 1 || m.Codecs[0].Name != core.CodecPCMU || m.Codecs[0].ClockRate != 8000 {
		t.Fatalf("talk media: %v (medias %v)", m, p.GetMedias())
	}
	cold := totalRequests(dev)
	coldDialRequests(t, dev, false) // the talk channels read in the probe's one concurrent round
	// warm Dial: no request at all, talk media still there
	p2 := dialProducer(t, src)
	if totalRequests(dev) != cold || sendonly(p2) == nil {
		t.Fatalf("warm Dial made %d requests, talk media %v", totalRequests(dev)-cold, sendonly(p2))
	}
	_ = p2.Stop()

	f := addTrack(t, p)
	if n := talkRequests(dev); n != 0 {
		t.Fatalf("%d talk requests before any audio", n)
	}
	if ts := p.Talk(); ts == nil || ts.State != "idle" || ts.Channel != "1" || ts.Codec != "G.711ulaw" {
		t.Fatalf("talk status before audio: %+v", ts)
	}

	// burst 1: one second of audio, every byte at the device
	audio := g711Tone(8000)
	f.talkG711(audio)
	waitFor(t, "8000 bytes at the device", 5*time.Second, func() bool { return dev.TalkClient(ourIP).Bytes == 8000 })
	if got := dev.TalkAudio(); !bytes.Equal(got, audio) {
		t.Fatalf("the device got %d bytes, not the audio sent", len(got))
	}
	// silence: we close before the device hangs up, so no "call ended" prompt
	waitFor(t, "our idle close", 5*time.Second, func() bool { _, open := dev.TalkSession(); return !open })
	observe(simHangup + 300*time.Millisecond)
	if cs := dev.TalkClient(ourIP); cs.Opens != 1 || cs.Prompts != 0 || cs.ClosedSessions != 1 {
		t.Fatalf("after burst 1: %+v", cs)
	}

	// burst 2 reopens
	dev.ResetTalkAudio()
	f.talkG711(audio[:1600])
	waitFor(t, "burst 2 at the device", 5*time.Second, func() bool { return dev.TalkClient(ourIP).Bytes == 9600 })
	ts := p.Talk()
	if ts.State != "open" || ts.Opens != 2 || ts.Bytes != 9600 {
		t.Fatalf("talk status in burst 2: %+v", ts)
	}
	js, err := json.Marshal(ts)
	if err != nil || !strings.Contains(string(js), `"state":"open"`) || strings.Contains(string(js), talkTestPass) {
		t.Fatalf("talk JSON %s %v", js, err)
	}
	// /api/streams shows it too
	pj, err := json.Marshal(p)
	if err != nil || !strings.Contains(string(pj), `"talk":{"channel":"1","codec":"G.711ulaw","state":"open"`) {
		t.Fatalf("producer JSON lacks the open talk: %s %v", pj, err)
	}
	noPassword(t, "producer JSON", string(pj))

	// Stop mid-talk: one close, then nothing, whatever audio still comes
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, open := dev.TalkSession(); open {
		t.Fatal("session left open on the device after Stop")
	}
	after := dev.TalkClient(ourIP)
	reqs := talkRequests(dev)
	for i := 0; i < 20; i++ {
		f.write(audio[:160], 160)
	}
	observe(ourIdle + 200*time.Millisecond)
	if cs := dev.TalkClient(ourIP); cs != after || talkRequests(dev) != reqs {
		t.Fatalf("talk traffic after Stop: before %+v, after %+v", after, cs)
	}
	if after.Opens != 2 || after.Closes != 2 || after.Prompts != 0 {
		t.Fatalf("totals: %+v", after)
	}
	if ts := p.Talk(); ts.State != "stopped" {
		t.Fatalf("talk state after Stop: %+v", ts)
	}
	f.recv.Close()
	waitGoroutines(t, base)
}

func TestTalkALaw(t *testing.T) {
	t.Parallel()
	shortTalk(t)
	dev, src := startTalkSim(t, sim.Config{TalkCodec: "G.711alaw"})
	p := dialProducer(t, src)
	defer p.Stop()
	if m := sendonly(p); m == nil || m.Codecs[0].Name != core.CodecPCMA || m.Codecs[0].ClockRate != 8000 {
		t.Fatalf("talk media %v", m)
	}
	f := addTrack(t, p)
	audio := g711Tone(4000)
	f.talkG711(audio)
	waitFor(t, "A-law at the device", 5*time.Second, func() bool { return bytes.Equal(dev.TalkAudio(), audio) })
}

// splitADTS splits an ADTS stream into its frames.
func splitADTS(t *testing.T, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 7 || b[0] != 0xFF || b[1]&0xF0 != 0xF0 {
			t.Fatalf("fixture: lost ADTS sync with %d bytes left", len(b))
		}
		n := int(b[3]&0x03)<<11 | int(b[4])<<3 | int(b[5])>>5
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

func TestTalkAAC(t *testing.T) {
	t.Parallel()
	shortTalk(t)
	adts, err := os.ReadFile("../internal/talk/testdata/tone16k.aac") // ffmpeg: 440 Hz, AAC-LC 16 kHz mono
	if err != nil {
		t.Fatal(err)
	}
	dev, src := startTalkSim(t, sim.Config{TalkCodec: "AAC"})
	p := dialProducer(t, src)
	defer p.Stop()
	m := sendonly(p)
	if m == nil || m.Codecs[0].Name != core.CodecAAC || m.Codecs[0].ClockRate != 16000 || m.Codecs[0].Channels != 1 ||
		!strings.Contains(m.Codecs[0].FmtpLine, "config=1408") {
		t.Fatalf("talk media %v", m)
	}
	f := addTrack(t, p)
	// RTP as go2rtc's AAC packetizer sends it (RFC 3640 AAC-hbr): one AU per
	// packet, 16-bit AU-headers-length, a 13+3-bit AU header, the raw AU.
	tick := time.NewTicker(64 * time.Millisecond)
	defer tick.Stop()
	for _, fr := range splitADTS(t, adts) {
		au := fr[7:] // protection_absent=1 in ffmpeg's ADTS: 7-byte header
		pl := binary.BigEndian.AppendUint16(nil, 16)
		pl = binary.BigEndian.AppendUint16(pl, uint16(len(au))<<3)
		f.write(append(pl, au...), 1024)
		<-tick.C
	}
	waitFor(t, "the AAC tone at the device", 5*time.Second, func() bool { return bytes.Equal(dev.TalkAudio(), adts) })
	if cs := dev.TalkClient(ourIP); cs.FramingErrors != 0 || cs.Opens != 1 {
		t.Fatalf("%+v", cs)
	}
}

func TestTalkBackchannelOff(t *testing.T) {
	t.Parallel()
	dev, src := startTalkSim(t, sim.Config{})
	p := dialProducer(t, src+"#backchannel=0")
	defer p.Stop()
	if m := sendonly(p); m != nil || p.Talk() != nil {
		t.Fatalf("talk media with #backchannel=0: %v", m)
	}
	if js, err := json.Marshal(p); err != nil || strings.Contains(string(js), `"talk"`) {
		t.Fatalf("producer JSON shows talk with #backchannel=0: %s %v", js, err)
	}
	if n := dev.Client(ourIP).Requests["/ISAPI/System/TwoWayAudio/channels"]; n != 0 {
		t.Fatalf("%d talk channel requests with #backchannel=0", n)
	}
	if err := p.AddTrack(p.GetMedias()[0], p.GetMedias()[0].Codecs[0], core.NewReceiver(nil, p.GetMedias()[0].Codecs[0])); err == nil {
		t.Fatal("AddTrack accepted a recvonly media")
	}
}

func TestTalkUnsupportedCodec(t *testing.T) {
	t.Parallel()
	_, src := startTalkSim(t, sim.Config{TalkCodec: "G.726"})
	p := dialProducer(t, src)
	defer p.Stop()
	if m := sendonly(p); m != nil {
		t.Fatalf("talk media for G.726: %v", m)
	}
	if len(p.GetMedias()) == 0 {
		t.Fatal("no medias")
	}
}
