package mqtt_test

import (
	"errors"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/mqtt"
)

func itoa(i int) string                { return strconv.Itoa(i) }
func netListen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }
func runCmd(name string, args ...string) ([]byte, error) {
	return exec.Command(name, args...).CombinedOutput()
}

func TestConfigErrors(t *testing.T) {
	three, minus := 3, -1
	for _, tc := range []struct {
		cfg   mqtt.Config
		field string
	}{
		{mqtt.Config{}, "broker"},
		{mqtt.Config{Broker: "http://host"}, "broker"},
		{mqtt.Config{Broker: "tcp://user:TopSecret@host"}, "broker"},
		{mqtt.Config{Broker: "tcp://"}, "broker"},
		{mqtt.Config{Broker: "tcp://h", TopicPrefix: "a/+/b"}, "topic_prefix"},
		{mqtt.Config{Broker: "tcp://h", TopicPrefix: "/hik"}, "topic_prefix"},
		{mqtt.Config{Broker: "tcp://h", DiscoveryPrefix: "ha#"}, "discovery_prefix"},
		{mqtt.Config{Broker: "tcp://h", QoS: &three}, "qos"},
		{mqtt.Config{Broker: "tcp://h", QoS: &minus}, "qos"},
		{mqtt.Config{Broker: "tcp://h", Queue: -5}, "queue"},
		{mqtt.Config{Broker: "tcp://h", ConnectTimeout: 1000}, "connect_timeout"},
		{mqtt.Config{Broker: "tcp://h", MaxPicture: -1}, "max_picture"},
		{mqtt.Config{Broker: "ssl://h", CAFile: "/nonexistent/ca.pem"}, "ca_file"},
		{mqtt.Config{Broker: "ssl://h", CAFile: "config_test.go"}, "ca_file"},
	} {
		p, err := mqtt.New(tc.cfg, zerolog.Nop())
		if err == nil {
			_ = p.Close()
			t.Errorf("%+v: no error", tc.cfg)
			continue
		}
		var ce *mqtt.ConfigError
		if !errors.Is(err, mqtt.ErrConfig) || !errors.As(err, &ce) || ce.Field != tc.field {
			t.Errorf("%+v: %v, want a ConfigError for %s", tc.cfg, err, tc.field)
		}
		if strings.Contains(err.Error(), "TopSecret") {
			t.Errorf("error shows the password: %v", err)
		}
	}
	for _, ok := range []string{"tcp://h", "ssl://h:8883", "ws://h:9001/mqtt", "wss://h/mqtt", "mqtt://h"} {
		p, err := mqtt.New(mqtt.Config{Broker: ok}, zerolog.Nop())
		if err != nil {
			t.Errorf("%s: %v", ok, err)
			continue
		}
		_ = p.Close()
	}
}
