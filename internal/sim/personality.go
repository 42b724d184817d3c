package sim

// Recorder personalities beyond the NVR, and the per-device differences the ISAPI side needs for them:
// analog channels, a fourth stream, bare status answers for absent streams, several talk channels. The
// device facts they copy are in the package doc ("Device kinds").

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/AlexxIT/go2rtc/pkg/aac"
)

// recorderDefaults fills what a DVR or hybrid personality changes from the NVR defaults. Called by
// normalize before the common defaults.
func (cfg *Config) recorderDefaults() {
	if cfg.Model == "" {
		cfg.Model = "iDS-7204HUHI-M1/E"
		if cfg.Personality == PersonalityHybrid {
			cfg.Model = "iDS-7208HQHI-M1/S"
		}
	}
	if cfg.Firmware == "" {
		cfg.Firmware = "V4.75.011"
	}
	if cfg.DeviceName == "" {
		cfg.DeviceName = "Embedded Net DVR"
	}
	if cfg.AbsentStream == nil {
		cfg.AbsentStream = map[int]int{3: http.StatusBadRequest, 4: http.StatusForbidden}
	} else {
		m := make(map[int]int, len(cfg.AbsentStream))
		for k, v := range cfg.AbsentStream {
			m[k] = v
		}
		cfg.AbsentStream = m
	}
	if len(cfg.Channels) > 0 {
		return
	}
	for i := 1; i <= 4; i++ {
		ch := Channel{ID: i, Analog: true, Video: "H.264", Audio: "PCMU"}
		if i == 2 {
			ch.Video = "H.265"
		}
		cfg.Channels = append(cfg.Channels, ch)
	}
	if cfg.Personality == PersonalityHybrid {
		cfg.Channels = append(cfg.Channels,
			Channel{ID: 5, Video: "H.264", Audio: "PCMA", IPAddress: "192.168.254.6"},
			Channel{ID: 6, Video: "H.265", Audio: "AAC", IPAddress: "192.168.254.7"})
	}
}

// recorder reports whether the device is a recorder (NVR, DVR or hybrid).
func (cfg *Config) recorder() bool {
	switch cfg.Personality {
	case PersonalityNVR, PersonalityDVR, PersonalityHybrid:
		return true
	}
	return false
}

// channel returns the channel with the given id, or nil.
func (d *Device) channel(id int) *Channel {
	for i := range d.cfg.Channels {
		if d.cfg.Channels[i].ID == id {
			return &d.cfg.Channels[i]
		}
	}
	return nil
}

// streamOf splits a stream id (e.g. 102) into its channel and stream number; ch is nil when the device
// has no such channel, ok is false when the channel lacks the stream.
func (d *Device) streamOf(id int) (ch *Channel, stream int, ok bool) {
	ch, stream = d.channel(id/100), id%100
	return ch, stream, ch != nil && slices.Contains(ch.Streams, stream)
}

// absentStream is the bare status for a stream the channel lacks (AbsentStream), 0 for the XML answer.
func (d *Device) absentStream(id int) int {
	ch, stream, ok := d.streamOf(id)
	if ch == nil || ok {
		return 0
	}
	return d.cfg.AbsentStream[stream]
}

// talkChannelKnown reports whether id is one of the device's TwoWayAudio channel ids.
func (d *Device) talkChannelKnown(id string) bool {
	n, err := strconv.Atoi(id)
	return err == nil && n >= 1 && n <= d.cfg.TalkChannels && strconv.Itoa(n) == id
}

// capabilitiesXML is GET /ISAPI/System/capabilities, reduced to the counts clients read.
func (d *Device) capabilitiesXML() []byte {
	analog, ip := 0, 0
	for _, ch := range d.cfg.Channels {
		switch {
		case ch.Analog:
			analog++
		case d.cfg.recorder():
			ip++
		}
	}
	if d.cfg.Personality == PersonalityDVR && ip == 0 {
		ip = 2 // the IP channels such a DVR accepts, none connected
	}
	talk := d.cfg.TalkChannels
	if d.cfg.TalkCodec == "none" {
		talk = 0
	}
	var b strings.Builder
	fmt.Fprintf(&b, xmlHeader+`<DeviceCap version="2.0" xmlns="%s">
<SysCap>
<isSupportDst>true</isSupportDst>
<VideoCap>
<videoInputPortNums>%d</videoInputPortNums>
<videoOutputPortNums>1</videoOutputPortNums>
</VideoCap>
<AudioCap>
<audioInputNums>1</audioInputNums>
<audioOutputNums>1</audioOutputNums>
</AudioCap>
</SysCap>
`, xmlEscape(d.cfg.Namespace), analog)
	if d.cfg.recorder() {
		fmt.Fprintf(&b, "<RacmCap>\n<inputProxyNums>%d</inputProxyNums>\n</RacmCap>\n", ip)
	}
	fmt.Fprintf(&b, "<voicetalkNums>%d</voicetalkNums>\n<isSupportSnapshot>true</isSupportSnapshot>\n</DeviceCap>\n", talk)
	return []byte(b.String())
}

// videoInputsXML is GET /ISAPI/System/Video/inputs/channels: the analog inputs (a camera lists its one
// sensor input).
func (d *Device) videoInputsXML() []byte {
	ns := xmlEscape(d.cfg.Namespace)
	var b strings.Builder
	fmt.Fprintf(&b, xmlHeader+`<VideoInputChannelList version="2.0" xmlns="%s">`+"\n", ns)
	for _, ch := range d.cfg.Channels {
		if d.cfg.recorder() && !ch.Analog {
			continue
		}
		fmt.Fprintf(&b, `<VideoInputChannel version="2.0" xmlns="%s">
<id>%d</id>
<inputPort>%d</inputPort>
<videoInputEnabled>true</videoInputEnabled>
<name>%s</name>
<videoFormat>PAL</videoFormat>
<resDesc>%dx%d</resDesc>
</VideoInputChannel>
`, ns, ch.ID, ch.ID, xmlEscape(ch.Name), ch.Width, ch.Height)
	}
	b.WriteString("</VideoInputChannelList>\n")
	return []byte(b.String())
}

// ipChannels are the channels listed under InputProxy (none on a camera).
func (d *Device) ipChannels() []Channel {
	var out []Channel
	for _, ch := range d.cfg.Channels {
		if !ch.Analog {
			out = append(out, ch)
		}
	}
	return out
}

// TalkSessions reports the open talk sessions of every talk channel, in channel order (TalkSession
// reports channel 1 only).
func (d *Device) TalkSessions() []TalkSessionInfo {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []TalkSessionInfo
	for i := 1; i <= d.cfg.TalkChannels; i++ {
		if s := d.talkSessionLocked(strconv.Itoa(i)); s != nil {
			out = append(out, TalkSessionInfo{ID: s.id, Channel: s.channel, Client: s.ip, Streaming: s.conn != nil, Opened: s.opened})
		}
	}
	return out
}

// adtsRate reports whether an ADTS header can name rate Hz (one of the AAC sampling frequency indexes).
func adtsRate(rate int) bool {
	if rate <= 0 || rate > 96000 {
		return false
	}
	_, idx, _, _ := aac.DecodeConfig(aac.EncodeConfig(aac.TypeAACLC, uint32(rate), 1, false))
	return idx < 13
}
