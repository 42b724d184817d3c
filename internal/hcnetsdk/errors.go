package hcnetsdk

import (
	"errors"
	"fmt"
	"runtime"
	"time"
)

// Sentinels for errors.Is. An *Error matches the sentinel its SDK code maps
// to (see codes); a *LoadError matches ErrLibraryMissing or ErrUnsupported.
var (
	ErrLibraryMissing = errors.New("hcnetsdk: library not found")
	ErrUnsupported    = errors.New("hcnetsdk: not supported by this platform or build")
	ErrLibrary        = errors.New("hcnetsdk: library cannot be loaded")
	ErrInUse          = errors.New("hcnetsdk: the SDK is already open in this process")
	ErrClosed         = errors.New("hcnetsdk: closed")

	ErrWrongPassword    = errors.New("hcnetsdk: user name or password wrong")
	ErrUserLocked       = errors.New("hcnetsdk: user locked by the device")
	ErrNoPrivilege      = errors.New("hcnetsdk: user has no privilege for this")
	ErrNotInitialised   = errors.New("hcnetsdk: SDK not initialised")
	ErrChannel          = errors.New("hcnetsdk: no such channel")
	ErrMaxLinks         = errors.New("hcnetsdk: device connection limit reached")
	ErrNetwork          = errors.New("hcnetsdk: network error")
	ErrParameter        = errors.New("hcnetsdk: parameter rejected")
	ErrNotSupported     = errors.New("hcnetsdk: not supported by the device")
	ErrBusy             = errors.New("hcnetsdk: device busy")
	ErrTalkBusy         = errors.New("hcnetsdk: voice talk channel already in use")
	ErrLoginGone        = errors.New("hcnetsdk: login no longer valid")
	ErrComponentMissing = errors.New("hcnetsdk: SDK component missing")
)

// code describes one SDK error code (NET_DVR_GetLastError).
type code struct {
	text string
	is   error
}

// codes is the table of the SDK error codes this package names. Codes not
// listed are reported by number and match no sentinel.
var codes = map[uint32]code{
	1:   {"user name or password wrong", ErrWrongPassword},
	2:   {"no privilege", ErrNoPrivilege},
	3:   {"SDK not initialised", ErrNotInitialised},
	4:   {"channel number wrong", ErrChannel},
	5:   {"too many clients connected to the device", ErrMaxLinks},
	6:   {"version mismatch", ErrNotSupported},
	7:   {"cannot connect to the device", ErrNetwork},
	8:   {"send to the device failed", ErrNetwork},
	9:   {"receive from the device failed", ErrNetwork},
	10:  {"receive from the device timed out", ErrNetwork},
	11:  {"data from the device malformed", ErrNetwork},
	12:  {"calls made in the wrong order", ErrParameter},
	13:  {"no privilege for this operation", ErrNoPrivilege},
	14:  {"device command timed out", ErrNetwork},
	17:  {"parameter error", ErrParameter},
	18:  {"channel in error state", ErrChannel},
	23:  {"not supported by the device", ErrNotSupported},
	24:  {"device busy", ErrBusy},
	28:  {"device out of resources", ErrBusy},
	31:  {"voice talk channel occupied", ErrTalkBusy},
	41:  {"resource allocation failed", ErrBusy},
	44:  {"socket creation failed", ErrNetwork},
	46:  {"maximum number reached", ErrMaxLinks},
	47:  {"user does not exist (logged out or unavailable)", ErrLoginGone},
	52:  {"maximum number of device users reached", ErrMaxLinks},
	72:  {"socket bind failed", ErrNetwork},
	73:  {"connection closed", ErrNetwork},
	74:  {"user id still in use at logout", ErrParameter},
	83:  {"IP channel offline", ErrChannel},
	91:  {"channel does not support this", ErrNotSupported},
	102: {"user not logged in", ErrLoginGone},
	107: {"preview component failed to load", ErrComponentMissing},
	108: {"voice talk component failed to load", ErrComponentMissing},
	114: {"device core config component failed to load", ErrComponentMissing},
	148: {"SSL library failed to load", ErrComponentMissing},
	152: {"user name does not exist", ErrWrongPassword},
	153: {"user locked", ErrUserLocked},
	154: {"invalid user id", ErrLoginGone},
	156: {"libcrypto failed to load", ErrComponentMissing},
	157: {"libssl failed to load", ErrComponentMissing},
}

// CodeText returns the description of an SDK error code ("" if unknown).
func CodeText(c uint32) string { return codes[c].text }

// Error is a failed SDK call: the entry point and NET_DVR_GetLastError's code.
// A failed login also carries the device's lock facts when it reports them.
type Error struct {
	Op   string // SDK entry point, e.g. "NET_DVR_Login_V40"
	Code uint32 // NET_DVR_GetLastError

	// Login only, valid when LockReported: the device supports login locking
	// and told how many tries are left and how long a lock still lasts.
	LockReported  bool
	TriesLeft     int
	LockRemaining time.Duration
}

func (e *Error) Error() string {
	s := fmt.Sprintf("hcnetsdk: %s: error %d", e.Op, e.Code)
	if t := codes[e.Code].text; t != "" {
		s += " (" + t + ")"
	}
	if e.LockReported {
		switch {
		case e.Code == 153 && e.LockRemaining > 0:
			s += fmt.Sprintf(", locked for another %s", e.LockRemaining)
		case e.Code == 1:
			s += fmt.Sprintf(", %d tries left before the device locks the user", e.TriesLeft)
		}
	}
	return s
}

// Is matches the sentinel of the error's code.
func (e *Error) Is(target error) bool {
	c, ok := codes[e.Code]
	return ok && c.is == target
}

// LoadError says why the SDK cannot be used and what to install where.
type LoadError struct {
	Path string // library path tried ("" when none could be tried)
	Err  error  // ErrLibraryMissing, ErrUnsupported or ErrLibrary
	Why  string // detail: dlopen's message, the missing symbol, the platform
}

func (e *LoadError) Error() string {
	var what string
	switch {
	case errors.Is(e.Err, ErrUnsupported):
		what = "hcnetsdk: " + e.Why
	case errors.Is(e.Err, ErrLibraryMissing):
		what = fmt.Sprintf("hcnetsdk: %s not found at %q", libName, e.Path)
	default:
		what = fmt.Sprintf("hcnetsdk: cannot load %q: %s", e.Path, e.Why)
	}
	return what + ": " + installHint()
}

func (e *LoadError) Unwrap() error { return e.Err }

const libName = "libhcnetsdk.so"

func installHint() string {
	arch := "x86_64 (\"Linux 64-bit\")"
	if runtime.GOARCH == "arm64" {
		arch = "aarch64 (\"Linux ARM 64-bit\")"
	}
	return "install Hikvision's device network SDK (HCNetSDK) for Linux " + arch +
		" from Hikvision under its licence, and set the SDK path to the folder holding " +
		libName + ", libHCCore.so and HCNetSDKCom/"
}
