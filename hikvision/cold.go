package hikvision

import (
	"context"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
)

// earlyOpen is the RTSP session a cold start opened beside its probe (or
// the error of that attempt), on the backend it was opened with.
type earlyOpen struct {
	b    *rtspBackend
	sess Session
	err  error
}

// coldProbe probes the device (no probe cached) and, for an RTSP stream,
// opens its session in as few sequential round trips as the login rule
// allows. Over a slow link a start costs its round trips one after another,
// so the RTSP side runs beside the ISAPI side where no password is at stake:
//
//   - while the ISAPI login connects and fetches its challenge, an RTSP
//     connection to the likely port (rtsp_port, else the port the device
//     named in an earlier probe, else 554, the port nearly every device
//     keeps) connects and sends a DESCRIBE without credentials, which
//     fetches the RTSP challenge (preopen);
//   - once the login has succeeded, and only then, so that a wrong password
//     costs one failed login and never two, the DESCRIBE with credentials
//     answers that challenge at once, beside the probe's round;
//   - when the round says the RTSP port is another one, that session is
//     closed and Dial opens one at the port the device named.
//
// A start that does not use RTSP (transport=sdk or auto) is the probe alone.
// The early session is nil when none was opened (the login or round failed,
// the preopen could not connect, another port): Dial then opens as usual.
func (m *Module) coldProbe(ctx context.Context, p *Producer, c *isapi.Client) (*deviceProbe, *earlyOpen, error) {
	cfg := p.cfg
	if cfg.Transport != "" && cfg.Transport != TransportRTSP {
		pr, err := m.guardedProbe(ctx, p.dev, c, cfg, nil)
		return pr, nil, err
	}
	port := cfg.RTSPPort
	if port == 0 {
		port = m.probes.rtspPort(cfg) // the device said so before
	}
	if port == 0 {
		port = m.rtspGuess
	}
	b := newRTSPBackend(cfg, p.dev, port)

	// The early side's context: the producer's (a Stop ends it), and
	// cancelled as soon as its session is not wanted.
	ectx, cancel := context.WithCancel(p.ctx)
	defer cancel()
	pre := make(chan *preopened, 1)
	go func() { pre <- b.preopen(ectx) }()

	var opened chan *earlyOpen // made once the login succeeded
	afterLogin := func() {
		opened = make(chan *earlyOpen, 1)
		go func() {
			po := <-pre
			if po.conn == nil {
				opened <- nil // could not connect there: Dial opens as usual
				return
			}
			s, err := b.openOn(ectx, po)
			po.close() // when openOn did not take it
			opened <- &earlyOpen{b: b, sess: s, err: err}
		}()
	}
	pr, err := m.guardedProbe(ctx, p.dev, c, cfg, afterLogin)

	// An unwanted early side is closed by a goroutine of its own: its
	// connect may still wait for a port that drops packets (as long as the
	// URL's #timeout), which the answer must not wait for.
	if opened == nil { // the login failed: no credentials went to RTSP
		cancel()
		go func() { (<-pre).close() }()
		return nil, nil, err
	}
	if err != nil || (cfg.RTSPPort == 0 && pr.RTSPPort != port) {
		cancel()
		go func() {
			if e := <-opened; e != nil && e.sess != nil {
				_ = e.sess.Close()
			}
		}()
		return pr, nil, err
	}
	return pr, <-opened, nil
}
