package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Key is the cache key of the binary Build would return for opts: a hash of
//   - the build recipe and the go2rtc version,
//   - the Go version and target GOOS/GOARCH (from `go env`),
//   - the build tags (Options.Tags), if any,
//   - every patches/*.patch (name and content, in order) but the ones
//     left out (Options.WithoutPatches),
//   - every .go, go.mod and go.sum file of the repository (path and
//     content), except _test.go files, testdata/ directories, directories
//     Go ignores (names starting with "." or "_") and nested modules.
func Key(ctx context.Context, opts Options) (string, error) {
	if err := opts.fillRepoRoot(); err != nil {
		return "", err
	}
	env, err := goEnv(ctx, opts)
	if err != nil {
		return "", err
	}
	return computeKey(opts.RepoRoot, env, opts.Tags, opts.WithoutPatches)
}

// keyLen is the length of a key: 24 hex digits (96 bits).
const keyLen = 24

func computeKey(root string, env goEnvironment, tags, withoutPatches []string) (string, error) {
	h := sha256.New()
	field := func(name, value string) {
		fmt.Fprintf(h, "%s %d\n%s\n", name, len(value), value)
	}
	field("recipe", recipe)
	field("go2rtc", Go2rtcModule+"@"+Go2rtcVersion)
	field("go", env.GOVERSION+" "+env.GOOS+"/"+env.GOARCH)
	if len(tags) > 0 {
		// only when set: the keys of untagged builds stay what they were
		field("tags", strings.Join(tags, ","))
	}

	patches, err := selectPatches(root, withoutPatches)
	if err != nil {
		return "", err
	}
	for _, p := range patches {
		if err = hashFile(h, "patch "+filepath.Base(p), p); err != nil {
			return "", err
		}
	}

	files, err := SourceFiles(root)
	if err != nil {
		return "", err
	}
	for _, rel := range files {
		if err = hashFile(h, "file "+rel, filepath.Join(root, filepath.FromSlash(rel))); err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:keyLen], nil
}

// SourceFiles lists (slash-separated, relative to root, sorted) the files of
// the repository that go into the cache key.
func SourceFiles(root string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path == root {
				return nil
			}
			if name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir // another module
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		if (strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go")) || name == "go.mod" || name == "go.sum" {
			rel, err := filepath.Rel(root, path)
			if err != nil {
				return err
			}
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("build: list sources: %w", err)
	}
	return files, nil // WalkDir walks in lexical order
}

func hashFile(h io.Writer, name, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("build: cache key: %w", err)
	}
	fmt.Fprintf(h, "%s %d\n", name, len(data))
	_, err = h.Write(data)
	return err
}
