package poller_test

import (
	"testing"
	"time"

	"github.com/muxkit/reactor/poller"
)

// TestWakeDoesNotAllocate: Wake runs once per hand-off to a loop (every
// parked net.Conn call, every Post batch), so it must not allocate.
func TestWakeDoesNotAllocate(t *testing.T) {
	forEachBackend(t, func(t *testing.T, p poller.Poller) {
		evs := make([]poller.Event, 4)
		allocs := testing.AllocsPerRun(100, func() {
			if err := p.Wake(); err != nil {
				t.Fatal(err)
			}
			if _, err := p.Wait(evs, time.Second); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Fatalf("Wake+Wait allocates %.1f times, want 0", allocs)
		}
	})
}
