package events

import (
	"slices"
	"sync"
	"sync/atomic"
)

// DefaultQueue is the per-subscriber queue length of Hub.Subscribe when it is given 0.
const DefaultQueue = 64

// Filter selects events; an empty field matches everything.
type Filter struct {
	Devices  []string // host:port
	Channels []int
	Types    []string
}

// Match reports whether e passes the filter.
func (f Filter) Match(e Event) bool {
	return (len(f.Devices) == 0 || slices.Contains(f.Devices, e.Device)) &&
		(len(f.Channels) == 0 || slices.Contains(f.Channels, e.Channel)) &&
		(len(f.Types) == 0 || slices.Contains(f.Types, e.Type))
}

// Hub fans events out to subscribers (SSE clients, the MQTT publisher). Publish never blocks: each
// subscriber has a bounded queue, and when it is full the oldest queued event is dropped and counted.
type Hub struct {
	mu     sync.Mutex
	subs   map[*Subscription]struct{}
	closed bool
}

// NewHub returns a Hub without subscribers.
func NewHub() *Hub { return &Hub{subs: map[*Subscription]struct{}{}} }

// Subscription is one subscriber's queue.
type Subscription struct {
	hub     *Hub
	filter  Filter
	ch      chan Event
	dropped atomic.Uint64
	once    sync.Once
}

// C delivers the events; it is closed by Close or Hub.Close.
func (s *Subscription) C() <-chan Event { return s.ch }

// Dropped is how many events were dropped because the queue was full.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Close unsubscribes and closes C. Safe to call more than once.
func (s *Subscription) Close() {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	s.closeLocked()
}

func (s *Subscription) closeLocked() {
	s.once.Do(func() {
		delete(s.hub.subs, s)
		close(s.ch)
	})
}

// Subscribe adds a subscriber with a queue of n events (0 = DefaultQueue). After Hub.Close it returns a
// subscription whose channel is already closed.
func (h *Hub) Subscribe(f Filter, n int) *Subscription {
	if n <= 0 {
		n = DefaultQueue
	}
	s := &Subscription{hub: h, filter: f, ch: make(chan Event, n)}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		s.closeLocked()
		return s
	}
	h.subs[s] = struct{}{}
	return s
}

// Publish hands e to every matching subscriber without blocking.
func (h *Hub) Publish(e Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		if !s.filter.Match(e) {
			continue
		}
		for {
			select {
			case s.ch <- e:
			default:
				select { // full: drop the oldest and try again
				case <-s.ch:
					s.dropped.Add(1)
				default:
				}
				continue
			}
			break
		}
	}
}

// Subscribers is the number of open subscriptions.
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// Close closes every subscription; later Publish calls do nothing.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for s := range h.subs {
		s.closeLocked()
	}
}
