// Package hcfake builds the project's test double of Hikvision's device
// network SDK (testdata/hcnetsdk-fake, C) into a libhcnetsdk.so with the
// system C compiler, for tests only. The fake is configured through the
// HCNETSDK_FAKE environment variable of the process that loads it
// ("key=value;..."; see hcnetsdk_fake.c) and, across processes, through a
// control file it polls (key "control"). WritePS makes the MPEG-PS files
// the fake serves from the test media (H.264 or H.265 with G.711 or AAC).
package hcfake

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// SourceDir is the folder holding hcnetsdk_fake.c and hcnetsdk_fake.h.
func SourceDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("hcfake: cannot locate the source tree")
	}
	dir := filepath.Join(filepath.Dir(file), "..", "..", "..", "testdata", "hcnetsdk-fake")
	if _, err := os.Stat(filepath.Join(dir, "hcnetsdk_fake.c")); err != nil {
		return "", fmt.Errorf("hcfake: fake SDK source: %w", err)
	}
	return dir, nil
}

// Build compiles the fake into dir/libhcnetsdk.so and returns its path. The
// compiler is $CC, else cc.
func Build(dir string) (string, error) {
	src, err := SourceDir()
	if err != nil {
		return "", err
	}
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "cc"
	}
	out := filepath.Join(dir, "libhcnetsdk.so")
	args := strings.Fields(cc)
	args = append(args, "-shared", "-fPIC", "-O1", "-pthread", "-Wall",
		"-o", out, filepath.Join(src, "hcnetsdk_fake.c"))
	cmd := exec.Command(args[0], args[1:]...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("hcfake: %s: %w\n%s", strings.Join(args, " "), err, b)
	}
	return out, nil
}
