package isapi

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Struct tags in this package carry no namespace, so encoding/xml matches
// elements by local name: every namespace devices use (hikvision ver20 and
// ver10, isapi.org, std-cgi, urn:psialliance-org, none) decodes the same.

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

func decodeXML(b []byte, v any) error {
	d := xml.NewDecoder(bytes.NewReader(bytes.TrimPrefix(b, utf8BOM)))
	d.CharsetReader = charsetReader
	return d.Decode(v)
}

// charsetReader accepts the encodings devices declare: UTF-8 (the norm) and
// ISO-8859-1 on some old firmware.
func charsetReader(label string, in io.Reader) (io.Reader, error) {
	switch strings.ToLower(strings.TrimSpace(label)) {
	case "utf-8", "utf8", "us-ascii", "ascii":
		return in, nil
	case "iso-8859-1", "latin1", "latin-1":
		b, err := io.ReadAll(in)
		if err != nil {
			return nil, err
		}
		out := make([]byte, 0, len(b))
		for _, c := range b {
			out = utf8.AppendRune(out, rune(c))
		}
		return bytes.NewReader(out), nil
	}
	return nil, fmt.Errorf("unsupported XML encoding %q", label)
}

// looksXML reports whether b starts (after whitespace/BOM) with '<'.
func looksXML(b []byte) bool {
	b = bytes.TrimLeft(bytes.TrimPrefix(b, utf8BOM), " \t\r\n")
	return len(b) > 0 && b[0] == '<'
}

// rootName returns the local name of the first element, or "".
func rootName(b []byte) string {
	if !looksXML(b) {
		return ""
	}
	d := xml.NewDecoder(bytes.NewReader(bytes.TrimPrefix(b, utf8BOM)))
	d.CharsetReader = charsetReader
	for {
		tok, err := d.Token()
		if err != nil {
			return ""
		}
		if se, ok := tok.(xml.StartElement); ok {
			return se.Name.Local
		}
	}
}

type responseStatusXML struct {
	RequestURL    string `xml:"requestURL"`
	StatusCode    string `xml:"statusCode"`
	StatusString  string `xml:"statusString"`
	SubStatusCode string `xml:"subStatusCode"`
	ErrorCode     string `xml:"errorCode"`
	ErrorMsg      string `xml:"errorMsg"`
}

func parseResponseStatus(b []byte) (*responseStatusXML, bool) {
	if rootName(b) != "ResponseStatus" {
		return nil, false
	}
	var rs responseStatusXML
	if err := decodeXML(b, &rs); err != nil {
		return nil, false
	}
	return &rs, true
}

func atoiOr(s string, def int) int {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return def
	}
	return n
}

func parseBool(s string) bool {
	return strings.EqualFold(strings.TrimSpace(s), "true")
}

// isNotActivated: a ResponseStatus or userCheck answer that says the device
// has never been given a password.
func isNotActivated(b []byte) bool {
	if !bytes.Contains(b, []byte("notActivated")) {
		return false
	}
	switch rootName(b) {
	case "ResponseStatus", "userCheck":
		return true
	}
	return false
}

// isInvalidOperation: ResponseStatus subStatusCode invalidOperation, which
// some firmware sends for an expired nonce.
func isInvalidOperation(b []byte) bool {
	rs, ok := parseResponseStatus(b)
	return ok && strings.EqualFold(strings.TrimSpace(rs.SubStatusCode), "invalidOperation")
}

// checkResponse turns non-2xx statuses and non-OK ResponseStatus bodies into
// *StatusError.
func checkResponse(method, path string, r *response) error {
	if isNotActivated(r.body) {
		se := &StatusError{Method: method, Path: path, HTTPStatus: r.status, SubStatusCode: "notActivated"}
		if rs, ok := parseResponseStatus(r.body); ok {
			se.StatusCode = atoiOr(rs.StatusCode, 0)
			se.StatusString = strings.TrimSpace(rs.StatusString)
			se.ErrorMsg = strings.TrimSpace(rs.ErrorMsg)
		}
		return se
	}
	if rs, ok := parseResponseStatus(r.body); ok {
		code := atoiOr(rs.StatusCode, 0)
		if code != 1 || r.status < 200 || r.status > 299 {
			return &StatusError{
				Method: method, Path: path, HTTPStatus: r.status,
				StatusCode:    code,
				StatusString:  strings.TrimSpace(rs.StatusString),
				SubStatusCode: strings.TrimSpace(rs.SubStatusCode),
				ErrorMsg:      strings.TrimSpace(rs.ErrorMsg),
			}
		}
		return nil
	}
	if r.status < 200 || r.status > 299 {
		se := &StatusError{Method: method, Path: path, HTTPStatus: r.status}
		if r.status >= 300 && r.status < 400 {
			se.ErrorMsg = "redirect not followed"
			if loc := r.header.Get("Location"); loc != "" {
				se.ErrorMsg += " (Location " + redactLocation(loc) + ")"
			}
		}
		return se
	}
	return nil
}

// redactLocation removes any user:password@ from a URL.
func redactLocation(loc string) string {
	if i := strings.Index(loc, "://"); i >= 0 {
		rest := loc[i+3:]
		end := strings.IndexAny(rest, "/?#")
		if end < 0 {
			end = len(rest)
		}
		if at := strings.LastIndex(rest[:end], "@"); at >= 0 {
			return loc[:i+3] + "***@" + rest[at+1:]
		}
	}
	return loc
}

type userCheckXML struct {
	StatusValue    string `xml:"statusValue"`
	StatusString   string `xml:"statusString"`
	LockStatus     string `xml:"lockStatus"`
	UnlockTime     string `xml:"unlockTime"`
	RetryLoginTime string `xml:"retryLoginTime"`
}

// authErrorFromBody builds the *AuthError for a refused login from the
// userCheck body (see "Login lock" in the package doc); fields absent → defaults.
func authErrorFromBody(method, path string, b []byte) *AuthError {
	ae := &AuthError{Method: method, Path: path, RetryLoginTime: -1}
	if rootName(b) != "userCheck" {
		return ae
	}
	var uc userCheckXML
	if err := decodeXML(b, &uc); err != nil {
		return ae
	}
	switch strings.ToLower(strings.TrimSpace(uc.LockStatus)) {
	case "lock", "locked":
		ae.Locked = true
	}
	if n := atoiOr(uc.UnlockTime, 0); n > 0 {
		ae.UnlockTime = time.Duration(n) * time.Second
	}
	ae.RetryLoginTime = atoiOr(uc.RetryLoginTime, -1)
	return ae
}

// protocolError reports an answer of the wrong kind (ErrProtocol).
func protocolError(method, path, format string, args ...any) error {
	return fmt.Errorf("isapi %s %s: %w: %s", method, path, ErrProtocol, fmt.Sprintf(format, args...))
}
