package isapi_test

import (
	"strings"
	"testing"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
)

func TestParseChallenges(t *testing.T) {
	cs := isapi.ParseChallenges([]string{
		`Digest qop="auth", realm="IP Camera(K2195)", nonce="4e6a4d354f4455314f5467364d32526b4d32526c5a57553d:1700000000", stale="FALSE", opaque="", domain="::", algorithm="MD5"`,
		`Digest realm="a \"quoted\" realm", qop=auth,auth-int, nonce=abc123, algorithm=SHA-256, stale=TRUE, Basic realm="x"`,
		`Digest realm="r", nonce="n", qop="auth-int"`,
	})
	if len(cs) != 4 {
		t.Fatalf("%d challenges: %+v", len(cs), cs)
	}
	a, b, basic, authInt := cs[0], cs[1], cs[2], cs[3]
	if a.Scheme != "Digest" || a.Realm != "IP Camera(K2195)" || a.Algorithm != "MD5" || a.QOP != "auth" ||
		a.Nonce != "4e6a4d354f4455314f5467364d32526b4d32526c5a57553d:1700000000" || !a.HasOpaque || a.Opaque != "" || a.Stale {
		t.Fatalf("first: %+v", a)
	}
	if b.Realm != `a "quoted" realm` || b.Nonce != "abc123" || b.Algorithm != "SHA-256" || !b.Stale || b.QOP != "auth" || b.HasOpaque {
		t.Fatalf("second: %+v", b)
	}
	if basic.Scheme != "Basic" || basic.Realm != "x" {
		t.Fatalf("basic: %+v", basic)
	}
	got, ok := isapi.ChooseChallenge(cs)
	if !ok || got.Algorithm != "SHA-256" {
		t.Fatalf("chosen %+v", got)
	}
	if _, ok := isapi.ChooseChallenge([]isapi.Challenge{authInt}); ok {
		t.Fatal("auth-int only challenge chosen")
	}
	if _, ok := isapi.ChooseChallenge(isapi.ParseChallenges([]string{`Negotiate abc==`, `Digest realm="r", nonce="n", algorithm=SHA-512-256`})); ok {
		t.Fatal("unusable challenges chosen")
	}
}

// RFC 7616 §3.9.1 worked example.
func TestAuthorizationRFC7616(t *testing.T) {
	for alg, want := range map[string]string{
		"MD5":     "8ca523f5e9506fed4657c9700eebdbec",
		"SHA-256": "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
	} {
		cs := isapi.ParseChallenges([]string{`Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=` + alg +
			`, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"`})
		if len(cs) != 1 {
			t.Fatalf("%+v", cs)
		}
		h := cs[0].Authorization("GET", "/dir/index.html", "Mufasa", "Circle of Life", 1,
			"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ")
		if !strings.Contains(h, `response="`+want+`"`) || !strings.Contains(h, "nc=00000001") ||
			!strings.Contains(h, `opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"`) {
			t.Fatalf("%s: %s", alg, h)
		}
		if strings.Contains(h, "Circle of Life") {
			t.Fatal("password in header")
		}
	}
}
