package hikvision

import (
	"context"
	"errors"
	"net/http"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/guard"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/snapshot"
)

// snapshots returns the source's snapshot cache, making it on first use.
func (r *registry) snapshots(s *sourceEntry) (*snapshot.Cache, error) {
	r.mu.Lock()
	closed, base := r.closed, r.cacheOptions
	r.mu.Unlock()
	if closed {
		return nil, snapshot.ErrClosed
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cache != nil {
		return s.cache, nil
	}
	opt := base
	opt.MaxStale, opt.NoLastGood = s.opts.MaxStale, s.opts.NoLastGood
	if s.opts.MinInterval > 0 {
		opt.MinInterval = s.opts.MinInterval
	}
	if s.cfg.Timeout > 0 {
		opt.FetchTimeout = s.cfg.Timeout
	}
	if opt.Now == nil {
		opt.Now = r.now
	}
	s.cache = snapshot.New(func(ctx context.Context, w, h int) ([]byte, error) {
		return r.fetchSnapshot(ctx, s, w, h)
	}, opt)
	return s.cache, nil
}

// fetchSnapshot is the snapshot cache's Fetcher: one device request through
// the device's guard. A hold answers at once (no request); a failed login is
// reported to the guard, as is every other outcome, so the guard's state and
// budget cover snapshots too.
func (r *registry) fetchSnapshot(ctx context.Context, s *sourceEntry, width, height int) ([]byte, error) {
	d := s.dev
	var body []byte
	err := d.Do(ctx, func(ctx context.Context) error {
		var err error
		body, err = r.fetchAllowed(ctx, s, width, height)
		return err
	})
	now := r.now()
	if err == nil {
		d.answered(now)
		if c, cerr := d.isapiClient(); cerr == nil {
			r.m.warnBasic(d.cfg, c)
		}
		return body, nil
	}
	d.saw(guard.Classify(err), d.redact(err.Error()), now)
	return nil, d.safeErr(err)
}

func (r *registry) fetchAllowed(ctx context.Context, s *sourceEntry, width, height int) ([]byte, error) {
	c, err := s.dev.isapiClient()
	if err != nil {
		return nil, err
	}
	pr := r.m.probes.get(s.cfg)
	if pr == nil {
		// never dialled (or the probe expired): the same probe Dial makes,
		// cached for the next Dial.
		if pr, err = r.m.probe(ctx, c, s.cfg); err != nil {
			return nil, err
		}
		r.m.probes.put(s.cfg, pr)
	}
	s.dev.setModel(pr.Info.Model)
	// The raw body: the snapshot cache checks it (SOI/EOI, XML, HTML) and names
	// what was wrong. Non-2xx and ResponseStatus answers are *isapi.StatusError.
	//
	// Which path: what worked last for this channel, else the likely one (a
	// recorder's IP channel: StreamingProxy; a camera or an analog input: the
	// plain path), and the other one when the device refuses the first.
	id := s.cfg.StreamID()
	proxy, known := s.dev.pictureProxy(id)
	if !known {
		proxy = pr.pictureProxyLikely()
	}
	_, body, err := c.Do(ctx, http.MethodGet, snapshot.Path(id, proxy, width, height), nil)
	if err != nil && pr.NVR && wrongPicturePath(err) {
		proxy = !proxy
		_, body, err = c.Do(ctx, http.MethodGet, snapshot.Path(id, proxy, width, height), nil)
	}
	if err != nil {
		return nil, err
	}
	s.dev.setPictureProxy(id, proxy)
	return body, nil
}

// wrongPicturePath: the recorder's answer to a snapshot on the other path
// than the channel takes (statusCode 6, or a 400/403/404).
func wrongPicturePath(err error) bool {
	var se *isapi.StatusError
	if !errors.As(err, &se) {
		return false
	}
	return se.StatusCode == 6 || se.HTTPStatus == 400 || se.HTTPStatus == 403 || se.HTTPStatus == 404
}
