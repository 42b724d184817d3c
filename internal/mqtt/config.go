package mqtt

import (
	"crypto/x509"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/redact"
)

// Defaults used for the zero values of Config.
const (
	DefaultTopicPrefix     = "hikvision"
	DefaultDiscoveryPrefix = "homeassistant"
	DefaultClientID        = "go2rtc-hikvision"
	DefaultQoS             = 1
	DefaultQueue           = 256
	DefaultMaxEntities     = 4096
	DefaultMaxPicture      = 2 << 20  // one picture
	DefaultPictureMemory   = 32 << 20 // all pictures held for re-publishing
	DefaultConnectTimeout  = 10 * time.Second
	DefaultPublishTimeout  = 10 * time.Second
	DefaultMaxBackoff      = 60 * time.Second
)

// Config is the mqtt: section of the module's configuration. The zero value
// of every field but Broker means its default.
type Config struct {
	// Broker is the broker URL: tcp://host:1883, ssl://host:8883 (also
	// mqtts://, tls://), ws://host:port/path or wss://. A user name and
	// password in the URL are refused: use Username and Password.
	Broker   string `yaml:"broker" json:"broker"`
	Username string `yaml:"username" json:"username,omitempty"`
	Password string `yaml:"password" json:"-"`
	// ClientID must be unique on the broker (the broker drops the older of two
	// clients with one id). Default go2rtc-hikvision.
	ClientID string `yaml:"client_id" json:"client_id,omitempty"`
	// TopicPrefix is the first level of every state topic. Default hikvision.
	TopicPrefix string `yaml:"topic_prefix" json:"topic_prefix,omitempty"`
	// DiscoveryPrefix is Home Assistant's discovery prefix. Default homeassistant.
	DiscoveryPrefix string `yaml:"discovery_prefix" json:"discovery_prefix,omitempty"`
	// Discovery publishes Home Assistant discovery configs. Default on.
	Discovery *bool `yaml:"discovery" json:"discovery,omitempty"`
	// Retain marks states, availability, pictures and discovery configs as
	// retained. Default on. Ring event messages are never retained.
	Retain *bool `yaml:"retain" json:"retain,omitempty"`
	// QoS of every message, 0, 1 or 2. Default 1.
	QoS *int `yaml:"qos" json:"qos,omitempty"`
	// InsecureSkipVerify accepts any broker certificate (ssl://, wss://).
	InsecureSkipVerify bool `yaml:"insecure" json:"insecure,omitempty"`
	// CAFile is a PEM file of the certificates that sign the broker's
	// certificate (ssl://, wss://), instead of the system's.
	CAFile string `yaml:"ca_file" json:"ca_file,omitempty"`
	// Queue bounds the event messages (rings, the events topic) held while
	// the broker is away; the oldest are dropped first. Default 256.
	Queue int `yaml:"queue" json:"queue,omitempty"`
	// ConnectTimeout bounds one connection attempt (dial, TLS, CONNECT),
	// in seconds. Default 10.
	ConnectTimeout int `yaml:"connect_timeout" json:"connect_timeout,omitempty"`
	// MaxPicture is the largest picture published, in bytes. Default 2 MiB.
	MaxPicture int `yaml:"max_picture" json:"max_picture,omitempty"`
	// PictureMemory bounds the bytes of pictures held for re-publishing after
	// a broker restart; the oldest are let go first. Default 32 MiB.
	PictureMemory int `yaml:"picture_memory" json:"picture_memory,omitempty"`
}

// settings is a validated Config with every default filled.
type settings struct {
	broker          *url.URL
	username        string
	password        string
	clientID        string
	prefix          string
	discoveryPrefix string
	discovery       bool
	retain          bool
	qos             byte
	insecure        bool
	roots           *x509.CertPool
	queue           int
	maxEntities     int
	maxPicture      int
	pictureMemory   int
	connectTimeout  time.Duration
	publishTimeout  time.Duration
	maxBackoff      time.Duration
}

func (c Config) settings() (*settings, error) {
	s := &settings{
		username:        c.Username,
		password:        c.Password,
		clientID:        c.ClientID,
		prefix:          c.TopicPrefix,
		discoveryPrefix: c.DiscoveryPrefix,
		discovery:       c.Discovery == nil || *c.Discovery,
		retain:          c.Retain == nil || *c.Retain,
		qos:             DefaultQoS,
		insecure:        c.InsecureSkipVerify,
		queue:           c.Queue,
		maxEntities:     DefaultMaxEntities,
		maxPicture:      c.MaxPicture,
		pictureMemory:   c.PictureMemory,
		connectTimeout:  time.Duration(c.ConnectTimeout) * time.Second,
		publishTimeout:  DefaultPublishTimeout,
		maxBackoff:      DefaultMaxBackoff,
	}
	if c.Broker == "" {
		return nil, &ConfigError{Field: "broker", Reason: "missing (want tcp://host:1883, ssl://, ws:// or wss://)"}
	}
	u, err := url.Parse(c.Broker)
	if err != nil {
		return nil, &ConfigError{Field: "broker", Value: redact.URL(c.Broker), Reason: "not a URL"}
	}
	switch u.Scheme {
	case "tcp", "mqtt", "ssl", "tls", "mqtts", "ws", "wss":
	default:
		return nil, &ConfigError{Field: "broker", Value: redact.URL(c.Broker), Reason: "scheme must be tcp, ssl, ws or wss"}
	}
	if u.User != nil {
		return nil, &ConfigError{Field: "broker", Value: redact.URL(c.Broker), Reason: "user name or password in the URL; use username and password"}
	}
	if u.Hostname() == "" {
		return nil, &ConfigError{Field: "broker", Value: c.Broker, Reason: "no host"}
	}
	if u.Port() == "" {
		switch u.Scheme {
		case "tcp", "mqtt":
			u.Host += ":1883"
		case "ssl", "tls", "mqtts":
			u.Host += ":8883"
		}
	}
	s.broker = u
	if s.clientID == "" {
		s.clientID = DefaultClientID
	}
	if len(s.clientID) > 65535 {
		return nil, &ConfigError{Field: "client_id", Reason: "longer than 65535 bytes"}
	}
	if s.prefix == "" {
		s.prefix = DefaultTopicPrefix
	}
	if err := checkPrefix("topic_prefix", s.prefix); err != nil {
		return nil, err
	}
	if s.discoveryPrefix == "" {
		s.discoveryPrefix = DefaultDiscoveryPrefix
	}
	if err := checkPrefix("discovery_prefix", s.discoveryPrefix); err != nil {
		return nil, err
	}
	if c.QoS != nil {
		if *c.QoS < 0 || *c.QoS > 2 {
			return nil, &ConfigError{Field: "qos", Value: fmt.Sprint(*c.QoS), Reason: "must be 0, 1 or 2"}
		}
		s.qos = byte(*c.QoS)
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, &ConfigError{Field: "ca_file", Value: c.CAFile, Reason: "cannot be read: " + err.Error()}
		}
		s.roots = x509.NewCertPool()
		if !s.roots.AppendCertsFromPEM(pem) {
			return nil, &ConfigError{Field: "ca_file", Value: c.CAFile, Reason: "holds no PEM certificate"}
		}
	}
	if s.queue == 0 {
		s.queue = DefaultQueue
	} else if s.queue < 1 || s.queue > 1<<20 {
		return nil, &ConfigError{Field: "queue", Value: fmt.Sprint(c.Queue), Reason: "must be 1..1048576"}
	}
	if c.ConnectTimeout == 0 {
		s.connectTimeout = DefaultConnectTimeout
	} else if c.ConnectTimeout < 1 || c.ConnectTimeout > 300 {
		return nil, &ConfigError{Field: "connect_timeout", Value: fmt.Sprint(c.ConnectTimeout), Reason: "must be 1..300 seconds"}
	}
	if s.maxPicture == 0 {
		s.maxPicture = DefaultMaxPicture
	} else if s.maxPicture < 0 {
		return nil, &ConfigError{Field: "max_picture", Value: fmt.Sprint(c.MaxPicture), Reason: "must not be negative"}
	}
	if s.pictureMemory == 0 {
		s.pictureMemory = DefaultPictureMemory
	} else if s.pictureMemory < 0 {
		return nil, &ConfigError{Field: "picture_memory", Value: fmt.Sprint(c.PictureMemory), Reason: "must not be negative"}
	}
	return s, nil
}

func checkPrefix(field, p string) error {
	if strings.ContainsAny(p, "+#\x00") {
		return &ConfigError{Field: field, Value: p, Reason: "must not contain + # or NUL"}
	}
	if strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.Contains(p, "//") {
		return &ConfigError{Field: field, Value: p, Reason: "must not start or end with / nor hold an empty level"}
	}
	return nil
}
