package sim_test

// A tiny HTTP Digest client written from RFC 7616 / RFC 2617 for these tests only (the simulator must
// not share code with the product's client), plus XML and clock helpers.

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/testclock"
)

// newFakeClock is a settable clock for sim.Config.Now.
func newFakeClock() *testclock.Clock { return testclock.New(time.Unix(1_700_000_000, 0)) }

// challenge is one parsed WWW-Authenticate header.
type challenge struct {
	scheme string
	params map[string]string
	raw    string
}

// parseChallenge parses `Digest k="v", k2=v2` (quoted values may contain commas).
func parseChallenge(t *testing.T, h string) challenge {
	t.Helper()
	scheme, rest, _ := strings.Cut(h, " ")
	c := challenge{scheme: scheme, params: map[string]string{}, raw: h}
	for rest = strings.TrimSpace(rest); rest != ""; rest = strings.TrimLeft(strings.TrimSpace(rest), ",") {
		rest = strings.TrimSpace(rest)
		k, v, ok := strings.Cut(rest, "=")
		if !ok {
			t.Fatalf("challenge %q: param without '='", h)
		}
		k = strings.TrimSpace(k)
		if strings.HasPrefix(v, `"`) {
			end := strings.Index(v[1:], `"`)
			if end < 0 {
				t.Fatalf("challenge %q: unterminated quote", h)
			}
			c.params[k], rest = v[1:1+end], v[2+end:]
		} else {
			val, after, _ := strings.Cut(v, ",")
			c.params[k], rest = strings.TrimSpace(val), after
		}
	}
	return c
}

func hexHash(alg, s string) string {
	var h hash.Hash = md5.New()
	if alg == "SHA-256" {
		h = sha256.New()
	}
	h.Write([]byte(s))
	return hex.EncodeToString(h.Sum(nil))
}

func newCnonce() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// digestAuthorization computes the Authorization header for a challenge (qop=auth).
func digestAuthorization(c challenge, method, uri, user, pass string, nc int) string {
	alg := c.params["algorithm"]
	if alg == "" {
		alg = "MD5"
	}
	cnonce := newCnonce()
	ncs := fmt.Sprintf("%08x", nc)
	ha1 := hexHash(alg, user+":"+c.params["realm"]+":"+pass)
	ha2 := hexHash(alg, method+":"+uri)
	resp := hexHash(alg, ha1+":"+c.params["nonce"]+":"+ncs+":"+cnonce+":auth:"+ha2)
	return fmt.Sprintf(`Digest username=%q, realm=%q, nonce=%q, uri=%q, algorithm=%s, response=%q, opaque=%q, qop=auth, nc=%s, cnonce=%q`,
		user, c.params["realm"], c.params["nonce"], uri, alg, resp, c.params["opaque"], ncs, cnonce)
}

func basicAuthorization(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// tclient is an HTTP client with its own transport (so idle connections can be closed).
type tclient struct {
	t    *testing.T
	base string
	tr   *http.Transport
	hc   *http.Client
}

func newClient(t *testing.T, d *sim.Device) *tclient {
	tr := &http.Transport{}
	c := &tclient{t: t, base: "http://" + d.HTTPAddr(), tr: tr, hc: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
	t.Cleanup(tr.CloseIdleConnections)
	return c
}

// do sends one request and returns status, headers and body.
func (c *tclient) do(method, path, authz string) (int, http.Header, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		c.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return res.StatusCode, res.Header, body
}

// challengeFor fetches a fresh challenge with the given scheme/algorithm.
func (c *tclient) challengeFor(path, alg string) challenge {
	c.t.Helper()
	status, h, _ := c.do("GET", path, "")
	if status != 401 {
		c.t.Fatalf("GET %s without credentials: status %d, want 401", path, status)
	}
	for _, v := range h.Values("WWW-Authenticate") {
		ch := parseChallenge(c.t, v)
		if ch.scheme == "Digest" && strings.EqualFold(ch.params["algorithm"], alg) {
			return ch
		}
	}
	c.t.Fatalf("no Digest %s challenge in %q", alg, h.Values("WWW-Authenticate"))
	return challenge{}
}

// login does challenge + answer and returns the answer's status and body.
func (c *tclient) login(path, user, pass string) (int, []byte) {
	c.t.Helper()
	ch := c.challengeFor(path, "MD5")
	status, _, body := c.do("GET", path, digestAuthorization(ch, "GET", path, user, pass, 1))
	return status, body
}

// userCheck is the 401 body (and the /ISAPI/Security/userCheck answer).
type userCheck struct {
	XMLName        xml.Name
	StatusValue    int    `xml:"statusValue"`
	StatusString   string `xml:"statusString"`
	LockStatus     string `xml:"lockStatus"`
	UnlockTime     *int   `xml:"unlockTime"`
	RetryLoginTime *int   `xml:"retryLoginTime"`
}

type responseStatus struct {
	XMLName       xml.Name
	RequestURL    string `xml:"requestURL"`
	StatusCode    int    `xml:"statusCode"`
	StatusString  string `xml:"statusString"`
	SubStatusCode string `xml:"subStatusCode"`
}

func decode[T any](t *testing.T, body []byte) T {
	t.Helper()
	var v T
	if err := xml.Unmarshal(body, &v); err != nil {
		t.Fatalf("XML does not parse: %v\n%s", err, body)
	}
	return v
}

func intp(p *int) string {
	if p == nil {
		return "<absent>"
	}
	return fmt.Sprint(*p)
}

// wantLock checks the lock fields of a 401 userCheck body.
func wantLock(t *testing.T, body []byte, status string, unlock, retry int) {
	t.Helper()
	uc := decode[userCheck](t, body)
	if uc.XMLName.Local != "userCheck" || uc.StatusValue != 401 || uc.StatusString != "Unauthorized" {
		t.Fatalf("401 body: got %s statusValue=%d statusString=%q, want userCheck 401 Unauthorized", uc.XMLName.Local, uc.StatusValue, uc.StatusString)
	}
	if uc.LockStatus != status || uc.UnlockTime == nil || *uc.UnlockTime != unlock || uc.RetryLoginTime == nil || *uc.RetryLoginTime != retry {
		t.Fatalf("lock fields: got lockStatus=%q unlockTime=%s retryLoginTime=%s, want %q %d %d",
			uc.LockStatus, intp(uc.UnlockTime), intp(uc.RetryLoginTime), status, unlock, retry)
	}
}

func start(t *testing.T, cfg sim.Config) *sim.Device {
	t.Helper()
	d, err := sim.Start(cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return d
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
