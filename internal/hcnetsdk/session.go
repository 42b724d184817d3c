package hcnetsdk

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Session is one login (an SDK user id). Logout stops its real-plays and
// talks first; every Session must be logged out (SDK.Close does it too).
type Session struct {
	sdk  *SDK
	id   int32
	info DeviceInfo

	mu      sync.Mutex
	closed  bool
	plays   map[*Play]struct{}
	talks   map[*Talk]struct{}
	pending sync.WaitGroup // RealPlay/StartTalk calls under way

	evMu     sync.RWMutex
	evClosed bool
	events   chan Event
	dropped  atomic.Uint64

	logoutOnce sync.Once
	logoutErr  error
}

// Info returns the facts the device reported at login.
func (ss *Session) Info() DeviceInfo { return ss.info }

// UserID is the SDK's login id.
func (ss *Session) UserID() int32 { return ss.id }

// Events delivers the exception callbacks that name this login
// (EXCEPTION_EXCHANGE, RESUME_EXCHANGE, relogin events). It is closed by
// Logout. When the reader falls behind, events are dropped and counted.
func (ss *Session) Events() <-chan Event { return ss.events }

// DroppedEvents counts events dropped because Events was full.
func (ss *Session) DroppedEvents() uint64 { return ss.dropped.Load() }

func (ss *Session) event(ev Event) {
	ss.evMu.RLock()
	defer ss.evMu.RUnlock()
	if ss.evClosed {
		reg.late.Add(1)
		return
	}
	select {
	case ss.events <- ev:
	default:
		ss.dropped.Add(1)
	}
}

func (ss *Session) live() error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.closed {
		return ErrClosed
	}
	return nil
}

// enter counts a RealPlay/StartTalk in, so that Logout waits for it.
func (ss *Session) enter() error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.closed {
		return ErrClosed
	}
	ss.pending.Add(1)
	return nil
}

// Logout stops the session's real-plays and talks, then logs out
// (NET_DVR_Logout). Further callbacks for them are dropped at once. Calling
// it again returns the first result.
func (ss *Session) Logout() error {
	ss.logoutOnce.Do(func() {
		ss.mu.Lock()
		ss.closed = true
		ss.mu.Unlock()
		ss.pending.Wait() // a real-play or talk being opened registers or undoes itself
		ss.mu.Lock()
		plays := make([]*Play, 0, len(ss.plays))
		for p := range ss.plays {
			plays = append(plays, p)
		}
		talks := make([]*Talk, 0, len(ss.talks))
		for t := range ss.talks {
			talks = append(talks, t)
		}
		ss.mu.Unlock()
		var errs []error
		for _, p := range plays {
			if err := p.Stop(); err != nil {
				errs = append(errs, err)
			}
		}
		for _, t := range talks {
			if err := t.Stop(); err != nil {
				errs = append(errs, err)
			}
		}
		reg.removeSession(ss)
		ss.evMu.Lock()
		ss.evClosed = true
		close(ss.events)
		ss.evMu.Unlock()
		l := ss.sdk.lib
		res := ss.sdk.call(func() int32 { return l.logout(ss.id) }, isFalse)
		if res.r == 0 {
			errs = append(errs, &Error{Op: "NET_DVR_Logout", Code: res.code})
		}
		ss.sdk.mu.Lock()
		delete(ss.sdk.sessions, ss)
		ss.sdk.mu.Unlock()
		ss.logoutErr = errors.Join(errs...)
	})
	return ss.logoutErr
}

// Play is one real-play (NET_DVR_RealPlay_V40): the device's MPEG-PS with
// its 40-byte header first, copied off the SDK's threads.
type Play struct {
	ss     *Session
	key    uintptr // our user pointer value: a registry key, never a Go pointer
	params PlayParams
	handle atomic.Int32

	mu        sync.RWMutex // held shared by deliveries, exclusively to close
	closed    bool
	data      chan Packet
	free      chan []byte // buffers handed back by Recycle
	events    chan Event
	dropped   atomic.Uint64
	delivered atomic.Uint64
	evDropped atomic.Uint64

	stopOnce sync.Once
	stopErr  error
}

// RealPlay starts a real-play over TCP, non-blocking, without a window. If
// ctx ends before the SDK answers, the play is stopped when it starts.
func (ss *Session) RealPlay(ctx context.Context, pp PlayParams) (*Play, error) {
	if pp.Channel <= 0 {
		return nil, fmt.Errorf("%w: real-play: channel %d (channels start at 1)", ErrParameter, pp.Channel)
	}
	if pp.Stream > StreamThird {
		return nil, fmt.Errorf("%w: real-play: stream type %d (main 0, sub 1, third 2)", ErrParameter, pp.Stream)
	}
	if pp.Queue <= 0 {
		pp.Queue = defaultQueue
	}
	if err := ss.enter(); err != nil {
		return nil, err
	}
	p := &Play{
		ss:     ss,
		params: pp,
		data:   make(chan Packet, pp.Queue),
		free:   make(chan []byte, pp.Queue),
		events: make(chan Event, eventQueue),
	}
	p.handle.Store(-1)
	// Registered before the call: the SDK may deliver before it returns.
	p.key = reg.plays.add(p)
	in := &previewInfo{Channel: int32(pp.Channel), StreamType: uint32(pp.Stream)}
	l := ss.sdk.lib
	h, err := ss.openHandle(ctx, "NET_DVR_RealPlay_V40",
		func() int32 { return l.realPlayV40(ss.id, in, l.dataCB, p.key) }, l.stopRealPlay,
		func(h int32) { p.handle.Store(h) },
		func() { reg.plays.remove(p); p.close() },
		func() { ss.plays[p] = struct{}{} })
	if err != nil {
		return nil, err
	}
	reg.plays.setHandle(p, h)
	return p, nil
}

// Data delivers the play's packets: DataSysHead first, then DataStream.
// It is closed by Stop (or the session's Logout).
func (p *Play) Data() <-chan Packet { return p.data }

// Events delivers the exception callbacks that name this play
// (EXCEPTION_PREVIEW ...) and those that name its login
// (EXCEPTION_EXCHANGE ...). Closed by Stop.
func (p *Play) Events() <-chan Event { return p.events }

// Recycle hands a packet's Data back for reuse once the reader is done
// with it (optional: without it every packet is a new allocation). The
// slice must not be used afterwards.
func (p *Play) Recycle(b []byte) {
	if cap(b) == 0 {
		return
	}
	select {
	case p.free <- b[:0]:
	default:
	}
}

// Handle is the SDK's real-play handle.
func (p *Play) Handle() int32 { return p.handle.Load() }

// Params returns what was asked for.
func (p *Play) Params() PlayParams { return p.params }

// Dropped counts packets dropped because Data was full.
func (p *Play) Dropped() uint64 { return p.dropped.Load() }

// Delivered counts packets queued to Data.
func (p *Play) Delivered() uint64 { return p.delivered.Load() }

// deliver runs on the SDK's thread: copy and queue without blocking.
func (p *Play) deliver(typ uint32, buf *byte, size uint32) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		reg.late.Add(1)
		return
	}
	if len(p.data) == cap(p.data) {
		p.dropped.Add(1)
		return
	}
	var b []byte
	if size > 0 && buf != nil {
		select {
		case b = <-p.free:
		default:
		}
		if cap(b) < int(size) {
			b = make([]byte, size, max(int(size), 2048))
		}
		b = b[:size]
		copy(b, unsafe.Slice(buf, size))
	}
	select {
	case p.data <- Packet{Type: DataType(typ), Data: b}:
		p.delivered.Add(1)
	default:
		p.dropped.Add(1)
	}
}

func (p *Play) event(ev Event) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		reg.late.Add(1)
		return
	}
	select {
	case p.events <- ev:
	default:
		p.evDropped.Add(1)
	}
}

// close ends deliveries; callbacks in progress finish first (they never
// block), later ones are dropped.
func (p *Play) close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.data)
		close(p.events)
	}
	p.mu.Unlock()
}

// Stop stops the real-play (NET_DVR_StopRealPlay). Callbacks arriving from
// now on are dropped at once. Calling it again returns the first result.
func (p *Play) Stop() error {
	p.stopOnce.Do(func() {
		reg.plays.remove(p)
		p.close()
		h := p.handle.Load()
		ss := p.ss
		if h >= 0 {
			l := ss.sdk.lib
			res := ss.sdk.call(func() int32 { return l.stopRealPlay(h) }, isFalse)
			if res.r == 0 {
				p.stopErr = &Error{Op: "NET_DVR_StopRealPlay", Code: res.code}
			}
		}
		ss.mu.Lock()
		delete(ss.plays, p)
		ss.mu.Unlock()
	})
	return p.stopErr
}

// Talk is one voice talk (NET_DVR_StartVoiceCom_MR_V30): the caller sends
// audio already encoded in the device's talk encoding.
type Talk struct {
	ss      *Session
	key     uintptr
	channel int
	handle  atomic.Int32

	mu       sync.RWMutex // shared by Send and callbacks, exclusive to stop
	closed   bool
	events   chan Event
	received atomic.Uint64 // device audio bytes the SDK called back with
	sent     atomic.Uint64

	stopOnce sync.Once
	stopErr  error
}

// StartTalk opens voice talk on a talk channel (1-based). A device whose
// talk channel is taken answers ErrTalkBusy. If ctx ends before the SDK
// answers, the talk is stopped when it starts.
func (ss *Session) StartTalk(ctx context.Context, channel int) (*Talk, error) {
	if channel <= 0 {
		return nil, fmt.Errorf("%w: voice talk: channel %d (talk channels start at 1)", ErrParameter, channel)
	}
	if err := ss.enter(); err != nil {
		return nil, err
	}
	t := &Talk{ss: ss, channel: channel, events: make(chan Event, eventQueue)}
	t.handle.Store(-1)
	t.key = reg.talks.add(t)
	l := ss.sdk.lib
	h, err := ss.openHandle(ctx, "NET_DVR_StartVoiceCom_MR_V30",
		func() int32 { return l.startVoiceComMRV30(ss.id, uint32(channel), l.voiceCB, t.key) }, l.stopVoiceCom,
		func(h int32) { t.handle.Store(h) },
		func() { reg.talks.remove(t); t.close() },
		func() { ss.talks[t] = struct{}{} })
	if err != nil {
		return nil, err
	}
	reg.talks.setHandle(t, h)
	return t, nil
}

// Send passes one block of encoded audio to the device
// (NET_DVR_VoiceComSendData).
func (t *Talk) Send(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.closed {
		return ErrClosed
	}
	h := t.handle.Load()
	l := t.ss.sdk.lib
	res := t.ss.sdk.call(func() int32 { return l.voiceComSendData(h, &b[0], uint32(len(b))) }, isFalse)
	if res.r == 0 {
		return &Error{Op: "NET_DVR_VoiceComSendData", Code: res.code}
	}
	t.sent.Add(uint64(len(b)))
	return nil
}

// Events delivers EXCEPTION_AUDIOEXCHANGE for this talk and the login's
// events. Closed by Stop.
func (t *Talk) Events() <-chan Event { return t.events }

// Handle is the SDK's voice talk handle.
func (t *Talk) Handle() int32 { return t.handle.Load() }

// Sent counts the audio bytes passed to the SDK.
func (t *Talk) Sent() uint64 { return t.sent.Load() }

// Received counts device audio bytes the SDK called back with (not kept).
func (t *Talk) Received() uint64 { return t.received.Load() }

func (t *Talk) audio(size uint32) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.closed {
		reg.late.Add(1)
		return
	}
	t.received.Add(uint64(size))
}

func (t *Talk) event(ev Event) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.closed {
		reg.late.Add(1)
		return
	}
	select {
	case t.events <- ev:
	default:
	}
}

func (t *Talk) close() {
	t.mu.Lock()
	if !t.closed {
		t.closed = true
		close(t.events)
	}
	t.mu.Unlock()
}

// Stop ends the voice talk (NET_DVR_StopVoiceCom). Calling it again returns
// the first result.
func (t *Talk) Stop() error {
	t.stopOnce.Do(func() {
		reg.talks.remove(t)
		t.close() // waits for a Send under way
		h := t.handle.Load()
		ss := t.ss
		if h >= 0 {
			l := ss.sdk.lib
			res := ss.sdk.call(func() int32 { return l.stopVoiceCom(h) }, isFalse)
			if res.r == 0 {
				t.stopErr = &Error{Op: "NET_DVR_StopVoiceCom", Code: res.code}
			}
		}
		ss.mu.Lock()
		delete(ss.talks, t)
		ss.mu.Unlock()
	})
	return t.stopErr
}

// AudioCompress asks the device for its voice talk encoding
// (NET_DVR_GetCurrentAudioCompress).
func (ss *Session) AudioCompress(ctx context.Context) (AudioCompress, error) {
	if err := ss.live(); err != nil {
		return AudioCompress{}, err
	}
	out := new(compressionAudio)
	l := ss.sdk.lib
	res, done, _, err := ss.sdk.async(ctx, func() callResult {
		return ss.sdk.call(func() int32 { return l.getCurrentAudioCompress(ss.id, out) }, isFalse)
	}, nil)
	done()
	if err != nil {
		return AudioCompress{}, err
	}
	if res.r == 0 {
		return AudioCompress{}, &Error{Op: "NET_DVR_GetCurrentAudioCompress", Code: res.code}
	}
	return AudioCompress{
		Encoding:   TalkEncoding(out.AudioEncType),
		SampleRate: sampleRates[out.AudioSamplingRate],
		BitRate:    int(out.AudioBitRate),
	}, nil
}

// ---- routing of callbacks from the SDK's threads ----

// registry maps our user-pointer keys and the SDK's handles to live
// objects. Keys are never reused; SDK handles are, so handle entries are
// removed before the SDK is asked to stop.
type registry struct {
	next     atomic.Uintptr // the last key handed out, for plays and talks alike
	plays    routes[*Play]
	talks    routes[*Talk]
	mu       sync.RWMutex // guards sessions
	sessions map[int32]*Session

	late     atomic.Uint64
	unrouted atomic.Uint64
}

var reg = &registry{
	plays:    newRoutes[*Play](),
	talks:    newRoutes[*Talk](),
	sessions: map[int32]*Session{},
}

// routed is what a callback is routed to: a real-play or a voice talk.
type routed interface {
	comparable
	routeKey() uintptr
	routeHandle() int32 // -1 until the SDK handed one out
	routeSession() *Session
}

func (p *Play) routeKey() uintptr      { return p.key }
func (p *Play) routeHandle() int32     { return p.handle.Load() }
func (p *Play) routeSession() *Session { return p.ss }
func (t *Talk) routeKey() uintptr      { return t.key }
func (t *Talk) routeHandle() int32     { return t.handle.Load() }
func (t *Talk) routeSession() *Session { return t.ss }

// routes holds one kind of routed object by key (data callbacks carry
// the key as their user pointer) and by SDK handle (exceptions carry the
// handle).
type routes[T routed] struct {
	mu       sync.RWMutex
	byKey    map[uintptr]T
	byHandle map[int32]T
}

func newRoutes[T routed]() routes[T] {
	return routes[T]{byKey: map[uintptr]T{}, byHandle: map[int32]T{}}
}

// add registers v under a new key (v's routeKey must return it from then on).
func (rs *routes[T]) add(v T) uintptr {
	key := reg.next.Add(1)
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.byKey[key] = v
	return key
}

// setHandle routes handle h to v, unless v was removed meanwhile.
func (rs *routes[T]) setHandle(v T, h int32) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.byKey[v.routeKey()] == v {
		rs.byHandle[h] = v
	}
}

func (rs *routes[T]) remove(v T) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	delete(rs.byKey, v.routeKey())
	if h := v.routeHandle(); h >= 0 && rs.byHandle[h] == v {
		delete(rs.byHandle, h)
	}
}

func (rs *routes[T]) key(k uintptr) (T, bool) {
	rs.mu.RLock()
	defer rs.mu.RUnlock()
	v, ok := rs.byKey[k]
	return v, ok
}

func (rs *routes[T]) handle(h int32) (T, bool) {
	rs.mu.RLock()
	defer rs.mu.RUnlock()
	v, ok := rs.byHandle[h]
	return v, ok
}

// of lists the objects with a handle that belong to ss.
func (rs *routes[T]) of(ss *Session) []T {
	rs.mu.RLock()
	defer rs.mu.RUnlock()
	var out []T
	for _, v := range rs.byHandle {
		if v.routeSession() == ss {
			out = append(out, v)
		}
	}
	return out
}

func (r *registry) addSession(ss *Session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sessions[ss.id] = ss
}

func (r *registry) removeSession(ss *Session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sessions[ss.id] == ss {
		delete(r.sessions, ss.id)
	}
}

// onData is the real-play callback (REALDATACALLBACK); user is a play key.
func onData(handle int32, dataType uint32, buf *byte, size uint32, user uintptr) {
	p, ok := reg.plays.key(user)
	if !ok {
		reg.late.Add(1)
		return
	}
	p.deliver(dataType, buf, size)
}

// onVoice is the voice talk callback; user is a talk key.
func onVoice(handle int32, buf *byte, size uint32, flag uint8, user uintptr) {
	t, ok := reg.talks.key(user)
	if !ok {
		reg.late.Add(1)
		return
	}
	t.audio(size)
}

// onException is the exception callback. Real-play and talk exceptions are
// routed by handle; login exceptions by user id, to the session and to each
// of its plays and talks.
func onException(typ uint32, userID, handle int32, user uintptr) {
	ev := Event{Type: Exception(typ), UserID: userID, Handle: handle}
	switch ev.Type {
	case ExceptionPreview, ExceptionReconnect, PreviewReconnectSuccess, ExceptionPreviewReconnEnd:
		p, ok := reg.plays.handle(handle)
		if !ok || p.ss.id != userID {
			reg.unrouted.Add(1)
			return
		}
		p.event(ev)
	case ExceptionAudioExchange:
		t, ok := reg.talks.handle(handle)
		if !ok {
			reg.unrouted.Add(1)
			return
		}
		t.event(ev)
	default:
		reg.mu.RLock()
		ss := reg.sessions[userID]
		reg.mu.RUnlock()
		if ss == nil {
			reg.unrouted.Add(1)
			return
		}
		ss.event(ev)
		for _, p := range reg.plays.of(ss) {
			p.event(ev)
		}
		for _, t := range reg.talks.of(ss) {
			t.event(ev)
		}
	}
}

// openHandle runs start (a real-play or voice-talk start) on the SDK's call
// thread and makes the handle it returns the caller's. If ctx ends first, the
// caller gets ctx's error at once and a handle the SDK hands out later is
// stopped when start returns. On a failure, or when the session was closed
// meanwhile, undo drops the caller's registration (and a handle is stopped);
// otherwise got has the handle before keep adds it to the session (under
// ss.mu). The caller has entered the session (ss.enter).
func (ss *Session) openHandle(ctx context.Context, op string, start func() int32, stop func(int32) int32,
	got func(int32), undo func(), keep func()) (int32, error) {
	res, done, abandoned, err := ss.sdk.async(ctx, func() callResult {
		return ss.sdk.call(start, isNeg)
	}, func(r callResult) {
		if r.r >= 0 {
			ss.sdk.call(func() int32 { return stop(r.r) }, isFalse)
		}
		ss.pending.Done()
	})
	defer done()
	if !abandoned {
		defer ss.pending.Done()
	}
	if err == nil && res.r < 0 {
		err = &Error{Op: op, Code: res.code}
	}
	if err != nil {
		undo()
		return -1, err
	}
	got(res.r)
	ss.mu.Lock()
	if ss.closed {
		ss.mu.Unlock()
		undo()
		ss.sdk.call(func() int32 { return stop(res.r) }, isFalse)
		return -1, ErrClosed
	}
	keep()
	ss.mu.Unlock()
	return res.r, nil
}
