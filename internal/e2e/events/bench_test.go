package events_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/bench"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/e2e"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/mqtt/mqtttest"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

// BenchmarkEventToMQTT measures a device event to its MQTT state message:
// from the simulator writing the alert-stream part to a subscriber of a real
// mosquitto receiving ON (or OFF), through the patched go2rtc. Each
// iteration is one event; it reports the median and the 99th percentile.
//
//	go test -run '^$' -bench EventToMQTT -benchtime 500x ./internal/e2e/events/
func BenchmarkEventToMQTT(b *testing.B) {
	bin := e2e.Go2rtcBinary(b)
	br := mqtttest.StartBroker(b, "")
	cam := startSim(b, sim.Config{})
	g, err := e2e.Start(b.Context(), e2e.Options{Bin: bin, Config: fmt.Sprintf(
		"streams:\n  cam: %q\nhikvision:\n  events:\n    inactive_timeout: 10m\n%s", src(cam, pass, 1), mqttConfig(br, "bench-latency"))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = g.Stop() })

	topic := "hikvision/" + topicID(cam.HTTPAddr()) + "/1/motion/state"
	got := make(chan string, 16)
	mqtttest.SubscribeFunc(b, br.URL(), topic, 1, func(m paho.Message) {
		if !m.Retained() {
			got <- string(m.Payload())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for cam.OpenAlertStreams() != 1 {
		if time.Now().After(deadline) {
			b.Fatal("the alert stream did not open")
		}
		time.Sleep(20 * time.Millisecond) // a poll with a deadline
	}
	active := false
	step := func() time.Duration {
		active = !active
		want := map[bool]string{true: "ON", false: "OFF"}[active]
		t0 := time.Now()
		cam.TriggerEvents(sim.EventStep{Type: "VMD", Channel: 1, Inactive: !active})
		for {
			select {
			case p := <-got:
				if p == want {
					return time.Since(t0)
				}
			case <-time.After(10 * time.Second):
				b.Fatalf("no %s on %s within 10 s", want, topic)
			}
		}
	}
	for i := 0; i < 4; i++ { // warm-up: discovery, availability, first states
		step()
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		lat = append(lat, step())
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / 1e6 }
	b.ReportMetric(q(0.5), "median_ms")
	b.ReportMetric(q(0.99), "p99_ms")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkIdleSubscriptionsCPU measures the CPU of 32 idle event
// subscriptions: 32 simulated cameras sending a heartbeat every second (the
// busiest keep-alive devices send), one go2rtc with events on and, at the
// same time on the same cameras, one without (the baseline: go2rtc and the
// module idle). It reports both processes' CPU over the window, as a share
// of one core, and their difference per subscription.
//
//	go test -run '^$' -bench IdleSubscriptionsCPU -benchtime 1x ./internal/e2e/events/
func BenchmarkIdleSubscriptionsCPU(b *testing.B) {
	const devices = 32
	const window = 30 * time.Second
	bin := e2e.Go2rtcBinary(b)
	var streams strings.Builder
	var cams []*sim.Device
	for i := 0; i < devices; i++ {
		d, err := sim.Start(sim.Config{Users: map[string]string{"admin": pass}, Events: sim.EventsConfig{Heartbeat: time.Second}})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = d.Close() })
		cams = append(cams, d)
		fmt.Fprintf(&streams, "  cam%d: %q\n", i, src(d, pass, 1))
	}
	on, err := e2e.Start(b.Context(), e2e.Options{Bin: bin, Config: "streams:\n" + streams.String() + "hikvision:\n  events: true\n"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = on.Stop() })
	off, err := e2e.Start(b.Context(), e2e.Options{Bin: bin, Config: "streams:\n" + streams.String()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = off.Stop() })
	deadline := time.Now().Add(60 * time.Second)
	for _, d := range cams {
		for d.OpenAlertStreams() != 1 {
			if time.Now().After(deadline) {
				b.Fatal("not every alert stream opened")
			}
			time.Sleep(20 * time.Millisecond) // a poll with a deadline
		}
	}
	<-time.After(3 * time.Second) // past the start-up (logins, device info)
	b.ResetTimer()
	var onCPU, offCPU, wall time.Duration
	for i := 0; i < b.N; i++ {
		on0, err1 := bench.ReadProc(on.PID())
		off0, err2 := bench.ReadProc(off.PID())
		t0 := time.Now()
		<-time.After(window)
		on1, err3 := bench.ReadProc(on.PID())
		off1, err4 := bench.ReadProc(off.PID())
		for _, err := range []error{err1, err2, err3, err4} {
			if err != nil {
				b.Fatal(err)
			}
		}
		wall += time.Since(t0)
		onCPU += on1.CPU() - on0.CPU()
		offCPU += off1.CPU() - off0.CPU()
	}
	b.StopTimer()
	hb := 0
	for _, d := range cams {
		hb += d.EventStats().Heartbeats
	}
	pct := func(d time.Duration) float64 { return 100 * float64(d) / float64(wall) }
	b.ReportMetric(pct(onCPU), "events_cpu_%")
	b.ReportMetric(pct(offCPU), "baseline_cpu_%")
	b.ReportMetric(float64(onCPU-offCPU)/float64(wall)*1e6/devices, "us_cpu/s/subscription")
	b.ReportMetric(float64(hb), "heartbeats")
	b.ReportMetric(0, "ns/op")
}
