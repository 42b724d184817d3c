//go:build !(hcnetsdk && linux && (amd64 || arm64))

package hcnetsdk

import (
	"errors"
	"strings"
	"testing"
)

// Built without SDK support, Open fails with one line saying how to get it,
// before looking for the library.
func TestOpenWithoutSupport(t *testing.T) {
	for _, path := range []string{"", "/nonexistent/libhcnetsdk.so", t.TempDir()} {
		s, err := Open(Config{Path: path})
		if s != nil || !errors.Is(err, ErrUnsupported) {
			t.Fatalf("Open(%q) = %v, %v; want ErrUnsupported", path, s, err)
		}
		var le *LoadError
		if !errors.As(err, &le) {
			t.Fatalf("Open(%q): %T, want *LoadError", path, err)
		}
		msg := err.Error()
		for _, want := range []string{"-tags hcnetsdk", "Hikvision", "libhcnetsdk.so"} {
			if !strings.Contains(msg, want) {
				t.Errorf("message %q lacks %q", msg, want)
			}
		}
		if strings.Contains(msg, "\n") {
			t.Errorf("message is not one line: %q", msg)
		}
	}
}
