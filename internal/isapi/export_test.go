package isapi

import "time"

// SetIdleProbe sets how long a cached challenge may go without an accepted
// answer before requests on it are sent one at a time (see probe): tests
// with reboots of a few tens of milliseconds use a shorter time. Call it
// before the client is used.
func SetIdleProbe(c *Client, d time.Duration) { c.idleProbe = d }
