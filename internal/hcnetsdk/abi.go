package hcnetsdk

import "unsafe"

// Go mirrors of the SDK structures this package passes, Linux LP64 layout
// (doc.go says where each fact comes from; layout_test.go checks sizes and
// offsets against C). Fields nobody reads are padding of the same size.

// deviceInfoV30 mirrors NET_DVR_DEVICEINFO_V30 (80 bytes).
type deviceInfoV30 struct {
	Serial         [48]byte // sSerialNumber
	AlarmIn        uint8
	AlarmOut       uint8
	Disks          uint8
	DVRType        uint8
	ChanNum        uint8 // byChanNum
	StartChan      uint8 // byStartChan
	AudioChanNum   uint8 // byAudioChanNum
	IPChanNum      uint8 // byIPChanNum
	_              [6]byte
	DevType        uint16 // wDevType
	_              [2]byte
	StartDChan     uint8 // byStartDChan
	StartDTalkChan uint8 // byStartDTalkChan
	HighDChanNum   uint8 // byHighDChanNum
	_              [11]byte
}

// deviceInfoV40 mirrors NET_DVR_DEVICEINFO_V40 (344 bytes).
type deviceInfoV40 struct {
	V30             deviceInfoV30
	SupportLock     uint8  // bySupportLock
	RetryLoginTime  uint8  // byRetryLoginTime
	PasswordLevel   uint8  // byPasswordLevel
	ProxyType       uint8  // byProxyType
	SurplusLockTime uint32 // dwSurplusLockTime, seconds
	_               [256]byte
}

// loginInfo mirrors NET_DVR_USER_LOGIN_INFO (416 bytes).
type loginInfo struct {
	DeviceAddress [129]byte
	UseTransport  uint8
	Port          uint16
	UserName      [64]byte
	Password      [64]byte
	CbLoginResult uintptr // fLoginResultCallBack, unused (synchronous login)
	User          uintptr
	UseAsynLogin  int32
	ProxyType     uint8
	UseUTCTime    uint8
	LoginMode     uint8 // 0 private protocol
	HTTPS         uint8
	ProxyID       int32
	VerifyMode    uint8
	_             [119]byte
}

// previewInfo mirrors NET_DVR_PREVIEWINFO (280 bytes).
type previewInfo struct {
	Channel         int32
	StreamType      uint32
	LinkMode        uint32 // 0 TCP
	PlayWnd         uint32 // HWND is an unsigned int on Linux; 0: no window
	Blocked         uint32
	PassbackRecord  uint32
	PreviewMode     uint8
	StreamID        [32]byte
	ProtoType       uint8 // 0 private
	Res1            uint8
	VideoCodingType uint8
	DisplayBufNum   uint32
	_               [216]byte
}

// compressionAudio mirrors NET_DVR_COMPRESSION_AUDIO (8 bytes).
type compressionAudio struct {
	AudioEncType      uint8
	AudioSamplingRate uint8
	AudioBitRate      uint8
	_                 [4]byte
	Support           uint8
}

// localSDKPath mirrors NET_DVR_LOCAL_SDK_PATH (384 bytes).
type localSDKPath struct {
	Path [256]byte
	_    [128]byte
}

// NET_SDK_INIT_CFG_TYPE values.
const (
	initCfgSDKPath    = 2
	initCfgLibeayPath = 3
	initCfgSSLeayPath = 4
)

// layout lists the mirrors' sizes and offsets under the C names the fake
// library's fake_layout answers to.
func layout() map[string]uintptr {
	var (
		v30 deviceInfoV30
		v40 deviceInfoV40
		li  loginInfo
		pi  previewInfo
		ca  compressionAudio
	)
	return map[string]uintptr{
		"sizeof NET_DVR_DEVICEINFO_V30":                          unsafe.Sizeof(v30),
		"sizeof NET_DVR_DEVICEINFO_V40":                          unsafe.Sizeof(v40),
		"sizeof NET_DVR_USER_LOGIN_INFO":                         unsafe.Sizeof(li),
		"sizeof NET_DVR_PREVIEWINFO":                             unsafe.Sizeof(pi),
		"sizeof NET_DVR_COMPRESSION_AUDIO":                       unsafe.Sizeof(ca),
		"sizeof NET_DVR_LOCAL_SDK_PATH":                          unsafe.Sizeof(localSDKPath{}),
		"offsetof NET_DVR_DEVICEINFO_V30.byChanNum":              unsafe.Offsetof(v30.ChanNum),
		"offsetof NET_DVR_DEVICEINFO_V30.byStartChan":            unsafe.Offsetof(v30.StartChan),
		"offsetof NET_DVR_DEVICEINFO_V30.byAudioChanNum":         unsafe.Offsetof(v30.AudioChanNum),
		"offsetof NET_DVR_DEVICEINFO_V30.byIPChanNum":            unsafe.Offsetof(v30.IPChanNum),
		"offsetof NET_DVR_DEVICEINFO_V30.wDevType":               unsafe.Offsetof(v30.DevType),
		"offsetof NET_DVR_DEVICEINFO_V30.byStartDChan":           unsafe.Offsetof(v30.StartDChan),
		"offsetof NET_DVR_DEVICEINFO_V30.byStartDTalkChan":       unsafe.Offsetof(v30.StartDTalkChan),
		"offsetof NET_DVR_DEVICEINFO_V30.byHighDChanNum":         unsafe.Offsetof(v30.HighDChanNum),
		"offsetof NET_DVR_DEVICEINFO_V40.bySupportLock":          unsafe.Offsetof(v40.SupportLock),
		"offsetof NET_DVR_DEVICEINFO_V40.byRetryLoginTime":       unsafe.Offsetof(v40.RetryLoginTime),
		"offsetof NET_DVR_DEVICEINFO_V40.byPasswordLevel":        unsafe.Offsetof(v40.PasswordLevel),
		"offsetof NET_DVR_DEVICEINFO_V40.dwSurplusLockTime":      unsafe.Offsetof(v40.SurplusLockTime),
		"offsetof NET_DVR_USER_LOGIN_INFO.byUseTransport":        unsafe.Offsetof(li.UseTransport),
		"offsetof NET_DVR_USER_LOGIN_INFO.wPort":                 unsafe.Offsetof(li.Port),
		"offsetof NET_DVR_USER_LOGIN_INFO.sUserName":             unsafe.Offsetof(li.UserName),
		"offsetof NET_DVR_USER_LOGIN_INFO.sPassword":             unsafe.Offsetof(li.Password),
		"offsetof NET_DVR_USER_LOGIN_INFO.cbLoginResult":         unsafe.Offsetof(li.CbLoginResult),
		"offsetof NET_DVR_USER_LOGIN_INFO.pUser":                 unsafe.Offsetof(li.User),
		"offsetof NET_DVR_USER_LOGIN_INFO.bUseAsynLogin":         unsafe.Offsetof(li.UseAsynLogin),
		"offsetof NET_DVR_USER_LOGIN_INFO.byLoginMode":           unsafe.Offsetof(li.LoginMode),
		"offsetof NET_DVR_USER_LOGIN_INFO.byHttps":               unsafe.Offsetof(li.HTTPS),
		"offsetof NET_DVR_PREVIEWINFO.dwStreamType":              unsafe.Offsetof(pi.StreamType),
		"offsetof NET_DVR_PREVIEWINFO.dwLinkMode":                unsafe.Offsetof(pi.LinkMode),
		"offsetof NET_DVR_PREVIEWINFO.hPlayWnd":                  unsafe.Offsetof(pi.PlayWnd),
		"offsetof NET_DVR_PREVIEWINFO.bBlocked":                  unsafe.Offsetof(pi.Blocked),
		"offsetof NET_DVR_PREVIEWINFO.byPreviewMode":             unsafe.Offsetof(pi.PreviewMode),
		"offsetof NET_DVR_PREVIEWINFO.byProtoType":               unsafe.Offsetof(pi.ProtoType),
		"offsetof NET_DVR_PREVIEWINFO.dwDisplayBufNum":           unsafe.Offsetof(pi.DisplayBufNum),
		"offsetof NET_DVR_COMPRESSION_AUDIO.byAudioEncType":      unsafe.Offsetof(ca.AudioEncType),
		"offsetof NET_DVR_COMPRESSION_AUDIO.byAudioSamplingRate": unsafe.Offsetof(ca.AudioSamplingRate),
		"offsetof NET_DVR_COMPRESSION_AUDIO.byAudioBitRate":      unsafe.Offsetof(ca.AudioBitRate),
	}
}
