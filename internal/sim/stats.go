package sim

// Stats are the device's counters since Start (they survive reboots).
type Stats struct {
	Reboots      int                     `json:"reboots"`
	RTSPSessions uint64                  `json:"rtsp_sessions"` // RTSP sessions set up, all clients
	HTTPOpen     int64                   `json:"http_open"`     // ISAPI TCP connections open now (talk audio connections excluded once hijacked)
	Clients      map[string]*ClientStats `json:"clients"`       // by client IP
}

// ClientStats are the counters of one client IP.
type ClientStats struct {
	Requests         map[string]int `json:"requests"`           // ISAPI requests by URL path (any outcome)
	Challenges       int            `json:"challenges"`         // 401s to requests without usable credentials
	GoodLogins       int            `json:"good_logins"`        // ISAPI requests that authenticated
	FailedLogins     int            `json:"failed_logins"`      // wrong ISAPI user/password (counts toward the lock)
	StaleNonces      int            `json:"stale_nonces"`       // right password on an expired/unknown nonce
	UnknownNonces    int            `json:"unknown_nonces"`     // right password on an unknown nonce, answered plain 401 uncounted
	RejectedAuth     int            `json:"rejected_auth"`      // malformed digest, replayed nc, wrong uri/realm/algorithm
	LockedRejects    int            `json:"locked_rejects"`     // requests refused because the IP was locked
	LockEvents       int            `json:"lock_events"`        // times the IP got locked
	RTSPGoodLogins   int            `json:"rtsp_good_logins"`   // RTSP logins reported by the RTSP side
	RTSPFailedLogins int            `json:"rtsp_failed_logins"` // wrong RTSP passwords (count toward the lock)
	RTSPConnections  int            `json:"rtsp_connections"`   // RTSP connections accepted
	RTSPSessions     int            `json:"rtsp_sessions"`      // RTSP sessions that started playing (needs a simrtsp hook)
}

// clientLocked returns the counters of ip, creating them. Caller holds d.mu.
func (d *Device) clientLocked(ip string) *ClientStats {
	cs := d.stats.Clients[ip]
	if cs == nil {
		cs = &ClientStats{Requests: map[string]int{}}
		d.stats.Clients[ip] = cs
	}
	return cs
}

// Stats returns a copy of the counters.
func (d *Device) Stats() Stats {
	d.mu.Lock()
	r := d.rtsp
	d.mu.Unlock()
	var cur uint64
	if r != nil {
		cur = r.TotalSessions()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	out := Stats{Reboots: d.stats.Reboots, RTSPSessions: d.rtspBase + cur, HTTPOpen: d.httpOpen.Load(), Clients: make(map[string]*ClientStats, len(d.stats.Clients))}
	for ip, cs := range d.stats.Clients {
		c := *cs
		c.Requests = make(map[string]int, len(cs.Requests))
		for k, v := range cs.Requests {
			c.Requests[k] = v
		}
		out.Clients[ip] = &c
	}
	return out
}

// Client returns a copy of one client IP's counters (zero if it never came).
func (d *Device) Client(ip string) ClientStats {
	s := d.Stats()
	if cs := s.Clients[ip]; cs != nil {
		return *cs
	}
	return ClientStats{Requests: map[string]int{}}
}
