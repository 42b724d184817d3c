package hcnetsdk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// lib holds the SDK's entry points (filled by the platform loader) and the
// C addresses of this package's callbacks.
type lib struct {
	path string

	init                    func() int32
	cleanup                 func() int32
	setSDKInitCfg           func(typ int32, in unsafe.Pointer) int32
	setConnectTime          func(waitMs, tries uint32) int32
	setReconnect            func(intervalMs uint32, enable int32) int32
	setRecvTimeOut          func(ms uint32) int32
	getLastError            func() uint32
	getSDKVersion           func() uint32
	setExceptionCallBackV30 func(reserved1 uint32, reserved2 uintptr, cb uintptr, user uintptr) int32
	loginV40                func(in *loginInfo, out *deviceInfoV40) int32
	logout                  func(userID int32) int32
	realPlayV40             func(userID int32, in *previewInfo, cb uintptr, user uintptr) int32
	stopRealPlay            func(handle int32) int32
	startVoiceComMRV30      func(userID int32, channel uint32, cb uintptr, user uintptr) int32
	voiceComSendData        func(handle int32, buf *byte, n uint32) int32
	stopVoiceCom            func(handle int32) int32
	getCurrentAudioCompress func(userID int32, out *compressionAudio) int32

	dataCB, exceptionCB, voiceCB uintptr
}

// SDK is the loaded and initialised library. Only one may be open per
// process at a time (the vendor's library is process-global).
type SDK struct {
	lib     *lib
	cfg     Config
	version uint32

	mu       sync.Mutex
	closed   bool
	sessions map[*Session]struct{}
	inflight tracker // SDK calls under way, including abandoned ones, and Close's logouts
	closeErr error   // what Close's logouts returned
}

var (
	openMu  sync.Mutex
	openSDK *SDK
)

// Open loads the library cfg.Path names, initialises it once for the
// process (connect and receive timeouts, the SDK's own reconnect off, the
// exception callback) and returns it. Without the library, or on a
// platform or build without SDK support, it returns a *LoadError saying
// what to install where.
func Open(cfg Config) (*SDK, error) {
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = defaultConnectTimeout
	}
	if cfg.RecvTimeout <= 0 {
		cfg.RecvTimeout = defaultRecvTimeout
	}
	if err := buildSupport(cfg.Path); err != nil {
		return nil, err
	}
	file, dir, err := resolve(cfg.Path)
	if err != nil {
		return nil, err
	}
	if cfg.ComponentPath == "" {
		cfg.ComponentPath = dir
	}

	openMu.Lock()
	defer openMu.Unlock()
	if openSDK != nil {
		return nil, fmt.Errorf("%w (loaded from %q)", ErrInUse, openSDK.lib.path)
	}
	l, err := openLibrary(file, dir)
	if err != nil {
		return nil, err
	}
	s := &SDK{lib: l, cfg: cfg, sessions: map[*Session]struct{}{}}
	if err := s.initialise(dir); err != nil {
		return nil, err
	}
	openSDK = s
	return s, nil
}

// resolve turns the configured path into the library file and its folder.
func resolve(path string) (file, dir string, err error) {
	if runtime.GOOS != "linux" || (runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64") {
		return "", "", &LoadError{Path: path, Err: ErrUnsupported,
			Why: fmt.Sprintf("Hikvision ships the device network SDK for Linux x86_64 and aarch64 only; this is %s/%s", runtime.GOOS, runtime.GOARCH)}
	}
	if path == "" {
		return "", "", &LoadError{Err: ErrLibraryMissing, Why: "no SDK path configured"}
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", "", &LoadError{Path: path, Err: ErrLibraryMissing, Why: err.Error()}
	}
	st, err := os.Stat(abs)
	if err == nil && st.IsDir() {
		abs = filepath.Join(abs, libName)
		st, err = os.Stat(abs)
	}
	if err != nil || st.IsDir() {
		return "", "", &LoadError{Path: abs, Err: ErrLibraryMissing}
	}
	return abs, filepath.Dir(abs), nil
}

func (s *SDK) initialise(dir string) error {
	l := s.lib
	var p localSDKPath
	copy(p.Path[:len(p.Path)-1], s.cfg.ComponentPath)
	// The vendor's package carries its own OpenSSL beside the library.
	var crypto, ssl [256]byte
	if f := firstFile(dir, "libcrypto.so.1.1", "libcrypto.so"); f != "" {
		copy(crypto[:255], f)
	}
	if f := firstFile(dir, "libssl.so.1.1", "libssl.so"); f != "" {
		copy(ssl[:255], f)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	l.setSDKInitCfg(initCfgSDKPath, unsafe.Pointer(&p))
	if crypto[0] != 0 {
		l.setSDKInitCfg(initCfgLibeayPath, unsafe.Pointer(&crypto))
	}
	if ssl[0] != 0 {
		l.setSDKInitCfg(initCfgSSLeayPath, unsafe.Pointer(&ssl))
	}
	if l.init() == 0 {
		return &Error{Op: "NET_DVR_Init", Code: l.getLastError()}
	}
	ms := func(d time.Duration) uint32 { return uint32(d / time.Millisecond) }
	steps := []struct {
		op string
		fn func() int32
	}{
		{"NET_DVR_SetConnectTime", func() int32 { return l.setConnectTime(ms(s.cfg.ConnectTimeout), 1) }},
		{"NET_DVR_SetRecvTimeOut", func() int32 { return l.setRecvTimeOut(ms(s.cfg.RecvTimeout)) }},
		// The caller's supervisor owns reconnecting: the SDK's own is off.
		{"NET_DVR_SetReconnect", func() int32 { return l.setReconnect(10000, 0) }},
		{"NET_DVR_SetExceptionCallBack_V30", func() int32 { return l.setExceptionCallBackV30(0, 0, l.exceptionCB, 0) }},
	}
	for _, st := range steps {
		if st.fn() == 0 {
			err := &Error{Op: st.op, Code: l.getLastError()}
			l.cleanup()
			return err
		}
	}
	s.version = l.getSDKVersion()
	return nil
}

func firstFile(dir string, names ...string) string {
	for _, n := range names {
		p := filepath.Join(dir, n)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	return ""
}

// Version is NET_DVR_GetSDKVersion's answer (high 16 bits major, low minor).
func (s *SDK) Version() uint32 { return s.version }

// Path is the library file loaded.
func (s *SDK) Path() string { return s.lib.path }

// Close logs every session out (stopping its real-plays and talks), waits
// for that and for SDK calls still under way until ctx ends, then calls
// NET_DVR_Cleanup. If ctx ends first it returns an error and leaves the SDK
// initialised: the logouts go on, and Close may be called again. It never
// waits beyond ctx.
func (s *SDK) Close(ctx context.Context) error {
	s.mu.Lock()
	first := !s.closed
	s.closed = true
	sessions := make([]*Session, 0, len(s.sessions))
	for ss := range s.sessions {
		sessions = append(sessions, ss)
	}
	if first {
		s.inflight.add()
	}
	s.mu.Unlock()
	if first {
		go func() {
			defer s.inflight.done()
			var errs []error
			for _, ss := range sessions {
				if err := ss.Logout(); err != nil {
					errs = append(errs, err)
				}
			}
			s.mu.Lock()
			s.closeErr = errors.Join(errs...)
			s.mu.Unlock()
		}()
	}
	select {
	case <-s.inflight.idle():
	case <-ctx.Done():
		return fmt.Errorf("hcnetsdk: close: SDK calls still under way: %w", ctx.Err())
	}
	openMu.Lock()
	defer openMu.Unlock()
	if openSDK != s {
		return nil // closed already
	}
	s.mu.Lock()
	errs := []error{s.closeErr}
	s.mu.Unlock()
	runtime.LockOSThread()
	if s.lib.cleanup() == 0 {
		errs = append(errs, &Error{Op: "NET_DVR_Cleanup", Code: s.lib.getLastError()})
	}
	runtime.UnlockOSThread()
	openSDK = nil
	return errors.Join(errs...)
}

// tracker counts operations under way; idle's channel is closed while
// there are none.
type tracker struct {
	mu   sync.Mutex
	n    int
	zero chan struct{}
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (t *tracker) add() {
	t.mu.Lock()
	if t.n == 0 {
		t.zero = make(chan struct{})
	}
	t.n++
	t.mu.Unlock()
}

func (t *tracker) done() {
	t.mu.Lock()
	t.n--
	if t.n == 0 {
		close(t.zero)
	}
	t.mu.Unlock()
}

func (t *tracker) idle() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n == 0 {
		return closedChan
	}
	return t.zero
}

// callResult is one SDK call's return value and, when it failed, the
// thread's NET_DVR_GetLastError.
type callResult struct {
	r    int32
	code uint32
}

// call runs fn and, if it failed (failed(r)), reads the last error on the
// same locked OS thread: the SDK keeps its last error per thread.
func (s *SDK) call(fn func() int32, failed func(int32) bool) callResult {
	runtime.LockOSThread()
	r := fn()
	var code uint32
	if failed(r) {
		code = s.lib.getLastError()
	}
	runtime.UnlockOSThread()
	return callResult{r, code}
}

func isNeg(r int32) bool   { return r < 0 }
func isFalse(r int32) bool { return r == 0 }

// begin counts an SDK call in, unless the SDK is closed.
func (s *SDK) begin() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.inflight.add()
	return nil
}

// async runs fn on its own goroutine and waits for it or ctx. The whole
// operation counts as an SDK call under way (Close waits for it) until the
// caller calls done, which it must once it has kept or released what fn
// opened. If ctx ends first, the call is abandoned: abandoned is true, err
// is ctx's, done is a no-op, and undo receives the result when the call
// returns (to release what it opened) before the operation counts out.
func (s *SDK) async(ctx context.Context, fn func() callResult, undo func(callResult)) (res callResult, done func(), abandoned bool, err error) {
	if err := s.begin(); err != nil {
		return callResult{}, func() {}, false, err
	}
	ch := make(chan callResult, 1)
	var gone bool
	var claim sync.Mutex
	go func() {
		res := fn()
		claim.Lock()
		g := gone
		if !g {
			ch <- res
		}
		claim.Unlock()
		if g {
			if undo != nil {
				undo(res)
			}
			s.inflight.done()
		}
	}()
	var once sync.Once
	done = func() { once.Do(s.inflight.done) }
	select {
	case res := <-ch:
		return res, done, false, nil
	case <-ctx.Done():
		claim.Lock()
		defer claim.Unlock()
		select {
		case res := <-ch: // finished meanwhile: keep it
			return res, done, false, nil
		default:
		}
		gone = true
		return callResult{}, func() {}, true, ctx.Err()
	}
}

// Login logs in (NET_DVR_Login_V40). A failed login returns *Error with the
// SDK's code and, when the device reports them, its lock facts. If ctx ends
// before the SDK answers, the login is logged out when it completes.
func (s *SDK) Login(ctx context.Context, p LoginParams) (*Session, error) {
	in, err := p.loginInfo()
	if err != nil {
		return nil, err
	}
	out := new(deviceInfoV40)
	l := s.lib
	res, done, _, err := s.async(ctx, func() callResult {
		r := s.call(func() int32 { return l.loginV40(in, out) }, isNeg)
		clear(in.Password[:])
		return r
	}, func(r callResult) {
		if r.r >= 0 {
			s.call(func() int32 { return l.logout(r.r) }, isFalse)
		}
	})
	defer done()
	if err != nil {
		return nil, err
	}
	if res.r < 0 {
		e := &Error{Op: "NET_DVR_Login_V40", Code: res.code}
		if out.SupportLock != 0 {
			e.LockReported = true
			e.TriesLeft = int(out.RetryLoginTime)
			e.LockRemaining = time.Duration(out.SurplusLockTime) * time.Second
		}
		return nil, e
	}
	ss := &Session{
		sdk:    s,
		id:     res.r,
		info:   deviceInfo(out),
		plays:  map[*Play]struct{}{},
		talks:  map[*Talk]struct{}{},
		events: make(chan Event, eventQueue),
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.call(func() int32 { return l.logout(res.r) }, isFalse)
		return nil, ErrClosed
	}
	s.sessions[ss] = struct{}{}
	s.mu.Unlock()
	reg.addSession(ss)
	return ss, nil
}

func (p LoginParams) loginInfo() (*loginInfo, error) {
	in := new(loginInfo)
	switch {
	case p.Address == "":
		return nil, fmt.Errorf("%w: login: empty address", ErrParameter)
	case len(p.Address) >= len(in.DeviceAddress), strings.IndexByte(p.Address, 0) >= 0:
		return nil, fmt.Errorf("%w: login: address %q too long or malformed", ErrParameter, p.Address)
	case p.Port <= 0 || p.Port > 65535:
		return nil, fmt.Errorf("%w: login: port %d out of range 1-65535", ErrParameter, p.Port)
	case p.User == "" || len(p.User) >= len(in.UserName) || strings.IndexByte(p.User, 0) >= 0:
		return nil, fmt.Errorf("%w: login: user name empty, longer than %d bytes or malformed", ErrParameter, len(in.UserName)-1)
	case len(p.Password) >= len(in.Password) || strings.IndexByte(p.Password, 0) >= 0:
		return nil, fmt.Errorf("%w: login: password longer than %d bytes or malformed", ErrParameter, len(in.Password)-1)
	}
	copy(in.DeviceAddress[:], p.Address)
	in.Port = uint16(p.Port)
	copy(in.UserName[:], p.User)
	copy(in.Password[:], p.Password)
	return in, nil
}

func deviceInfo(d *deviceInfoV40) DeviceInfo {
	v := &d.V30
	serial := v.Serial[:]
	if i := indexByte(serial, 0); i >= 0 {
		serial = serial[:i]
	}
	return DeviceInfo{
		Serial:                  strings.TrimSpace(string(serial)),
		DeviceType:              v.DevType,
		AnalogChannels:          int(v.ChanNum),
		FirstAnalogChannel:      int(v.StartChan),
		IPChannels:              int(v.IPChanNum) + 256*int(v.HighDChanNum),
		FirstIPChannel:          int(v.StartDChan),
		TalkChannels:            int(v.AudioChanNum),
		FirstDigitalTalkChannel: int(v.StartDTalkChan),
		PasswordLevel:           int(d.PasswordLevel),
		LockSupported:           d.SupportLock != 0,
		TriesLeft:               int(d.RetryLoginTime),
	}
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// ReadStats returns the process-wide callback counters.
func ReadStats() Stats {
	return Stats{
		LateCallbacks:      reg.late.Load(),
		UnroutedExceptions: reg.unrouted.Load(),
	}
}
