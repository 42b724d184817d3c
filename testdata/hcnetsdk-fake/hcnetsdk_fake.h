/*
 * hcnetsdk_fake.h: our own minimal declarations of the few HCNetSDK calls and
 * structures the project uses, written for the test double in
 * hcnetsdk_fake.c. Names, argument lists and field layouts follow Hikvision's
 * public Linux header (LP64: LONG and DWORD are 32 bits, HWND is an unsigned
 * int); only the fields we read or write have their own names, the rest are
 * reserved byte runs of the same size. This is not the vendor's header.
 */
#ifndef HCNETSDK_FAKE_H
#define HCNETSDK_FAKE_H

typedef unsigned int DWORD;
typedef unsigned short WORD;
typedef int LONG;
typedef unsigned char BYTE;
typedef int BOOL;
typedef unsigned int HWND;

#define FAKE_TRUE 1
#define FAKE_FALSE 0

/* Error codes (NET_DVR_GetLastError). */
enum {
	FAKE_ERR_NONE = 0,
	FAKE_ERR_PASSWORD = 1,
	FAKE_ERR_NOINIT = 3,
	FAKE_ERR_CHANNEL = 4,
	FAKE_ERR_OVER_MAXLINK = 5,
	FAKE_ERR_CONNECT = 7,
	FAKE_ERR_ORDER = 12,
	FAKE_ERR_PARAMETER = 17,
	FAKE_ERR_VOICE_OPENED = 31,
	FAKE_ERR_USER_NOT_EXIST = 47,
	FAKE_ERR_USERID_ISUSING = 74,
	FAKE_ERR_USER_LOCKED = 153,
};

/* Exception types (exception callback). */
enum {
	FAKE_EXCEPTION_EXCHANGE = 0x8000,
	FAKE_EXCEPTION_AUDIOEXCHANGE = 0x8001,
	FAKE_EXCEPTION_PREVIEW = 0x8003,
	FAKE_EXCEPTION_RECONNECT = 0x8005,
	FAKE_PREVIEW_RECONNECTSUCCESS = 0x8015,
	FAKE_RESUME_EXCHANGE = 0x8017,
	FAKE_NETWORK_FLOWTEST_EXCEPTION = 0x8018,
};

/* Real-play data types. */
enum {
	FAKE_SYSHEAD = 1,
	FAKE_STREAMDATA = 2,
};

/* NET_DVR_DEVICEINFO_V30: 80 bytes. */
typedef struct {
	BYTE serial[48];        /* 0 */
	BYTE alarmIn;           /* 48 */
	BYTE alarmOut;          /* 49 */
	BYTE disks;             /* 50 */
	BYTE dvrType;           /* 51 */
	BYTE chanNum;           /* 52 analog channels */
	BYTE startChan;         /* 53 first analog channel */
	BYTE audioChanNum;      /* 54 talk channels */
	BYTE ipChanNum;         /* 55 IP channels, low byte */
	BYTE res1[6];           /* 56..61 */
	WORD devType;           /* 62 */
	BYTE res2[2];           /* 64..65 */
	BYTE startDChan;        /* 66 first digital channel */
	BYTE startDTalkChan;    /* 67 */
	BYTE highDChanNum;      /* 68 IP channels, high byte */
	BYTE res3[11];          /* 69..79 */
} NET_DVR_DEVICEINFO_V30;

/* NET_DVR_DEVICEINFO_V40: 344 bytes. */
typedef struct {
	NET_DVR_DEVICEINFO_V30 v30; /* 0 */
	BYTE supportLock;           /* 80 */
	BYTE retryLoginTime;        /* 81 tries left */
	BYTE passwordLevel;         /* 82 */
	BYTE proxyType;             /* 83 */
	DWORD surplusLockTime;      /* 84 seconds left of a lock */
	BYTE res[256];              /* 88..343 */
} NET_DVR_DEVICEINFO_V40;

typedef void (*fLoginResultCallBack)(LONG userID, DWORD result, NET_DVR_DEVICEINFO_V30 *info, void *user);

/* NET_DVR_USER_LOGIN_INFO: 416 bytes. */
typedef struct {
	char deviceAddress[129];          /* 0 */
	BYTE useTransport;                /* 129 */
	WORD port;                        /* 130 */
	char userName[64];                /* 132 */
	char password[64];                /* 196 */
	fLoginResultCallBack cbLoginResult; /* 264 */
	void *user;                       /* 272 */
	BOOL useAsynLogin;                /* 280 */
	BYTE proxyType;                   /* 284 */
	BYTE useUTCTime;                  /* 285 */
	BYTE loginMode;                   /* 286 */
	BYTE https;                       /* 287 */
	LONG proxyID;                     /* 288 */
	BYTE verifyMode;                  /* 292 */
	BYTE res3[119];                   /* 293..411 */
} NET_DVR_USER_LOGIN_INFO;

/* NET_DVR_PREVIEWINFO: 280 bytes. */
typedef struct {
	LONG channel;         /* 0 */
	DWORD streamType;     /* 4: 0 main, 1 sub, 2 third */
	DWORD linkMode;       /* 8: 0 TCP */
	HWND playWnd;         /* 12 */
	DWORD blocked;        /* 16 */
	DWORD passbackRecord; /* 20 */
	BYTE previewMode;     /* 24 */
	BYTE streamID[32];    /* 25 */
	BYTE protoType;       /* 57 */
	BYTE res1;            /* 58 */
	BYTE videoCodingType; /* 59 */
	DWORD displayBufNum;  /* 60 */
	BYTE res[216];        /* 64..279 */
} NET_DVR_PREVIEWINFO;

/* NET_DVR_COMPRESSION_AUDIO: 8 bytes. */
typedef struct {
	BYTE audioEncType;      /* 0 */
	BYTE audioSamplingRate; /* 1 */
	BYTE audioBitRate;      /* 2 */
	BYTE res[4];            /* 3 */
	BYTE support;           /* 7 */
} NET_DVR_COMPRESSION_AUDIO;

/* NET_DVR_LOCAL_SDK_PATH: 384 bytes. */
typedef struct {
	char path[256];
	BYTE res[128];
} NET_DVR_LOCAL_SDK_PATH;

typedef void (*REALDATACALLBACK)(LONG playHandle, DWORD dataType, BYTE *buf, DWORD size, void *user);
typedef void (*EXCEPTIONCALLBACK)(DWORD type, LONG userID, LONG handle, void *user);
typedef void (*VOICEDATACALLBACK)(LONG talkHandle, char *buf, DWORD size, BYTE audioFlag, void *user);

/* The SDK's entry points (same names as the vendor's library). */
BOOL NET_DVR_Init(void);
BOOL NET_DVR_Cleanup(void);
BOOL NET_DVR_SetSDKInitCfg(int type, void *const in);
BOOL NET_DVR_SetConnectTime(DWORD waitMs, DWORD tries);
BOOL NET_DVR_SetReconnect(DWORD intervalMs, BOOL enable);
BOOL NET_DVR_SetRecvTimeOut(DWORD ms);
DWORD NET_DVR_GetLastError(void);
DWORD NET_DVR_GetSDKVersion(void);
BOOL NET_DVR_SetExceptionCallBack_V30(unsigned int reserved1, void *reserved2, EXCEPTIONCALLBACK cb, void *user);
LONG NET_DVR_Login_V40(NET_DVR_USER_LOGIN_INFO *login, NET_DVR_DEVICEINFO_V40 *info);
BOOL NET_DVR_Logout(LONG userID);
LONG NET_DVR_RealPlay_V40(LONG userID, NET_DVR_PREVIEWINFO *preview, REALDATACALLBACK cb, void *user);
BOOL NET_DVR_StopRealPlay(LONG playHandle);
LONG NET_DVR_StartVoiceCom_MR_V30(LONG userID, DWORD voiceChan, VOICEDATACALLBACK cb, void *user);
BOOL NET_DVR_VoiceComSendData(LONG talkHandle, char *buf, DWORD size);
BOOL NET_DVR_StopVoiceCom(LONG talkHandle);
BOOL NET_DVR_GetCurrentAudioCompress(LONG userID, NET_DVR_COMPRESSION_AUDIO *out);

/* Fake-only control surface (tests call these through the same loader). */
int fake_config(const char *kv);      /* "key=value;key=value": see hcnetsdk_fake.c */
int fake_fault(const char *name);     /* reboot, back, stall, resume */
long fake_count(const char *name);    /* open handles and other counters */
long fake_layout(const char *name);   /* sizeof/offsetof of the structures above */
long fake_storm(int threads, int perThread, int bytes); /* max callback time, microseconds */
long fake_late_callbacks(int n);      /* callbacks for the last stopped play/talk */
long fake_talk_bytes(char *out, long cap);
DWORD fake_error_on_new_thread(void); /* NET_DVR_GetLastError read on a fresh thread */

#endif
