package isapi_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
)

// -stress.seed replays a run of TestAuthStressSim: every failure names the
// seed of its subtest. 0 (default) takes a new seed per subtest.
var stressSeed = flag.Int64("stress.seed", 0, "seed for TestAuthStressSim (0: a new one per subtest)")

// -stress.time is how long each subtest of TestAuthStressSim runs its workers.
var stressTime = flag.Duration("stress.time", 700*time.Millisecond, "run time of each TestAuthStressSim subtest")

const alertStreamPath = "/ISAPI/Event/notification/alertStream"

// stressCase is one simulated device set-up of TestAuthStressSim.
type stressCase struct {
	name string
	cfg  sim.Config
	// reboots: reboots during the run, alternately while the workers run
	// (the client sees requests fail) and while they pause (the client is
	// idle, then sends at once with the nonce the device forgot)
	reboots int
	// counted: the device counts a right answer to a nonce it forgot in a
	// reboot as a failed login (sim.UnknownNonceCounted): the package doc
	// allows one failed login per reboot, reported as one refused password.
	counted bool
}

// stressTally is what the workers saw.
type stressTally struct {
	mu       sync.Mutex
	ok       map[string]int // successful operations by kind
	authErrs []string       // refused-password answers (never allowed, but see counted)
	other    []string       // other errors outside reboots
	transit  int            // errors while a reboot was under way
	refused  int            // ErrNonceRefused: a nonce refused twice, or talk audio's one
}

func (t *stressTally) success(kind string) {
	t.mu.Lock()
	t.ok[kind]++
	t.mu.Unlock()
}

// isAuthRefusal: what the login guard counts as a failed login.
func isAuthRefusal(err error) bool {
	var ae *isapi.AuthError
	return errors.As(err, &ae) || errors.Is(err, isapi.ErrUnauthorized) || errors.Is(err, isapi.ErrLocked)
}

// isDeviceAnswer: an error that is the device's own answer.
func isDeviceAnswer(err error) bool {
	var se *isapi.StatusError
	return isAuthRefusal(err) || errors.As(err, &se) || errors.Is(err, isapi.ErrNonceRefused) || errors.Is(err, isapi.ErrProtocol)
}

// talkBusy: the simulator has one talk session at a time; another worker's
// session, or the device hanging up, is no auth matter.
func talkBusy(err error) bool {
	var se *isapi.StatusError
	return errors.Is(err, isapi.ErrTalkEnded) || errors.Is(err, isapi.ErrDeviceBusy) ||
		(errors.As(err, &se) && (se.SubStatusCode == "invalidOperation" || se.StatusCode == 4))
}

// TestAuthStressSim runs 8–16 workers that send a random mix of requests
// (Do, GetXML, the alert stream, voice talk) with the right password against
// the simulator while its nonces expire every few tens of milliseconds, in
// each expired-nonce style, with and without strict nonce counts, and across
// reboots in each forgotten-nonce style. The right password must never be
// reported as refused nor make the device count a failed login, except what
// the package doc allows on a device that counts a forgotten nonce.
func TestAuthStressSim(t *testing.T) {
	short := 40 * time.Millisecond
	cases := []stressCase{
		{name: "stale", cfg: sim.Config{NonceLifetime: short}},
		{name: "stale-strictnc", cfg: sim.Config{NonceLifetime: short, StrictNC: true}},
		{name: "invalidop", cfg: sim.Config{NonceLifetime: short, StaleResponse: sim.StaleInvalidOperation}},
		{name: "invalidop-strictnc", cfg: sim.Config{NonceLifetime: short, StaleResponse: sim.StaleInvalidOperation, StrictNC: true}},
		{name: "sha256-plainnonce", cfg: sim.Config{NonceLifetime: short, DigestAlgorithms: []string{sim.AlgorithmMD5, sim.AlgorithmSHA256}, PlainNonce: true}},
		{name: "basic", cfg: sim.Config{Auth: sim.AuthBasic}},
		{name: "digest-basic", cfg: sim.Config{Auth: sim.AuthDigestBasic, NonceLifetime: short}},
		{name: "reboot-stale", cfg: sim.Config{NonceLifetime: 150 * time.Millisecond}, reboots: 2},
		{name: "reboot-plain", cfg: sim.Config{NonceLifetime: 150 * time.Millisecond, UnknownNonce: sim.UnknownNoncePlain, StrictNC: true}, reboots: 2},
		{name: "reboot-counted", cfg: sim.Config{NonceLifetime: 150 * time.Millisecond, UnknownNonce: sim.UnknownNonceCounted}, reboots: 2, counted: true},
	}
	base := *stressSeed
	if base == 0 {
		base = time.Now().UnixNano()
	}
	for i, sc := range cases {
		seed := base + int64(i)
		if *stressSeed != 0 {
			seed = *stressSeed
		}
		t.Run(sc.name, func(t *testing.T) {
			runAuthStress(t, sc, seed)
		})
	}
}

func runAuthStress(t *testing.T, sc stressCase, seed int64) {
	replay := fmt.Sprintf("seed %d (replay: go test -race -run 'TestAuthStressSim/%s$' -stress.seed=%d ./internal/isapi/)", seed, sc.name, seed)
	rng := rand.New(rand.NewSource(seed))
	workers := 8 + rng.Intn(9)
	d, c := startSim(t, sc.cfg)
	// the simulator's reboots last tens of milliseconds, not a device's
	// half minute: the idle time after which the client probes a cached
	// challenge with one request shrinks accordingly
	isapi.SetIdleProbe(c, 10*time.Millisecond)

	tally := &stressTally{ok: map[string]int{}}
	var rebooting atomic.Bool // set while a reboot is under way (and a moment after)
	var rebootGen atomic.Int64
	stop := make(chan struct{})
	var gate sync.RWMutex // held for writing while the workers pause
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wseed := rng.Int63()
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewSource(wseed))
			for {
				select {
				case <-stop:
					return
				default:
				}
				gate.RLock()
				gen := rebootGen.Load()
				kind, err := stressOp(c, r)
				gate.RUnlock()
				if err == nil {
					tally.success(kind)
					continue
				}
				inReboot := rebooting.Load() || rebootGen.Load() != gen
				if sc.reboots > 0 && !isDeviceAnswer(err) {
					// a connection refused or cut around a reboot (the
					// listener can lag the Up signal): never an auth matter
					inReboot = true
				}
				// a real consumer pauses after an error rather than spin on
				// a device that refuses connections (pacing, not waiting for
				// anything)
				time.Sleep(time.Duration(1+r.Intn(10)) * time.Millisecond)
				tally.mu.Lock()
				switch {
				case isAuthRefusal(err):
					tally.authErrs = append(tally.authErrs, fmt.Sprintf("%s: %v", kind, err))
				case inReboot:
					tally.transit++
				case errors.Is(err, isapi.ErrNonceRefused):
					// The client answers a refused nonce's new challenge
					// once (talk audio cannot be sent again at all): with
					// nonces living a few tens of milliseconds on a loaded
					// machine, or nonce counts overtaking each other on a
					// strict device, that can be refused too. Never a
					// failed login; counted and shown.
					tally.refused++
				case kind == "talk" && talkBusy(err):
				default:
					tally.other = append(tally.other, fmt.Sprintf("%s: %v", kind, err))
				}
				tally.mu.Unlock()
			}
		}()
	}

	// the reboots, at random moments of the run
	runFor := *stressTime
	rebootsDone := 0
	deadline := time.NewTimer(runFor)
	defer deadline.Stop()
	for i := 0; i < sc.reboots; i++ {
		// not timing anything: the moment of the reboot is random
		time.Sleep(time.Duration(rng.Int63n(int64(runFor / time.Duration(sc.reboots+1)))))
		idle := i%2 == 1
		if idle {
			gate.Lock() // the workers finish what they do and pause
		}
		rebooting.Store(true)
		rebootGen.Add(1)
		if err := d.Reboot(time.Duration(20+rng.Intn(60)) * time.Millisecond); err != nil {
			if idle {
				gate.Unlock()
			}
			close(stop)
			wg.Wait()
			t.Fatal(err)
		}
		select {
		case <-d.Up():
		case <-time.After(10 * time.Second):
			if idle {
				gate.Unlock()
			}
			close(stop)
			wg.Wait()
			t.Fatalf("%s: simulator did not come back from reboot %d", replay, i+1)
		}
		rebootGen.Add(1)
		rebooting.Store(false)
		if idle {
			gate.Unlock()
		}
		rebootsDone++
	}
	<-deadline.C
	close(stop)
	wg.Wait()

	cs := d.Client("127.0.0.1")
	tally.mu.Lock()
	defer tally.mu.Unlock()
	total := 0
	var kinds []string
	for k, n := range tally.ok {
		total += n
		kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(kinds)
	summary := fmt.Sprintf("%s; %d workers, ok: %s; errors in reboots %d; nonce refused twice %d; device: good %d, failed %d, stale %d, unknown %d, rejected %d, challenges %d, lock events %d",
		replay, workers, strings.Join(kinds, ", "), tally.transit, tally.refused,
		cs.GoodLogins, cs.FailedLogins, cs.StaleNonces, cs.UnknownNonces, cs.RejectedAuth, cs.Challenges, cs.LockEvents)
	t.Log(summary)

	allowed := 0
	if sc.counted {
		allowed = rebootsDone // the doc: one counted failure per reboot at most
	}
	if len(tally.authErrs) > allowed || cs.FailedLogins > allowed {
		t.Errorf("right password refused %d times, device counted %d failed logins (allowed %d):\n  %s\n%s",
			len(tally.authErrs), cs.FailedLogins, allowed, strings.Join(firstN(tally.authErrs, 8), "\n  "), summary)
	}
	if cs.LockEvents != 0 {
		t.Errorf("device locked the client %d times; %s", cs.LockEvents, summary)
	}
	// A device that checks nonce counts rejects (with an uncounted plain
	// 401 that the client answers with a new challenge) a count that
	// arrives after higher ones: all of them under StrictNC, and with the
	// default replay window only one that fell more than 64 behind, which
	// needs a request held up while 64 others passed (a loaded machine).
	// The client cannot keep counts in order on the wire across parallel
	// connections; it only must recover, which the checks above show.
	if !sc.cfg.StrictNC && cs.RejectedAuth > 3+cs.GoodLogins/100 {
		t.Errorf("device rejected %d digest answers (replayed, malformed or more than 64 counts late); %s", cs.RejectedAuth, summary)
	}
	if len(tally.other) > 0 {
		t.Errorf("%d errors outside reboots:\n  %s\n%s", len(tally.other), strings.Join(firstN(tally.other, 8), "\n  "), summary)
	}
	// the run must have done what it is about
	if total < workers {
		t.Errorf("only %d operations succeeded; %s", total, summary)
	}
	if sc.cfg.Auth != sim.AuthBasic && sc.cfg.NonceLifetime < 100*time.Millisecond && cs.StaleNonces+cs.RejectedAuth == 0 {
		t.Errorf("no nonce expired during the run; %s", summary)
	}
}

func firstN(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], fmt.Sprintf("... %d more", len(s)-n))
	}
	return s
}

// stressOp runs one random operation and names its kind.
func stressOp(c *isapi.Client, r *rand.Rand) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	switch n := r.Intn(20); {
	case n < 5:
		_, err := c.DeviceInfo(ctx)
		return "deviceInfo", err
	case n < 9:
		return "userCheck", c.UserCheck(ctx)
	case n < 12:
		_, err := c.StreamingChannels(ctx)
		return "channels", err
	case n < 14:
		var x struct {
			Enabled string `xml:"enabled"`
		}
		return "getXML", c.GetXML(ctx, isapi.PathTwoWayAudioChannels, &x)
	case n < 18:
		resp, err := c.OpenStream(ctx, alertStreamPath)
		if err != nil {
			return "alertStream", err
		}
		buf := make([]byte, 64)
		_, err = io.ReadAtLeast(resp.Body, buf, 1+r.Intn(len(buf)))
		resp.Body.Close()
		if err != nil {
			return "alertStream", fmt.Errorf("reading the alert stream: %w", err)
		}
		return "alertStream", nil
	default:
		return "talk", stressTalk(ctx, c, r)
	}
}

// stressTalk opens voice talk, sends a little audio on the audioData
// connection, closes the talk and reads what the device answered on it.
func stressTalk(ctx context.Context, c *isapi.Client, r *rand.Rand) error {
	sid, err := c.TalkOpen(ctx, "1")
	if err != nil {
		return err
	}
	defer func() { _ = c.TalkClose(context.Background(), "1") }()
	w, err := c.TalkAudioData(ctx, "1", sid)
	if err != nil {
		return err
	}
	defer w.Close()
	chunk := make([]byte, 160)
	for i := range chunk {
		chunk[i] = 0xff // µ-law silence
	}
	for i := 0; i < 1+r.Intn(3); i++ {
		if _, err := w.Write(chunk); err != nil {
			return err
		}
	}
	if err := c.TalkClose(ctx, "1"); err != nil {
		return err
	}
	// the device hangs up on close: the writer then reports the answer the
	// device gave the audioData request, if any (a refusal would show here)
	for ctx.Err() == nil {
		if _, err := w.Write(chunk); err != nil {
			if errors.Is(err, isapi.ErrTalkEnded) {
				return nil
			}
			var se *isapi.StatusError
			if !isAuthRefusal(err) && !errors.As(err, &se) {
				return nil // a write error after the hang-up
			}
			return err
		}
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Millisecond): // pacing the audio, not synchronisation
		}
	}
	return fmt.Errorf("talk: the device did not hang up after close: %w", ctx.Err())
}
