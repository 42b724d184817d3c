package build

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeRepo writes a minimal repository tree and returns its root.
func fakeRepo(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	base := map[string]string{
		"go.mod":                        "module " + ModulePath + "\n\ngo 1.24.0\n",
		"patches/0001-a.patch":          "patch one\n",
		"hikvision/hikvision.go":        "package hikvision\n",
		"hikvision/hikvision_test.go":   "package hikvision\n",
		"hikvision/testdata/fixture.go": "package fixture\n",
		".cache/x.go":                   "package x\n",
		"_old/x.go":                     "package x\n",
		"nested/go.mod":                 "module example.com/nested\n",
		"nested/n.go":                   "package nested\n",
		"README.md":                     "readme\n",
	}
	for k, v := range files {
		base[k] = v
	}
	for name, content := range base {
		path := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestSourceFilesSelection(t *testing.T) {
	root := fakeRepo(t, nil)
	got, err := SourceFiles(root)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"go.mod", "hikvision/hikvision.go"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("SourceFiles = %q, want %q", got, want)
	}
}

func TestKeyChangesWithInputs(t *testing.T) {
	ctx := context.Background()
	key := func(root string) string {
		t.Helper()
		k, err := Key(ctx, Options{RepoRoot: root})
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	root := fakeRepo(t, nil)
	base := key(root)
	if again := key(root); again != base {
		t.Fatalf("key not stable: %s then %s", base, again)
	}

	write := func(name, content string) {
		t.Helper()
		path := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Files outside the key: no change.
	for _, name := range []string{"hikvision/hikvision_test.go", "hikvision/testdata/fixture.go",
		".cache/x.go", "_old/x.go", "nested/n.go", "README.md", "patches/notes.txt"} {
		write(name, "changed "+name)
		if k := key(root); k != base {
			t.Errorf("changing %s changed the key", name)
		}
	}

	// Inputs: every change gives a new key.
	seen := map[string]string{base: "base"}
	for _, c := range []struct{ name, content string }{
		{"patches/0001-a.patch", "patch one, edited\n"},
		{"patches/0002-b.patch", "patch two\n"},
		{"hikvision/hikvision.go", "package hikvision // edited\n"},
		{"internal/x/x.go", "package x\n"},
		{"go.sum", "example.com/m v1.0.0 h1:x=\n"},
		{"go.mod", "module " + ModulePath + "\n\ngo 1.25.0\n"},
	} {
		write(c.name, c.content)
		k := key(root)
		if prev, ok := seen[k]; ok {
			t.Errorf("after changing %s the key equals the one after %s", c.name, prev)
		}
		seen[k] = c.name
	}

	// The target platform is an input too.
	k1, err := Key(ctx, Options{RepoRoot: root, GOOS: "linux", GOARCH: "arm64"})
	if err != nil {
		t.Fatal(err)
	}
	k2, err := Key(ctx, Options{RepoRoot: root, GOOS: "linux", GOARCH: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	if k1 == k2 {
		t.Errorf("arm64 and amd64 builds share key %s", k1)
	}

	// So are build tags; no tags is the untagged key.
	plain := key(root)
	k3, err := Key(ctx, Options{RepoRoot: root, Tags: []string{"hikvision_pprof"}})
	if err != nil {
		t.Fatal(err)
	}
	k4, err := Key(ctx, Options{RepoRoot: root, Tags: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if k3 == plain {
		t.Errorf("a build with tags shares key %s with the untagged one", k3)
	}
	if k4 != plain {
		t.Errorf("an empty tag list changed the key: %s, untagged %s", k4, plain)
	}
}

func TestKeyNeedsPatches(t *testing.T) {
	root := fakeRepo(t, nil)
	if err := os.Remove(filepath.Join(root, "patches/0001-a.patch")); err != nil {
		t.Fatal(err)
	}
	if _, err := Key(context.Background(), Options{RepoRoot: root}); !errors.Is(err, ErrNoPatches) {
		t.Fatalf("Key without patches: err = %v, want ErrNoPatches", err)
	}
}

// Leaving a patch out gives the key of a repository without it; a name that
// is not one of the patches is an error naming it.
func TestKeyWithoutPatches(t *testing.T) {
	ctx := context.Background()
	two := fakeRepo(t, map[string]string{"patches/0002-b.patch": "patch two\n"})
	one := fakeRepo(t, nil)
	full, err := Key(ctx, Options{RepoRoot: two})
	if err != nil {
		t.Fatal(err)
	}
	without, err := Key(ctx, Options{RepoRoot: two, WithoutPatches: []string{"0002-b.patch"}})
	if err != nil {
		t.Fatal(err)
	}
	// the trees differ only in the patch, which is left out: same inputs,
	// except the repository path, which is not part of the key
	ref, err := Key(ctx, Options{RepoRoot: one})
	if err != nil {
		t.Fatal(err)
	}
	if without == full || without != ref {
		t.Errorf("key without 0002 = %s; with it %s, repository without it %s", without, full, ref)
	}
	got, err := selectPatches(two, []string{"0002-b.patch"})
	if err != nil || len(got) != 1 || filepath.Base(got[0]) != "0001-a.patch" {
		t.Errorf("selectPatches = %q, %v; want only 0001-a.patch", got, err)
	}
	if _, err := Key(ctx, Options{RepoRoot: two, WithoutPatches: []string{"0009-none.patch"}}); err == nil || !strings.Contains(err.Error(), "0009-none.patch") {
		t.Errorf("unknown patch left out: err = %v, want one naming it", err)
	}
}

func TestFindRepoRoot(t *testing.T) {
	root := fakeRepo(t, nil)
	for _, dir := range []string{root, filepath.Join(root, "hikvision"), filepath.Join(root, "hikvision/testdata")} {
		got, err := FindRepoRoot(dir)
		if err != nil || got != root {
			t.Errorf("FindRepoRoot(%s) = %q, %v; want %q", dir, got, err, root)
		}
	}
	// A nested module with another path is skipped on the way up.
	if got, err := FindRepoRoot(filepath.Join(root, "nested")); err != nil || got != root {
		t.Errorf("FindRepoRoot(nested) = %q, %v; want %q", got, err, root)
	}
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "go.mod"), []byte("module example.com/other\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := FindRepoRoot(other); !errors.Is(err, ErrRepoRootNotFound) {
		t.Errorf("FindRepoRoot(other module) err = %v, want ErrRepoRootNotFound", err)
	}
}

func TestModulePath(t *testing.T) {
	for in, want := range map[string]string{
		"module a/b\n":                   "a/b",
		"// c\nmodule \"a/b\"\ngo 1.2\n": "a/b",
		"modulex a/b\n":                  "",
		"go 1.2\n":                       "",
	} {
		if got := modulePath([]byte(in)); got != want {
			t.Errorf("modulePath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDefaultCacheDirEnv(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(CacheEnv, dir)
	got, err := DefaultCacheDir()
	if err != nil || got != dir {
		t.Fatalf("DefaultCacheDir = %q, %v; want %q", got, err, dir)
	}
}

func TestPruneRemovesOnlyOldEntries(t *testing.T) {
	cache := t.TempDir()
	now := time.Now()
	old := now.Add(-PruneAfter - time.Hour)
	mk := func(name string, mtime time.Time) string {
		t.Helper()
		dir := filepath.Join(cache, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "go2rtc"), []byte("bin"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(dir, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	oldKey := mk("0123456789abcdef01234567", old)
	if err := os.WriteFile(oldKey+".lock", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	keep := mk("aaaaaaaaaaaaaaaaaaaaaaaa", old) // the key just built
	recent := mk("bbbbbbbbbbbbbbbbbbbbbbbb", now.Add(-time.Hour))
	notKey := mk("my-notes", old)
	staleWork := mk("work-123", now.Add(-48*time.Hour))
	freshWork := mk("work-456", now.Add(-time.Minute))

	prune(cache, "aaaaaaaaaaaaaaaaaaaaaaaa", now)

	for _, gone := range []string{oldKey, oldKey + ".lock", staleWork} {
		if _, err := os.Stat(gone); !os.IsNotExist(err) {
			t.Errorf("%s not pruned (err %v)", filepath.Base(gone), err)
		}
	}
	for _, kept := range []string{keep, recent, notKey, freshWork} {
		if _, err := os.Stat(kept); err != nil {
			t.Errorf("%s pruned: %v", filepath.Base(kept), err)
		}
	}
}

func TestPatchedPackages(t *testing.T) {
	root := fakeRepo(t, map[string]string{
		"patches/0001-a.patch": "header\n+++ b/ignored-in-header.txt\n--- a/main.go\n+++ b/main.go\n@@\n" +
			"--- /dev/null\n+++ b/internal/x/x.go\n@@\n",
		"patches/0002-b.patch": "--- a/internal/x/x_test.go\n+++ b/internal/x/x_test.go\n" +
			"--- a/pkg/core/core.go\n+++ b/pkg/core/core.go\n--- a/README.md\n+++ b/README.md\n",
	})
	got, err := PatchedPackages(root)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{".", "./internal/x", "./pkg/core"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("PatchedPackages = %q, want %q", got, want)
	}
}
