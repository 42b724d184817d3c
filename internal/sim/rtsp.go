package sim

import "net"

// RTSPServer is what the Device needs from its RTSP side (package simrtsp implements it).
type RTSPServer interface {
	Addr() string          // "127.0.0.1:PORT"
	SetStall(on bool)      // accept and read but never answer
	SetRefuse(on bool)     // refuse new connections
	DropAll()              // close every open RTSP connection
	TotalSessions() uint64 // sessions ever set up on this server
	Close() error          // stop listening, close connections, wait for goroutines
}

// RTSPOptions is what an RTSPFactory gets to start the RTSP side of a device.
type RTSPOptions struct {
	Addr     string    // listen address; on a reboot, the same "host:port" as before
	Realm    string    // digest realm
	Channels []Channel // streams /Streaming/Channels/<ch>01 and <ch>02
	// Password returns the current password of a user (it changes with SetPassword).
	Password func(user string) (string, bool)
	// Locked tells whether a client IP is under the (shared ISAPI/RTSP) illegal login lock.
	Locked func(ip string) bool
	// AuthResult reports a checked RTSP login; a failure counts toward the lock like an ISAPI one.
	AuthResult func(ip string, ok bool)
	// ConnAccepted reports an accepted RTSP connection (also the ones refused by SetRefuse).
	ConnAccepted func(ip string)
	// SessionStarted reports an RTSP session that started playing (per-IP sessions; simrtsp has no such
	// hook yet, so the built-in server does not call it).
	SessionStarted func(ip string)
	// WrapConn, when set, wraps every accepted connection (the device's freeze); a wrapper forwards
	// SetLinger(sec int) error to the TCP connection.
	WrapConn func(net.Conn) net.Conn
}

// RTSPFactory starts an RTSP server; Config.RTSP overrides the default one.
type RTSPFactory func(opts RTSPOptions) (RTSPServer, error)
