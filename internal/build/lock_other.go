//go:build !unix

package build

import "context"

// lockFile is a no-op where flock is not available: two concurrent builds of
// the same key both build, and the last rename wins (both binaries are the
// same).
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	return func() {}, nil
}
