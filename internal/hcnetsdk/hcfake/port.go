package hcfake

import (
	"net"
	"strconv"
	"time"
)

// HoldPort stands for the fake device's service port. The fake library
// answers SDK logins for a port number inside the process that loads it, but
// the module's supervisor checks the port itself with a TCP connect while the
// device is away: HoldPort listens on 127.0.0.1:port (0: a free port) and
// accepts and closes every connection until the listener is closed. A port a
// listener closed a moment ago is retried for up to 2 s.
func HoldPort(port int) (net.Listener, error) {
	addr := "127.0.0.1:" + strconv.Itoa(port)
	var ln net.Listener
	var err error
	for i := 0; i < 100; i++ {
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond) // the port is not ours to watch: poll it
	}
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	return ln, nil
}
