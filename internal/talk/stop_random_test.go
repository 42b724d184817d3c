package talk

import (
	"context"
	"math/rand"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// TestRandomStopContract runs 200 randomised cycles of talk, silence, device
// hang-ups, other talkers and a Stop at a random moment (also while an Open,
// an AudioData, a write or a Close is in flight), against a fake device that
// records every call and whether the session's stop flag was already set when
// the call came in. After the flag: no Open, AudioData or write unless that
// very call was in flight, exactly one Close for a session that was (or may
// have been) open, none otherwise; no session of ours left open on the device;
// nothing after Stop returns; no goroutine left.
//
// TALK_SEED=<n> replays a run.
func TestRandomStopContract(t *testing.T) {
	seed := time.Now().UnixNano()
	if v := os.Getenv("TALK_SEED"); v != "" {
		seed, _ = strconv.ParseInt(v, 10, 64)
	}
	t.Logf("seed %d (TALK_SEED to replay)", seed)
	r := rand.New(rand.NewSource(seed))
	base := runtime.NumGoroutine()

	cycles := 200
	if testing.Short() {
		cycles = 40
	}
	var inFlight = map[op]int{}
	var closesOnStop, opensTotal int
	for cycle := 0; cycle < cycles; cycle++ {
		f := newFake()
		openDelay := time.Duration(r.Intn(4000)) * time.Microsecond
		refuseEvery := 0
		if r.Intn(5) == 0 {
			refuseEvery = 2 + r.Intn(3) // some opens fail without a device answer
		}
		f.openHook = func(ctx context.Context, n int) error {
			t := time.NewTimer(openDelay)
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
				return ctx.Err()
			}
			if refuseEvery > 0 && n%refuseEvery == 0 {
				return &testNetErr{}
			}
			return nil
		}
		if r.Intn(4) == 0 {
			blockFor := time.Duration(r.Intn(3000)) * time.Microsecond
			f.writeHook = func(w *fakeWriter) error {
				t := time.NewTimer(blockFor)
				defer t.Stop()
				select {
				case <-t.C:
				case <-w.unblock:
				}
				return nil
			}
		}
		if r.Intn(6) == 0 {
			f.setForeign(true)
		}
		callDelay := time.Duration(r.Intn(2000)) * time.Microsecond
		f.audioDataHook = func(int) error { time.Sleep(callDelay); return nil } // device latency
		f.closeHook = func(int) error { time.Sleep(callDelay); return nil }
		cfg := Config{
			Device:       f,
			Framer:       &G711Framer{Name: "PCMU"},
			IdleTimeout:  time.Duration(3+r.Intn(12)) * time.Millisecond,
			CloseTimeout: 20 * time.Millisecond,
			OpenTimeout:  time.Second,
			BusyRetry:    2 * time.Millisecond,
			BusyTries:    3,
			FailDelay:    time.Millisecond,
			MaxFailures:  4,
			TakeOver:     r.Intn(10) == 0,
			StaleSession: r.Intn(10) == 0,
		}
		s, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		f.mu.Lock()
		f.sess = s
		f.mu.Unlock()

		// The talker: bursts, silences, device events, until told to end.
		type step struct {
			kind int
			n    int
			d    time.Duration
		}
		var steps []step
		for i := 0; i < 1+r.Intn(6); i++ {
			steps = append(steps, step{kind: r.Intn(5), n: 1 + r.Intn(20), d: time.Duration(r.Intn(15000)) * time.Microsecond})
		}
		end := make(chan struct{})
		talked := make(chan struct{})
		go func() {
			defer close(talked)
			for _, st := range steps {
				switch st.kind {
				case 0, 1: // a burst of audio
					for i := 0; i < st.n; i++ {
						s.Write(packet(i))
						if i%4 == 3 {
							time.Sleep(200 * time.Microsecond)
						}
					}
				case 2: // silence
					select {
					case <-time.After(st.d):
					case <-end:
						return
					}
				case 3: // the device hangs up by itself
					f.hangUp()
				case 4: // another client starts or ends talking
					f.setForeign(st.n%2 == 0)
				}
				select {
				case <-end:
					return
				default:
				}
			}
		}()

		// Stop at a random moment, concurrently with the talker.
		time.Sleep(time.Duration(r.Intn(30000)) * time.Microsecond)
		s.Stop()
		close(end)
		<-talked

		calls := f.callList()
		s.mu.Lock()
		stopCall, stopOwned := s.stopCall, s.stopOwned
		s.mu.Unlock()
		inFlight[stopCall]++

		lastOpenResult := ""
		count := map[string]int{}
		for _, c := range calls {
			if c.op == "open-return" {
				lastOpenResult = c.result
			}
			if c.op == "open" {
				opensTotal++
			}
			if c.stopped && c.op != "open-return" {
				count[c.op]++
			}
		}
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("cycle %d (seed %d, stopCall %d, stopOwned %v, calls %v): "+format,
				append([]any{cycle, seed, stopCall, stopOwned, f.ops()}, args...)...)
		}
		allowed := func(o op) int {
			if stopCall == o {
				return 1
			}
			return 0
		}
		if count["open"] > allowed(opOpen) {
			fail("%d opens after stop", count["open"])
		}
		if count["audioData"] > allowed(opAudioData) {
			fail("%d audioData after stop", count["audioData"])
		}
		if count["write"] > allowed(opWrite) {
			fail("%d writes after stop", count["write"])
		}
		if stopCall == opClose {
			if count["close"] > 1 {
				fail("%d closes after stop with a close in flight", count["close"])
			}
		} else {
			want := 0
			if stopOwned || (stopCall == opOpen && (lastOpenResult == "ok" || lastOpenResult == "cancelled" || lastOpenResult == "refused")) {
				want = 1
			}
			if count["close"] != want {
				fail("%d closes after stop, want %d (last open: %s)", count["close"], want, lastOpenResult)
			}
			closesOnStop += want
		}
		if f.ourSessionOpen() {
			fail("our session left open on the device")
		}
		if s.State() != StateStopped {
			fail("state %s", s.State())
		}
		for i := 0; i < 5; i++ {
			s.Write(packet(i))
		}
		if n := len(f.callList()); n != len(calls) {
			fail("%d device calls after Stop returned", n-len(calls))
		}
	}
	t.Logf("%d cycles: %d opens, %d closes on stop; call in flight at stop: none %d, open %d, audioData %d, write %d, close %d",
		cycles, opensTotal, closesOnStop, inFlight[opNone], inFlight[opOpen], inFlight[opAudioData], inFlight[opWrite], inFlight[opClose])
	checkGoroutines(t, base)
}

// testNetErr is a transport failure: no device answer, the open may have happened.
type testNetErr struct{}

func (*testNetErr) Error() string   { return "fake: connection reset by peer" }
func (*testNetErr) Timeout() bool   { return false }
func (*testNetErr) Temporary() bool { return false }
