package isapi_test

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakeDevice is an ISAPI device written from the device behaviour in the
// package doc, independent of the client's digest code: it issues challenges,
// recomputes every digest answer itself and counts what it saw.
type fakeDevice struct {
	t          *testing.T
	user, pass string
	realm      string
	// offers is one WWW-Authenticate header value per entry, with %s for the
	// nonce, e.g. `Digest realm="r", nonce="%s", algorithm="MD5"`. Defaults
	// to one MD5 digest challenge as Hikvision sends it.
	offers     []string
	hexTSNonce bool   // nonce "<hex>:<unix-ts>" instead of plain hex
	wrongBody  string // userCheck body for a wrong answer (default userCheck_unlock)

	mu            sync.Mutex
	routes        map[string]http.HandlerFunc // by path (no query)
	nonce         string                      // latest nonce issued
	valid         map[string]bool             // nonces issued and not expired
	nonces        int
	challenges    int              // 401 challenges to requests without credentials
	wrongAnswers  int              // requests whose digest/basic answer was wrong
	staleAnswers  int              // 401 stale=TRUE sent
	ncs           map[string][]int // nonce → nc values seen with a right answer
	algorithms    []string         // algorithm of each right digest answer
	basicOK       int
	staleNext     bool // next right answer gets 401 stale=TRUE
	invalidOpNext bool // next right answer gets ResponseStatus invalidOperation
	// rebooting: connections are dropped without an answer; the nonces
	// issued before are forgotten. unknownNonceWrong: a right answer to a
	// nonce the device does not know is a plain 401 (stale=FALSE), counted
	// as a wrong answer — what firmware may do after a reboot.
	rebooting         bool
	unknownNonceWrong bool
	requests          int
	authedRequests    int
}

func newFakeDevice(t *testing.T) *fakeDevice {
	return &fakeDevice{
		t: t, user: "admin", pass: "Secret#Pa55", realm: "IP Camera(K2195)",
		routes: map[string]http.HandlerFunc{},
		ncs:    map[string][]int{},
		valid:  map[string]bool{},
	}
}

func (d *fakeDevice) handle(path string, h http.HandlerFunc) {
	d.mu.Lock()
	d.routes[path] = h
	d.mu.Unlock()
}

// serveFile answers with a fixture from testdata/isapi.
func serveFile(t *testing.T, status int, name string) http.HandlerFunc {
	b := fixture(t, name)
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/xml; charset=\"UTF-8\"")
		w.WriteHeader(status)
		_, _ = w.Write(b)
	}
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "isapi", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (d *fakeDevice) newNonceLocked() string {
	d.nonces++
	raw := md5.Sum([]byte(fmt.Sprintf("nonce-%d-%p", d.nonces, d)))
	n := hex.EncodeToString(raw[:])
	if d.hexTSNonce {
		n += ":" + strconv.Itoa(1700000000+d.nonces)
	}
	d.nonce = n
	d.valid[n] = true
	return n
}

func (d *fakeDevice) challengeLocked(w http.ResponseWriter, stale bool) {
	n := d.newNonceLocked()
	offers := d.offers
	if len(offers) == 0 {
		offers = []string{`Digest qop="auth", realm="` + d.realm + `", nonce="%s", stale="FALSE", opaque="", domain="::", algorithm="MD5"`}
	}
	for _, o := range offers {
		v := strings.ReplaceAll(o, "%s", n)
		if stale {
			v = strings.Replace(v, `stale="FALSE"`, `stale="TRUE"`, 1)
			if !strings.Contains(v, "stale=") && strings.HasPrefix(v, "Digest") {
				v += `, stale="TRUE"`
			}
		}
		w.Header().Add("WWW-Authenticate", v)
	}
}

var authParamRE = regexp.MustCompile(`(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))`)

func parseAuthParams(s string) map[string]string {
	m := map[string]string{}
	for _, p := range authParamRE.FindAllStringSubmatch(s, -1) {
		v := p[3]
		if p[2] != "" || strings.Contains(p[0], `"`) {
			v = strings.ReplaceAll(strings.ReplaceAll(p[2], `\"`, `"`), `\\`, `\`)
		}
		m[strings.ToLower(p[1])] = v
	}
	return m
}

func hexHash(alg string, s string) string {
	var h hash.Hash = md5.New()
	if strings.HasPrefix(strings.ToUpper(alg), "SHA-256") {
		h = sha256.New()
	}
	h.Write([]byte(s))
	return hex.EncodeToString(h.Sum(nil))
}

// expectedDigest is RFC 7616 §3.4.1 written out for this test.
func expectedDigest(p map[string]string, method, password string) string {
	alg := p["algorithm"]
	ha1 := hexHash(alg, p["username"]+":"+p["realm"]+":"+password)
	if strings.HasSuffix(strings.ToUpper(alg), "-SESS") {
		ha1 = hexHash(alg, ha1+":"+p["nonce"]+":"+p["cnonce"])
	}
	ha2 := hexHash(alg, method+":"+p["uri"])
	if p["qop"] == "" {
		return hexHash(alg, ha1+":"+p["nonce"]+":"+ha2)
	}
	return hexHash(alg, ha1+":"+p["nonce"]+":"+p["nc"]+":"+p["cnonce"]+":"+p["qop"]+":"+ha2)
}

func (d *fakeDevice) unauthorized(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(http.StatusUnauthorized)
	_, _ = w.Write(body)
}

func (d *fakeDevice) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	if d.rebooting {
		d.valid = map[string]bool{}
		d.mu.Unlock()
		panic(http.ErrAbortHandler) // the connection drops, no answer
	}
	d.requests++
	authz := r.Header.Get("Authorization")
	bare := fixture(d.t, "userCheck_bare.xml")
	wrong := []byte(d.wrongBody)
	if len(wrong) == 0 {
		wrong = fixture(d.t, "userCheck_unlock.xml")
	}
	switch {
	case authz == "":
		d.challenges++
		d.challengeLocked(w, false)
		d.mu.Unlock()
		d.unauthorized(w, bare)
		return
	case strings.HasPrefix(authz, "Basic "):
		raw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(authz, "Basic "))
		basicOffered := false
		for _, o := range d.offers {
			basicOffered = basicOffered || strings.HasPrefix(o, "Basic")
		}
		if !basicOffered || string(raw) != d.user+":"+d.pass {
			d.wrongAnswers++
			d.challengeLocked(w, false)
			d.mu.Unlock()
			d.unauthorized(w, wrong)
			return
		}
		d.basicOK++
	case strings.HasPrefix(authz, "Digest "):
		p := parseAuthParams(strings.TrimPrefix(authz, "Digest "))
		if p["uri"] != r.URL.RequestURI() {
			d.t.Errorf("digest uri %q, request URI %q", p["uri"], r.URL.RequestURI())
		}
		if p["qop"] != "auth" || p["cnonce"] == "" || len(p["nc"]) != 8 {
			d.t.Errorf("digest answer lacks qop=auth/cnonce/nc: %q", authz)
		}
		if p["username"] != d.user || p["realm"] != d.realm {
			d.t.Errorf("digest username/realm %q/%q", p["username"], p["realm"])
		}
		if _, ok := p["opaque"]; !ok {
			d.t.Errorf("digest answer drops opaque: %q", authz)
		}
		if p["response"] != expectedDigest(p, r.Method, d.pass) {
			d.wrongAnswers++
			d.challengeLocked(w, false)
			d.mu.Unlock()
			d.unauthorized(w, wrong)
			return
		}
		if d.staleNext {
			// every nonce issued so far expires now (as a device's nonce lifetime ends)
			d.staleNext = false
			d.valid = map[string]bool{}
		}
		if !d.valid[p["nonce"]] && d.unknownNonceWrong {
			d.wrongAnswers++
			d.challengeLocked(w, false)
			d.mu.Unlock()
			d.unauthorized(w, wrong)
			return
		}
		if !d.valid[p["nonce"]] {
			d.staleAnswers++
			d.challengeLocked(w, true)
			d.mu.Unlock()
			d.unauthorized(w, bare)
			return
		}
		nc, err := strconv.ParseInt(p["nc"], 16, 64)
		if err != nil {
			d.t.Errorf("bad nc %q", p["nc"])
		}
		for _, seen := range d.ncs[p["nonce"]] {
			if seen == int(nc) {
				d.t.Errorf("nonce count %d replayed", nc)
			}
		}
		d.ncs[p["nonce"]] = append(d.ncs[p["nonce"]], int(nc))
		d.algorithms = append(d.algorithms, strings.ToUpper(p["algorithm"]))
		if d.invalidOpNext {
			d.invalidOpNext = false
			d.mu.Unlock()
			serveFile(d.t, http.StatusOK, "responseStatus_invalidOperation.xml")(w, r)
			return
		}
	default:
		d.t.Errorf("unexpected Authorization %q", authz)
	}
	d.authedRequests++
	h := d.routes[r.URL.Path]
	d.mu.Unlock()
	if h == nil {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	h(w, r)
}

func (d *fakeDevice) counts() (challenges, wrong, stale, requests int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.challenges, d.wrongAnswers, d.staleAnswers, d.requests
}
