// Package hcnetsdk binds Hikvision's device network SDK (HCNetSDK,
// libhcnetsdk.so) at run time, without cgo: login, real-play, voice talk
// and the SDK's exception callback, with Go types and errors.
//
// # Build
//
// The loader is github.com/ebitengine/purego and is compiled in only with
// the build tag hcnetsdk on linux/amd64 and linux/arm64. purego works with
// CGO_ENABLED=0 (its fakecgo package sets the runtime up for C threads), but
// the binary then needs the system's dynamic loader and C library: `file`
// shows "dynamically linked, interpreter /lib64/ld-linux-x86-64.so.2" for a
// CGO_ENABLED=0 program importing purego. Without the tag the package still
// compiles, the binary stays static, and Open returns a *LoadError
// (ErrUnsupported) saying how to build with SDK support. The vendor ships the
// SDK for glibc Linux on x86_64 and aarch64 (and Windows) only.
//
// # Use
//
// Open once per process (the SDK is process-global); Login per device;
// Session.RealPlay per stream; Session.StartTalk for voice talk;
// Play.Stop, Talk.Stop, Session.Logout and SDK.Close release everything.
// All SDK calls that can wait on the network take a context: when it ends
// first, the caller gets its error at once and whatever the SDK opens
// meanwhile is released when the call returns. SDK.Close waits for such
// calls only until its own context ends.
//
// # Threads
//
//   - The SDK keeps its last error per OS thread: an error raised on one
//     thread reads as 0 on another (observed with the vendor's library: a
//     failed login's error 7 reads as 0 from another thread). Every call and
//     its NET_DVR_GetLastError run under runtime.LockOSThread on one thread.
//   - The SDK calls back (real-play data, voice talk data, exceptions) on
//     threads of its own. The callbacks are made once per process with
//     purego.NewCallback (purego keeps at most 2000 and never frees them),
//     are passed a registry key as user pointer (never a Go pointer), copy
//     what they are given, queue it without blocking (a full queue drops and
//     counts) and drop at once anything for a real-play, talk or login that
//     has been stopped. Stopping a real-play waits for its data callback to
//     return (integrators report NET_DVR_StopRealPlay hanging when its
//     callback blocks), so a callback that blocked would hang the stop.
//   - Keys are never reused; SDK handles are (the SDK hands out the lowest
//     free number), so the handle maps are cleared before the SDK is asked to
//     stop or log out.
//
// # ABI facts and where they come from
//
// Entry points, argument lists, constants and structure layouts come from
// Hikvision's public HCNetSDK.h (English edition; copies are in several
// public GitHub repositories, e.g. jacksondb80/hiklib). On Linux the header
// defines DWORD as unsigned int, LONG and BOOL as int, HWND as unsigned int,
// so on LP64 LONG and DWORD are 32 bits and pointers 64. Calls used:
//
//	BOOL  NET_DVR_Init(void), NET_DVR_Cleanup(void)
//	BOOL  NET_DVR_SetSDKInitCfg(NET_SDK_INIT_CFG_TYPE, void *in)
//	        2 NET_SDK_INIT_CFG_SDK_PATH (NET_DVR_LOCAL_SDK_PATH: char sPath[256], BYTE byRes[128]),
//	        3 libcrypto path, 4 libssl path (char[256]); set before NET_DVR_Init
//	BOOL  NET_DVR_SetConnectTime(DWORD waitMs = 3000, DWORD tries = 3)
//	BOOL  NET_DVR_SetReconnect(DWORD intervalMs = 30000, BOOL enable = TRUE)
//	BOOL  NET_DVR_SetRecvTimeOut(DWORD ms = 5000)
//	DWORD NET_DVR_GetLastError(void), NET_DVR_GetSDKVersion(void)
//	BOOL  NET_DVR_SetExceptionCallBack_V30(UINT reserved1, void *reserved2,
//	        void (*)(DWORD type, LONG userID, LONG handle, void *user), void *user)
//	LONG  NET_DVR_Login_V40(NET_DVR_USER_LOGIN_INFO *, NET_DVR_DEVICEINFO_V40 *)   -1 on failure
//	BOOL  NET_DVR_Logout(LONG userID)
//	LONG  NET_DVR_RealPlay_V40(LONG userID, NET_DVR_PREVIEWINFO *,
//	        void (*)(LONG handle, DWORD dataType, BYTE *buf, DWORD size, void *user), void *user)
//	BOOL  NET_DVR_StopRealPlay(LONG handle)
//	LONG  NET_DVR_StartVoiceCom_MR_V30(LONG userID, DWORD voiceChan,
//	        void (*)(LONG handle, char *buf, DWORD size, BYTE audioFlag, void *user), void *user)
//	BOOL  NET_DVR_VoiceComSendData(LONG handle, char *buf, DWORD size)
//	BOOL  NET_DVR_StopVoiceCom(LONG handle)
//	BOOL  NET_DVR_GetCurrentAudioCompress(LONG userID, NET_DVR_COMPRESSION_AUDIO *)
//
// The defaults shown are the header's C++ default arguments: the SDK
// reconnects by itself unless told not to; this package sets one connect
// try of Config.ConnectTimeout, Config.RecvTimeout, and reconnect off.
//
// Layouts (Linux LP64; sizes and every offset in abi.go were also checked
// by compiling a program against the vendor's header with g++ on
// linux/amd64, identical in all 37 figures; the test checks them against
// the fake's C header at every run):
//
//	NET_DVR_USER_LOGIN_INFO 416: sDeviceAddress[129] 0, byUseTransport 129, wPort 130,
//	    sUserName[64] 132, sPassword[64] 196, cbLoginResult 264, pUser 272, bUseAsynLogin 280,
//	    byProxyType 284, byUseUTCTime 285, byLoginMode 286, byHttps 287, iProxyID 288,
//	    byVerifyMode 292, byRes3[119]
//	NET_DVR_DEVICEINFO_V30 80: sSerialNumber[48] 0, byChanNum 52, byStartChan 53,
//	    byAudioChanNum 54, byIPChanNum 55, wDevType 62, byStartDChan 66, byStartDTalkChan 67,
//	    byHighDChanNum 68 (IP channels = byIPChanNum + 256*byHighDChanNum)
//	NET_DVR_DEVICEINFO_V40 344: struDeviceV30 0, bySupportLock 80 (the next two are valid
//	    only when it is 1), byRetryLoginTime 81 (tries left), byPasswordLevel 82,
//	    dwSurplusLockTime 84 (lock time left, seconds), byRes2 up to 344
//	NET_DVR_PREVIEWINFO 280: lChannel 0, dwStreamType 4 (0 main, 1 sub, 2 third),
//	    dwLinkMode 8 (0 TCP), hPlayWnd 12 (0: no window), bBlocked 16 (0: return at once),
//	    bPassbackRecord 20, byPreviewMode 24, byStreamID[32] 25, byProtoType 57 (0 private),
//	    dwDisplayBufNum 60, byRes up to 280
//	NET_DVR_COMPRESSION_AUDIO 8: byAudioEncType 0 (0 G.722.1, 1 G.711µ, 2 G.711A, 5 MP2L2,
//	    6 G.726, 7 AAC, 8 PCM, 9 G.722.1C, 12 AAC-LC, 13 AAC-LD, 14 Opus, 15 MP3, 16 ADPCM),
//	    byAudioSamplingRate 1 (0 default, 1 16k, 2 32k, 3 48k, 4 44.1k, 5 8k), byAudioBitRate 2
//
// Real-play data types: 1 NET_DVR_SYSHEAD (the 40-byte media header, first),
// 2 NET_DVR_STREAMDATA (MPEG-PS), 3 audio, 4/5 standard video/audio,
// 107 metadata, 112 private. The media header starts with ASCII "IMKH"
// followed by little-endian version, device id, system format (2 =
// MPEG-2 PS), video format, audio format, channels, bits per sample,
// sample rate and bit rate.
//
// Exception types (dwType): 0x8000 EXCEPTION_EXCHANGE (the login's link is
// lost), 0x8001 EXCEPTION_AUDIOEXCHANGE, 0x8002 EXCEPTION_ALARM,
// 0x8003 EXCEPTION_PREVIEW, 0x8005 EXCEPTION_RECONNECT (the SDK's own preview
// reconnect), 0x8006 EXCEPTION_ALARMRECONNECT, 0x8015 PREVIEW_RECONNECTSUCCESS,
// 0x8017 RESUME_EXCHANGE, 0x8040/0x8041/0x8044 relogin, relogin success and
// relogin failed, 0x8045 EXCEPTION_PREVIEW_RECONNECT_CLOSED. Preview types
// name the real-play handle, EXCEPTION_AUDIOEXCHANGE the talk handle, the
// others the login; login events are also passed to the login's real-plays
// and talks.
//
// Error codes (NET_DVR_GetLastError) are listed in errors.go with the
// sentinel each maps to; notably 1 wrong user name or password, 7 cannot
// connect, 10 receive timeout, 17 parameter, 24 busy, 31 voice talk channel
// occupied, 47 user id unknown (logged out or no longer valid), 74 user id
// still in use at logout, 152 no such user, 153 user locked.
//
// Loading: the library is opened from Config.Path (the file or its folder)
// with RTLD_NOW|RTLD_GLOBAL; libhpr.so and libHCCore.so from the same folder
// are opened first when present, so libhcnetsdk.so's dependencies resolve
// without LD_LIBRARY_PATH. The component folder HCNetSDKCom/ is found through
// NET_SDK_INIT_CFG_SDK_PATH (Config.ComponentPath, default the library's
// folder), and the vendor's own libcrypto/libssl beside the library through
// init settings 3 and 4.
package hcnetsdk
