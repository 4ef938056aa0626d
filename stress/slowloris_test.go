package stress

import (
	"github.com/muxkit/reactor"
	"github.com/muxkit/reactor/poller"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/internal/leakcheck"
	"github.com/muxkit/reactor/servers/multiplex"
	"github.com/muxkit/reactor/servers/threadpool"
)

// slowlorisClients is how many slow clients each test connects, and
// trickleEvery how often each of them sends its next byte.
const (
	slowlorisClients = 300
	trickleEvery     = 10 * time.Millisecond
)

// slowloris is a set of clients that keep their connections open by
// trickling one byte at a time and never finish anything: to a server
// that blocks a thread per client on read, each holds a thread for as long
// as it likes. They never read; the echo of their bytes waits in their
// sockets.
type slowloris struct {
	conns  []*net.TCPConn
	passes atomic.Int64 // passes over every client, each sending one byte
	stop   chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	err    error // the first write that failed
}

// startSlowloris connects n slow clients to addr, each sending its first
// byte, and trickles a byte on each of them every trickleEvery, from one
// goroutine, until the test ends or close is called.
func startSlowloris(t *testing.T, addr string, n int) *slowloris {
	t.Helper()
	s := &slowloris{stop: make(chan struct{})}
	t.Cleanup(s.close)
	for range n {
		c := dial(t, addr)
		if _, err := c.Write([]byte{'.'}); err != nil {
			t.Fatal(err)
		}
		s.conns = append(s.conns, c)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		tick := time.NewTicker(trickleEvery)
		defer tick.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
			for _, c := range s.conns {
				c.SetWriteDeadline(time.Now().Add(ioTimeout))
				if _, err := c.Write([]byte{'.'}); err != nil {
					s.mu.Lock()
					s.err = err
					s.mu.Unlock()
					return
				}
			}
			s.passes.Add(1)
		}
	}()
	return s
}

// failed is the first write that failed, if any.
func (s *slowloris) failed() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// waitPasses waits until every client has sent k more bytes.
func (s *slowloris) waitPasses(t *testing.T, k int64) {
	t.Helper()
	p := s.passes.Load() + k
	waitFor(t, "the slow clients to trickle on", ioTimeout, func() bool {
		if err := s.failed(); err != nil {
			t.Fatalf("a slow client's write: %v", err)
		}
		return s.passes.Load() >= p
	})
}

// echoed is how many of the clients have had echoed bytes back, that is,
// are being served.
func (s *slowloris) echoed() int {
	n := 0
	for _, c := range s.conns {
		if pending(c) > 0 {
			n++
		}
	}
	return n
}

// close stops the trickle and closes every client; it is idempotent.
func (s *slowloris) close() {
	select {
	case <-s.stop:
		return
	default:
	}
	close(s.stop)
	s.wg.Wait()
	for _, c := range s.conns {
		c.Close()
	}
}

// pending is how many bytes wait to be read on c, peeked without
// blocking.
func pending(c *net.TCPConn) int {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0
	}
	var n int
	buf := make([]byte, 64)
	rc.Read(func(fd uintptr) bool {
		n, _, _ = unix.Recvfrom(int(fd), buf, unix.MSG_PEEK|unix.MSG_DONTWAIT)
		return true
	})
	return max(n, 0)
}

// TestSlowlorisMultiplex: with 300 slow clients connected to one event
// loop and trickling a byte each every 10 ms, every one of them served, a
// normal client still completes its round trips, each within ioTimeout,
// for as long as it takes the slow clients to send 20 more bytes each.
// A server that gave each client a thread blocked in read would not answer
// it until they left, which they do not. The round-trip latencies with and
// without the slow clients are logged, not asserted: this project does not
// time unit tests. Figures from one run on the 2-core test VM are in the
// report of issue 6.
// It runs on the default backend and on the completion engine.
func TestSlowlorisMultiplex(t *testing.T) {
	for _, b := range []poller.Backend{reactor.DefaultBackend, reactor.Uring} {
		t.Run(b.String(), func(t *testing.T) {
			if !hasBackend(b) {
				t.Skipf("%v cannot run here: %v", b, reactor.UringSupport())
			}
			slowlorisMultiplex(t, b)
		})
	}
}

func slowlorisMultiplex(t *testing.T, b poller.Backend) {
	leakcheck.Check(t)
	addr := start(t, &multiplex.Server{Loops: 1, Backend: b})
	normal := dial(t, addr)
	msg := []byte("a normal client's message of 48 bytes, complete")
	buf := make([]byte, len(msg))
	const rounds = 500
	measure := func(more func() bool) (latencies, error) {
		var l latencies
		for len(l) < rounds || more() {
			t0 := time.Now()
			if err := roundTrip(normal, msg, buf); err != nil {
				return l, err
			}
			l = append(l, time.Since(t0))
		}
		return l, nil
	}
	base, err := measure(func() bool { return false })
	if err != nil {
		t.Fatalf("round trip %d alone: %v", len(base)+1, err)
	}

	lor := startSlowloris(t, addr, slowlorisClients)
	waitFor(t, "every slow client to be served", ioTimeout, func() bool { return lor.echoed() == slowlorisClients })
	p0 := lor.passes.Load()
	loaded, err := measure(func() bool { return lor.passes.Load() < p0+20 })
	if err != nil {
		t.Fatalf("round trip %d with %d slow clients connected: %v", len(loaded)+1, slowlorisClients, err)
	}
	if err := lor.failed(); err != nil {
		t.Fatalf("a slow client's write: %v", err)
	}
	passes := lor.passes.Load() - p0
	if q := acceptQueue(t, addr); q != 0 {
		t.Errorf("%d clients wait in the accept queue: want none", q)
	}
	t.Logf("normal client alone:                 %v", base)
	t.Logf("normal client with %d slow clients: %v (%d trickle passes meanwhile); p99 ratio %.1fx",
		slowlorisClients, loaded, passes, float64(loaded.quantile(0.99))/float64(base.quantile(0.99)))
}

// TestSlowlorisThreadpool: the same 300 slow clients hold every worker of
// a pool of 8 (exactly 8 of them are echoed, the other 292 wait in the
// accept queue), so that a normal client that connects and sends is not
// served: it waits in the accept queue while the slow clients trickle on,
// and it has no echo. It is served once they leave. How long it waited is
// logged.
func TestSlowlorisThreadpool(t *testing.T) {
	leakcheck.Check(t)
	const workers = 8
	addr := start(t, &threadpool.Server{Workers: workers})
	lor := startSlowloris(t, addr, slowlorisClients)
	waitFor(t, "every worker to be held by a slow client", ioTimeout, func() bool {
		return lor.echoed() == workers && acceptQueue(t, addr) == slowlorisClients-workers
	})

	normal := dial(t, addr)
	msg := []byte("a normal client's message")
	t0 := time.Now()
	if _, err := normal.Write(msg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the normal client to wait in the accept queue", ioTimeout, func() bool {
		return acceptQueue(t, addr) == slowlorisClients-workers+1
	})
	// An observation window, measured in the slow clients' progress: nothing
	// else can say that the normal client is not served.
	lor.waitPasses(t, 10)
	if q := acceptQueue(t, addr); q != slowlorisClients-workers+1 {
		t.Errorf("after ten more bytes from each slow client, %d clients wait in the accept queue: want %d", q, slowlorisClients-workers+1)
	}
	if n := pending(normal); n != 0 {
		t.Errorf("the normal client has %d bytes of echo while the pool is held: want none", n)
	}
	if n := lor.echoed(); n != workers {
		t.Errorf("%d slow clients served: want %d, the pool's size", n, workers)
	}
	held := time.Since(t0)

	lor.close()
	t1 := time.Now()
	normal.SetReadDeadline(time.Now().Add(ioTimeout))
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(normal, got); err != nil || string(got) != string(msg) {
		t.Fatalf("the normal client after the slow clients left: %q, %v", got, err)
	}
	t.Logf("%d workers, %d slow clients: the normal client was not served for the %v it was watched; served %v after they left",
		workers, slowlorisClients, held.Round(time.Millisecond), time.Since(t1).Round(time.Microsecond))
}
