package mqtt_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/gorilla/websocket"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/mqtt"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/mqtt/mqtttest"
)

// selfSigned writes a certificate for 127.0.0.1 and its key into dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "test broker"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	must(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	must(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600))
	return certFile, keyFile
}

// ssl:// to mosquitto with a self-signed certificate: refused unless
// insecure is set.
func TestTLSBroker(t *testing.T) {
	mqtttest.MosquittoPath(t)
	cert, key := selfSigned(t, t.TempDir())
	b := mqtttest.StartBroker(t, "certfile "+cert+"\nkeyfile "+key)
	url := "ssl://" + b.Addr()

	strict := newPublisher(t, mqtt.Config{Broker: url, ClientID: "strict"})
	waitUntil(t, "the certificate refused", wait, func() bool { return strict.Stats().LastError != "" })
	if st := strict.Stats(); st.Connected || !strings.Contains(st.LastError, "certificate") {
		t.Errorf("self-signed broker without insecure: %+v", st)
	}

	pinned := newPublisher(t, mqtt.Config{Broker: url, CAFile: cert, ClientID: "ca-file"})
	waitUntil(t, "connected with ca_file", wait, func() bool { return pinned.Stats().Connected })

	rec := mqtttest.Subscribe(t, url, "hikvision/#", func(o *paho.ClientOptions) {
		o.SetTLSConfig(&tls.Config{InsecureSkipVerify: true}) //nolint:gosec // test broker
	})
	p := newPublisher(t, mqtt.Config{Broker: url, InsecureSkipVerify: true, ClientID: "insecure"})
	must(t, p.Publish(mqtt.Event{Device: camera, Channel: 1, Type: "motion", Active: true}))
	rec.WaitLast("hikvision/127_0_0_1_8080/1/motion/state", "ON", wait)
}

// wsBridge serves MQTT over WebSocket (subprotocol "mqtt") in front of a TCP
// broker, as a broker's WebSocket listener does.
func wsBridge(t *testing.T, target string) string {
	t.Helper()
	up := websocket.Upgrader{Subprotocols: []string{"mqtt"}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		c, err := net.Dial("tcp", target)
		if err != nil {
			return
		}
		defer c.Close()
		go func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := c.Read(buf)
				if err != nil {
					_ = ws.Close()
					return
				}
				if ws.WriteMessage(websocket.BinaryMessage, buf[:n]) != nil {
					return
				}
			}
		}()
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				return
			}
			if _, err := c.Write(data); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return "ws://" + strings.TrimPrefix(srv.URL, "http://") + "/mqtt"
}

func TestWebSocketBroker(t *testing.T) {
	b := mqtttest.StartBroker(t, "")
	rec := mqtttest.Subscribe(t, b.URL(), "hikvision/#")
	p := newPublisher(t, mqtt.Config{Broker: wsBridge(t, b.Addr())})
	must(t, p.Publish(mqtt.Event{Device: door, Channel: 1, Type: "call", Active: true}))
	rec.WaitLast("hikvision/10_0_0_7_80/1/call/state", "ON", wait)
	rec.WaitLast("hikvision/bridge/availability", "online", wait)
	must(t, p.Close())
	rec.WaitLast("hikvision/bridge/availability", "offline", wait)
}
