package build

import (
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Cache entries not used for PruneAfter are removed after the next build, as
// are work directories left by interrupted builds older than a day.
const PruneAfter = 14 * 24 * time.Hour

// touch marks a cache entry as used now.
func touch(dir string) {
	now := time.Now()
	_ = os.Chtimes(dir, now, now)
}

// prune removes unused cache entries (key directories and their lock files)
// other than keep, and stale work directories. Errors are ignored: pruning
// is housekeeping.
func prune(cacheDir, keep string, now time.Time) {
	entries, err := os.ReadDir(cacheDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || name == keep {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		age := now.Sub(info.ModTime())
		switch {
		case isKey(name) && age > PruneAfter:
			_ = os.RemoveAll(filepath.Join(cacheDir, name))
			_ = os.Remove(filepath.Join(cacheDir, name+".lock"))
		case strings.HasPrefix(name, "work-") && age > 24*time.Hour:
			_ = os.RemoveAll(filepath.Join(cacheDir, name))
		}
	}
}

func isKey(name string) bool {
	if len(name) != keyLen {
		return false
	}
	for _, c := range name {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
