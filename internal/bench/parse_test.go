package bench

import (
	"bufio"
	"encoding/binary"
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	// comm with spaces and a ')' inside: fields must be counted from the last ')'
	line := "4242 (go2rtc (x) y) S 1 4242 4242 0 -1 4194560 1200 0 0 0 250 75 0 0 20 0 9 0 123456 800000000 4500 18446744073709551615\n"
	u, s, err := parseStat([]byte(line), 100)
	if err != nil {
		t.Fatal(err)
	}
	if u != 2500*time.Millisecond || s != 750*time.Millisecond {
		t.Fatalf("utime, stime = %v, %v; want 2.5s, 750ms", u, s)
	}
	if u, _, _ = parseStat([]byte(line), 1000); u != 250*time.Millisecond {
		t.Fatalf("utime at 1000 Hz = %v, want 250ms", u)
	}
	for _, bad := range []string{"", "4242 go2rtc S 1", "4242 (go2rtc) S 1 2 3", "4242 (a) S 1 4242 4242 0 -1 4194560 1200 0 0 0 x 75 0"} {
		if _, _, err := parseStat([]byte(bad), 100); err == nil {
			t.Errorf("parseStat(%q): no error", bad)
		}
	}
}

func TestParseStatus(t *testing.T) {
	status := "Name:\tgo2rtc\nVmPeak:\t  900000 kB\nVmHWM:\t   20480 kB\nVmRSS:\t   18432 kB\nThreads:\t9\n"
	rss, hwm, err := parseStatus([]byte(status))
	if err != nil {
		t.Fatal(err)
	}
	if rss != 18432<<10 || hwm != 20480<<10 {
		t.Fatalf("rss, hwm = %d, %d", rss, hwm)
	}
	for _, bad := range []string{"Name: x\n", "VmRSS: 10 kB\n", "VmRSS: 10 MB\nVmHWM: 1 kB\n", "VmRSS: x kB\nVmHWM: 1 kB\n"} {
		if _, _, err := parseStatus([]byte(bad)); err == nil {
			t.Errorf("parseStatus(%q): no error", bad)
		}
	}
}

func TestParseAuxvClockTick(t *testing.T) {
	put := func(pairs ...uint64) []byte {
		b := make([]byte, 8*len(pairs))
		for i, v := range pairs {
			binary.LittleEndian.PutUint64(b[8*i:], v)
		}
		return b
	}
	if hz := parseAuxvClockTick(put(6, 4096, 17, 250, 0, 0)); hz != 250 {
		t.Fatalf("AT_CLKTCK = %d, want 250", hz)
	}
	if hz := parseAuxvClockTick(put(6, 4096, 0, 0, 17, 250)); hz != 0 {
		t.Fatalf("value after AT_NULL used: %d", hz)
	}
	if hz := parseAuxvClockTick(nil); hz != 0 {
		t.Fatalf("empty auxv: %d", hz)
	}
}

func TestReadProcSelf(t *testing.T) {
	// burn a little CPU so that utime+stime is visibly non-zero
	deadline := time.Now().Add(30 * time.Millisecond)
	x := 0
	for time.Now().Before(deadline) {
		x++
	}
	s, err := ReadProc(0)
	if err != nil {
		t.Fatal(err)
	}
	if s.CPU() <= 0 || s.RSS <= 0 || s.HWM < s.RSS {
		t.Fatalf("implausible self stat %+v (x=%d)", s, x)
	}
}

func TestParseCPUModel(t *testing.T) {
	info := "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\nprocessor\t: 1\nmodel name\t: AMD EPYC 7B13\n"
	if m := parseCPUModel([]byte(info)); m != "AMD EPYC 7B13" {
		t.Fatalf("model %q", m)
	}
	if m := parseCPUModel([]byte("processor: 0\n")); m != "" {
		t.Fatalf("model %q from cpuinfo without one", m)
	}
}

func TestMedianMinMaxRatio(t *testing.T) {
	for _, tt := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{10, 10, 1, 1000, 10}, 10},
	} {
		in := append([]float64(nil), tt.in...)
		if got := Median(tt.in); got != tt.want {
			t.Errorf("Median(%v) = %v, want %v", tt.in, got, tt.want)
		}
		for i := range in {
			if in[i] != tt.in[i] {
				t.Fatalf("Median reordered its input: %v", tt.in)
			}
		}
	}
	if !math.IsNaN(Median(nil)) {
		t.Error("Median(nil) is not NaN")
	}
	if lo, hi := MinMax([]float64{3, -1, 7, 2}); lo != -1 || hi != 7 {
		t.Errorf("MinMax = %v, %v", lo, hi)
	}
	if r := Ratio(Num(3), Num(4)); r == nil || *r != 0.75 {
		t.Errorf("Ratio(3,4) = %v", r)
	}
	for _, tt := range [][2]*float64{{nil, Num(1)}, {Num(1), nil}, {Num(1), Num(0)}, {Num(math.NaN()), Num(1)}} {
		if r := Ratio(tt[0], tt[1]); r != nil {
			t.Errorf("Ratio(%v, %v) = %v, want nil", tt[0], tt[1], *r)
		}
	}
}

func TestFormatNum(t *testing.T) {
	for v, want := range map[float64]string{
		0: "0", 5: "5", 1234: "1234", 123.4: "123", 12.34: "12.3", 1.234: "1.23", 0.01234: "0.0123", math.NaN(): "n/a",
	} {
		if got := formatNum(v); got != want {
			t.Errorf("formatNum(%v) = %q, want %q", v, got, want)
		}
	}
}

const goTestOutput = `goos: linux
goarch: amd64
pkg: github.com/go2rtc-hikvision/go2rtc-hikvision/internal/talk
cpu: AMD EPYC 7B13
BenchmarkG711Append-2          	41436738	         6.020 ns/op	26580.08 MB/s	       0 B/op	       0 allocs/op
BenchmarkAddedLatency-2        	  409022	       585.0 ns/op	       0 B/op	       0 allocs/op
BenchmarkNoisy
    talk_test.go:12: some log line
BenchmarkNoisy-2               	     100	     10000 ns/op	     0.5 ms-latency
PASS
ok  	github.com/go2rtc-hikvision/go2rtc-hikvision/internal/talk	3.0s
pkg: github.com/go2rtc-hikvision/go2rtc-hikvision/internal/snapshot
BenchmarkCachedGet-2           	 1000000	       203.1 ns/op	      80 B/op	       1 allocs/op
BenchmarkNoMem                 	 1000000	       2.5 ns/op
ok  	github.com/go2rtc-hikvision/go2rtc-hikvision/internal/snapshot	1.0s
`

func TestParseGoBench(t *testing.T) {
	res, err := ParseGoBench([]byte(goTestOutput), "default")
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 5 {
		t.Fatalf("%d results, want 5: %+v", len(res), res)
	}
	g := res[0]
	if !strings.HasSuffix(g.Package, "/internal/talk") || g.Name != "BenchmarkG711Append" || g.Procs != 2 ||
		g.Iterations != 41436738 || g.NsPerOp != 6.02 || g.BytesPerOp == nil || *g.BytesPerOp != 0 ||
		g.AllocsOp == nil || *g.AllocsOp != 0 || g.Extra["MB/s"] != 26580.08 {
		t.Errorf("first result %+v", g)
	}
	if n := res[2]; n.Name != "BenchmarkNoisy" || n.Extra["ms-latency"] != 0.5 || n.AllocsOp != nil {
		t.Errorf("custom metric result %+v", n)
	}
	if c := res[3]; !strings.HasSuffix(c.Package, "/internal/snapshot") || *c.BytesPerOp != 80 || *c.AllocsOp != 1 {
		t.Errorf("snapshot result %+v", c)
	}
	if m := res[4]; m.Name != "BenchmarkNoMem" || m.Procs != 0 || m.BytesPerOp != nil {
		t.Errorf("no-benchmem result %+v", m)
	}
	if _, err := ParseGoBench([]byte("BenchmarkX-2 10 abc ns/op\n"), ""); err == nil {
		t.Error("non-numeric value: no error")
	}
	if _, err := ParseGoBench([]byte("BenchmarkX-2 10 5 B/op\n"), ""); err == nil {
		t.Error("line without ns/op: no error")
	}
}

func TestHasBenchmarks(t *testing.T) {
	dir := t.TempDir()
	if hasBenchmarks(dir) {
		t.Fatal("empty dir has benchmarks")
	}
	writeFile(t, dir+"/a_test.go", "package a\n\nimport \"testing\"\n\nfunc TestA(t *testing.T) {}\n// func BenchmarkCommented(b *testing.B)\n")
	if hasBenchmarks(dir) {
		t.Fatal("benchmark found in a test file without one")
	}
	writeFile(t, dir+"/b_test.go", "package a\n\nimport \"testing\"\n\nfunc BenchmarkB(b *testing.B) {}\n")
	if !hasBenchmarks(dir) {
		t.Fatal("benchmark not found")
	}
}

func TestParseOnly(t *testing.T) {
	got, err := ParseOnly(" ttff, LOAD,ttff,,")
	if err != nil || strings.Join(got, ",") != "ttff,load" {
		t.Fatalf("ParseOnly = %v, %v", got, err)
	}
	if got, err := ParseOnly(""); err != nil || got != nil {
		t.Fatalf("empty: %v, %v", got, err)
	}
	if _, err := ParseOnly("ttff,bogus"); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Fatalf("unknown section: %v", err)
	}
}

func TestDefaults(t *testing.T) {
	q := Options{Quick: true}.Defaults()
	if q.Runs != 3 || len(q.Outages) != 1 || q.Outages[0] != 2*time.Second || len(q.StreamCounts) != 2 || q.StreamCounts[1] != 4 || q.TalkWindow != 10*time.Second {
		t.Errorf("quick defaults %+v", q)
	}
	f := Options{}.Defaults()
	if len(f.Outages) != 3 || f.Outages[2] != 120*time.Second || f.StreamCounts[2] != 32 || f.LoginWindow != 10*time.Minute || f.TalkWindow != time.Minute {
		t.Errorf("full defaults %+v", f)
	}
	if o := (Options{Runs: 9, Quick: true}).Defaults(); o.Runs != 9 {
		t.Errorf("explicit Runs overridden: %d", o.Runs)
	}
}

func TestSDPControls(t *testing.T) {
	sdp := "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=go2rtc\r\na=control:*\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:trackID=0\r\na=recvonly\r\n" +
		"m=audio 0 RTP/AVP 0\r\na=control:trackID=1\r\nm=audio 0 RTP/AVP 8 0\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=control:trackID=2\r\na=sendonly\r\nm=application 0 RTP/AVP 107\r\n"
	ms := parseSDP([]byte(sdp))
	want := []sdpMedia{
		{kind: "video", control: "trackID=0", payloadType: 96, codec: "H264/90000"},
		{kind: "audio", control: "trackID=1", payloadType: 0},
		{kind: "audio", control: "trackID=2", payloadType: 8, codec: "PCMA/8000", sendonly: true},
		{kind: "application", payloadType: 107},
	}
	if len(ms) != len(want) {
		t.Fatalf("medias %+v", ms)
	}
	for i := range want {
		if ms[i] != want[i] {
			t.Errorf("media %d: %+v, want %+v", i, ms[i], want[i])
		}
	}
	for _, tt := range [][3]string{
		{"rtsp://h:1/s", "trackID=0", "rtsp://h:1/s/trackID=0"},
		{"rtsp://h:1/s/", "trackID=0", "rtsp://h:1/s/trackID=0"},
		{"rtsp://h:1/s", "rtsp://other/x", "rtsp://other/x"},
		{"rtsp://h:1/s", "", "rtsp://h:1/s"},
		{"rtsp://h:1/s", "*", "rtsp://h:1/s"},
	} {
		if got := trackURL(tt[0], tt[1]); got != tt[2] {
			t.Errorf("trackURL(%q, %q) = %q, want %q", tt[0], tt[1], got, tt[2])
		}
	}
	for in, want := range map[string]string{"rtsp://127.0.0.1:8554/cam": "127.0.0.1:8554", "rtsp://cam/x": "cam:554"} {
		if got, err := rtspHostPort(in); err != nil || got != want {
			t.Errorf("rtspHostPort(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := rtspHostPort("http://x/"); err == nil {
		t.Error("http URL accepted")
	}
}

func TestReadInterleaved(t *testing.T) {
	var in []byte
	in = append(in, '$', 0, 0, 3, 'a', 'b', 'c')
	in = append(in, "RTSP/1.0 200 OK\r\nCSeq: 7\r\nContent-Length: 2\r\n\r\nhi"...)
	in = append(in, '$', 3, 0, 1, 'z')
	br := bufio.NewReader(strings.NewReader(string(in)))
	buf := make([]byte, 2) // smaller than the first payload: must grow
	ch, p, err := readInterleaved(br, buf)
	if err != nil || ch != 0 || string(p) != "abc" {
		t.Fatalf("frame 1: %d %q %v", ch, p, err)
	}
	if ch, _, err = readInterleaved(br, buf); err != nil || ch != -1 {
		t.Fatalf("RTSP message: %d %v", ch, err)
	}
	if ch, p, err = readInterleaved(br, buf); err != nil || ch != 3 || string(p) != "z" {
		t.Fatalf("frame 2: %d %q %v", ch, p, err)
	}
	if _, _, err = readInterleaved(br, buf); err == nil {
		t.Fatal("no error at EOF")
	}
	if _, _, _, err = readResponse(bufio.NewReader(strings.NewReader("HTTP/1.1 200 OK\r\n\r\n"))); err == nil {
		t.Fatal("HTTP answer accepted as RTSP")
	}
}

func TestProducersStopped(t *testing.T) {
	body := `{"a":{"producers":[{"url":"rtsp://x"}],"consumers":null},
	          "b":{"producers":[{"id":3,"format_name":"rtsp","url":"rtsp://y","medias":["video"]}]},
	          "c":{"producers":[{"url":"rtsp://x"},{"id":1,"url":"z"}]}}`
	for name, want := range map[string]bool{"a": true, "b": false, "c": false} {
		got, err := producersStopped([]byte(body), name)
		if err != nil || got != want {
			t.Errorf("%s: %v, %v; want %v", name, got, err, want)
		}
	}
	if _, err := producersStopped([]byte(body), "missing"); err == nil {
		t.Error("missing stream: no error")
	}
	if _, err := producersStopped([]byte("not json"), "a"); err == nil {
		t.Error("bad JSON: no error")
	}
}

func TestStreamsYAMLQuotesURLs(t *testing.T) {
	y := streamsYAML(map[string]string{"b": "rtsp://u:p#x@h/1", "a": "hikvision://u:p@h/?channel=1&stream=main", "c": "rtsp://h/1\nisapi://h/"})
	want := "log:\n  level: info\nstreams:\n  a: \"hikvision://u:p@h/?channel=1&stream=main\"\n  b: \"rtsp://u:p#x@h/1\"\n  c:\n    - \"rtsp://h/1\"\n    - \"isapi://h/\"\n"
	if y != want {
		t.Fatalf("yaml:\n%s\nwant:\n%s", y, want)
	}
}

func TestMarkdown(t *testing.T) {
	r := &Report{
		Date: time.Date(2026, 11, 24, 14, 0, 0, 0, time.UTC), Quick: true, Duration: 95,
		Machine: MachineInfo{NProc: 2, CPUModel: "Test CPU", GoOS: "linux", GoArch: "amd64", Go: "go1.26"},
		Go2rtc:  "v1.9.14",
		Sections: []Section{
			{Name: "ttff", Title: "TTFF", Stock: "rtsp://", Rows: []Row{
				NewRow("cold", "ms", Num(30), Num(20)),
				{Metric: "kept", HikvisionText: "yes", StockText: "no", Note: "2 s"},
				NewRow("missing", "ms", nil, Num(1)),
			}, Notes: []string{"a note"}},
			{Name: "talk", Title: "Talk", Stock: "isapi://", Error: "boom"},
		},
		GoBench: []GoBench{{Package: modulePath + "/internal/talk", Name: "BenchmarkX", NsPerOp: 12.5, BytesPerOp: Num(0), AllocsOp: Num(0), Extra: map[string]float64{"MB/s": 100}}},
	}
	md := r.Markdown()
	for _, want := range []string{
		"2026-11-24 14:00 UTC, quick (--quick) mode, 95 s; 2 × Test CPU",
		"| figure | unit | hikvision:// | stock rtsp:// | ratio hik/stock |",
		"| cold | ms | 30 | 20 | 1.50 |",
		"| kept (2 s) |  | yes | no | – |",
		"| missing | ms | n/a | 1 | – |",
		"- a note",
		"**Incomplete:** boom",
		"| internal/talk | BenchmarkX | 12.5 | 0 | 0 | 100 MB/s |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	js, err := r.JSON()
	if err != nil || !strings.Contains(string(js), `"ratio": 1.5`) || !strings.Contains(string(js), `"hikvision": null`) {
		t.Errorf("JSON %s, %v", js, err)
	}
}

func TestFmtDur(t *testing.T) {
	for d, want := range map[time.Duration]string{
		2 * time.Second: "2 s", 2500 * time.Millisecond: "2.5 s", 500 * time.Millisecond: "0.5 s",
		10 * time.Minute: "10 min", 120500 * time.Millisecond: "120.5 s", 90 * time.Second: "90 s",
	} {
		if got := fmtDur(d); got != want {
			t.Errorf("fmtDur(%v) = %q, want %q", d, got, want)
		}
	}
}
