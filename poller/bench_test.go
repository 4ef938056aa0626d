package poller_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/muxkit/reactor/poller"
)

// BenchmarkWait measures one Wait with N registered fds of which exactly one
// is ready: select and poll pay for every watched fd, epoll and kqueue for
// the ready ones. select stops at 1,000 (FD_SETSIZE is 1024).
//
//	go test ./poller -run '^$' -bench Wait -benchmem
func BenchmarkWait(b *testing.B) {
	for _, be := range poller.Available() {
		for _, n := range []int{1, 100, 1000, 10000} {
			if be == poller.Select && n > 1000 {
				continue
			}
			b.Run(fmt.Sprintf("backend=%v/fds=%d", be, n), func(b *testing.B) {
				p := newPoller(b, be)
				fds, peers := registerMany(b, p, n)
				mustWrite(b, peers[len(fds)/2], "x")
				evs := make([]poller.Event, 64)
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					if k, err := p.Wait(evs, time.Second); k != 1 || err != nil {
						b.Fatalf("Wait: n=%d err=%v", k, err)
					}
				}
			})
		}
	}
}
