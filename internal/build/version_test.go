package build

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestGo2rtcVersionMatchesGoMod fails when go.mod's go2rtc requirement and
// Go2rtcVersion differ: the module is compiled and tested against go.mod's
// version while the binary is built from Go2rtcVersion, so they must be one.
func TestGo2rtcVersionMatchesGoMod(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root, err := FindRepoRoot(wd)
	if err != nil {
		t.Fatal(err)
	}
	// go list -m resolves the build list (replace directives included), so
	// this is the version the module's own packages compile against.
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Version}}", Go2rtcModule)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list -m %s: %v\n%s", Go2rtcModule, err, out)
	}
	if got := strings.TrimSpace(string(out)); got != Go2rtcVersion {
		t.Fatalf("go.mod requires %s %s but build.Go2rtcVersion is %s: change both together", Go2rtcModule, got, Go2rtcVersion)
	}
}
