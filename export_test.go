package reactor

import "github.com/muxkit/reactor/poller"

// newTestLoop returns a loop on backend b that no goroutine runs: the test
// turns it with serveOnce.
func newTestLoop(b poller.Backend) (*Loop, error) {
	p, err := poller.New(b)
	if err != nil {
		return nil, err
	}
	return newLoop(p), nil
}
