package isapi

import (
	"context"
	"net"
	"sync"
)

// Preconnect opens n TCP connections to the device in the background (a
// connect only: no request, no credentials) for the client's next requests
// to use instead of dialling: a burst of concurrent requests right after a
// login then costs no connect round trip. Connections no request took are
// closed by Close, which also ends connects still under way.
func (c *Client) Preconnect(n int) {
	c.pre.start(c.hostport, n)
}

type preconnect struct {
	dial func(ctx context.Context, network, addr string) (net.Conn, error)

	mu     sync.Mutex
	ctx    context.Context // of the connects under way; nil when none
	cancel context.CancelFunc
	wg     *sync.WaitGroup // of the connects under ctx
	parked []net.Conn
}

func (p *preconnect) start(addr string, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ctx == nil {
		p.ctx, p.cancel = context.WithCancel(context.Background())
		p.wg = &sync.WaitGroup{}
	}
	ctx, wg := p.ctx, p.wg
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := p.dial(ctx, "tcp", addr)
			if err != nil {
				return
			}
			p.mu.Lock()
			defer p.mu.Unlock()
			if ctx.Err() != nil {
				_ = conn.Close()
				return
			}
			p.parked = append(p.parked, conn)
		}()
	}
}

// dialContext is the transport's dialer: a parked connection if there is
// one, else a new connect.
func (p *preconnect) dialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	p.mu.Lock()
	if n := len(p.parked); n > 0 {
		conn := p.parked[n-1]
		p.parked = p.parked[:n-1]
		p.mu.Unlock()
		return conn, nil
	}
	p.mu.Unlock()
	return p.dial(ctx, network, addr)
}

// close ends the connects under way and closes the parked connections.
func (p *preconnect) close() {
	p.mu.Lock()
	cancel, wg := p.cancel, p.wg
	p.ctx, p.cancel, p.wg = nil, nil, nil
	parked := p.parked
	p.parked = nil
	p.mu.Unlock()
	if cancel != nil {
		cancel()
		wg.Wait()
	}
	for _, c := range parked {
		_ = c.Close()
	}
}
