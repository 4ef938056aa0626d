package reactor

import "github.com/muxkit/reactor/poller"

// newTestLoop returns a loop on backend b that no goroutine runs: the test
// turns it with serveOnce, on its own goroutine.
func newTestLoop(b poller.Backend) (*Loop, error) {
	ring := b == Uring
	if ring {
		b = poller.Epoll
	}
	p, err := poller.New(b)
	if err != nil {
		return nil, err
	}
	l, err := newLoop(p, ring, UringConfig{})
	if err != nil {
		p.Close()
		return nil, err
	}
	return l, nil
}

// closeTestLoop releases what newTestLoop made; the engine's connections
// still closing finish first (see completion.close).
func closeTestLoop(l *Loop) {
	l.eng.close()
	l.p.Close()
}

// TestBackends is testBackends for the external tests.
var TestBackends = testBackends
