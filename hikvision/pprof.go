//go:build hikvision_pprof

package hikvision

import (
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
)

// Built only with -tags hikvision_pprof: the bench's profiling build of go2rtc
// (hikvision-bench --cpuprofile). With HIKVISION_PPROF_ADDR set (host:port),
// it serves net/http/pprof there, on its own mux and listener: go2rtc's API
// is unchanged and a normal build has none of it.
func init() {
	addr := os.Getenv("HIKVISION_PPROF_ADDR")
	if addr == "" {
		return
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		// init runs before go2rtc hands the module its logger
		fmt.Fprintf(os.Stderr, "hikvision: pprof listener on %s: %v\n", addr, err)
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	// lives as long as the process: profiling builds only
	go func() { _ = http.Serve(ln, mux) }()
}
