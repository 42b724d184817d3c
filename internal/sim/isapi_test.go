package sim_test

import (
	"encoding/xml"
	"net"
	"strconv"
	"testing"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

// authed is a client that logged in once and reuses the nonce with a growing nc.
type authed struct {
	*tclient
	ch         challenge
	nc         int
	user, pass string
}

func login(t *testing.T, d *sim.Device, user, pass string) *authed {
	t.Helper()
	c := newClient(t, d)
	return &authed{tclient: c, ch: c.challengeFor(devInfo, "MD5"), user: user, pass: pass}
}

func (a *authed) get(method, path string) (int, []byte) {
	a.t.Helper()
	a.nc++
	status, _, body := a.do(method, path, digestAuthorization(a.ch, method, path, a.user, a.pass, a.nc))
	return status, body
}

func (a *authed) getOK(path string) []byte {
	a.t.Helper()
	status, body := a.get("GET", path)
	if status != 200 {
		a.t.Fatalf("GET %s: status %d body %s", path, status, body)
	}
	return body
}

type deviceInfoXML struct {
	XMLName         xml.Name
	DeviceName      string `xml:"deviceName"`
	DeviceID        string `xml:"deviceID"`
	Model           string `xml:"model"`
	SerialNumber    string `xml:"serialNumber"`
	MACAddress      string `xml:"macAddress"`
	FirmwareVersion string `xml:"firmwareVersion"`
	FirmwareDate    string `xml:"firmwareReleasedDate"`
	DeviceType      string `xml:"deviceType"`
	Manufacturer    string `xml:"manufacturer"`
}

type streamingChannelXML struct {
	XMLName     xml.Name
	ID          int    `xml:"id"`
	ChannelName string `xml:"channelName"`
	Enabled     bool   `xml:"enabled"`
	Video       struct {
		Codec        string `xml:"videoCodecType"`
		Width        int    `xml:"videoResolutionWidth"`
		Height       int    `xml:"videoResolutionHeight"`
		MaxFrameRate int    `xml:"maxFrameRate"`
		GovLength    int    `xml:"GovLength"`
	} `xml:"Video"`
	Audio struct {
		Enabled bool   `xml:"enabled"`
		Codec   string `xml:"audioCompressionType"`
	} `xml:"Audio"`
}

type streamingChannelListXML struct {
	XMLName  xml.Name
	Channels []streamingChannelXML `xml:"StreamingChannel"`
}

type adminAccessesXML struct {
	Protocols []struct {
		Protocol string `xml:"protocol"`
		PortNo   int    `xml:"portNo"`
		Enabled  bool   `xml:"enabled"`
	} `xml:"AdminAccessProtocol"`
}

type twoWayAudioXML struct {
	XMLName  xml.Name
	Channels []struct {
		ID           string `xml:"id"`
		Enabled      bool   `xml:"enabled"`
		Codec        string `xml:"audioCompressionType"`
		SamplingRate int    `xml:"audioSamplingRate"`
		OutputType   string `xml:"audioOutputType"`
	} `xml:"TwoWayAudioChannel"`
}

type inputProxyXML struct {
	XMLName  xml.Name
	Channels []struct {
		ID        int    `xml:"id"`
		Name      string `xml:"name"`
		IPAddress string `xml:"sourceInputPortDescriptor>ipAddress"`
	} `xml:"InputProxyChannel"`
}

type inputProxyStatusXML struct {
	Channels []struct {
		ID     int    `xml:"id"`
		Online bool   `xml:"online"`
		Result string `xml:"chanDetectResult"`
	} `xml:"InputProxyChannelStatus"`
}

type illegalLoginLockXML struct {
	Enabled  bool `xml:"enabled"`
	MaxTimes int  `xml:"maxIllegalLoginTimes"`
	LockTime int  `xml:"maxIllegalLoginLockTime"`
}

func portOf(t *testing.T, addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return n
}

func wantStatus(t *testing.T, a *authed, method, path string, httpStatus, code int, sub string) {
	t.Helper()
	status, body := a.get(method, path)
	rs := decode[responseStatus](t, body)
	if status != httpStatus || rs.XMLName.Local != "ResponseStatus" || rs.StatusCode != code || rs.SubStatusCode != sub || rs.RequestURL != path {
		t.Fatalf("%s %s: got %d %+v, want %d ResponseStatus %d %s", method, path, status, rs, httpStatus, code, sub)
	}
}

func TestCameraEndpoints(t *testing.T) {
	d := start(t, sim.Config{})
	a := login(t, d, "admin", "hik12345")

	di := decode[deviceInfoXML](t, a.getOK(devInfo))
	if di.XMLName.Local != "DeviceInfo" || di.XMLName.Space != sim.NamespaceHikvision || di.DeviceType != "IPCamera" ||
		di.Model != "DS-2CD2143G2-I" || di.FirmwareVersion != "V5.7.18" || di.FirmwareDate != "build 240826" ||
		di.Manufacturer != "hikvision" || di.SerialNumber == "" || di.MACAddress == "" || di.DeviceID == "" {
		t.Fatalf("deviceInfo %+v", di)
	}

	list := decode[streamingChannelListXML](t, a.getOK("/ISAPI/Streaming/channels"))
	if list.XMLName.Local != "StreamingChannelList" || len(list.Channels) != 2 {
		t.Fatalf("streaming channels: %+v", list)
	}
	for i, want := range []struct{ id, w, h int }{{101, 640, 360}, {102, 320, 180}} {
		sc := list.Channels[i]
		if sc.ID != want.id || !sc.Enabled || sc.Video.Codec != "H.264" || sc.Video.Width != want.w || sc.Video.Height != want.h ||
			sc.Video.MaxFrameRate != 2500 || sc.Video.GovLength != 50 || !sc.Audio.Enabled || sc.Audio.Codec != "G.711ulaw" {
			t.Fatalf("stream %d: %+v", want.id, sc)
		}
	}
	one := decode[streamingChannelXML](t, a.getOK("/ISAPI/Streaming/channels/102"))
	if one.XMLName.Local != "StreamingChannel" || one.ID != 102 || one.Video.Width != 320 {
		t.Fatalf("channel 102: %+v", one)
	}
	wantStatus(t, a, "GET", "/ISAPI/Streaming/channels/999", 400, 6, "badParameters")

	aa := decode[adminAccessesXML](t, a.getOK("/ISAPI/Security/adminAccesses"))
	ports := map[string]int{}
	for _, p := range aa.Protocols {
		ports[p.Protocol] = p.PortNo
	}
	if ports["RTSP"] != portOf(t, d.RTSPAddr()) || ports["HTTP"] != portOf(t, d.HTTPAddr()) {
		t.Fatalf("adminAccesses ports %v, want RTSP %s HTTP %s", ports, d.RTSPAddr(), d.HTTPAddr())
	}

	uc := decode[userCheck](t, a.getOK("/ISAPI/Security/userCheck"))
	if uc.StatusValue != 200 || uc.StatusString != "OK" {
		t.Fatalf("userCheck: %+v", uc)
	}
	ill := decode[illegalLoginLockXML](t, a.getOK("/ISAPI/Security/illegalLoginLock"))
	if !ill.Enabled || ill.MaxTimes != 5 || ill.LockTime != 1800 {
		t.Fatalf("illegalLoginLock: %+v", ill)
	}
	twa := decode[twoWayAudioXML](t, a.getOK("/ISAPI/System/TwoWayAudio/channels"))
	if twa.XMLName.Local != "TwoWayAudioChannelList" || len(twa.Channels) != 1 || twa.Channels[0].ID != "1" ||
		twa.Channels[0].Enabled || twa.Channels[0].Codec != "G.711ulaw" || twa.Channels[0].OutputType != "Speaker" {
		t.Fatalf("two-way audio: %+v", twa)
	}

	wantStatus(t, a, "GET", "/ISAPI/ContentMgmt/InputProxy/channels", 403, 4, "notSupport")
	wantStatus(t, a, "GET", "/ISAPI/No/Such/Thing", 404, 4, "invalidOperation")
	wantStatus(t, a, "PUT", devInfo, 403, 4, "methodNotAllowed")
}

func TestCameraCodecsAndTalkAAC(t *testing.T) {
	d := start(t, sim.Config{Video: "H.265", Audio: "AAC", TalkCodec: "AAC", MaxFailures: 7, Model: "DS-2CD1383G2-I", Firmware: "V5.8.41"})
	a := login(t, d, "admin", "hik12345")
	di := decode[deviceInfoXML](t, a.getOK(devInfo))
	if di.Model != "DS-2CD1383G2-I" || di.FirmwareVersion != "V5.8.41" {
		t.Fatalf("deviceInfo %+v", di)
	}
	sc := decode[streamingChannelXML](t, a.getOK("/ISAPI/Streaming/channels/101"))
	if sc.Video.Codec != "H.265" || sc.Audio.Codec != "AAC" {
		t.Fatalf("channel 101: %+v", sc)
	}
	twa := decode[twoWayAudioXML](t, a.getOK("/ISAPI/System/TwoWayAudio/channels"))
	if twa.Channels[0].Codec != "AAC" || twa.Channels[0].SamplingRate != 16 {
		t.Fatalf("two-way audio: %+v", twa)
	}
	ill := decode[illegalLoginLockXML](t, a.getOK("/ISAPI/Security/illegalLoginLock"))
	if ill.MaxTimes != 7 {
		t.Fatalf("illegalLoginLock: %+v", ill)
	}
}

func TestNVREndpoints(t *testing.T) {
	d := start(t, sim.Config{Personality: sim.PersonalityNVR})
	a := login(t, d, "admin", "hik12345")
	di := decode[deviceInfoXML](t, a.getOK(devInfo))
	if di.DeviceType != "NVR" || di.Model != "DS-7608NI-K2" {
		t.Fatalf("deviceInfo %+v", di)
	}
	for _, path := range []string{"/ISAPI/Streaming/channels", "/ISAPI/ContentMgmt/StreamingProxy/channels"} {
		list := decode[streamingChannelListXML](t, a.getOK(path))
		if len(list.Channels) != 8 {
			t.Fatalf("%s: %d streams, want 8", path, len(list.Channels))
		}
		for _, sc := range list.Channels {
			ch := sc.ID / 100
			video, audio := "H.264", "G.711alaw"
			if ch == 2 {
				video, audio = "H.265", "AAC"
			}
			if sc.Video.Codec != video || sc.Audio.Codec != audio || (sc.ID%100 != 1 && sc.ID%100 != 2) {
				t.Fatalf("%s stream %d: %+v, want %s/%s", path, sc.ID, sc, video, audio)
			}
		}
	}
	sc := decode[streamingChannelXML](t, a.getOK("/ISAPI/ContentMgmt/StreamingProxy/channels/201"))
	if sc.ID != 201 || sc.Video.Codec != "H.265" {
		t.Fatalf("proxy 201: %+v", sc)
	}
	ip := decode[inputProxyXML](t, a.getOK("/ISAPI/ContentMgmt/InputProxy/channels"))
	if ip.XMLName.Local != "InputProxyChannelList" || len(ip.Channels) != 4 {
		t.Fatalf("input proxy: %+v", ip)
	}
	for i, ch := range ip.Channels {
		if ch.ID != i+1 || ch.IPAddress != "192.168.254."+strconv.Itoa(i+2) || ch.Name == "" {
			t.Fatalf("input proxy channel %d: %+v", i+1, ch)
		}
	}
	st := decode[inputProxyStatusXML](t, a.getOK("/ISAPI/ContentMgmt/InputProxy/channels/status"))
	if len(st.Channels) != 4 || !st.Channels[0].Online || st.Channels[0].Result != "connect" {
		t.Fatalf("input proxy status: %+v", st)
	}
	twa := decode[twoWayAudioXML](t, a.getOK("/ISAPI/System/TwoWayAudio/channels"))
	if len(twa.Channels) != 1 {
		t.Fatalf("two-way audio: %+v", twa)
	}
}

func TestNVROfflineChannel(t *testing.T) {
	d := start(t, sim.Config{Personality: sim.PersonalityNVR, Channels: []sim.Channel{{ID: 1}, {ID: 3, Offline: true, IPAddress: "10.0.0.3"}}})
	a := login(t, d, "admin", "hik12345")
	st := decode[inputProxyStatusXML](t, a.getOK("/ISAPI/ContentMgmt/InputProxy/channels/status"))
	if len(st.Channels) != 2 || st.Channels[1].ID != 3 || st.Channels[1].Online || st.Channels[1].Result == "connect" {
		t.Fatalf("status: %+v", st)
	}
	ip := decode[inputProxyXML](t, a.getOK("/ISAPI/ContentMgmt/InputProxy/channels"))
	if ip.Channels[1].IPAddress != "10.0.0.3" {
		t.Fatalf("input proxy: %+v", ip)
	}
	// RTSP: the offline channel's streams are refused (404, as an NVR whose
	// camera is not connected), the online channel plays
	for path, want := range map[string]int{"/Streaming/Channels/101": 200, "/Streaming/Channels/301": 404, "/Streaming/Channels/302": 404} {
		if code := dialRTSP(t, d.RTSPAddr()).describe(path, "admin", "hik12345"); code != want {
			t.Errorf("DESCRIBE %s: %d, want %d", path, code, want)
		}
	}
}

func TestNamespaces(t *testing.T) {
	for _, ns := range []string{sim.NamespaceHikvision, sim.NamespaceHikvisionV1, sim.NamespaceISAPI, sim.NamespaceStdCGI, sim.NamespacePSIA} {
		t.Run(ns, func(t *testing.T) {
			d := start(t, sim.Config{Namespace: ns})
			c := newClient(t, d)
			_, _, body := c.do("GET", devInfo, "")
			if uc := decode[userCheck](t, body); uc.XMLName.Space != ns {
				t.Fatalf("401 body namespace %q, want %q", uc.XMLName.Space, ns)
			}
			a := login(t, d, "admin", "hik12345")
			if di := decode[deviceInfoXML](t, a.getOK(devInfo)); di.XMLName.Space != ns || di.Model == "" {
				t.Fatalf("deviceInfo %+v, want namespace %q", di, ns)
			}
			status, body := a.get("GET", "/nope")
			if rs := decode[responseStatus](t, body); status != 404 || rs.XMLName.Space != ns {
				t.Fatalf("404 %+v, want namespace %q", rs, ns)
			}
		})
	}
}

func TestNoTalk(t *testing.T) {
	d := start(t, sim.Config{TalkCodec: "none"})
	a := login(t, d, "admin", "hik12345")
	wantStatus(t, a, "GET", "/ISAPI/System/TwoWayAudio/channels", 403, 4, "notSupport")
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []sim.Config{
		{Personality: "doorbell"},
		{Auth: "ntlm"},
		{DigestAlgorithms: []string{"SHA-512"}},
		{Video: "VP8"},
		{Audio: "opus"},
		{Channels: []sim.Channel{{ID: 1}, {ID: 1}}},
		{StaleResponse: "weird"},
	} {
		if d, err := sim.Start(cfg); err == nil {
			_ = d.Close()
			t.Errorf("Start(%+v): no error", cfg)
		}
	}
}
