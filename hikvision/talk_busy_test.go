//lint:file-ignore SA1019 go2rtc v1.9.14 marks core.Producer Start/Stop, Receiver.WriteRTP and Sender.HandleRTP deprecated, yet they are the interface it calls; the tests drive the producer as go2rtc does.

package hikvision

import (
	"bytes"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

// otherTalker is another app talking through the device from 127.0.0.2
// (hand-made requests, Basic auth).
type otherTalker struct {
	t    *testing.T
	dev  *sim.Device
	hc   *http.Client
	conn net.Conn
	stop chan struct{}
	wg   sync.WaitGroup
}

func (o *otherTalker) authz() string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+talkTestPass))
}

func (o *otherTalker) put(path string) int {
	o.t.Helper()
	req, _ := http.NewRequest(http.MethodPut, "http://"+o.dev.HTTPAddr()+path, nil)
	req.Header.Set("Authorization", o.authz())
	res, err := o.hc.Do(req)
	if err != nil {
		o.t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

func startOtherTalker(t *testing.T, dev *sim.Device) *otherTalker {
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(otherIP)}, Timeout: 5 * time.Second}
	o := &otherTalker{t: t, dev: dev, stop: make(chan struct{}),
		hc: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: dialer.DialContext}}}
	if st := o.put("/ISAPI/System/TwoWayAudio/channels/1/open"); st != 200 {
		t.Fatalf("other talker open: %d", st)
	}
	conn, err := dialer.Dial("tcp", dev.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	o.conn = conn
	if _, err := io.WriteString(conn, "PUT /ISAPI/System/TwoWayAudio/channels/1/audioData HTTP/1.1\r\nHost: "+dev.HTTPAddr()+
		"\r\nAuthorization: "+o.authz()+"\r\nContent-Type: application/octet-stream\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		chunk := make([]byte, 160)
		for {
			select {
			case <-o.stop:
				return
			case <-tick.C:
				if _, err := conn.Write(chunk); err != nil {
					return
				}
			}
		}
	}()
	return o
}

func (o *otherTalker) hangUp() {
	close(o.stop)
	o.wg.Wait()
	o.conn.Close()
	if st := o.put("/ISAPI/System/TwoWayAudio/channels/1/close"); st != 200 {
		o.t.Fatalf("other talker close: %d", st)
	}
	o.hc.CloseIdleConnections()
}

func TestTalkBusyLineNotCutOff(t *testing.T) {
	shortTalk(t)
	dev, src := startTalkSim(t, sim.Config{Auth: sim.AuthDigestBasic})
	base := runtime.NumGoroutine()
	other := startOtherTalker(t, dev)
	waitFor(t, "the other talker streaming", 5*time.Second, func() bool { return dev.TalkClient(otherIP).Bytes > 0 })

	p := dialProducer(t, src)
	f := addTrack(t, p)
	audio := g711Tone(160)
	stopFeed := make(chan struct{})
	fed := make(chan struct{})
	go func() { // our user talks (never WriteRTP from two goroutines: only this one feeds)
		defer close(fed)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopFeed:
				return
			case <-tick.C:
				f.write(audio, 160)
			}
		}
	}()
	waitFor(t, "talk busy", 5*time.Second, func() bool { return p.Talk().State == "busy" })
	// while busy and retrying, the other talker keeps the line
	b0 := dev.TalkClient(otherIP).Bytes
	observe(600 * time.Millisecond)
	s, open := dev.TalkSession()
	if !open || s.Client != otherIP || !s.Streaming || dev.TalkClient(otherIP).Bytes <= b0 {
		t.Fatalf("the other talker lost the line: %+v %v", s, open)
	}
	if cs := dev.TalkClient(ourIP); cs.Opens != 0 || cs.Closes != 0 || cs.RefusedOpens == 0 {
		t.Fatalf("our talk while busy: %+v", cs)
	}
	if ts := p.Talk(); ts.BusyRefusals == 0 || !strings.Contains(ts.Error, "busy") {
		t.Fatalf("talk status while busy: %+v", ts)
	}

	// the other talker hangs up: our talk gets the line on a retry
	other.hangUp()
	waitFor(t, "our talk open after the line freed", 5*time.Second, func() bool { return p.Talk().State == "open" })
	waitFor(t, "our audio at the device", 5*time.Second, func() bool { return dev.TalkClient(ourIP).Bytes > 0 })
	close(stopFeed)
	<-fed
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, open := dev.TalkSession(); open {
		t.Fatal("session left open after Stop")
	}
	f.recv.Close()
	waitGoroutines(t, base)
}

// With talk_takeover=1 the old behaviour: close before open, cutting the other talker off.
func TestTalkTakeover(t *testing.T) {
	t.Parallel()
	shortTalk(t)
	dev, src := startTalkSim(t, sim.Config{Auth: sim.AuthDigestBasic})
	other := startOtherTalker(t, dev)
	defer func() {
		close(other.stop)
		other.wg.Wait()
		other.conn.Close()
		other.hc.CloseIdleConnections()
	}()
	waitFor(t, "the other talker streaming", 5*time.Second, func() bool { return dev.TalkClient(otherIP).Bytes > 0 })
	p := dialProducer(t, strings.Replace(src, "?channel=1", "?talk_takeover=1&channel=1", 1))
	defer p.Stop()
	f := addTrack(t, p)
	f.talkG711(g711Tone(1600))
	waitFor(t, "our talk took the line", 5*time.Second, func() bool {
		s, open := dev.TalkSession()
		return open && s.Client == ourIP
	})
}

// A device that answers the audioData request with "200 OK" at once (stock
// go2rtc waits for that answer) has accepted the talk: one open for a whole
// burst and every byte at the device. (That answer used to read as "talk
// ended": talk reopened for every packet, 25 opens for 1 s of audio.)
func TestTalkDeviceAnswersAudioData(t *testing.T) {
	shortTalk(t)
	dev, src := startTalkSim(t, sim.Config{Talk: sim.TalkConfig{AnswerAudioData: true}})
	base := runtime.NumGoroutine()
	p := dialProducer(t, src)
	f := addTrack(t, p)
	audio := g711Tone(8000) // 1 s
	f.talkG711(audio)
	waitFor(t, "8000 bytes at the device", 5*time.Second, func() bool { return dev.TalkClient(ourIP).Bytes >= 8000 })
	if got := dev.TalkAudio(); !bytes.Equal(got, audio) {
		t.Fatalf("the device got %d bytes, not the audio sent", len(got))
	}
	waitFor(t, "our idle close", 5*time.Second, func() bool { _, open := dev.TalkSession(); return !open })
	cs := dev.TalkClient(ourIP)
	if cs.Opens != 1 || cs.AudioConnections != 1 || cs.Closes != 1 || cs.Prompts != 0 || cs.Bytes != 8000 {
		t.Fatalf("one burst against an answering device: %+v, want 1 open, 1 audio connection, 1 close, 8000 bytes", cs)
	}
	// our side counts the close when the device's answer is back
	waitFor(t, "talk idle", 5*time.Second, func() bool { return p.Talk().State == "idle" })
	if ts := p.Talk(); ts.Opens != 1 || ts.Closes != 1 || ts.Failures != 0 || ts.Drops != 0 || ts.Bytes != 8000 {
		t.Fatalf("talk status: %+v", ts)
	}
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	f.recv.Close()
	waitGoroutines(t, base)
}
