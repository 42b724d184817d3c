// Package snapshot serves device JPEG snapshots that stay useful when the
// device hiccups: every body is checked to be a whole JPEG, the last good image
// is served (marked stale, with its age) when a fetch fails, concurrent callers
// share one device request, and a minimum interval protects the device.
//
// The package does no I/O of its own: the caller binds a device and a snapshot
// path into a Fetcher (see Path). It does not log.
package snapshot

import (
	"context"
	"strconv"
)

// Fetcher asks the device for one snapshot at the given size (0, 0: the
// device's default) and returns the raw body. It must honour ctx (the cache
// gives it the fetch timeout) and must not reuse the returned slice.
// Errors must not carry passwords.
type Fetcher func(ctx context.Context, width, height int) ([]byte, error)

// Path is the ISAPI snapshot path of a streaming channel (e.g. 101: camera 1,
// main stream). nvrIPChannel selects the NVR StreamingProxy path that IP
// channels of an NVR need. With width and height both > 0 the JPEG size is asked
// for; otherwise the device picks it.
func Path(channelID int, nvrIPChannel bool, width, height int) string {
	p := "/ISAPI/Streaming/channels/"
	if nvrIPChannel {
		p = "/ISAPI/ContentMgmt/StreamingProxy/channels/"
	}
	p += strconv.Itoa(channelID) + "/picture"
	if width > 0 && height > 0 {
		p += "?snapShotImageType=JPEG&videoResolutionWidth=" + strconv.Itoa(width) +
			"&videoResolutionHeight=" + strconv.Itoa(height)
	}
	return p
}
