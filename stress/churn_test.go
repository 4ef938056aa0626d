package stress

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor"
	"github.com/muxkit/reactor/internal/leakcheck"
	"github.com/muxkit/reactor/poller"
	"github.com/muxkit/reactor/servers/multiplex"
)

// churnCounts counts what the server saw of the churn: connections opened,
// and closed by reason.
type churnCounts struct {
	opened, eof, reset, other atomic.Int64
	firstOther                atomic.Value // error
}

func (cc *churnCounts) handler() reactor.Handler {
	return reactor.HandlerFuncs{
		Open: func(*reactor.Conn) { cc.opened.Add(1) },
		Data: reactor.Echo.OnData,
		Close: func(_ *reactor.Conn, err error) {
			switch {
			case errors.Is(err, io.EOF):
				cc.eof.Add(1)
			case errors.Is(err, unix.ECONNRESET):
				cc.reset.Add(1)
			default:
				cc.other.Add(1)
				cc.firstOther.CompareAndSwap(nil, fmt.Errorf("%w", err))
			}
		},
	}
}

func (cc *churnCounts) closed() int64 { return cc.eof.Load() + cc.reset.Load() + cc.other.Load() }

// TestChurn: 100,000 short connections with REACTOR_STRESS=long (2,000
// otherwise; poll gets half as many), each one small echo and then a
// close, every third a reset (SO_LINGER 0) instead, from eight client
// goroutines, against a multiplex server with two loops. The server must
// see every one open and close with the right reason (EOF or ECONNRESET,
// nothing else); once they are gone the process has the fds it had before
// them (while the server still serves), and, the server shut down, the
// goroutines too; and its resident memory at the end is within 16 MiB of
// what it was after the first tenth (not checked under -race).
func TestChurn(t *testing.T) {
	n := 2_000
	if long() {
		n = 100_000
	}
	for _, tc := range []struct {
		backend poller.Backend
		n       int
	}{{poller.Epoll, n}, {poller.Poll, n / 2}, {reactor.Uring, n}} {
		t.Run(tc.backend.String(), func(t *testing.T) {
			if !hasBackend(tc.backend) {
				t.Skipf("no %v on this OS", tc.backend)
			}
			churn(t, tc.backend, tc.n)
		})
	}
}

func hasBackend(b poller.Backend) bool {
	for _, a := range reactor.Backends() {
		if a == b {
			return true
		}
	}
	return false
}

func churn(t *testing.T, b poller.Backend, n int) {
	leakcheck.Check(t)
	var cc churnCounts
	addr := start(t, &multiplex.Server{Handler: cc.handler(), Backend: b, Loops: 2})
	buf := make([]byte, 16)
	c := dial(t, addr) // the server is up and serving
	if err := roundTrip(c, []byte("warm up"), buf); err != nil {
		t.Fatal(err)
	}
	c.Close()
	waitFor(t, "the warm-up connection to close", ioTimeout, func() bool { return cc.closed() == 1 })
	fds := leakcheck.OpenFDs()
	vmRSS(t) // skips the test where /proc/self/status is missing

	const workers = 8
	warm := n / 10
	var (
		done     atomic.Int64
		rssWarm  atomic.Int64
		firstErr error
		mu       sync.Mutex
		wg       sync.WaitGroup
	)
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := []byte(fmt.Sprintf("churn worker %02d", w)) // 16 bytes
			buf := make([]byte, len(msg))
			for i := w; i < n; i += workers {
				if err := churnOne(addr, msg, buf, i%3 == 0); err != nil {
					mu.Lock()
					firstErr = cmpErr(firstErr, fmt.Errorf("connection %d: %w", i, err))
					mu.Unlock()
					return
				}
				if done.Add(1) == int64(warm) {
					rss, err := readRSS()
					if err != nil {
						mu.Lock()
						firstErr = cmpErr(firstErr, err)
						mu.Unlock()
						return
					}
					rssWarm.Store(rss)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	waitFor(t, "the server to close every connection", 30*time.Second, func() bool { return cc.closed() == int64(n)+1 })
	waitFor(t, "the fds to be back to what they were before the churn", ioTimeout, func() bool { return leakcheck.OpenFDs() <= fds })
	rssEnd := vmRSS(t)
	resets := int64((n + 2) / 3) // i%3 == 0 for i in [0, n)
	t.Logf("%v: %d connections in %v (%.0f/s): server saw %d opened, %d EOF, %d ECONNRESET, %d other; fds %d before and after; VmRSS %.1f MiB after %d, %.1f MiB at the end",
		b, n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), cc.opened.Load()-1, cc.eof.Load()-1, cc.reset.Load(), cc.other.Load(),
		fds, float64(rssWarm.Load())/(1<<20), warm, float64(rssEnd)/(1<<20))
	if got := cc.opened.Load() - 1; got != int64(n) {
		t.Errorf("server opened %d connections, want %d", got, n)
	}
	if got := cc.reset.Load(); got != resets {
		t.Errorf("server closed %d connections with ECONNRESET, want %d", got, resets)
	}
	if got := cc.eof.Load() - 1; got != int64(n)-resets {
		t.Errorf("server closed %d connections with EOF, want %d", got, int64(n)-resets)
	}
	if cc.other.Load() != 0 {
		t.Errorf("server closed %d connections for another reason, the first: %v", cc.other.Load(), cc.firstOther.Load())
	}
	if raceEnabled() {
		t.Log("-race: VmRSS not checked (the race detector's shadow memory grows with every allocation)")
	} else if growth := rssEnd - rssWarm.Load(); growth > 16<<20 {
		t.Errorf("VmRSS grew %.1f MiB from connection %d to the end: want at most 16 MiB", float64(growth)/(1<<20), warm)
	}
}

// churnOne is one short connection: connect, echo msg, then close or
// reset.
func churnOne(addr string, msg, buf []byte, rst bool) error {
	nc, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		return err
	}
	c := nc.(*net.TCPConn)
	if err := roundTrip(c, msg, buf); err != nil {
		c.Close()
		return err
	}
	if rst {
		return reset(c)
	}
	return c.Close()
}

// cmpErr keeps the first error.
func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}
