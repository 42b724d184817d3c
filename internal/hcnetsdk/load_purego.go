//go:build hcnetsdk && linux && (amd64 || arm64)

package hcnetsdk

import (
	"os"
	"path/filepath"
	"sync"

	"github.com/ebitengine/purego"
)

// Built with the hcnetsdk tag: the library is loaded with purego, which
// works without cgo but makes the binary dynamically linked against the
// system C library (the vendor's SDK needs glibc anyway).

var (
	libsMu sync.Mutex
	libs   = map[string]*lib{} // loaded once per path, never unloaded

	callbacksOnce                sync.Once
	dataCB, exceptionCB, voiceCB uintptr
)

// callbacks creates the C entry points of the package's callbacks once per
// process (purego keeps a fixed number of callback slots and never frees
// them). They run on the SDK's own threads.
func callbacks() {
	callbacksOnce.Do(func() {
		dataCB = purego.NewCallback(onData)
		exceptionCB = purego.NewCallback(onException)
		voiceCB = purego.NewCallback(onVoice)
	})
}

func buildSupport(string) error { return nil }

func openLibrary(file, dir string) (*lib, error) {
	libsMu.Lock()
	defer libsMu.Unlock()
	if l, ok := libs[file]; ok {
		return l, nil
	}
	// libhcnetsdk.so needs the vendor's core libraries from its own folder;
	// loading them first (global) lets the dynamic linker find them without
	// LD_LIBRARY_PATH.
	for _, dep := range []string{"libhpr.so", "libHCCore.so"} {
		p := filepath.Join(dir, dep)
		if _, err := os.Stat(p); err == nil {
			if _, err := purego.Dlopen(p, purego.RTLD_NOW|purego.RTLD_GLOBAL); err != nil {
				return nil, &LoadError{Path: p, Err: ErrLibrary, Why: err.Error()}
			}
		}
	}
	h, err := purego.Dlopen(file, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		return nil, &LoadError{Path: file, Err: ErrLibrary, Why: err.Error()}
	}
	l := &lib{path: file}
	syms := []struct {
		name string
		fn   any
	}{
		{"NET_DVR_Init", &l.init},
		{"NET_DVR_Cleanup", &l.cleanup},
		{"NET_DVR_SetSDKInitCfg", &l.setSDKInitCfg},
		{"NET_DVR_SetConnectTime", &l.setConnectTime},
		{"NET_DVR_SetReconnect", &l.setReconnect},
		{"NET_DVR_SetRecvTimeOut", &l.setRecvTimeOut},
		{"NET_DVR_GetLastError", &l.getLastError},
		{"NET_DVR_GetSDKVersion", &l.getSDKVersion},
		{"NET_DVR_SetExceptionCallBack_V30", &l.setExceptionCallBackV30},
		{"NET_DVR_Login_V40", &l.loginV40},
		{"NET_DVR_Logout", &l.logout},
		{"NET_DVR_RealPlay_V40", &l.realPlayV40},
		{"NET_DVR_StopRealPlay", &l.stopRealPlay},
		{"NET_DVR_StartVoiceCom_MR_V30", &l.startVoiceComMRV30},
		{"NET_DVR_VoiceComSendData", &l.voiceComSendData},
		{"NET_DVR_StopVoiceCom", &l.stopVoiceCom},
		{"NET_DVR_GetCurrentAudioCompress", &l.getCurrentAudioCompress},
	}
	for _, s := range syms {
		addr, err := purego.Dlsym(h, s.name)
		if err != nil || addr == 0 {
			return nil, &LoadError{Path: file, Err: ErrLibrary, Why: "no symbol " + s.name + " (not the device network SDK, or too old)"}
		}
		purego.RegisterFunc(s.fn, addr)
	}
	callbacks()
	l.dataCB, l.exceptionCB, l.voiceCB = dataCB, exceptionCB, voiceCB
	libs[file] = l
	return l, nil
}
