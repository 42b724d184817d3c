package isapi

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
)

// ISAPI resource paths used by the typed calls.
const (
	PathDeviceInfo          = "/ISAPI/System/deviceInfo"
	PathStreamingChannels   = "/ISAPI/Streaming/channels"
	PathAdminAccesses       = "/ISAPI/Security/adminAccesses"
	PathUserCheck           = "/ISAPI/Security/userCheck"
	PathInputProxyChannels  = "/ISAPI/ContentMgmt/InputProxy/channels"
	PathInputProxyStatus    = "/ISAPI/ContentMgmt/InputProxy/channels/status"
	PathTwoWayAudioChannels = "/ISAPI/System/TwoWayAudio/channels"
)

// DefaultRTSPPort is returned by RTSPPort when the device does not say.
const DefaultRTSPPort = 554

// DeviceInfo is GET /ISAPI/System/deviceInfo.
type DeviceInfo struct {
	DeviceName, DeviceID, Model, SerialNumber, MACAddress, FirmwareVersion, FirmwareReleasedDate,
	DeviceType, Manufacturer string
}

// IsNVR reports whether the device is a recorder (NVR, DVR, HVR, XVR, hybrid)
// whose cameras are IP channels behind it.
func (d *DeviceInfo) IsNVR() bool {
	t := strings.ToUpper(d.DeviceType)
	for _, k := range []string{"NVR", "DVR", "HVR", "XVR", "MVR", "HYBRID", "HYBIRD"} {
		if strings.Contains(t, k) {
			return true
		}
	}
	return false
}

type deviceInfoXML struct {
	DeviceName           string `xml:"deviceName"`
	DeviceID             string `xml:"deviceID"`
	Model                string `xml:"model"`
	SerialNumber         string `xml:"serialNumber"`
	MACAddress           string `xml:"macAddress"`
	FirmwareVersion      string `xml:"firmwareVersion"`
	FirmwareReleasedDate string `xml:"firmwareReleasedDate"`
	DeviceType           string `xml:"deviceType"`
	Manufacturer         string `xml:"manufacturer"`
}

// getTyped GETs path, checks the root element's local name and decodes.
func (c *Client) getTyped(ctx context.Context, path, root string, v any) error {
	_, b, err := c.Do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	return decodeTyped(http.MethodGet, path, b, root, v)
}

func decodeTyped(method, path string, b []byte, root string, v any) error {
	if got := rootName(b); got != root {
		if got == "" {
			return protocolError(method, path, "want <%s>, got no XML", root)
		}
		return protocolError(method, path, "want <%s>, got <%s>", root, got)
	}
	if err := decodeXML(b, v); err != nil {
		return protocolError(method, path, "decoding <%s>: %v", root, err)
	}
	return nil
}

// DeviceInfo reads GET /ISAPI/System/deviceInfo. A device that was never
// activated answers an error matching ErrNotActivated.
func (c *Client) DeviceInfo(ctx context.Context) (*DeviceInfo, error) {
	_, b, err := c.Do(ctx, http.MethodGet, PathDeviceInfo, nil)
	if err != nil {
		return nil, err
	}
	if bytes.Contains(b, []byte("notActivated")) {
		return nil, &StatusError{Method: http.MethodGet, Path: PathDeviceInfo, HTTPStatus: http.StatusOK,
			SubStatusCode: "notActivated"}
	}
	var x deviceInfoXML
	if err := decodeTyped(http.MethodGet, PathDeviceInfo, b, "DeviceInfo", &x); err != nil {
		return nil, err
	}
	t := strings.TrimSpace
	return &DeviceInfo{
		DeviceName: t(x.DeviceName), DeviceID: t(x.DeviceID), Model: t(x.Model),
		SerialNumber: t(x.SerialNumber), MACAddress: t(x.MACAddress),
		FirmwareVersion: t(x.FirmwareVersion), FirmwareReleasedDate: t(x.FirmwareReleasedDate),
		DeviceType: t(x.DeviceType), Manufacturer: t(x.Manufacturer),
	}, nil
}

// StreamingChannel is one /ISAPI/Streaming/channels entry (id = channel×100+stream).
type StreamingChannel struct {
	ID            int
	ChannelName   string
	Enabled       bool
	VideoCodec    string // "H.264", "H.265", "MJPEG", as the device says
	Width, Height int
	MaxFrameRate  int // fps*100
	AudioEnabled  bool
	AudioCodec    string // audioCompressionType
}

type streamingChannelXML struct {
	ID          string `xml:"id"`
	ChannelName string `xml:"channelName"`
	Enabled     string `xml:"enabled"`
	Video       struct {
		VideoCodecType        string `xml:"videoCodecType"`
		VideoResolutionWidth  string `xml:"videoResolutionWidth"`
		VideoResolutionHeight string `xml:"videoResolutionHeight"`
		MaxFrameRate          string `xml:"maxFrameRate"`
	} `xml:"Video"`
	Audio struct {
		Enabled              string `xml:"enabled"`
		AudioCompressionType string `xml:"audioCompressionType"`
	} `xml:"Audio"`
}

func (x *streamingChannelXML) toChannel() StreamingChannel {
	return StreamingChannel{
		ID:           atoiOr(x.ID, 0),
		ChannelName:  strings.TrimSpace(x.ChannelName),
		Enabled:      parseBool(x.Enabled),
		VideoCodec:   strings.TrimSpace(x.Video.VideoCodecType),
		Width:        atoiOr(x.Video.VideoResolutionWidth, 0),
		Height:       atoiOr(x.Video.VideoResolutionHeight, 0),
		MaxFrameRate: atoiOr(x.Video.MaxFrameRate, 0),
		AudioEnabled: parseBool(x.Audio.Enabled),
		AudioCodec:   strings.TrimSpace(x.Audio.AudioCompressionType),
	}
}

// StreamingChannels reads GET /ISAPI/Streaming/channels.
func (c *Client) StreamingChannels(ctx context.Context) ([]StreamingChannel, error) {
	var x struct {
		Channels []streamingChannelXML `xml:"StreamingChannel"`
	}
	if err := c.getTyped(ctx, PathStreamingChannels, "StreamingChannelList", &x); err != nil {
		return nil, err
	}
	out := make([]StreamingChannel, 0, len(x.Channels))
	for i := range x.Channels {
		out = append(out, x.Channels[i].toChannel())
	}
	return out, nil
}

// StreamingChannel reads GET /ISAPI/Streaming/channels/<id>.
func (c *Client) StreamingChannel(ctx context.Context, id int) (*StreamingChannel, error) {
	if id <= 0 {
		return nil, protocolError(http.MethodGet, PathStreamingChannels, "bad channel id %d", id)
	}
	var x streamingChannelXML
	if err := c.getTyped(ctx, PathStreamingChannels+"/"+strconv.Itoa(id), "StreamingChannel", &x); err != nil {
		return nil, err
	}
	ch := x.toChannel()
	return &ch, nil
}

// RTSPPort reads the RTSP port from GET /ISAPI/Security/adminAccesses;
// DefaultRTSPPort when the device does not list it or refuses (403/404,
// notSupport). Authentication and transport errors are returned.
func (c *Client) RTSPPort(ctx context.Context) (int, error) {
	var x struct {
		Protocols []struct {
			Protocol string `xml:"protocol"`
			PortNo   string `xml:"portNo"`
		} `xml:"AdminAccessProtocol"`
	}
	err := c.getTyped(ctx, PathAdminAccesses, "AdminAccessProtocolList", &x)
	if err != nil {
		var se *StatusError
		if errors.As(err, &se) && (se.HTTPStatus == 403 || se.HTTPStatus == 404 || errors.Is(err, ErrNotSupported)) {
			return DefaultRTSPPort, nil
		}
		return 0, err
	}
	for _, p := range x.Protocols {
		if strings.EqualFold(strings.TrimSpace(p.Protocol), "RTSP") {
			if n := atoiOr(p.PortNo, 0); n > 0 && n <= 65535 {
				return n, nil
			}
		}
	}
	return DefaultRTSPPort, nil
}

// InputProxyChannel is an NVR IP channel (GET /ISAPI/ContentMgmt/InputProxy/channels).
type InputProxyChannel struct {
	ID        int
	Name      string
	IPAddress string
	Online    bool
}

// InputProxyChannels lists an NVR's IP channels with their online state from
// .../InputProxy/channels/status (Online stays false if the status call is
// refused with 403/404/notSupport).
func (c *Client) InputProxyChannels(ctx context.Context) ([]InputProxyChannel, error) {
	var x struct {
		Channels []struct {
			ID     string `xml:"id"`
			Name   string `xml:"name"`
			Source struct {
				IPAddress string `xml:"ipAddress"`
			} `xml:"sourceInputPortDescriptor"`
		} `xml:"InputProxyChannel"`
	}
	if err := c.getTyped(ctx, PathInputProxyChannels, "InputProxyChannelList", &x); err != nil {
		return nil, err
	}
	out := make([]InputProxyChannel, 0, len(x.Channels))
	for _, ch := range x.Channels {
		out = append(out, InputProxyChannel{
			ID: atoiOr(ch.ID, 0), Name: strings.TrimSpace(ch.Name),
			IPAddress: strings.TrimSpace(ch.Source.IPAddress),
		})
	}
	var st struct {
		Status []struct {
			ID     string `xml:"id"`
			Online string `xml:"online"`
		} `xml:"InputProxyChannelStatus"`
	}
	err := c.getTyped(ctx, PathInputProxyStatus, "InputProxyChannelStatusList", &st)
	if err != nil {
		var se *StatusError
		if errors.As(err, &se) && (se.HTTPStatus == 403 || se.HTTPStatus == 404 || errors.Is(err, ErrNotSupported)) {
			return out, nil
		}
		return nil, err
	}
	online := map[int]bool{}
	for _, s := range st.Status {
		online[atoiOr(s.ID, 0)] = parseBool(s.Online)
	}
	for i := range out {
		out[i].Online = online[out[i].ID]
	}
	return out, nil
}

// InputProxyStatus is the state of one NVR IP channel (GET
// /ISAPI/ContentMgmt/InputProxy/channels/status).
type InputProxyStatus struct {
	ID int
	// Online is the device's <online>; Known is false when the element is
	// missing (then Online says nothing).
	Online, Known bool
	// DetectResult is chanDetectResult: "connect", "netUnreachable",
	// "ipcStreamFail", ... ("" if absent).
	DetectResult string
}

// InputProxyStatus reads the state of an NVR's IP channels in one request.
func (c *Client) InputProxyStatus(ctx context.Context) ([]InputProxyStatus, error) {
	var st struct {
		Status []struct {
			ID     string  `xml:"id"`
			Online *string `xml:"online"`
			Detect string  `xml:"chanDetectResult"`
		} `xml:"InputProxyChannelStatus"`
	}
	if err := c.getTyped(ctx, PathInputProxyStatus, "InputProxyChannelStatusList", &st); err != nil {
		return nil, err
	}
	out := make([]InputProxyStatus, 0, len(st.Status))
	for _, s := range st.Status {
		v := InputProxyStatus{ID: atoiOr(s.ID, 0), DetectResult: strings.TrimSpace(s.Detect)}
		if s.Online != nil {
			v.Known, v.Online = true, parseBool(*s.Online)
		}
		out = append(out, v)
	}
	return out, nil
}

// TwoWayAudioChannel is one voice-talk channel (GET /ISAPI/System/TwoWayAudio/channels).
type TwoWayAudioChannel struct {
	ID                string
	Enabled           bool   // true while a session is open
	AudioCodec        string // audioCompressionType: G.711ulaw, G.711alaw, AAC, G.726, ...
	AudioBitRate      int    // as the device says (kbps on AAC cameras); 0 if absent
	AudioSamplingRate int    // Hz; the device's "16" (kHz) is normalised to 16000; 0 if absent
	AudioOutputType   string
}

// TwoWayAudioChannels reads GET /ISAPI/System/TwoWayAudio/channels.
func (c *Client) TwoWayAudioChannels(ctx context.Context) ([]TwoWayAudioChannel, error) {
	var x struct {
		Channels []struct {
			ID                   string `xml:"id"`
			Enabled              string `xml:"enabled"`
			AudioCompressionType string `xml:"audioCompressionType"`
			AudioBitRate         string `xml:"audioBitRate"`
			AudioSamplingRate    string `xml:"audioSamplingRate"`
			AudioOutputType      string `xml:"audioOutputType"`
		} `xml:"TwoWayAudioChannel"`
	}
	if err := c.getTyped(ctx, PathTwoWayAudioChannels, "TwoWayAudioChannelList", &x); err != nil {
		return nil, err
	}
	out := make([]TwoWayAudioChannel, 0, len(x.Channels))
	for _, ch := range x.Channels {
		out = append(out, TwoWayAudioChannel{
			ID:                strings.TrimSpace(ch.ID),
			Enabled:           parseBool(ch.Enabled),
			AudioCodec:        strings.TrimSpace(ch.AudioCompressionType),
			AudioBitRate:      leadingInt(ch.AudioBitRate),
			AudioSamplingRate: samplingRateHz(ch.AudioSamplingRate),
			AudioOutputType:   strings.TrimSpace(ch.AudioOutputType),
		})
	}
	return out, nil
}

// leadingInt parses the leading digits of s ("32", "32kbps"); 0 if none.
func leadingInt(s string) int {
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return atoiOr(s[:i], 0)
}

// samplingRateHz normalises "16", "16kHz", "16000", "8" to Hz.
func samplingRateHz(s string) int {
	n := leadingInt(s)
	if n > 0 && n < 1000 {
		n *= 1000
	}
	return n
}

// UserCheck verifies the credentials with GET /ISAPI/Security/userCheck:
// nil for statusValue 200, *AuthError for a refused login.
func (c *Client) UserCheck(ctx context.Context) error {
	_, b, err := c.Do(ctx, http.MethodGet, PathUserCheck, nil)
	if err != nil {
		return err
	}
	if rootName(b) != "userCheck" {
		return protocolError(http.MethodGet, PathUserCheck, "want <userCheck>")
	}
	var uc userCheckXML
	if err := decodeXML(b, &uc); err != nil {
		return protocolError(http.MethodGet, PathUserCheck, "decoding <userCheck>: %v", err)
	}
	switch v := atoiOr(uc.StatusValue, 200); v {
	case 200:
		return nil
	case 401:
		return authErrorFromBody(http.MethodGet, PathUserCheck, b)
	default:
		return &StatusError{Method: http.MethodGet, Path: PathUserCheck, HTTPStatus: http.StatusOK,
			StatusString: strings.TrimSpace(uc.StatusString),
			ErrorMsg:     "userCheck statusValue " + strconv.Itoa(v)}
	}
}
