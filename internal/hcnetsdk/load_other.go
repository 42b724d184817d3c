//go:build !(hcnetsdk && linux && (amd64 || arm64))

package hcnetsdk

import "runtime"

// Built without the hcnetsdk tag (or for a platform the vendor does not
// ship the SDK for): the binary stays static and the SDK cannot be loaded.

func openLibrary(file, _ string) (*lib, error) { return nil, buildSupport(file) }

func buildSupport(path string) error {
	return &LoadError{Path: path, Err: ErrUnsupported,
		Why: "this binary was built without device network SDK support (" + runtime.GOOS + "/" + runtime.GOARCH +
			", static): build it with -tags hcnetsdk (it then links the system C library dynamically)"}
}

// The callbacks are compiled on every build; only the tagged build hands
// them to C.
var _ = [...]any{onData, onVoice, onException}
