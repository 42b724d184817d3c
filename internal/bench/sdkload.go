package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/build"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/hcnetsdk/hcfake"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

// SectionSDKLoad measures go2rtc's CPU with N streams of hikvision://
// transport=sdk beside N streams of hikvision:// over RTSP, the way the load
// section measures hikvision:// beside stock rtsp://.
const SectionSDKLoad = "sdkload"

// sdkLoad: each phase runs two go2rtc built with the SDK loader at the same
// time: one with N transport=sdk streams (N channels of one fake SDK device
// in its process), one with N transport=rtsp streams on N simulated cameras.
// Each round: sdk beside rtsp, then rtsp beside rtsp (the noise band).
func (r *runner) sdkLoad(ctx context.Context) (s Section) {
	s = Section{Name: SectionSDKLoad, Stock: "hikvision:// rtsp",
		Title: fmt.Sprintf("go2rtc CPU with N streams: transport=sdk (fake SDK library) beside transport=rtsp (simulator), %s H.264 + G.711", kbps(r.opts.LoadKbps))}
	fail := func(err error) Section { s.Error = err.Error(); return s }
	counts := r.opts.StreamCounts
	if r.opts.Quick {
		counts = []int{slices.Max(counts)} // CI checks the section works: one count
	}
	maxN := slices.Max(counts)

	dir, bin, dev, err := r.sdkSetup(ctx, "sdkload")
	if dir != "" {
		defer os.RemoveAll(dir)
	}
	if err != nil {
		return fail(err)
	}
	media := filepath.Join(r.root, "testdata", "media")
	video, err := os.ReadFile(filepath.Join(media, "h264_main.h264"))
	if err != nil {
		return fail(err)
	}
	padded, err := padH264(video, r.opts.LoadKbps*1000, 25)
	if err != nil {
		return fail(err)
	}
	paddedFile := filepath.Join(dir, "main_padded.h264")
	if err = os.WriteFile(paddedFile, padded, 0o600); err != nil {
		return fail(err)
	}
	ps := filepath.Join(dir, "camera.ps")
	if err = hcfake.WritePS(ps, hcfake.PSOptions{Video: paddedFile,
		Audio: filepath.Join(media, "tone_1khz_8k.ulaw"), AudioCodec: hcfake.G711U}); err != nil {
		return fail(err)
	}
	if err = os.WriteFile(dev.control, nil, 0o600); err != nil {
		return fail(err)
	}
	if err = dev.up(); err != nil {
		return fail(err)
	}
	defer dev.down()
	env := "HCNETSDK_FAKE=port=" + strconv.Itoa(dev.port) + ";control=" + dev.control + ";media=" + ps +
		";video_format=0x0100;audio_format=0x7110;audio_rate=8000;analog=" + strconv.Itoa(maxN) +
		";user=" + simUser + ";password=" + simPassword
	conf := "hikvision:\n  sdk:\n    lib: " + strconv.Quote(dev.lib) + "\n"

	var sets [2][]*sim.Device
	defer func() {
		for _, set := range sets {
			for _, d := range set {
				_ = d.Close()
			}
		}
	}()
	for i := range sets {
		for range maxN {
			d, err := sim.Start(sim.Config{Channels: []sim.Channel{{ID: 1, MainKbps: r.opts.LoadKbps}}})
			if err != nil {
				return fail(err)
			}
			sets[i] = append(sets[i], d)
		}
	}
	rtspSide := func(devs []*sim.Device) loadSide {
		urls := make([]string, len(devs))
		for j, d := range devs {
			urls[j] = hikURL(d, simPassword)
		}
		return loadSide{kind: "rtsp", urls: urls, bin: bin}
	}
	sdkSide := func(n int) loadSide {
		urls := make([]string, n)
		for j := range urls {
			urls[j] = sdkStreamURL(simUser, simPassword, dev.port) + "&channel=" + strconv.Itoa(j+1) + "&stream=main"
		}
		return loadSide{kind: "sdk", urls: urls, bin: bin, env: []string{env}, conf: conf}
	}

	var verdicts []string
	for _, n := range counts {
		var sdk, rtsp []loadResult
		var ratios, noise []float64
		for round := 1; round <= r.opts.LoadRounds; round++ {
			// even rounds swap the RTSP device sets and which go2rtc starts first
			a, b := sets[0][:n], sets[1][:n]
			h, st := 0, 1
			if round%2 == 0 {
				a, b = b, a
				h, st = 1, 0
			}
			r.logf("sdkload: %d × sdk beside %d × rtsp for %v (round %d of %d)", n, n, r.opts.LoadWindow, round, r.opts.LoadRounds)
			pair := make([]loadSide, 2)
			pair[h], pair[st] = sdkSide(n), rtspSide(b)
			res, _, err := r.loadPhase(ctx, pair)
			if err != nil {
				return fail(fmt.Errorf("%d streams, round %d, sdk beside rtsp: %w", n, round, err))
			}
			sdk, rtsp = append(sdk, res[h]), append(rtsp, res[st])
			ratios = append(ratios, res[h].cpuPerStreamMin/res[st].cpuPerStreamMin)

			r.logf("sdkload: %d × rtsp beside %d × rtsp for %v (round %d of %d)", n, n, r.opts.LoadWindow, round, r.opts.LoadRounds)
			res, _, err = r.loadPhase(ctx, []loadSide{rtspSide(a), rtspSide(b)})
			if err != nil {
				return fail(fmt.Errorf("%d streams, round %d, rtsp beside rtsp: %w", n, round, err))
			}
			noise = append(noise, res[h].cpuPerStreamMin/res[st].cpuPerStreamMin)
		}
		label := streamsLabel(n)
		s.Rows = append(s.Rows, loadRows(label, sdk, rtsp, ratios, noise,
			"sdk / rtsp measured at the same time; rtsp column: rtsp / rtsp at the same time (noise band)")...)
		verdicts = append(verdicts, strings.ReplaceAll(strings.ReplaceAll(loadVerdict(label, ratios, noise),
			"(stock vs stock)", "(rtsp vs rtsp)"), "hikvision:// costs", "transport=sdk costs"))
	}
	s.Notes = append(s.Notes,
		fmt.Sprintf("Each phase runs two go2rtc built with -tags %s at the same time, one consumer per stream, CPU from /proc/<pid>/stat over the same %s window opened %s after every consumer got its first packet (as the load section). transport=sdk: N channels of one fake SDK device (testdata/hcnetsdk-fake, loaded in that go2rtc's process: one device per process), each channel a real-play thread of the fake reading the PS file and calling back paced in real time; transport=rtsp: N simulated cameras (internal/sim) served from the bench process.", build.SDKTag, fmtDur(r.opts.LoadWindow), fmtDur(loadSettle)),
		"Each round: sdk beside rtsp, then rtsp beside rtsp (the noise band); rounds swap the RTSP device sets and which go2rtc starts first. The CPU row's ratio is the median of the rounds' sdk/rtsp ratios.",
		fmt.Sprintf("Media: the same testdata/media H.264 640x360 25 fps padded with filler NAL units to %s, + 64 kbit/s G.711 µ-law, on both sides. What differs: the SDK side's CPU includes the fake library's own work inside go2rtc (a thread per play, reading and pacing the PS, copying each pack into the callback) that a real SDK would also do (plus its network receive), and the RTSP side's includes go2rtc's TCP receive and RTP parse; the RTSP simulator's sending costs the bench process, not go2rtc. What reaches the consumers differs too: transport=rtsp forwards the camera's RTP packets as they are, filler included (about 280 pkt/s); transport=sdk hands go2rtc whole access units, which go2rtc's RTSP server packetises with its own H.264 payloader, and that payloader drops filler NAL units, so its consumers get the ~160 kbit/s of picture data (about 79 pkt/s: 25 video + 50 audio + parameter sets) while the PS the SDK side demuxes carries the full bitrate.", kbps(r.opts.LoadKbps)))
	s.Notes = append(s.Notes, verdicts...)
	return s
}

// padH264 appends one filler-data NAL unit (type 12) to every access unit of
// an Annex B H.264 stream (cut at its access unit delimiters) so that one
// loop averages bitsPerSecond at fps, counting NAL bytes without start
// codes, as the simulator pads its RTSP media.
func padH264(annexB []byte, bitsPerSecond, fps int) ([]byte, error) {
	aud := []byte{0, 0, 0, 1, 0x09}
	var starts []int
	for i := 0; ; {
		j := bytes.Index(annexB[i:], aud)
		if j < 0 {
			break
		}
		starts = append(starts, i+j)
		i += j + len(aud)
	}
	if len(starts) == 0 {
		return nil, fmt.Errorf("bench: H.264 media has no 4-byte-start-code access unit delimiters")
	}
	frames := make([][]byte, len(starts))
	for k, st := range starts {
		end := len(annexB)
		if k+1 < len(starts) {
			end = starts[k+1]
		}
		frames[k] = annexB[st:end]
	}
	// NAL bytes without start codes, AUDs excluded (not sent over RTP)
	var have int64
	for _, f := range frames {
		have += int64(len(f)) - 4*int64(bytes.Count(f, []byte{0, 0, 1})) - 2
	}
	want := int64(bitsPerSecond) * int64(len(frames)) / (8 * int64(fps))
	deficit := want - have
	if deficit <= 0 {
		return annexB, nil
	}
	base, rem := deficit/int64(len(frames)), deficit%int64(len(frames))
	var out bytes.Buffer
	for k, f := range frames {
		n := max(base, 2)
		if int64(k) < rem {
			n++
		}
		out.Write(f)
		out.Write([]byte{0, 0, 0, 1, 0x0C})
		out.Write(bytes.Repeat([]byte{0xFF}, int(n-2)))
		out.WriteByte(0x80)
	}
	return out.Bytes(), nil
}
