//lint:file-ignore SA1019 go2rtc v1.9.14 marks core.Producer Start/Stop and Receiver.WriteRTP deprecated, yet they are the interface it calls; the tests drive the producer as go2rtc does.

package hikvision

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/guard"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
	"github.com/rs/zerolog"
	"gopkg.in/yaml.v3"
)

// ringModule gives t a module with the talk_answers_ring option (nil: the
// default), short talk timings and a log the test reads.
func ringModule(t *testing.T, answer *bool) *syncBuf {
	m := resetModule(t, Options{TalkAnswersRing: answer}, guard.Config{})
	buf := &syncBuf{}
	m.log = zerolog.New(buf).Level(zerolog.DebugLevel)
	shortTalk(t)
	return buf
}

func signalPaths(dev *sim.Device, prefix string) int {
	n := 0
	for _, c := range dev.Stats().Clients {
		for path, v := range c.Requests {
			if strings.HasPrefix(path, prefix) {
				n += v
			}
		}
	}
	return n
}

// A talk that starts while the door station rings answers the call first
// (the station stops ringing, the visitor hears the talk), and the idle
// close of the talk hangs up the call it answered.
func TestTalkAnswersRingingDoorStation(t *testing.T) {
	logs := ringModule(t, nil)
	dev, src := startTalkSim(t, sim.Config{Personality: sim.PersonalityDoorStation})
	base := runtime.NumGoroutine()
	p := dialProducer(t, src)
	if err := dev.Ring(); err != nil {
		t.Fatal(err)
	}
	f := addTrack(t, p)
	audio := g711Tone(1600)
	f.talkG711(audio)
	waitFor(t, "the tone at the station", 5*time.Second, func() bool { return dev.TalkClient(ourIP).Bytes >= len(audio) })
	if got := dev.TalkAudio(); !bytes.Equal(got, audio) {
		t.Fatalf("the station got %d bytes, not the tone sent", len(got))
	}
	ds := dev.DoorStats()
	if ds.Signals["answer"] != 1 || ds.TalkOpensWhileRinging != 0 || ds.State != sim.CallOnCall {
		t.Fatalf("while talking: %+v, want one answer before the talk opened, state onCall", ds)
	}
	if n := len(logs.lines("door station ringing: answered the call to talk")); n != 1 {
		t.Fatalf("%d log lines of the answer, want 1", n)
	}
	waitFor(t, "the talk's idle close", 5*time.Second, func() bool { _, open := dev.TalkSession(); return !open })
	waitFor(t, "the hang-up", 5*time.Second, func() bool { return dev.DoorStats().Signals["hangUp"] == 1 })
	if ds := dev.DoorStats(); ds.State != sim.CallIdle || ds.Signals["answer"] != 1 || ds.RefusedSignals != 0 {
		t.Fatalf("after the talk: %+v, want idle, one answer, one hangUp", ds)
	}
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if ds := dev.DoorStats(); ds.Signals["hangUp"] != 1 || ds.Signals["answer"] != 1 {
		t.Fatalf("after Stop: %+v, want nothing more sent", ds)
	}
	f.recv.Close()
	waitGoroutines(t, base)
}

// Stop while talking on a call the talk answered hangs it up too.
func TestTalkStopHangsUpAnsweredCall(t *testing.T) {
	ringModule(t, nil)
	dev, src := startTalkSim(t, sim.Config{Personality: sim.PersonalityDoorStation})
	p := dialProducer(t, src)
	if err := dev.Ring(); err != nil {
		t.Fatal(err)
	}
	f := addTrack(t, p)
	f.talkG711(g711Tone(320))
	waitFor(t, "talk open", 5*time.Second, func() bool { return p.Talk().State == "open" })
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if ds := dev.DoorStats(); ds.Signals["answer"] != 1 || ds.Signals["hangUp"] != 1 || ds.State != sim.CallIdle {
		t.Fatalf("after Stop: %+v, want one answer, one hangUp, idle", ds)
	}
	f.recv.Close()
}

// An idle station: talk reads the call status and sends no call signal.
func TestTalkIdleDoorStationNoSignal(t *testing.T) {
	ringModule(t, nil)
	dev, src := startTalkSim(t, sim.Config{Personality: sim.PersonalityDoorStation})
	p := dialProducer(t, src)
	defer p.Stop()
	f := addTrack(t, p)
	defer f.recv.Close()
	f.talkG711(g711Tone(800))
	waitFor(t, "the tone at the station", 5*time.Second, func() bool { return dev.TalkClient(ourIP).Bytes >= 800 })
	waitFor(t, "the talk's idle close", 5*time.Second, func() bool { _, open := dev.TalkSession(); return !open })
	if n := signalPaths(dev, "/ISAPI/VideoIntercom/callSignal"); n != 0 {
		t.Fatalf("%d callSignal requests to an idle station", n)
	}
	if n := signalPaths(dev, "/ISAPI/VideoIntercom/callStatus"); n == 0 {
		t.Fatal("the call status was not read before talk")
	}
	if ds := dev.DoorStats(); ds.State != sim.CallIdle {
		t.Fatalf("station: %+v", ds)
	}
}

// A call the indoor station answered holds the line: our talk is busy, the
// call is neither answered again nor hung up.
func TestTalkDoorStationAnsweredElsewhereBusy(t *testing.T) {
	ringModule(t, nil)
	dev, src := startTalkSim(t, sim.Config{Personality: sim.PersonalityDoorStation})
	p := dialProducer(t, src)
	if err := dev.Ring(); err != nil {
		t.Fatal(err)
	}
	if err := dev.AnswerLocally(); err != nil {
		t.Fatal(err)
	}
	f := addTrack(t, p)
	stop := make(chan struct{})
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		audio := g711Tone(160)
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				f.write(audio, 160)
			}
		}
	}()
	waitFor(t, "talk busy", 5*time.Second, func() bool { return p.Talk().State == "busy" })
	observe(400 * time.Millisecond)
	close(stop)
	<-fed
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	f.recv.Close()
	if n := signalPaths(dev, "/ISAPI/VideoIntercom/callSignal"); n != 0 {
		t.Fatalf("%d callSignal requests on a call answered elsewhere", n)
	}
	if ds := dev.DoorStats(); ds.State != sim.CallOnCall {
		t.Fatalf("the indoor station's call was cut: %+v", ds)
	}
	if dev.TalkClient(ourIP).Bytes != 0 {
		t.Fatal("our audio reached the station during someone else's call")
	}
}

// talk_answers_ring: false leaves the ringing call alone (the old way).
func TestTalkAnswersRingOff(t *testing.T) {
	off := false
	ringModule(t, &off)
	dev, src := startTalkSim(t, sim.Config{Personality: sim.PersonalityDoorStation})
	p := dialProducer(t, src)
	defer p.Stop()
	if err := dev.Ring(); err != nil {
		t.Fatal(err)
	}
	f := addTrack(t, p)
	defer f.recv.Close()
	f.talkG711(g711Tone(320))
	waitFor(t, "talk opened while ringing", 5*time.Second, func() bool { return dev.DoorStats().TalkOpensWhileRinging == 1 })
	if n := signalPaths(dev, "/ISAPI/VideoIntercom/"); n != 0 {
		t.Fatalf("%d intercom requests with talk_answers_ring off", n)
	}
}

// A camera gets no intercom request from talk.
func TestTalkCameraNoIntercomRequest(t *testing.T) {
	ringModule(t, nil)
	dev, src := startTalkSim(t, sim.Config{})
	p := dialProducer(t, src)
	defer p.Stop()
	f := addTrack(t, p)
	defer f.recv.Close()
	f.talkG711(g711Tone(800))
	waitFor(t, "the tone at the camera", 5*time.Second, func() bool { return dev.TalkClient(ourIP).Bytes >= 800 })
	if n := signalPaths(dev, "/ISAPI/VideoIntercom/"); n != 0 {
		t.Fatalf("%d intercom requests to a camera", n)
	}
}

// The hikvision: section's talk_answers_ring: absent is on, false is off.
func TestTalkAnswersRingOption(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want bool
	}{{"probe_ttl: 1m", true}, {"talk_answers_ring: true", true}, {"talk_answers_ring: false", false}} {
		var o Options
		if err := yaml.Unmarshal([]byte(tc.yaml), &o); err != nil {
			t.Fatalf("%s: %v", tc.yaml, err)
		}
		if got := o.talkAnswersRing(); got != tc.want {
			t.Errorf("%s: talkAnswersRing %v, want %v", tc.yaml, got, tc.want)
		}
	}
}
