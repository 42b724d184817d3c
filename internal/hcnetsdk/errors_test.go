package hcnetsdk

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestErrorMapping(t *testing.T) {
	cases := []struct {
		code uint32
		is   error
	}{
		{1, ErrWrongPassword}, {152, ErrWrongPassword}, {153, ErrUserLocked}, {7, ErrNetwork},
		{10, ErrNetwork}, {4, ErrChannel}, {31, ErrTalkBusy}, {47, ErrLoginGone}, {24, ErrBusy},
		{5, ErrMaxLinks}, {17, ErrParameter}, {23, ErrNotSupported}, {3, ErrNotInitialised},
	}
	all := []error{ErrWrongPassword, ErrUserLocked, ErrNetwork, ErrChannel, ErrTalkBusy, ErrLoginGone,
		ErrBusy, ErrMaxLinks, ErrParameter, ErrNotSupported, ErrNotInitialised}
	for _, c := range cases {
		err := error(&Error{Op: "NET_DVR_X", Code: c.code})
		for _, s := range all {
			if got := errors.Is(err, s); got != (s == c.is) {
				t.Errorf("code %d: errors.Is(%v) = %v", c.code, s, got)
			}
		}
		if !strings.Contains(err.Error(), "NET_DVR_X") || CodeText(c.code) == "" {
			t.Errorf("code %d: message %q", c.code, err)
		}
	}
	unknown := &Error{Op: "NET_DVR_X", Code: 99999}
	for _, s := range all {
		if errors.Is(unknown, s) {
			t.Errorf("unknown code matches %v", s)
		}
	}
	e := &Error{Op: "NET_DVR_Login_V40", Code: 153, LockReported: true, LockRemaining: 1799 * time.Second}
	if !strings.Contains(e.Error(), "29m59s") {
		t.Errorf("lock message %q lacks the time left", e)
	}
	e = &Error{Op: "NET_DVR_Login_V40", Code: 1, LockReported: true, TriesLeft: 2}
	if !strings.Contains(e.Error(), "2 tries left") {
		t.Errorf("password message %q lacks the tries left", e)
	}
}

func TestExceptionNames(t *testing.T) {
	if ExceptionPreview.String() != "EXCEPTION_PREVIEW" || Exception(0x9999).String() != "exception(0x9999)" {
		t.Errorf("names: %v %v", ExceptionPreview, Exception(0x9999))
	}
	for _, e := range []Exception{ExceptionExchange, ExceptionPreview, ExceptionAudioExchange, ExceptionPreviewReconnEnd} {
		if !e.Lost() {
			t.Errorf("%v: Lost false", e)
		}
	}
	for _, e := range []Exception{ExceptionReconnect, PreviewReconnectSuccess, ResumeExchange, NetworkFlowTest} {
		if e.Lost() {
			t.Errorf("%v: Lost true", e)
		}
	}
}

// The mirrors against figures measured by compiling a program against the
// vendor's header on linux/amd64.
func TestLayoutVendorFigures(t *testing.T) {
	vendor := map[string]uintptr{
		"sizeof NET_DVR_USER_LOGIN_INFO":                    416,
		"sizeof NET_DVR_DEVICEINFO_V40":                     344,
		"sizeof NET_DVR_DEVICEINFO_V30":                     80,
		"sizeof NET_DVR_PREVIEWINFO":                        280,
		"sizeof NET_DVR_COMPRESSION_AUDIO":                  8,
		"sizeof NET_DVR_LOCAL_SDK_PATH":                     384,
		"offsetof NET_DVR_DEVICEINFO_V40.byRetryLoginTime":  81,
		"offsetof NET_DVR_DEVICEINFO_V40.dwSurplusLockTime": 84,
		"offsetof NET_DVR_DEVICEINFO_V30.byStartDChan":      66,
		"offsetof NET_DVR_DEVICEINFO_V30.byHighDChanNum":    68,
		"offsetof NET_DVR_USER_LOGIN_INFO.sPassword":        196,
		"offsetof NET_DVR_USER_LOGIN_INFO.cbLoginResult":    264,
		"offsetof NET_DVR_PREVIEWINFO.hPlayWnd":             12,
		"offsetof NET_DVR_PREVIEWINFO.dwDisplayBufNum":      60,
	}
	got := layout()
	for name, want := range vendor {
		if got[name] != want {
			t.Errorf("%s: Go %d, vendor header %d", name, got[name], want)
		}
	}
}
