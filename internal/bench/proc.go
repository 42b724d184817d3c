package bench

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// ProcStat is what the bench reads from /proc/<pid>/stat and status.
type ProcStat struct {
	UTime, STime time.Duration // user and system CPU time
	RSS          int64         // VmRSS, bytes
	HWM          int64         // VmHWM (peak RSS), bytes
}

// CPU is user + system time.
func (s ProcStat) CPU() time.Duration { return s.UTime + s.STime }

// clockTick is the kernel's USER_HZ, read from the auxiliary vector
// (AT_CLKTCK); 100 Hz if that cannot be read.
var clockTick = readClockTick()

func readClockTick() int64 {
	data, err := os.ReadFile("/proc/self/auxv")
	if err != nil {
		return 100
	}
	if hz := parseAuxvClockTick(data); hz > 0 {
		return hz
	}
	return 100
}

// parseAuxvClockTick finds AT_CLKTCK (17) in a 64-bit little-endian auxv.
func parseAuxvClockTick(auxv []byte) int64 {
	const atClkTck = 17
	for i := 0; i+16 <= len(auxv); i += 16 {
		key := binary.LittleEndian.Uint64(auxv[i:])
		val := binary.LittleEndian.Uint64(auxv[i+8:])
		if key == 0 {
			break
		}
		if key == atClkTck {
			return int64(val)
		}
	}
	return 0
}

// ReadProc reads the CPU times and memory of pid (0 = this process).
func ReadProc(pid int) (ProcStat, error) {
	p := "self"
	if pid > 0 {
		p = strconv.Itoa(pid)
	}
	stat, err := os.ReadFile("/proc/" + p + "/stat")
	if err != nil {
		return ProcStat{}, fmt.Errorf("bench: %w", err)
	}
	var s ProcStat
	if s.UTime, s.STime, err = parseStat(stat, clockTick); err != nil {
		return ProcStat{}, err
	}
	status, err := os.ReadFile("/proc/" + p + "/status")
	if err != nil {
		return ProcStat{}, fmt.Errorf("bench: %w", err)
	}
	if s.RSS, s.HWM, err = parseStatus(status); err != nil {
		return ProcStat{}, err
	}
	return s, nil
}

// parseStat returns utime and stime (fields 14 and 15) of a /proc/<pid>/stat
// line. The command name (field 2) is in parentheses and may hold spaces and
// parentheses, so fields are counted from the last ')'.
func parseStat(data []byte, hz int64) (utime, stime time.Duration, err error) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("bench: /proc stat: no command name in %q", truncate(string(data), 60))
	}
	f := strings.Fields(string(data[i+1:]))
	// f[0] is field 3 (state): utime is field 14 -> f[11], stime f[12].
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("bench: /proc stat: %d fields after the command name, want >= 13", len(f))
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil || hz <= 0 {
		return 0, 0, fmt.Errorf("bench: /proc stat: bad utime/stime %q %q", f[11], f[12])
	}
	tick := time.Second / time.Duration(hz)
	return time.Duration(u) * tick, time.Duration(st) * tick, nil
}

// parseStatus returns VmRSS and VmHWM (bytes) of a /proc/<pid>/status file.
func parseStatus(data []byte) (rss, hwm int64, err error) {
	found := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		f := strings.Fields(val)
		if len(f) != 2 || f[1] != "kB" {
			return 0, 0, fmt.Errorf("bench: /proc status: %s: unexpected value %q", key, val)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("bench: /proc status: %s: %w", key, err)
		}
		if key == "VmRSS" {
			rss = n << 10
		} else {
			hwm = n << 10
		}
		found++
	}
	if found != 2 {
		return 0, 0, fmt.Errorf("bench: /proc status: VmRSS or VmHWM missing")
	}
	return rss, hwm, nil
}

// MachineInfo describes where the bench ran.
type MachineInfo struct {
	NProc    int    `json:"nproc"`
	CPUModel string `json:"cpu_model"`
	GoOS     string `json:"goos"`
	GoArch   string `json:"goarch"`
	Go       string `json:"go"`
	Kernel   string `json:"kernel,omitempty"`
}

// parseCPUModel returns the first "model name" of /proc/cpuinfo.
func parseCPUModel(cpuinfo []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(cpuinfo))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(key) == "model name" {
			return strings.TrimSpace(val)
		}
	}
	return ""
}
