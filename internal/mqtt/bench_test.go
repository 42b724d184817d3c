package mqtt_test

import (
	"os"
	"slices"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/mqtt"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/mqtt/mqtttest"
)

// BenchmarkEventToMessage measures the latency from Publisher.Publish to the
// state message arriving at a subscriber, through a real mosquitto on
// loopback (QoS 1 both ways). Reported: median and p99 in µs.
//
//	go test -run '^$' -bench EventToMessage -benchtime 2000x ./internal/mqtt/
//
// BENCH_BROKER_CONF adds lines to the broker's config (for example
// "set_tcp_nodelay true" to compare with mosquitto's default).
func BenchmarkEventToMessage(b *testing.B) {
	for _, qos := range []int{0, 1} {
		b.Run("qos"+itoa(qos), func(b *testing.B) { benchLatency(b, qos) })
	}
}

func benchLatency(b *testing.B, qos int) {
	br := mqtttest.StartBroker(b, os.Getenv("BENCH_BROKER_CONF"))
	const topic = "hikvision/127_0_0_1_8080/1/motion/state"
	got := make(chan time.Time, 16)
	mqtttest.SubscribeFunc(b, br.URL(), topic, byte(qos), func(m paho.Message) {
		if !m.Retained() {
			got <- time.Now()
		}
	})
	p, err := mqtt.New(mqtt.Config{Broker: br.URL(), QoS: &qos}, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = p.Close() }()
	// The first event makes the entity (discovery, attributes...); wait for
	// its state so the loop measures steady state only.
	if err := p.Publish(mqtt.Event{Device: camera, Channel: 1, Type: "motion", Active: true}); err != nil {
		b.Fatal(err)
	}
	select {
	case <-got:
	case <-time.After(wait):
		b.Fatal("no first state message")
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if err := p.Publish(mqtt.Event{Device: camera, Channel: 1, Type: "motion", Active: i%2 == 1}); err != nil {
			b.Fatal(err)
		}
		select {
		case at := <-got:
			lat = append(lat, at.Sub(start))
		case <-time.After(wait):
			b.Fatalf("event %d: no state message within %s", i, wait)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "median-µs")
	b.ReportMetric(float64(lat[(len(lat)*99)/100].Microseconds()), "p99-µs")
}
