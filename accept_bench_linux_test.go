package reactor

import (
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// The benchmarks that decide between the two ways of spreading connections
// across loops: one acceptor dealing them out (the default) and an
// SO_REUSEPORT listener per loop (Server.ReusePort, linux only). Run them
// with
//
//	go test -run '^$' -bench 'Accept|EchoSpread' -count 3 .
//
// Both use two loops and the default backend. On a machine whose cores the
// client shares, compare the two modes as ratios within one run. Every
// BenchmarkAccept round starts a server on a new port, so its connections,
// which the client closes first and so leaves in TIME_WAIT, have the whole
// ephemeral port range to themselves: stay under about 28,000 per round.

// spreadModes are the sub-benchmarks: the Server's two ways of spreading.
var spreadModes = []struct {
	name  string
	reuse bool
}{{"acceptor", false}, {"reuseport", true}}

// acceptDialers is how many client goroutines connect at once in
// BenchmarkAccept.
const acceptDialers = 4

// BenchmarkAccept measures connection set-up: each op is one connection
// made by one of acceptDialers concurrent client goroutines (connect, one
// 64-byte echo round trip, close) to an echo Server with two loops. It
// reports conns/s, and the balance of the connections across the loops as
// max/min (the most connections one loop got over the fewest; 1 is
// exact) and max-share (the busiest loop's share of them, 0.5 is even).
func BenchmarkAccept(b *testing.B) {
	for _, m := range spreadModes {
		b.Run(fmt.Sprintf("mode=%s/loops=2/dialers=%d", m.name, acceptDialers), func(b *testing.B) {
			benchAccept(b, &Server{Handler: Echo, Loops: 2, ReusePort: m.reuse})
		})
	}
}

func benchAccept(b *testing.B, s *Server) {
	startServer(b, s)
	addr := s.Addr().(*net.TCPAddr)
	loops := loopsOf(b, s)
	before := openedPerLoop(b, loops)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	for range acceptDialers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var msg, buf [echoMsgSize]byte
			for next.Add(1) <= int64(b.N) {
				fd, err := dialRaw(addr, 0)
				if err != nil {
					b.Error(err)
					return
				}
				err = writeFull(fd, msg[:])
				if err == nil {
					err = readFull(fd, buf[:])
				}
				unix.Close(fd)
				if err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "conns/s")
	// Every connection was registered before its echo came back.
	after := openedPerLoop(b, loops)
	for i := range after {
		after[i] -= before[i]
	}
	reportBalance(b, after)
}

// BenchmarkEchoSpread is BenchmarkEcho at 100 connections against a Server
// with two loops, one sub-benchmark per way of spreading the connections:
// msgs/s of the steady state once they are spread, and their balance as
// in BenchmarkAccept.
func BenchmarkEchoSpread(b *testing.B) {
	const conns = 100
	for _, m := range spreadModes {
		b.Run(fmt.Sprintf("mode=%s/loops=2/conns=%d", m.name, conns), func(b *testing.B) {
			s := &Server{Handler: Echo, Loops: 2, ReusePort: m.reuse}
			benchEchoServer(b, s, conns)
			loops := loopsOf(b, s)
			per := make([]int, len(loops))
			for i, l := range loops {
				per[i] = int(l.Stats().Open)
			}
			reportBalance(b, per)
		})
	}
}

// openedPerLoop returns how many connections each loop has registered.
func openedPerLoop(b *testing.B, loops []*Loop) []int {
	per := make([]int, len(loops))
	for i, l := range loops {
		per[i] = int(l.Stats().Accepted)
	}
	return per
}

// reportBalance reports per, connections per loop, as max/min and
// max-share; max/min only when every loop has some.
func reportBalance(b *testing.B, per []int) {
	hi, lo, total := slices.Max(per), slices.Min(per), 0
	for _, n := range per {
		total += n
	}
	if lo > 0 {
		b.ReportMetric(float64(hi)/float64(lo), "max/min")
	}
	if total > 0 {
		b.ReportMetric(float64(hi)/float64(total), "max-share")
	}
}
