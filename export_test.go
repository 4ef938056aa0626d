package reactor

import "github.com/muxkit/reactor/poller"

// newTestLoop returns a loop on backend b that no goroutine runs: the test
// turns it with serveOnce, on the goroutine that called newTestLoop (on
// the engine that goroutine is locked to its thread, the ring's issuer,
// until closeTestLoop).
func newTestLoop(b poller.Backend) (*Loop, error) {
	ring := b == Uring
	if ring {
		b = poller.Epoll
	}
	p, err := poller.New(b)
	if err != nil {
		return nil, err
	}
	l := newLoop(p)
	if ring {
		if l.eng, err = newEngine(p.(poller.FDPoller).Fd(), UringConfig{}); err != nil {
			p.Close()
			return nil, err
		}
		if err := l.eng.start(); err != nil {
			l.eng.close()
			p.Close()
			return nil, err
		}
	}
	return l, nil
}

// closeTestLoop releases what newTestLoop made; the engine's connections
// still closing finish first (see closeEngine).
func closeTestLoop(l *Loop) {
	if l.eng != nil {
		l.closeEngine()
	}
	l.p.Close()
}

// TestBackends is testBackends for the external tests.
var TestBackends = testBackends
