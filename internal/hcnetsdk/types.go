package hcnetsdk

import (
	"fmt"
	"time"
)

// Config says where the SDK is and how it should behave. Zero values take
// the defaults noted.
type Config struct {
	// Path is libhcnetsdk.so itself or the folder that holds it.
	Path string
	// ComponentPath is the folder that holds the SDK's HCNetSDKCom/
	// component folder (NET_SDK_INIT_CFG_SDK_PATH). Default: the library's
	// folder.
	ComponentPath string
	// ConnectTimeout bounds one connection attempt (NET_DVR_SetConnectTime,
	// one try). Default 3 s.
	ConnectTimeout time.Duration
	// RecvTimeout bounds the wait for a device answer
	// (NET_DVR_SetRecvTimeOut). Default 5 s.
	RecvTimeout time.Duration
}

const (
	defaultConnectTimeout = 3 * time.Second
	defaultRecvTimeout    = 5 * time.Second
	defaultQueue          = 256
	eventQueue            = 16
)

// LoginParams address one device on the SDK's service port.
type LoginParams struct {
	Address  string // host name or IP
	Port     int    // service port, 8000 on most devices
	User     string
	Password string
}

// DeviceInfo are the facts NET_DVR_Login_V40 reports.
type DeviceInfo struct {
	Serial                  string
	DeviceType              uint16
	AnalogChannels          int // byChanNum
	FirstAnalogChannel      int // byStartChan
	IPChannels              int // byIPChanNum + 256*byHighDChanNum
	FirstIPChannel          int // byStartDChan
	TalkChannels            int // byAudioChanNum
	FirstDigitalTalkChannel int // byStartDTalkChan
	PasswordLevel           int // 1 default, 2 valid, 3 risky, ...
	LockSupported           bool
	TriesLeft               int // byRetryLoginTime, as reported at login
}

// StreamType selects the encoder stream of a channel.
type StreamType uint32

const (
	StreamMain  StreamType = 0
	StreamSub   StreamType = 1
	StreamThird StreamType = 2
)

func (s StreamType) String() string {
	switch s {
	case StreamMain:
		return "main"
	case StreamSub:
		return "sub"
	case StreamThird:
		return "third"
	}
	return fmt.Sprintf("stream(%d)", uint32(s))
}

// PlayParams select what RealPlay plays.
type PlayParams struct {
	Channel int        // SDK channel number (IP channels start at DeviceInfo.FirstIPChannel)
	Stream  StreamType // main, sub or third
	// Queue is the number of packets buffered between the SDK's thread and
	// the reader; when full, packets are dropped and counted. Default 256.
	Queue int
}

// DataType is the kind of a real-play callback's bytes.
type DataType uint32

const (
	DataSysHead  DataType = 1   // 40-byte media header, first
	DataStream   DataType = 2   // MPEG-PS
	DataAudio    DataType = 3   // audio stream data
	DataStdVideo DataType = 4   // standard video stream data
	DataStdAudio DataType = 5   // standard audio stream data
	DataMetadata DataType = 107 // metadata
	DataPrivate  DataType = 112 // private data
)

func (d DataType) String() string {
	switch d {
	case DataSysHead:
		return "syshead"
	case DataStream:
		return "stream"
	case DataAudio:
		return "audio"
	case DataStdVideo:
		return "std-video"
	case DataStdAudio:
		return "std-audio"
	case DataMetadata:
		return "metadata"
	case DataPrivate:
		return "private"
	}
	return fmt.Sprintf("data(%d)", uint32(d))
}

// Packet is one real-play callback's bytes, copied off the SDK's thread.
type Packet struct {
	Type DataType
	Data []byte
}

// Exception is an exception callback's type (dwType).
type Exception uint32

const (
	ExceptionExchange         Exception = 0x8000 // the login's connection is lost
	ExceptionAudioExchange    Exception = 0x8001 // voice talk lost
	ExceptionAlarm            Exception = 0x8002
	ExceptionPreview          Exception = 0x8003 // real-play lost
	ExceptionSerial           Exception = 0x8004
	ExceptionReconnect        Exception = 0x8005 // the SDK is reconnecting a real-play
	ExceptionAlarmReconnect   Exception = 0x8006
	PreviewReconnectSuccess   Exception = 0x8015 // the SDK's reconnect of a real-play worked
	ResumeExchange            Exception = 0x8017 // the login's connection is back
	NetworkFlowTest           Exception = 0x8018
	ExceptionRelogin          Exception = 0x8040
	ReloginSuccess            Exception = 0x8041
	ExceptionReloginFailed    Exception = 0x8044
	ExceptionPreviewReconnEnd Exception = 0x8045 // the SDK gave up reconnecting a real-play
)

var exceptionNames = map[Exception]string{
	ExceptionExchange:         "EXCEPTION_EXCHANGE",
	ExceptionAudioExchange:    "EXCEPTION_AUDIOEXCHANGE",
	ExceptionAlarm:            "EXCEPTION_ALARM",
	ExceptionPreview:          "EXCEPTION_PREVIEW",
	ExceptionSerial:           "EXCEPTION_SERIAL",
	ExceptionReconnect:        "EXCEPTION_RECONNECT",
	ExceptionAlarmReconnect:   "EXCEPTION_ALARMRECONNECT",
	PreviewReconnectSuccess:   "PREVIEW_RECONNECTSUCCESS",
	ResumeExchange:            "RESUME_EXCHANGE",
	NetworkFlowTest:           "NETWORK_FLOWTEST_EXCEPTION",
	ExceptionRelogin:          "EXCEPTION_RELOGIN",
	ReloginSuccess:            "RELOGIN_SUCCESS",
	ExceptionReloginFailed:    "EXCEPTION_RELOGIN_FAILED",
	ExceptionPreviewReconnEnd: "EXCEPTION_PREVIEW_RECONNECT_CLOSED",
}

func (e Exception) String() string {
	if n, ok := exceptionNames[e]; ok {
		return n
	}
	return fmt.Sprintf("exception(0x%x)", uint32(e))
}

// Lost reports whether the exception means the login, real-play or talk it
// names no longer carries data (the caller should stop it and start again).
func (e Exception) Lost() bool {
	switch e {
	case ExceptionExchange, ExceptionAudioExchange, ExceptionPreview,
		ExceptionReloginFailed, ExceptionPreviewReconnEnd:
		return true
	}
	return false
}

// Event is one exception callback routed to the login, real-play or talk
// it concerns.
type Event struct {
	Type   Exception
	UserID int32 // the SDK's login id
	Handle int32 // the SDK's real-play or talk handle (login events: as sent)
}

// TalkEncoding is the voice talk codec NET_DVR_GetCurrentAudioCompress
// reports (byAudioEncType).
type TalkEncoding uint8

const (
	TalkG722   TalkEncoding = 0
	TalkG711U  TalkEncoding = 1
	TalkG711A  TalkEncoding = 2
	TalkMP2L2  TalkEncoding = 5
	TalkG726   TalkEncoding = 6
	TalkAAC    TalkEncoding = 7
	TalkPCM    TalkEncoding = 8
	TalkG7221C TalkEncoding = 9
	TalkAACLC  TalkEncoding = 12
	TalkAACLD  TalkEncoding = 13
	TalkOpus   TalkEncoding = 14
	TalkMP3    TalkEncoding = 15
	TalkADPCM  TalkEncoding = 16
)

func (t TalkEncoding) String() string {
	switch t {
	case TalkG722:
		return "G.722.1"
	case TalkG711U:
		return "G.711 µ-law"
	case TalkG711A:
		return "G.711 A-law"
	case TalkMP2L2:
		return "MP2L2"
	case TalkG726:
		return "G.726"
	case TalkAAC:
		return "AAC"
	case TalkPCM:
		return "PCM"
	case TalkG7221C:
		return "G.722.1 C"
	case TalkAACLC:
		return "AAC-LC"
	case TalkAACLD:
		return "AAC-LD"
	case TalkOpus:
		return "Opus"
	case TalkMP3:
		return "MP3"
	case TalkADPCM:
		return "ADPCM"
	}
	return fmt.Sprintf("encoding(%d)", uint8(t))
}

// AudioCompress is the device's voice talk encoding.
type AudioCompress struct {
	Encoding   TalkEncoding
	SampleRate int // Hz; 0 when the device reports its default
	BitRate    int // the device's bit-rate index (BITRATE_ENCODE_INDEX), raw
}

// sampleRates maps byAudioSamplingRate to Hz.
var sampleRates = map[uint8]int{0: 0, 1: 16000, 2: 32000, 3: 48000, 4: 44100, 5: 8000}

// Stats are the package's process-wide callback counters.
type Stats struct {
	LateCallbacks      uint64 // callbacks for a stopped real-play/talk or unknown user pointer, dropped
	UnroutedExceptions uint64 // exception callbacks naming no open login, real-play or talk
}
