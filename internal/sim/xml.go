package sim

// XML answers, shaped after recorded device answers. Every template gets .NS, the namespace
// configured for the device.

import (
	"bytes"
	"encoding/xml"
	"strings"
	"text/template"
)

const xmlHeader = `<?xml version="1.0" encoding="UTF-8"?>` + "\n"

var templates = template.Must(template.New("").Funcs(template.FuncMap{
	"x": func(s string) string {
		var b strings.Builder
		_ = xml.EscapeText(&b, []byte(s))
		return b.String()
	},
}).Parse(`
{{define "userCheck"}}<userCheck version="2.0" xmlns="{{x .NS}}">
<statusValue>{{.StatusValue}}</statusValue>
<statusString>{{x .StatusString}}</statusString>
{{- if .Lock}}
<lockStatus>{{if .Locked}}lock{{else}}unlock{{end}}</lockStatus>
<unlockTime>{{.UnlockTime}}</unlockTime>
<retryLoginTime>{{.RetryLoginTime}}</retryLoginTime>
{{- end}}
{{- if eq .StatusValue 200}}
<isDefaultPassword>false</isDefaultPassword>
<isRiskPassword>false</isRiskPassword>
<isActivated>true</isActivated>
{{- end}}
</userCheck>
{{end}}

{{define "responseStatus"}}<ResponseStatus version="2.0" xmlns="{{x .NS}}">
<requestURL>{{x .URL}}</requestURL>
<statusCode>{{.Code}}</statusCode>
<statusString>{{x .String}}</statusString>
<subStatusCode>{{x .Sub}}</subStatusCode>
</ResponseStatus>
{{end}}

{{define "deviceInfo"}}<DeviceInfo version="2.0" xmlns="{{x .NS}}">
<deviceName>{{x .Cfg.DeviceName}}</deviceName>
<deviceID>{{x .DeviceID}}</deviceID>
<deviceDescription>{{x .DeviceType}}</deviceDescription>
<deviceLocation>hangzhou</deviceLocation>
<systemContact>Hikvision.China</systemContact>
<model>{{x .Cfg.Model}}</model>
<serialNumber>{{x .Cfg.Serial}}</serialNumber>
<macAddress>{{x .MAC}}</macAddress>
<firmwareVersion>{{x .Cfg.Firmware}}</firmwareVersion>
<firmwareReleasedDate>build 240826</firmwareReleasedDate>
<encoderVersion>V7.3</encoderVersion>
<encoderReleasedDate>build 240826</encoderReleasedDate>
<bootVersion>V1.3.4</bootVersion>
<bootReleasedDate>100316</bootReleasedDate>
<hardwareVersion>0x0</hardwareVersion>
<deviceType>{{x .DeviceType}}</deviceType>
<telecontrolID>88</telecontrolID>
<supportBeep>{{.NVR}}</supportBeep>
<supportVideoLoss>{{.NVR}}</supportVideoLoss>
<firmwareVersionInfo>B-R-H5-0</firmwareVersionInfo>
<manufacturer>hikvision</manufacturer>
</DeviceInfo>
{{end}}

{{define "streamingChannel"}}<StreamingChannel version="2.0" xmlns="{{x .NS}}">
<id>{{.ID}}</id>
<channelName>{{x .Name}}</channelName>
<enabled>true</enabled>
<Transport>
<maxPacketSize>1000</maxPacketSize>
<ControlProtocolList>
<ControlProtocol>
<streamingTransport>RTSP</streamingTransport>
</ControlProtocol>
<ControlProtocol>
<streamingTransport>HTTP</streamingTransport>
</ControlProtocol>
</ControlProtocolList>
<Unicast>
<enabled>true</enabled>
<rtpTransportType>RTP/TCP</rtpTransportType>
</Unicast>
<Security>
<enabled>true</enabled>
<certificateType>digest</certificateType>
</Security>
</Transport>
<Video>
<enabled>true</enabled>
<videoInputChannelID>{{.Channel}}</videoInputChannelID>
<videoCodecType>{{x .Video}}</videoCodecType>
<videoScanType>progressive</videoScanType>
<videoResolutionWidth>{{.Width}}</videoResolutionWidth>
<videoResolutionHeight>{{.Height}}</videoResolutionHeight>
<videoQualityControlType>VBR</videoQualityControlType>
<constantBitRate>{{.BitRate}}</constantBitRate>
<fixedQuality>60</fixedQuality>
<vbrUpperCap>{{.BitRate}}</vbrUpperCap>
<vbrLowerCap>32</vbrLowerCap>
<maxFrameRate>{{.MaxFrameRate}}</maxFrameRate>
<keyFrameInterval>2000</keyFrameInterval>
<snapShotImageType>JPEG</snapShotImageType>
{{- if eq .Video "H.264"}}
<H264Profile>Main</H264Profile>
{{- else if eq .Video "H.265"}}
<H265Profile>Main</H265Profile>
{{- end}}
<GovLength>{{.GovLength}}</GovLength>
<SmartCodec>
<enabled>false</enabled>
</SmartCodec>
</Video>
<Audio>
<enabled>{{.AudioEnabled}}</enabled>
<audioInputChannelID>1</audioInputChannelID>
<audioCompressionType>{{x .Audio}}</audioCompressionType>
</Audio>
</StreamingChannel>
{{end}}

{{define "streamingChannelList"}}<StreamingChannelList version="2.0" xmlns="{{x .NS}}">
{{range .Streams}}{{template "streamingChannel" .}}{{end}}</StreamingChannelList>
{{end}}

{{define "adminAccesses"}}<AdminAccessProtocolList version="2.0" xmlns="{{x .NS}}">
<AdminAccessProtocol>
<id>1</id>
<enabled>true</enabled>
<protocol>HTTP</protocol>
<portNo>{{.HTTPPort}}</portNo>
</AdminAccessProtocol>
<AdminAccessProtocol>
<id>2</id>
<enabled>false</enabled>
<protocol>HTTPS</protocol>
<portNo>443</portNo>
</AdminAccessProtocol>
<AdminAccessProtocol>
<id>3</id>
<enabled>true</enabled>
<protocol>DEV_MANAGE</protocol>
<portNo>8000</portNo>
</AdminAccessProtocol>
<AdminAccessProtocol>
<id>4</id>
<enabled>true</enabled>
<protocol>RTSP</protocol>
<portNo>{{.RTSPPort}}</portNo>
</AdminAccessProtocol>
</AdminAccessProtocolList>
{{end}}

{{define "illegalLoginLock"}}<IllegalLoginLock version="2.0" xmlns="{{x .NS}}">
<enabled>{{.Enabled}}</enabled>
<maxIllegalLoginTimes>{{.MaxTimes}}</maxIllegalLoginTimes>
<maxIllegalLoginLockTime>{{.LockSeconds}}</maxIllegalLoginLockTime>
</IllegalLoginLock>
{{end}}

{{define "inputProxyChannels"}}<InputProxyChannelList version="2.0" xmlns="{{x .NS}}">
{{range .Channels}}<InputProxyChannel version="2.0" xmlns="{{x $.NS}}">
<id>{{.ID}}</id>
<name>{{x .Name}}</name>
<sourceInputPortDescriptor>
<adminProtocol>HIKVISION</adminProtocol>
<addressingFormatType>ipaddress</addressingFormatType>
<ipAddress>{{x .IPAddress}}</ipAddress>
<managePortNo>8000</managePortNo>
<srcInputPort>1</srcInputPort>
<userName>admin</userName>
<streamType>auto</streamType>
<deviceID></deviceID>
</sourceInputPortDescriptor>
<enableAnr>false</enableAnr>
<enableTiming>true</enableTiming>
</InputProxyChannel>
{{end}}</InputProxyChannelList>
{{end}}

{{define "inputProxyStatus"}}<InputProxyChannelStatusList version="2.0" xmlns="{{x .NS}}">
{{range .Channels}}<InputProxyChannelStatus version="2.0" xmlns="{{x $.NS}}">
<id>{{.ID}}</id>
<sourceInputPortDescriptor>
<adminProtocol>HIKVISION</adminProtocol>
<addressingFormatType>ipaddress</addressingFormatType>
<ipAddress>{{x .IPAddress}}</ipAddress>
<managePortNo>8000</managePortNo>
<srcInputPort>1</srcInputPort>
<userName>admin</userName>
<streamType>auto</streamType>
<deviceID></deviceID>
</sourceInputPortDescriptor>
<online>{{not .Offline}}</online>
<chanDetectResult>{{if .Offline}}netUnreachable{{else}}connect{{end}}</chanDetectResult>
</InputProxyChannelStatus>
{{end}}</InputProxyChannelStatusList>
{{end}}

{{define "twoWayAudioChannels"}}<TwoWayAudioChannelList version="2.0" xmlns="{{x .NS}}">
{{range .Channels}}<TwoWayAudioChannel version="2.0" xmlns="{{x $.NS}}">
<id>{{x .ID}}</id>
<enabled>{{.Enabled}}</enabled>
<audioCompressionType>{{x .Codec}}</audioCompressionType>
{{- if eq .Codec "AAC"}}
<audioBitRate>32</audioBitRate>
<audioSamplingRate>16</audioSamplingRate>
{{- end}}
<audioInputType>MicIn</audioInputType>
<speakerVolume>50</speakerVolume>
<noisereduce>false</noisereduce>
<microphoneVolume>50</microphoneVolume>
<audioOutputType>Speaker</audioOutputType>
</TwoWayAudioChannel>
{{end}}</TwoWayAudioChannelList>
{{end}}
`))

// render executes a template and prefixes the XML declaration.
func render(name string, data any) []byte {
	var b bytes.Buffer
	b.WriteString(xmlHeader)
	if err := templates.ExecuteTemplate(&b, name, data); err != nil {
		// the templates are fixed: an error here is a programming mistake
		panic("sim: template " + name + ": " + err.Error())
	}
	return b.Bytes()
}

// statusStrings maps ResponseStatus statusCode to statusString.
var statusStrings = map[int]string{
	1: "OK",
	2: "Device Busy",
	3: "Device Error",
	4: "Invalid Operation",
	5: "Invalid XML Format",
	6: "Invalid XML Content",
	7: "Reboot Required",
}

func responseStatus(ns, url string, code int, sub string) []byte {
	return render("responseStatus", struct {
		NS, URL, String, Sub string
		Code                 int
	}{ns, url, statusStrings[code], sub, code})
}
