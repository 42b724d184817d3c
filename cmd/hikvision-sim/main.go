// Command hikvision-sim runs simulated Hikvision devices (a camera and/or an NVR) for manual tests and
// demos: ISAPI over HTTP with digest login and the illegal-login lock, RTSP with looping test media, and
// an optional JSON control API for faults (see internal/sim).
//
//	hikvision-sim -http 127.0.0.1:18080 -rtsp 127.0.0.1:18554 -control 127.0.0.1:18081 \
//	    -personality camera -user admin -password hik12345
//	hikvision-sim -preset old-camera     (a device kind of the simulator: hikvision-sim -h lists them)
//	hikvision-sim -http 127.0.0.1:18080 -rtsp 127.0.0.1:18554 \
//	    -nvr-http 127.0.0.1:19080 -nvr-rtsp 127.0.0.1:19554 -nvr-control 127.0.0.1:19081
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

func main() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	if err := run(os.Args[1:], os.Stdout, sig); err != nil {
		fmt.Fprintln(os.Stderr, "hikvision-sim:", err)
		os.Exit(1)
	}
}

// run starts the devices, prints what they serve to out and blocks until stop delivers a signal.
func run(args []string, out io.Writer, stop <-chan os.Signal) error {
	fs := flag.NewFlagSet("hikvision-sim", flag.ContinueOnError)
	fs.SetOutput(out)
	var (
		httpAddr    = fs.String("http", "127.0.0.1:18080", "ISAPI (HTTP) listen address of the first device; empty = no first device")
		rtspAddr    = fs.String("rtsp", "127.0.0.1:18554", "RTSP listen address of the first device")
		ctlAddr     = fs.String("control", "", "control API listen address of the first device (empty = none)")
		personality = fs.String("personality", "camera", "first device: camera, nvr, dvr (analog) or hybrid")
		preset      = fs.String("preset", "", "first device: a device kind ("+strings.Join(sim.Presets(), ", ")+"); overrides -personality")
		nvrHTTP     = fs.String("nvr-http", "", "also run an NVR with ISAPI on this address")
		nvrRTSP     = fs.String("nvr-rtsp", "127.0.0.1:0", "RTSP listen address of the extra NVR")
		nvrCtl      = fs.String("nvr-control", "", "control API listen address of the extra NVR")
		user        = fs.String("user", "admin", "user name")
		password    = fs.String("password", "hik12345", "password")
		model       = fs.String("model", "", "model (default per personality)")
		firmware    = fs.String("firmware", "", "firmware version (default per personality)")
		video       = fs.String("video", "", "camera video codec: H.264 (default) or H.265")
		audio       = fs.String("audio", "", "camera audio codec: PCMU (default), PCMA, AAC or none")
		talk        = fs.String("talk", "", "two-way audio codec: G.711ulaw (default), G.711alaw, AAC, none")
		auth        = fs.String("auth", "digest", "HTTP auth: digest, basic or digest/basic")
		algs        = fs.String("algorithms", "MD5", "digest algorithms offered, comma separated: MD5, SHA-256")
		ns          = fs.String("namespace", "", "XML namespace (default "+sim.NamespaceHikvision+")")
		maxFail     = fs.Int("max-failures", 5, "wrong passwords before a client IP is locked")
		lockDur     = fs.Duration("lock-duration", 30*time.Minute, "how long a client IP stays locked")
		kbps        = fs.Int("kbps", 0, "main stream video bitrate in kbit/s of every channel, padded with filler NAL units (0 = test media as is, ~160 kbit/s)")
		nonceLife   = fs.Duration("nonce-lifetime", 10*time.Minute, "digest nonce lifetime (then stale=TRUE)")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *httpAddr == "" && *nvrHTTP == "" {
		return errors.New("nothing to run: give -http and/or -nvr-http")
	}
	base := sim.Config{
		Model: *model, Firmware: *firmware, Video: *video, Audio: *audio, TalkCodec: *talk,
		Users: map[string]string{*user: *password}, Auth: *auth, Namespace: *ns,
		DigestAlgorithms: strings.Split(*algs, ","), MaxFailures: *maxFail, LockDuration: *lockDur,
		NonceLifetime: *nonceLife, MainKbps: *kbps,
	}

	var devices []*sim.Device
	defer func() {
		for _, d := range devices {
			_ = d.Close()
		}
	}()
	start := func(cfg sim.Config) error {
		d, err := sim.Start(cfg)
		if err != nil {
			return err
		}
		devices = append(devices, d)
		c := d.Config()
		fmt.Fprintf(out, "%s %s (%s, firmware %s)\n", c.Personality, c.DeviceName, c.Model, c.Firmware)
		fmt.Fprintf(out, "  ISAPI   http://%s/ISAPI/System/deviceInfo (user %q, auth %s %v)\n", d.HTTPAddr(), *user, c.Auth, c.DigestAlgorithms)
		for _, ch := range d.Channels() {
			rate := ""
			if ch.MainKbps > 0 {
				rate = fmt.Sprintf(" %d kbit/s", ch.MainKbps)
			}
			fmt.Fprintf(out, "  RTSP    rtsp://%s%s  %s %dx%d%s + %s, sub %s\n", d.RTSPAddr(), ch.MainPath(), ch.Video, ch.Width, ch.Height, rate, ch.Audio, ch.SubPath())
		}
		if d.ControlAddr() != "" {
			fmt.Fprintf(out, "  control http://%s (POST /reboot?seconds=N /stall?on=1 /refuse-rtsp?on=1 /lock?ip=A /bad-xml?count=N /password?user=U&password=P, GET /stats)\n", d.ControlAddr())
		}
		return nil
	}
	if *httpAddr != "" {
		cfg := base
		cfg.Personality = *personality
		if *preset != "" {
			pc, ok := sim.Preset(*preset)
			if !ok {
				return fmt.Errorf("unknown -preset %q (want one of %s)", *preset, strings.Join(sim.Presets(), ", "))
			}
			// the preset's device, with the login, lock and codec flags given
			pc.Users, pc.Auth, pc.Namespace, pc.DigestAlgorithms = base.Users, base.Auth, base.Namespace, base.DigestAlgorithms
			pc.MaxFailures, pc.LockDuration, pc.NonceLifetime, pc.MainKbps = base.MaxFailures, base.LockDuration, base.NonceLifetime, base.MainKbps
			pc.TalkCodec, pc.Video, pc.Audio = base.TalkCodec, base.Video, base.Audio
			if base.Model != "" {
				pc.Model = base.Model
			}
			if base.Firmware != "" {
				pc.Firmware = base.Firmware
			}
			cfg = pc
		}
		cfg.HTTPAddr, cfg.RTSPAddr, cfg.ControlAddr = *httpAddr, *rtspAddr, *ctlAddr
		if err := start(cfg); err != nil {
			return err
		}
	}
	if *nvrHTTP != "" {
		cfg := base
		cfg.Personality, cfg.HTTPAddr, cfg.RTSPAddr, cfg.ControlAddr = sim.PersonalityNVR, *nvrHTTP, *nvrRTSP, *nvrCtl
		cfg.Video, cfg.Audio = "", ""
		if err := start(cfg); err != nil {
			return err
		}
	}

	s := <-stop
	fmt.Fprintf(out, "%v: stopping\n", s)
	return nil
}
