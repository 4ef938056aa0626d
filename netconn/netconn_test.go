package netconn

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor"
	"github.com/muxkit/reactor/internal/leakcheck"
	"github.com/muxkit/reactor/internal/sock"
	"github.com/muxkit/reactor/poller"
	"github.com/muxkit/reactor/poller/pollertest"
)

// The tests in this file check that listeners and connections keep the
// whole net.Conn contract on every backend this OS has. Each runs through
// netTest, which gives it a group of its own on one backend, checks the
// loops really use it, and checks after the test that the group ended and
// no goroutine or fd leaked. TestNetGroupLifecycle tests the shared group
// behind Listen and Dial.

// TestMain starts what the Go runtime keeps for the life of the process
// (its netpoller, which the stock net clients of some tests use), so that
// no leak check blames a test for it.
func TestMain(m *testing.M) {
	leakcheck.Warm()
	os.Exit(m.Run())
}

// netEnv is what netTest gives a test: the backend under test and a Config
// on a group of its own that runs on it.
type netEnv struct {
	b     poller.Backend
	g     *reactor.Group
	cfg   Config
	count *pollCounts // the group's poller calls; nil unless made by counting
}

// netTest runs fn as a subtest per backend in poller.Available, each with
// a group of two loops on that backend (so the ends of a connection can be
// on different loops), closed when the subtest ends; it fails the subtest
// if a goroutine or an fd outlives it.
func netTest(t *testing.T, fn func(t *testing.T, e *netEnv)) {
	t.Helper()
	for _, b := range poller.Available() {
		t.Run(b.String(), func(t *testing.T) {
			netCheckLeaks(t)
			g := startGroup(t, b, reactor.GroupConfig{Loops: 2, Backend: b})
			fn(t, &netEnv{b: b, g: g, cfg: Config{Group: g}})
		})
	}
}

// netCheckLeaks fails t if, once every cleanup registered after it has run
// and the shared group has ended, more goroutines or fds are open than now.
func netCheckLeaks(t *testing.T) {
	t.Helper()
	leakcheck.Check(t)
	t.Cleanup(func() { waitSharedStopped(t) })
}

// errInjected is the failure countingPoller injects into a Wait; a group
// whose loop it ended may return it from Close.
var errInjected = errors.New("netconn test: injected poller failure")

// startGroup starts a group with gc, checks that every loop runs on
// backend b, and closes the group when the test ends, failing t if Close
// hangs or reports a failure the test did not inject.
func startGroup(t *testing.T, b poller.Backend, gc reactor.GroupConfig) *reactor.Group {
	t.Helper()
	g, err := reactor.NewGroup(gc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		err := within(t, 10*time.Second, "Group.Close", g.Close)
		if err != nil && !errors.Is(err, errInjected) {
			t.Errorf("Group.Close: %v", err)
		}
	})
	for i := range g.Len() {
		if got := g.Loop(i).Backend(); got != b {
			t.Fatalf("loop %d runs on %v, want %v", i, got, b)
		}
	}
	return g
}

// pollCounts counts the calls a group's loops make to their pollers.
type pollCounts struct {
	waits, events, wakes, adds, modifies, removes atomic.Int64
	// failWait, when set, is what the next Wait returns instead of its
	// events (once).
	failWait atomic.Pointer[error]
}

// pollStats is a snapshot of pollCounts.
type pollStats struct {
	Waits, Events, Wakes, Adds, Modifies, Removes int64
}

func (n *pollCounts) snapshot() pollStats {
	return pollStats{
		Waits: n.waits.Load(), Events: n.events.Load(), Wakes: n.wakes.Load(),
		Adds: n.adds.Load(), Modifies: n.modifies.Load(), Removes: n.removes.Load(),
	}
}

// since returns what was counted between then and s.
func (s pollStats) since(then pollStats) pollStats {
	return pollStats{
		Waits: s.Waits - then.Waits, Events: s.Events - then.Events, Wakes: s.Wakes - then.Wakes,
		Adds: s.Adds - then.Adds, Modifies: s.Modifies - then.Modifies, Removes: s.Removes - then.Removes,
	}
}

// countingPoller is a real Poller that counts the calls made to it, and
// fails a Wait when told to.
type countingPoller struct {
	poller.Poller
	n *pollCounts
}

func (p *countingPoller) Add(fd int, token uint64, ev poller.Events) error {
	p.n.adds.Add(1)
	return p.Poller.Add(fd, token, ev)
}

func (p *countingPoller) Modify(fd int, token uint64, ev poller.Events) error {
	p.n.modifies.Add(1)
	return p.Poller.Modify(fd, token, ev)
}

func (p *countingPoller) Remove(fd int) error {
	p.n.removes.Add(1)
	return p.Poller.Remove(fd)
}

func (p *countingPoller) Wake() error {
	p.n.wakes.Add(1)
	return p.Poller.Wake()
}

func (p *countingPoller) Wait(events []poller.Event, timeout time.Duration) (int, error) {
	n, err := p.Poller.Wait(events, timeout)
	if e := p.n.failWait.Swap(nil); e != nil {
		return 0, *e
	}
	p.n.waits.Add(1)
	p.n.events.Add(int64(n))
	return n, err
}

// counting returns an env on a new group of loops loops on e's backend,
// whose pollers count what is asked of them (see pollCounts).
func (e *netEnv) counting(t *testing.T, loops int) *netEnv {
	t.Helper()
	n := &pollCounts{}
	g := startGroup(t, e.b, reactor.GroupConfig{Loops: loops, NewPoller: func() (poller.Poller, error) {
		p, err := poller.New(e.b)
		if err != nil {
			return nil, err
		}
		return &countingPoller{Poller: p, n: n}, nil
	}})
	return &netEnv{b: e.b, g: g, cfg: Config{Group: g}, count: n}
}

// waitSharedStopped fails t unless the shared group is released and its
// loops have returned within 5s.
func waitSharedStopped(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := shared.waitStopped(ctx); err != nil {
		t.Fatalf("shared group did not stop: %v", err)
	}
}

// within runs fn and fails t if it has not returned after d: a hang shows
// as a failure naming what hung, not as the test binary's timeout.
func within[T any](t *testing.T, d time.Duration, what string, fn func() T) T {
	t.Helper()
	ch := make(chan T, 1)
	go func() { ch <- fn() }()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
		panic("unreachable")
	}
}

// waitFor polls cond until it holds, failing t after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(time.Millisecond) // polling a condition, with a deadline
	}
}

// ioResult is what a Read or Write returned, and when.
type ioResult struct {
	n   int
	err error
	at  time.Time
}

func (r ioResult) unpack() (int, error) { return r.n, r.err }

// goRead starts c.Read(buf) on a goroutine and returns where its result
// will be.
func goRead(c net.Conn, buf []byte) <-chan ioResult {
	res := make(chan ioResult, 1)
	go func() {
		n, err := c.Read(buf)
		res <- ioResult{n, err, time.Now()}
	}()
	return res
}

// netAddr returns a listening address for network: a free loopback port,
// or a socket path in a fresh temporary directory.
func netAddr(t *testing.T, network string) string {
	t.Helper()
	if network != "unix" {
		return "127.0.0.1:0"
	}
	dir := t.TempDir()
	if len(dir) > 90 { // sun_path holds 104 bytes on the BSDs
		var err error
		if dir, err = os.MkdirTemp("", "rx"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
	}
	return filepath.Join(dir, "s")
}

// listen listens on e's group and closes the listener when the test ends.
func (e *netEnv) listen(t *testing.T, network string) net.Listener {
	t.Helper()
	ln, err := e.cfg.Listen(network, netAddr(t, network))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// dial dials on e's group and closes the connection when the test ends.
func (e *netEnv) dial(t *testing.T, network, addr string) *Conn {
	t.Helper()
	c, err := e.cfg.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*Conn)
}

// pair returns the two ends of one connection on e's group: client from
// Dial, server from Accept. Both are closed when the test ends.
func (e *netEnv) pair(t *testing.T, network string) (client, server *Conn) {
	t.Helper()
	return pairOn(t, network, e, e)
}

// pairOn is pair with the server end (and the listener) on srv's group and
// the client end on cli's.
func pairOn(t *testing.T, network string, srv, cli *netEnv) (client, server *Conn) {
	t.Helper()
	ln, err := srv.cfg.Listen(network, netAddr(t, network))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan dialResult, 1)
	go func() {
		c, err := ln.Accept()
		ch <- dialResult{c, err}
	}()
	client = cli.dial(t, network, ln.Addr().String())
	a := within(t, 5*time.Second, "Accept", func() dialResult { return <-ch })
	if a.err != nil {
		t.Fatal(a.err)
	}
	t.Cleanup(func() { a.c.Close() })
	return client, a.c.(*Conn)
}

// netServe accepts on ln until it is closed, running handle for every
// connection in its own goroutine and closing the connection after. When
// the test ends it closes ln and waits for every handler.
func netServe(t *testing.T, ln net.Listener, handle func(c net.Conn)) {
	t.Helper()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					t.Errorf("Accept: %v", err)
				}
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		within(t, 10*time.Second, "server handlers", func() bool { wg.Wait(); return true })
	})
}

// echoConn copies everything c reads back to c, then shuts down c's sending
// side so the peer reads end of file.
func echoConn(c net.Conn) {
	io.Copy(c, c)
	c.(*Conn).CloseWrite()
}

// fdOf returns the fd behind a connection or listener of this package.
func fdOf(t *testing.T, x any) *fd {
	t.Helper()
	switch x := x.(type) {
	case *Conn:
		return x.fd
	case *listener:
		return x.fd
	}
	t.Fatalf("%T is not a netconn connection or listener", x)
	return nil
}

// waiterOf returns f's waiter for dir (Readable or Writable).
func waiterOf(f *fd, dir reactor.Events) *waiter {
	if dir == reactor.Writable {
		return &f.w
	}
	return &f.r
}

// onLoopOf runs fn on f's loop and waits for it; it reports false if the
// loop has ended (fn did not run).
func onLoopOf(t *testing.T, f *fd, fn func()) bool {
	t.Helper()
	done := make(chan struct{})
	if err := f.loop.Post(func() { fn(); close(done) }); err != nil {
		return false
	}
	within(t, 5*time.Second, "a function posted to the loop", func() bool { <-done; return true })
	return true
}

// waitArmed waits until a goroutine has found x's fd not ready for dir and
// parked (or is about to receive) on its waiter; level-triggered, until
// the loop also watches the fd for dir.
func waitArmed(t *testing.T, x any, dir reactor.Events) {
	t.Helper()
	f := fdOf(t, x)
	w := waiterOf(f, dir)
	waitFor(t, 5*time.Second, fmt.Sprintf("a goroutine parked for %v", dir), func() bool {
		if !w.parked.Load() {
			return false
		}
		if f.edge {
			return true
		}
		var want reactor.Events
		if !onLoopOf(t, f, func() { want = f.want }) {
			return true // the loop ended: nothing more will be armed
		}
		return want&dir != 0
	})
}

// waitTimer waits until w's loop timer is armed for the deadline at
// (monotonic, see mono), 0 meaning none.
func waitTimer(t *testing.T, w *waiter, at int64) {
	t.Helper()
	waitFor(t, 10*time.Second, fmt.Sprintf("the loop timer armed for %d", at), func() bool {
		return w.timerAt.Load() == at
	})
}

// randomBytes returns n bytes of a fixed pseudo-random sequence.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := mrand.NewChaCha8([32]byte{1, 2, 3})
	r.Read(b)
	return b
}

// checkTimeout fails t unless err is a deadline error as net's are.
func checkTimeout(t *testing.T, op string, err error) {
	t.Helper()
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("%s: err = %v, want os.ErrDeadlineExceeded", op, err)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("%s: err = %v is not a net.Error with Timeout() true", op, err)
	}
}

// checkClosed fails t unless err matches net.ErrClosed.
func checkClosed(t *testing.T, op string, err error) {
	t.Helper()
	if !errors.Is(err, net.ErrClosed) {
		t.Fatalf("%s: err = %v, want net.ErrClosed", op, err)
	}
}

// checkLoopClosed fails t unless err matches reactor.ErrLoopClosed.
func checkLoopClosed(t *testing.T, op string, err error) {
	t.Helper()
	if !errors.Is(err, reactor.ErrLoopClosed) {
		t.Fatalf("%s: err = %v, want reactor.ErrLoopClosed", op, err)
	}
}

var streamNetworks = []string{"tcp", "unix"}

func TestNetConnEcho(t *testing.T) {
	netTest(t, func(t *testing.T, e *netEnv) {
		for _, network := range streamNetworks {
			t.Run(network, func(t *testing.T) {
				ln := e.listen(t, network)
				if ln.Addr() == nil || ln.Addr().Network() != network {
					t.Fatalf("Addr() = %v, want a %s address", ln.Addr(), network)
				}
				netServe(t, ln, echoConn)
				var wg sync.WaitGroup
				for i := range 8 {
					c := e.dial(t, network, ln.Addr().String())
					if network == "tcp" && c.RemoteAddr().String() != ln.Addr().String() {
						t.Errorf("RemoteAddr() = %v, want %v", c.RemoteAddr(), ln.Addr())
					}
					wg.Add(1)
					go func() {
						defer wg.Done()
						for j := range 20 {
							msg := fmt.Appendf(nil, "client %d message %d", i, j)
							if _, err := c.Write(msg); err != nil {
								t.Errorf("Write: %v", err)
								return
							}
							got := make([]byte, len(msg))
							if _, err := io.ReadFull(c, got); err != nil {
								t.Errorf("Read: %v", err)
								return
							}
							if !bytes.Equal(got, msg) {
								t.Errorf("echo: got %q, want %q", got, msg)
							}
						}
					}()
				}
				wg.Wait()
			})
		}
	})
}

func TestNetConnPartialReads(t *testing.T) {
	netTest(t, func(t *testing.T, e *netEnv) {
		for _, network := range streamNetworks {
			t.Run(network, func(t *testing.T) {
				c, s := e.pair(t, network)
				want := randomBytes(100_000)
				go func() {
					s.Write(want)
					s.Close()
				}()
				var got []byte
				buf := make([]byte, 7)
				for {
					n, err := c.Read(buf)
					if n > len(buf) || n < 0 {
						t.Fatalf("Read returned n = %d for a %d-byte buffer", n, len(buf))
					}
					got = append(got, buf[:n]...)
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatalf("Read: %v", err)
					}
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("read %d bytes, not the %d written", len(got), len(want))
				}
				// A zero-length read returns at once.
				if n, err := c.Read(nil); n != 0 || (err != nil && err != io.EOF) {
					t.Fatalf("Read(nil) = %d, %v", n, err)
				}
			})
		}
	})
}

func TestNetConnLargeWrite(t *testing.T) {
	netTest(t, func(t *testing.T, e *netEnv) {
		for _, network := range streamNetworks {
			t.Run(network, func(t *testing.T) {
				c, s := e.pair(t, network)
				want := randomBytes(32 << 20)
				got := make([]byte, len(want))
				read := make(chan ioResult, 1)
				go func() {
					n, err := io.ReadFull(s, got)
					read <- ioResult{n: n, err: err}
				}()
				n, err := within(t, 30*time.Second, "Write", func() ioResult {
					n, err := c.Write(want)
					return ioResult{n: n, err: err}
				}).unpack()
				if err != nil || n != len(want) {
					t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(want))
				}
				r := within(t, 30*time.Second, "ReadFull", func() ioResult { return <-read })
				if r.err != nil {
					t.Fatalf("ReadFull: %v after %d bytes", r.err, r.n)
				}
				if !bytes.Equal(got, want) {
					t.Fatal("the bytes read differ from the bytes written")
				}
			})
		}
	})
}

// TestNetConnReadWhileWrite has one goroutine writing 8 MiB and another
// reading the echo of it on the same connection, so both park on the same
// fd at once, one for each direction.
func TestNetConnReadWhileWrite(t *testing.T) {
	netTest(t, func(t *testing.T, e *netEnv) {
		for _, network := range streamNetworks {
			t.Run(network, func(t *testing.T) {
				c, s := e.pair(t, network)
				go echoConn(s)
				want := randomBytes(8 << 20)
				wrote := make(chan error, 1)
				go func() {
					_, err := c.Write(want)
					if err == nil {
						err = c.CloseWrite()
					}
					wrote <- err
				}()
				got := within(t, 30*time.Second, "ReadAll", func() []byte {
					b, err := io.ReadAll(c)
					if err != nil {
						t.Errorf("ReadAll: %v", err)
					}
					return b
				})
				if err := <-wrote; err != nil {
					t.Fatalf("Write: %v", err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("read back %d bytes, differing from the %d written", len(got), len(want))
				}
			})
		}
	})
}

// TestNetConnReadDeadline checks read deadlines set before a Read, and one
// moved to the past under a parked Read; TestNetConnDeadlineMoves has the
// other moves under a parked Read (later, earlier, cleared).
func TestNetConnReadDeadline(t *testing.T) {
	netTest(t, func(t *testing.T, e *netEnv) {
		c, s := e.pair(t, "tcp")
		buf := make([]byte, 16)

		// In the past: fails at once, even with data waiting, as net does.
		s.Write([]byte("x"))
		c.SetReadDeadline(time.Now().Add(-time.Second))
		_, err := c.Read(buf)
		checkTimeout(t, "Read past deadline", err)

		// A timeout leaves the connection usable: clear it and read.
		c.SetReadDeadline(time.Time{})
		if n, err := c.Read(buf); n != 1 || err != nil {
			t.Fatalf("Read after clearing the deadline = %d, %v", n, err)
		}

		// In the future: blocks until then.
		deadline := time.Now().Add(50 * time.Millisecond)
		c.SetReadDeadline(deadline)
		r := within(t, 5*time.Second, "Read", func() ioResult { return <-goRead(c, buf) })
		checkTimeout(t, "Read future deadline", r.err)
		if r.at.Before(deadline) {
			t.Fatalf("Read timed out %v before its deadline", deadline.Sub(r.at))
		}

		// Moved to the past while a Read is parked: it returns.
		c.SetReadDeadline(time.Time{})
		res := goRead(c, buf)
		waitArmed(t, c, reactor.Readable)
		c.SetReadDeadline(time.Now().Add(-time.Second))
		r = within(t, 5*time.Second, "parked Read", func() ioResult { return <-res })
		checkTimeout(t, "parked Read, deadline moved to the past", r.err)

		// Many short deadlines in a row: every one fires, none is lost.
		for i := range 20 {
			c.SetReadDeadline(time.Now().Add(time.Duration(i%3) * time.Millisecond))
			r := within(t, 5*time.Second, "Read", func() ioResult { return <-goRead(c, buf) })
			checkTimeout(t, fmt.Sprintf("Read %d", i), r.err)
		}

		// The connection still works.
		c.SetReadDeadline(time.Time{})
		s.Write([]byte("after"))
		if n, err := io.ReadFull(c, buf[:5]); err != nil || string(buf[:n]) != "after" {
			t.Fatalf("Read after the timeouts = %q, %v", buf[:n], err)
		}
	})
}

// TestNetConnDeadlineMoves moves the read deadline while a Read is parked:
// to the past (it returns at once), later (it stays parked past the old
// deadline and times out at the new one), earlier (it times out at the
// earlier one) and cleared (it stays parked until data comes). Timing is
// checked only from below (a timeout is never before its deadline); that
// the old deadline has passed is seen on the loop timer, which fires then
// and re-arms for the new deadline or drops out.
func TestNetConnDeadlineMoves(t *testing.T) {
	netTest(t, func(t *testing.T, e *netEnv) {
		buf := make([]byte, 16)
		t.Run("past", func(t *testing.T) {
			c, _ := e.pair(t, "tcp")
			c.SetReadDeadline(time.Now().Add(time.Hour))
			res := goRead(c, buf)
			waitArmed(t, c, reactor.Readable)
			c.SetReadDeadline(time.Now().Add(-time.Second))
			r := within(t, 5*time.Second, "parked Read", func() ioResult { return <-res })
			checkTimeout(t, "parked Read, deadline moved to the past", r.err)
		})
		t.Run("later", func(t *testing.T) {
			c, _ := e.pair(t, "tcp")
			var later time.Time
			r := parkAndMove(t, c, buf, func(old time.Time) {
				later = old.Add(300 * time.Millisecond)
				c.SetReadDeadline(later)
			}, func(old time.Time) {
				// The timer fired at the old deadline, found the new one
				// and re-armed for it: the Read stayed parked.
				waitTimer(t, &c.fd.r, mono(later))
			})
			checkTimeout(t, "parked Read, deadline moved later", r.err)
			if r.at.Before(later) {
				t.Fatalf("Read timed out %v before its moved deadline", later.Sub(r.at))
			}
		})
		t.Run("earlier", func(t *testing.T) {
			c, _ := e.pair(t, "tcp")
			first := time.Now().Add(time.Hour)
			c.SetReadDeadline(first)
			res := goRead(c, buf)
			waitArmed(t, c, reactor.Readable)
			waitTimer(t, &c.fd.r, mono(first))
			earlier := time.Now().Add(200 * time.Millisecond)
			c.SetReadDeadline(earlier)
			r := within(t, 10*time.Second, "parked Read", func() ioResult { return <-res })
			checkTimeout(t, "parked Read, deadline moved earlier", r.err)
			if r.at.Before(earlier) {
				t.Fatalf("Read timed out %v before its moved deadline", earlier.Sub(r.at))
			}
		})
		t.Run("cleared", func(t *testing.T) {
			c, s := e.pair(t, "tcp")
			r := parkAndMove(t, c, buf, func(time.Time) {
				c.SetReadDeadline(time.Time{})
			}, func(time.Time) {
				// The timer fired at the old deadline and found none:
				// the Read is still parked. Data wakes it.
				waitTimer(t, &c.fd.r, 0)
				s.Write([]byte("late"))
			})
			if r.err != nil || string(buf[:r.n]) != "late" {
				t.Fatalf("Read after clearing the deadline = %q, %v; want \"late\", nil", buf[:r.n], r.err)
			}
		})
	})
}

// parkAndMove parks a Read on c with a read deadline a margin ahead, waits
// until the loop timer is armed for it, calls move(old deadline), and
// then, if move ran before the old deadline, after(old deadline), and
// returns the Read's result. When the machine was too slow for move to run
// before the old deadline it retries with a larger margin.
func parkAndMove(t *testing.T, c *Conn, buf []byte, move, after func(old time.Time)) ioResult {
	t.Helper()
	for _, margin := range []time.Duration{250 * time.Millisecond, time.Second, 4 * time.Second} {
		old := time.Now().Add(margin)
		c.SetReadDeadline(old)
		res := goRead(c, buf)
		waitArmed(t, c, reactor.Readable)
		waitTimer(t, &c.fd.r, mono(old))
		move(old)
		if time.Now().Before(old) {
			after(old)
			return within(t, 10*time.Second, "parked Read", func() ioResult { return <-res })
		}
		// Too slow to tell: end this Read and try again.
		t.Logf("the deadline moved %v after the old one; retrying with a longer margin", time.Since(old))
		c.SetReadDeadline(time.Now().Add(-time.Second))
		within(t, 10*time.Second, "parked Read", func() ioResult { return <-res })
		waitTimer(t, &c.fd.r, 0)
	}
	t.Fatal("could not move a deadline before it passed, even with a 4s margin")
	return ioResult{}
}

func TestNetConnWriteDeadline(t *testing.T) {
	netTest(t, func(t *testing.T, e *netEnv) {
		for _, network := range streamNetworks {
			t.Run(network, func(t *testing.T) {
				c, _ := e.pair(t, network) // the peer never reads
				big := make([]byte, 32<<20)
				c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
				n, err := within(t, 5*time.Second, "Write", func() ioResult {
					n, err := c.Write(big)
					return ioResult{n: n, err: err}
				}).unpack()
				checkTimeout(t, "Write", err)
				if n <= 0 || n >= len(big) {
					t.Fatalf("Write timed out with n = %d, want 0 < n < %d", n, len(big))
				}
				// In the past: fails at once, writing nothing.
				c.SetWriteDeadline(time.Now().Add(-time.Second))
				n, err = c.Write([]byte("x"))
				checkTimeout(t, "Write past deadline", err)
				if n != 0 {
					t.Fatalf("Write past deadline wrote %d bytes", n)
				}
				// Moved to the past while a Write is parked.
				c.SetWriteDeadline(time.Time{})
				res := make(chan ioResult, 1)
				go func() { n, err := c.Write(big); res <- ioResult{n: n, err: err} }()
				waitArmed(t, c, reactor.Writable)
				c.SetWriteDeadline(time.Now().Add(-time.Second))
				r := within(t, 5*time.Second, "parked Write", func() ioResult { return <-res })
				checkTimeout(t, "parked Write", r.err)
			})
		}
	})
}

func TestNetConnSetDeadline(t *testing.T) {
	netTest(t, func(t *testing.T, e *netEnv) {
		c, _ := e.pair(t, "tcp")
		c.SetDeadline(time.Now().Add(-time.Second))
		_, err := c.Read(make([]byte, 1))
		checkTimeout(t, "Read", err)
		_, err = c.Write([]byte("x"))
		checkTimeout(t, "Write", err)

		c.SetDeadline(time.Now().Add(30 * time.Millisecond))
		_, err = within(t, 5*time.Second, "Read", func() ioResult {
			n, err := c.Read(make([]byte, 1))
			return ioResult{n: n, err: err}
		}).unpack()
		checkTimeout(t, "Read", err)
		_, err = within(t, 5*time.Second, "Write", func() ioResult {
			n, err := c.Write(make([]byte, 32<<20))
			return ioResult{n: n, err: err}
		}).unpack()
		checkTimeout(t, "Write", err)

		c.SetDeadline(time.Time{})
		if _, err := c.Write([]byte("x")); err != nil {
			// The buffer may still be full of the timed-out write; a
			// clear deadline must not report a timeout.
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("Write after clearing the deadline: %v", err)
			}
		}
	})
}

func TestNetConnCloseUnblocks(t *testing.T) {
	netTest(t, func(t *testing.T, e *netEnv) {
		t.Run("Read", func(t *testing.T) {
			c, _ := e.pair(t, "tcp")
			res := goRead(c, make([]byte, 8))
			waitArmed(t, c, reactor.Readable)
			if err := c.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			r := within(t, 5*time.Second, "parked Read", func() ioResult { return <-res })
			checkClosed(t, "parked Read", r.err)
		})
		t.Run("Write", func(t *testing.T) {
			c, _ := e.pair(t, "tcp")
			res := make(chan ioResult, 1)
			go func() { n, err := c.Write(make([]byte, 32<<20)); res <- ioResult{n: n, err: err} }()
			waitArmed(t, c, reactor.Writable)
			c.Close()
			r := within(t, 5*time.Second, "parked Write", func() ioResult { return <-res })
			checkClosed(t, "parked Write", r.err)
			if r.n <= 0 {
				t.Fatalf("parked Write reported n = %d, want the bytes it wrote", r.n)
			}
		})
		t.Run("Accept", func(t *testing.T) {
			ln := e.listen(t, "tcp")
			res := make(chan error, 1)
			go func() { _, err := ln.Accept(); res <- err }()
			waitArmed(t, ln, reactor.Readable)
			if err := ln.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			checkClosed(t, "parked Accept", within(t, 5*time.Second, "parked Accept", func() error { return <-res }))
			_, err := ln.Accept()
			checkClosed(t, "Accept after Close", err)
			checkClosed(t, "second Close", ln.Close())
		})
		t.Run("ConcurrentAccept", func(t *testing.T) {
			// Several goroutines in Accept at once: each connection goes to
			// one of them, and Close ends the others.
			ln := e.listen(t, "tcp")
			const n = 4
			res := make(chan net.Conn, n)
			errc := make(chan error, n)
			for range n {
				go func() {
					c, err := ln.Accept()
					if err != nil {
						errc <- err
						return
					}
					res <- c
				}()
			}
			for range n - 1 {
				e.dial(t, "tcp", ln.Addr().String())
				c := within(t, 5*time.Second, "Accept", func() net.Conn { return <-res })
				c.Close()
			}
			ln.Close()
			checkClosed(t, "Accept", within(t, 5*time.Second, "Accept", func() error { return <-errc }))
		})
		t.Run("AfterClose", func(t *testing.T) {
			c, _ := e.pair(t, "tcp")
			if err := c.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			_, err := c.Read(make([]byte, 1))
			checkClosed(t, "Read", err)
			_, err = c.Write([]byte("x"))
			checkClosed(t, "Write", err)
			checkClosed(t, "SetDeadline", c.SetDeadline(time.Now()))
			checkClosed(t, "SetReadDeadline", c.SetReadDeadline(time.Now()))
			checkClosed(t, "SetWriteDeadline", c.SetWriteDeadline(time.Now()))
			checkClosed(t, "CloseWrite", c.CloseWrite())
			checkClosed(t, "CloseRead", c.CloseRead())
			checkClosed(t, "second Close", c.Close())
			var ne *net.OpError
			if err := c.Close(); !errors.As(err, &ne) {
				t.Fatalf("second Close: %T is not a *net.OpError", err)
			}
		})
		t.Run("CloseRace", func(t *testing.T) {
			// Close racing with reads, writes and deadline changes in
			// flight: everything returns, nothing panics.
			for range 20 {
				c, s := e.pair(t, "tcp")
				var wg sync.WaitGroup
				for _, f := range []func(){
					func() { c.Read(make([]byte, 10)) },
					func() { c.Write(make([]byte, 1<<20)) },
					func() { c.SetDeadline(time.Now().Add(time.Millisecond)) },
					func() { s.Write([]byte("hello")) },
					func() { c.Close() },
					func() { c.Close() },
				} {
					wg.Add(1)
					go func() { defer wg.Done(); f() }()
				}
				within(t, 5*time.Second, "racing calls", func() bool { wg.Wait(); return true })
				c.Close()
				s.Close()
			}
		})
	})
}

func TestNetConnPeerClose(t *testing.T) {
	netTest(t, func(t *testing.T, e *netEnv) {
		for _, network := range streamNetworks {
			t.Run(network, func(t *testing.T) {
				c, s := e.pair(t, network)
				// Data then end of file, with the reader parked first.
				buf := make([]byte, 64)
				res := goRead(c, buf)
				waitArmed(t, c, reactor.Readable)
				s.Write([]byte("bye"))
				s.Close()
				r := within(t, 5*time.Second, "Read", func() ioResult { return <-res })
				if r.err != nil || string(buf[:r.n]) != "bye" {
					t.Fatalf("Read = %q, %v; want \"bye\", nil", buf[:r.n], r.err)
				}
				for range 2 {
					if n, err := c.Read(buf); n != 0 || err != io.EOF {
						t.Fatalf("Read after the peer closed = %d, %v; want 0, io.EOF", n, err)
					}
				}
				// A parked Read sees end of file too.
				c2, s2 := e.pair(t, network)
				res = goRead(c2, buf)
				waitArmed(t, c2, reactor.Readable)
				s2.Close()
				r = within(t, 5*time.Second, "parked Read", func() ioResult { return <-res })
				if r.n != 0 || r.err != io.EOF {
					t.Fatalf("parked Read after the peer closed = %d, %v; want 0, io.EOF", r.n, r.err)
				}
				// CloseWrite: the peer reads end of file and can still write.
				c3, s3 := e.pair(t, network)
				if err := c3.CloseWrite(); err != nil {
					t.Fatalf("CloseWrite: %v", err)
				}
				if n, err := s3.Read(buf); n != 0 || err != io.EOF {
					t.Fatalf("Read after CloseWrite = %d, %v; want 0, io.EOF", n, err)
				}
				s3.Write([]byte("still"))
				if n, err := io.ReadFull(c3, buf[:5]); err != nil || string(buf[:n]) != "still" {
					t.Fatalf("Read after CloseWrite = %q, %v", buf[:n], err)
				}
			})
		}
	})
}

// resetOnClose makes Close of c send a reset (SO_LINGER 0).
func resetOnClose(t *testing.T, c *Conn) {
	t.Helper()
	if err := c.SetLinger(0); err != nil {
		t.Fatal(err)
	}
}

// checkReset fails t unless err is what a read after a reset may give:
// ECONNRESET, or end of file.
func checkReset(t *testing.T, op string, err error) {
	t.Helper()
	if !errors.Is(err, unix.ECONNRESET) && err != io.EOF {
		t.Fatalf("%s: err = %v, want ECONNRESET or io.EOF", op, err)
	}
}

func TestNetConnPeerReset(t *testing.T) {
	netTest(t, func(t *testing.T, e *netEnv) {
		buf := make([]byte, 64)
		t.Run("parked", func(t *testing.T) {
			c, s := e.pair(t, "tcp")
			res := goRead(c, buf)
			waitArmed(t, c, reactor.Readable)
			resetOnClose(t, s)
			s.Close()
			r := within(t, 5*time.Second, "parked Read", func() ioResult { return <-res })
			checkReset(t, "parked Read", r.err)
			r = within(t, 5*time.Second, "Read", func() ioResult { return <-goRead(c, buf) })
			checkReset(t, "Read after reset", r.err)
		})
		t.Run("unread", func(t *testing.T) {
			// Unread data and a reset: the reset wins (ECONNRESET), or
			// the data then end of file; never a hang.
			c, s := e.pair(t, "tcp")
			c.Write([]byte("unread by the peer"))
			s.Write([]byte("data"))
			resetOnClose(t, s)
			// Wait until s has the bytes, so its close is a reset.
			sb := make([]byte, 18)
			if _, err := io.ReadFull(s, sb[:1]); err != nil {
				t.Fatal(err)
			}
			s.Close()
			var err error
			for i := 0; err == nil; i++ {
				if i > 10 {
					t.Fatal("Read keeps succeeding after a reset")
				}
				err = within(t, 5*time.Second, "Read", func() ioResult { return <-goRead(c, buf) }).err
			}
			checkReset(t, "Read", err)
			// Writing fails too, at once or after a few tries.
			for i := 0; ; i++ {
				_, err := within(t, 5*time.Second, "Write", func() ioResult {
					n, err := c.Write([]byte("x"))
					return ioResult{n: n, err: err}
				}).unpack()
				if err != nil {
					if !errors.Is(err, unix.EPIPE) && !errors.Is(err, unix.ECONNRESET) {
						t.Fatalf("Write after reset: %v, want EPIPE or ECONNRESET", err)
					}
					break
				}
				if i > 10 {
					t.Fatal("Write keeps succeeding after a reset")
				}
			}
		})
		t.Run("nospin", func(t *testing.T) {
			// A reset connection nobody reads must not make its loop spin
			// on a hang-up it cannot clear (epoll and poll report one
			// whatever the interest). c is alone on a loop whose poller
			// counts the events it returns; the rate is measured over a
			// fixed period, so this waits that period.
			ce := e.counting(t, 1)
			c, s := pairOn(t, "tcp", e, ce)
			resetOnClose(t, s)
			s.Close()
			before := ce.count.snapshot()
			time.Sleep(200 * time.Millisecond) // the measuring period, not a synchronisation
			d := ce.count.snapshot().since(before)
			if d.Events > 5 || d.Waits > 5 {
				t.Fatalf("the loop served %d events in %d waits in 200ms for a reset connection nobody reads", d.Events, d.Waits)
			}
			r := within(t, 5*time.Second, "Read", func() ioResult { return <-goRead(c, buf) })
			checkReset(t, "Read", r.err)
		})
	})
}

func TestDialContext(t *testing.T) {
	netTest(t, func(t *testing.T, e *netEnv) {
		ln := e.listen(t, "tcp")
		addr := ln.Addr().String()
		t.Run("cancelled", func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			c, err := e.cfg.DialContext(ctx, "tcp", addr)
			if err == nil {
				c.Close()
				t.Fatal("DialContext with a cancelled context succeeded")
			}
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
		})
		t.Run("expired", func(t *testing.T) {
			ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
			defer cancel()
			c, err := e.cfg.DialContext(ctx, "tcp", addr)
			if err == nil {
				c.Close()
				t.Fatal("DialContext past its deadline succeeded")
			}
			var ne net.Error
			if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("err = %v, want context.DeadlineExceeded and a timeout", err)
			}
		})
		t.Run("live", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, err := e.cfg.DialContext(ctx, "tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
		})
		t.Run("inflight", func(t *testing.T) {
			// A listener whose backlog is full leaves a connect in flight;
			// the context ends it.
			full := fullBacklog(t)
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			c, err := within(t, 5*time.Second, "DialContext", func() dialResult {
				c, err := e.cfg.DialContext(ctx, "tcp", full)
				return dialResult{c, err}
			}).unpack()
			if err == nil {
				c.Close()
				t.Skip("the kernel completed a connect to a full backlog")
			}
			var ne net.Error
			if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("err = %v, want context.DeadlineExceeded and a timeout", err)
			}
			if el := time.Since(start); el < 90*time.Millisecond {
				t.Fatalf("DialContext gave up after %v, before its 100ms deadline", el)
			}
			ctx, cancel = context.WithCancel(context.Background())
			time.AfterFunc(50*time.Millisecond, cancel)
			_, err = within(t, 5*time.Second, "DialContext", func() dialResult {
				c, err := e.cfg.DialContext(ctx, "tcp", full)
				return dialResult{c, err}
			}).unpack()
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
		})
		t.Run("refused", func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			closed := l.Addr().String()
			l.Close()
			c, err := e.cfg.Dial("tcp", closed)
			if err == nil {
				c.Close()
				t.Fatal("Dial to a closed port succeeded")
			}
			if !errors.Is(err, unix.ECONNREFUSED) {
				t.Fatalf("err = %v, want ECONNREFUSED", err)
			}
			var oe *net.OpError
			if !errors.As(err, &oe) || oe.Op != "dial" || !strings.Contains(err.Error(), closed) {
				t.Fatalf("err = %v, want a *net.OpError for dial naming %s", err, closed)
			}
			if _, err := e.cfg.Dial("unix", filepath.Join(t.TempDir(), "none")); err == nil {
				t.Fatal("Dial to a missing unix socket succeeded")
			}
			if _, err := e.cfg.Dial("sctp", closed); err == nil {
				t.Fatal("Dial sctp succeeded")
			}
		})
	})
}

type dialResult struct {
	c   net.Conn
	err error
}

func (r dialResult) unpack() (net.Conn, error) { return r.c, r.err }

// fullBacklog returns the address of a listener that never accepts and
// whose backlog is full, so a further connect stays in flight. It skips t
// where the kernel accepts such connects anyway.
func fullBacklog(t *testing.T) string {
	t.Helper()
	fd, err := sock.Socket(unix.AF_INET)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*unix.SockaddrInet4).Port)
	for range 16 {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err != nil {
			return addr
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Skip("the kernel keeps accepting connects to a full backlog")
	return ""
}

func TestNetHTTP(t *testing.T) {
	netTest(t, func(t *testing.T, e *netEnv) {
		ln := e.listen(t, "tcp")
		big := randomBytes(4 << 20)
		mux := http.NewServeMux()
		mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "hello %s", r.URL.Query().Get("n"))
		})
		mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) { w.Write(big) })
		mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) { io.Copy(w, r.Body) })
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ln) }()

		stock := &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}
		ours := &http.Client{Transport: &http.Transport{DialContext: e.cfg.DialContext}, Timeout: 30 * time.Second}
		base := "http://" + ln.Addr().String()
		for name, client := range map[string]*http.Client{"stock": stock, "netconn": ours} {
			var wg sync.WaitGroup
			for i := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for j := range 4 {
						path, want := fmt.Sprintf("/hello?n=%d", i*10+j), []byte(fmt.Sprintf("hello %d", i*10+j))
						var body io.Reader
						method := "GET"
						switch (i + j) % 3 {
						case 1:
							path, want = "/big", big
						case 2:
							method, path, want = "POST", "/echo", big[:1<<20]
							body = bytes.NewReader(want)
						}
						req, err := http.NewRequest(method, base+path, body)
						if err != nil {
							t.Error(err)
							return
						}
						resp, err := client.Do(req)
						if err != nil {
							t.Errorf("%s client: %s %s: %v", name, method, path, err)
							return
						}
						got, err := io.ReadAll(resp.Body)
						resp.Body.Close()
						if err != nil {
							t.Errorf("%s client: %s %s: reading the body: %v", name, method, path, err)
							return
						}
						if resp.StatusCode != 200 || !bytes.Equal(got, want) {
							t.Errorf("%s client: %s %s: status %d, %d-byte body, want 200 and %d bytes", name, method, path, resp.StatusCode, len(got), len(want))
						}
					}
				}()
			}
			wg.Wait()
			client.CloseIdleConnections()
		}

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Fatalf("Serve returned %v, want http.ErrServerClosed", err)
		}
	})
}

// selfSigned returns a TLS certificate for 127.0.0.1 and a pool trusting it.
func selfSigned(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "netconn test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, pool
}

func TestNetTLS(t *testing.T) {
	netTest(t, func(t *testing.T, e *netEnv) {
		cert, pool := selfSigned(t)
		ln := tls.NewListener(e.listen(t, "tcp"), &tls.Config{Certificates: []tls.Certificate{cert}})
		netServe(t, ln, func(c net.Conn) {
			io.Copy(c, c)
		})
		raw := e.dial(t, "tcp", ln.Addr().String())
		c := tls.Client(raw, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.HandshakeContext(ctx); err != nil {
			t.Fatalf("handshake: %v", err)
		}
		if st := c.ConnectionState(); !st.HandshakeComplete || len(st.PeerCertificates) == 0 {
			t.Fatalf("handshake state: %+v", st)
		}
		for _, size := range []int{1, 100, 1 << 20} {
			want := randomBytes(size)
			go c.Write(want)
			got := make([]byte, size)
			if _, err := within(t, 10*time.Second, "ReadFull", func() ioResult {
				n, err := io.ReadFull(c, got)
				return ioResult{n: n, err: err}
			}).unpack(); err != nil {
				t.Fatalf("echo of %d bytes: %v", size, err)
			}
			if !bytes.Equal(got, want) { // cmp.Diff walks 1 MiB slowly; only for the report
				t.Fatalf("echo of %d bytes differs (-want +got):\n%.500s", size, cmp.Diff(want, got))
			}
		}
		// A read deadline works through TLS as well.
		c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		_, err := c.Read(make([]byte, 1))
		checkTimeout(t, "TLS Read", err)
	})
}

// TestNetConnAllocs measures the steady state: a Read that finds data
// waiting and a Write the kernel takes at once allocate nothing.
func TestNetConnAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	netTest(t, func(t *testing.T, e *netEnv) {
		for _, network := range streamNetworks {
			t.Run(network, func(t *testing.T) {
				ce := e.counting(t, 1)
				c, s := ce.pair(t, network)
				b := []byte{'x'}
				write := func() {
					if n, err := c.Write(b); n != 1 || err != nil {
						t.Fatalf("Write = %d, %v", n, err)
					}
				}
				read := func() {
					if n, err := s.Read(b); n != 1 || err != nil {
						t.Fatalf("Read = %d, %v", n, err)
					}
				}
				// AllocsPerRun calls f runs+1 times. A unix socket holds
				// only a few hundred one-byte writes, so at most 101 wait
				// unread at a time.
				w := testing.AllocsPerRun(100, write)
				r := testing.AllocsPerRun(100, read)
				wr := testing.AllocsPerRun(1000, func() { write(); read() })
				d := testing.AllocsPerRun(1000, func() { s.SetReadDeadline(time.Now().Add(time.Hour)) })
				s.SetReadDeadline(time.Time{})
				// A Read that parks until another goroutine writes: the
				// poller event and the wake-up (and, level-triggered, the
				// arm), end to end. The reader goroutine reads again at
				// once after each byte, so it is usually parked by the time
				// the next byte comes; the loop's event count tells how
				// often it was.
				got := make(chan struct{})
				go func() {
					rb := []byte{0}
					for {
						if _, err := s.Read(rb); err != nil {
							close(got)
							return
						}
						got <- struct{}{}
					}
				}()
				before := ce.count.snapshot()
				const parkRuns = 200
				pr := testing.AllocsPerRun(parkRuns, func() {
					write()
					<-got
				})
				ev := ce.count.snapshot().since(before).Events
				s.SetReadDeadline(time.Now()) // ends the reader
				<-got
				s.SetReadDeadline(time.Time{})
				t.Logf("allocs per call: Write %v, Read %v, Write+Read %v, SetReadDeadline %v; Read parked until a Write %v (%d events for %d runs)", w, r, wr, d, pr, ev, parkRuns+1)
				// The parked Read is only logged: it is 0 in a normal build,
				// but under -race the poller's Wake allocates (x/sys's race
				// annotations make its stack buffer escape).
				if w != 0 || r != 0 || wr != 0 || d != 0 {
					t.Errorf("allocs per call: Write %v, Read %v, Write+Read %v, SetReadDeadline %v; want 0", w, r, wr, d)
				}
			})
		}
	})
}

// sharedState returns the shared group and its reference count.
func sharedState() (*reactor.Group, int) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	return shared.g, shared.refs
}

// checkShared fails t unless the shared group is g with refs references.
func checkShared(t *testing.T, what string, g *reactor.Group, refs int) {
	t.Helper()
	gotG, gotRefs := sharedState()
	if gotG != g || gotRefs != refs {
		t.Fatalf("%s: shared group %p with %d references, want %p with %d", what, gotG, gotRefs, g, refs)
	}
}

// TestNetGroupLifecycle checks that the shared group behind Listen and Dial
// starts with the first listener or connection (on the backend the
// environment names, with sharedLoops() loops), is held by every one of them,
// accepted connections included, and ends with the last; and that a failed
// Listen or Dial leaves no reference behind.
func TestNetGroupLifecycle(t *testing.T) {
	netCheckLeaks(t)
	waitSharedStopped(t)
	for _, b := range poller.Available() {
		t.Run(b.String(), func(t *testing.T) {
			t.Setenv(reactor.BackendEnv, b.String())
			ln, err := Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			g, _ := sharedState()
			if g == nil {
				t.Fatal("no shared group while a listener is open")
			}
			checkShared(t, "after Listen", g, 1)
			if g.Len() != sharedLoops() {
				t.Fatalf("%d loops, want sharedLoops() = %d", g.Len(), sharedLoops())
			}
			for i := range g.Len() {
				if got := g.Loop(i).Backend(); got != b {
					t.Fatalf("loop %d on %v, want %v", i, got, b)
				}
			}
			c, err := Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			s, err := within(t, 5*time.Second, "Accept", func() dialResult {
				c, err := ln.Accept()
				return dialResult{c, err}
			}).unpack()
			if err != nil {
				t.Fatal(err)
			}
			checkShared(t, "after Dial and Accept", g, 3)
			ln.Close()
			checkShared(t, "after closing the listener", g, 2)
			c.Close()
			checkShared(t, "after closing the dialled connection", g, 1)
			select {
			case <-g.Loop(0).Done():
				t.Fatal("the shared group ended while a connection is open")
			default:
			}
			s.Close()
			waitSharedStopped(t)
			checkShared(t, "after closing the last connection", nil, 0)
			for i := range g.Len() {
				select {
				case <-g.Loop(i).Done():
				default:
					t.Fatalf("loop %d of the old shared group still runs", i)
				}
			}
			// Failures release what they took.
			if _, err := Listen("tcp", "127.0.0.1:-1"); err == nil {
				t.Fatal("Listen on port -1 succeeded")
			}
			refused, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			refused.Close()
			if c, err := Dial("tcp", refused.Addr().String()); err == nil {
				c.Close()
				t.Fatal("Dial to a closed port succeeded")
			}
			waitSharedStopped(t)
			checkShared(t, "after a failed Listen and Dial", nil, 0)
		})
	}
	t.Setenv(reactor.BackendEnv, "nonsense")
	if _, err := Listen("tcp", "127.0.0.1:0"); err == nil || !strings.Contains(err.Error(), reactor.BackendEnv) {
		t.Fatalf("Listen with %s=nonsense: %v, want an error naming %s", reactor.BackendEnv, err, reactor.BackendEnv)
	}
	if _, err := Dial("tcp", "127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), reactor.BackendEnv) {
		t.Fatalf("Dial with %s=nonsense: %v, want an error naming %s", reactor.BackendEnv, err, reactor.BackendEnv)
	}
	waitSharedStopped(t)
	checkShared(t, "after failing to start", nil, 0)
}

// TestListenSelectFDSetSize checks a connection the select backend cannot
// watch (fd >= FD_SETSIZE): Dial fails, Accept returns a temporary error
// (so net/http keeps serving) and the listener goes on accepting.
func TestListenSelectFDSetSize(t *testing.T) {
	if !slices.Contains(poller.Available(), poller.Select) {
		t.Skip("no select backend")
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < 1200 {
		t.Skipf("RLIMIT_NOFILE %d is too low to reach FD_SETSIZE", lim.Cur)
	}
	netCheckLeaks(t)
	g := startGroup(t, poller.Select, reactor.GroupConfig{Loops: 1, Backend: poller.Select})
	e := &netEnv{b: poller.Select, g: g, cfg: Config{Group: g}}
	ln := e.listen(t, "tcp")
	// Take every fd below 1024 (FD_SETSIZE on every OS this test runs on),
	// so the next socket gets a larger one.
	var fill []int
	release := func() {
		for _, fd := range fill {
			unix.Close(fd)
		}
		fill = nil
	}
	t.Cleanup(release)
	null, err := unix.Open(os.DevNull, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	fill = append(fill, null)
	for {
		fd, err := unix.Dup(null)
		if err != nil {
			t.Fatal(err)
		}
		fill = append(fill, fd)
		if fd >= 1023 {
			break
		}
	}
	if c, err := e.cfg.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Fatal("Dial succeeded with an fd select cannot watch")
	} else if !errors.Is(err, poller.ErrFDTooLarge) {
		t.Fatalf("Dial: %v, want poller.ErrFDTooLarge", err)
	}
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	_, err = within(t, 5*time.Second, "Accept", func() dialResult {
		c, err := ln.Accept()
		return dialResult{c, err}
	}).unpack()
	var te interface{ Temporary() bool }
	if !errors.Is(err, poller.ErrFDTooLarge) || !errors.As(err, &te) || !te.Temporary() {
		t.Fatalf("Accept: %v, want a temporary error matching poller.ErrFDTooLarge", err)
	}
	// The client sees its connection closed.
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := client.Read(make([]byte, 1)); err == nil {
		t.Fatal("the refused connection is still open")
	}
	release()
	c := e.dial(t, "tcp", ln.Addr().String())
	s := within(t, 5*time.Second, "Accept", func() dialResult {
		c, err := ln.Accept()
		return dialResult{c, err}
	})
	if s.err != nil {
		t.Fatalf("Accept after freeing fds: %v", s.err)
	}
	defer s.c.Close()
	go s.c.Write([]byte("ok"))
	buf := make([]byte, 2)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ok" {
		t.Fatalf("Read = %q, %v", buf, err)
	}
}

// TestNetConnLoopFailure checks that goroutines parked on a loop whose
// poller fails are woken with an error instead of hanging, that later
// calls fail the same way, and that the connections can still be closed:
// on every backend, with a real poller whose Wait is made to fail, and
// with the fake poller of package pollertest.
func TestNetConnLoopFailure(t *testing.T) {
	netTest(t, func(t *testing.T, e *netEnv) {
		ce := e.counting(t, 1)
		c, _ := pairOn(t, "tcp", e, ce)
		res := goRead(c, make([]byte, 1))
		waitArmed(t, c, reactor.Readable)
		ce.count.failWait.Store(&errInjected)
		if err := ce.g.Loop(0).Post(func() {}); err != nil { // wakes the Wait, which fails
			t.Fatal(err)
		}
		r := within(t, 5*time.Second, "parked Read", func() ioResult { return <-res })
		checkLoopClosed(t, "parked Read on a failed loop", r.err)
		r = within(t, 5*time.Second, "Read", func() ioResult { return <-goRead(c, make([]byte, 1)) })
		checkLoopClosed(t, "Read on a failed loop", r.err)
		if err := within(t, 5*time.Second, "Group.Close", ce.g.Close); !errors.Is(err, errInjected) {
			t.Fatalf("Group.Close after the failure: %v, want the injected failure", err)
		}
		if err := c.Close(); err != nil {
			t.Fatalf("Close on a failed loop: %v", err)
		}
	})
	t.Run("pollertest", func(t *testing.T) {
		netCheckLeaks(t)
		fakes := make(chan *pollertest.Poller, 1)
		g := startGroup(t, 0, reactor.GroupConfig{Loops: 1, NewPoller: func() (poller.Poller, error) {
			p := pollertest.New()
			fakes <- p
			return p, nil
		}})
		fake := <-fakes
		// A unix socket connects at once, and Accept then finds the
		// connection waiting, so the pair needs no readiness from the
		// fake.
		e := &netEnv{g: g, cfg: Config{Group: g}}
		ln := e.listen(t, "unix")
		c := e.dial(t, "unix", ln.Addr().String())
		sc, err := within(t, 5*time.Second, "Accept", func() dialResult {
			c, err := ln.Accept()
			return dialResult{c, err}
		}).unpack()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sc.Close() })
		s := sc.(*Conn)
		res := goRead(c, make([]byte, 1))
		waitArmed(t, c, reactor.Readable)
		fake.FailNextWait(errInjected)
		r := within(t, 5*time.Second, "parked Read", func() ioResult { return <-res })
		checkLoopClosed(t, "parked Read on a failed loop", r.err)
		_, err = within(t, 5*time.Second, "Write", func() ioResult {
			n, err := s.Write(make([]byte, 32<<20))
			return ioResult{n: n, err: err}
		}).unpack()
		checkLoopClosed(t, "Write filling the buffer on a failed loop", err)
		if err := within(t, 5*time.Second, "Group.Close", g.Close); !errors.Is(err, errInjected) {
			t.Fatalf("Group.Close after the failure: %v, want the injected failure", err)
		}
		for _, x := range []*Conn{c, s} {
			if err := x.Close(); err != nil {
				t.Fatalf("Close on a failed loop: %v", err)
			}
		}
	})
}

// TestNetConnGroupClose checks that closing a Config's group ends what is
// parked on its loops with an error matching reactor.ErrLoopClosed (a
// Read, a Write and an Accept), that later calls fail the same way instead
// of hanging, and that Close then returns nil and closes the fd.
func TestNetConnGroupClose(t *testing.T) {
	netTest(t, func(t *testing.T, e *netEnv) {
		ge := &netEnv{b: e.b}
		ge.g = startGroup(t, e.b, reactor.GroupConfig{Loops: 1, Backend: e.b})
		ge.cfg = Config{Group: ge.g}
		c, _ := pairOn(t, "tcp", e, ge) // the peer never reads nor writes
		ln := ge.listen(t, "tcp")

		rres := goRead(c, make([]byte, 1))
		wres := make(chan ioResult, 1)
		go func() { n, err := c.Write(make([]byte, 32<<20)); wres <- ioResult{n: n, err: err} }()
		ares := make(chan error, 1)
		go func() { _, err := ln.Accept(); ares <- err }()
		waitArmed(t, c, reactor.Readable)
		waitArmed(t, c, reactor.Writable)
		waitArmed(t, ln, reactor.Readable)

		if err := within(t, 10*time.Second, "Group.Close", ge.g.Close); err != nil {
			t.Fatalf("Group.Close: %v", err)
		}
		checkLoopClosed(t, "parked Read", within(t, 5*time.Second, "parked Read", func() ioResult { return <-rres }).err)
		checkLoopClosed(t, "parked Write", within(t, 5*time.Second, "parked Write", func() ioResult { return <-wres }).err)
		checkLoopClosed(t, "parked Accept", within(t, 5*time.Second, "parked Accept", func() error { return <-ares }))
		// Calls after the loop ended fail the same way, and do not park
		// for ever.
		checkLoopClosed(t, "Read", within(t, 5*time.Second, "Read", func() ioResult { return <-goRead(c, make([]byte, 1)) }).err)
		_, err := within(t, 5*time.Second, "Write", func() ioResult {
			n, err := c.Write(make([]byte, 1<<20))
			return ioResult{n: n, err: err}
		}).unpack()
		checkLoopClosed(t, "Write", err)
		checkLoopClosed(t, "Accept", within(t, 5*time.Second, "Accept", func() error { _, err := ln.Accept(); return err }))

		for _, x := range []io.Closer{c, ln} {
			f := fdOf(t, x)
			if err := x.Close(); err != nil {
				t.Fatalf("%T.Close after Group.Close: %v", x, err)
			}
			if _, err := unix.FcntlInt(uintptr(f.sysfd), unix.F_GETFD, 0); err != unix.EBADF {
				t.Fatalf("%T.Close after Group.Close left fd %d open (fcntl: %v)", x, f.sysfd, err)
			}
		}
	})
}

// readAllResult is what io.ReadAll returned.
type readAllResult struct {
	b   []byte
	err error
}

func readAll(r io.Reader) readAllResult {
	b, err := io.ReadAll(r)
	return readAllResult{b, err}
}

// TestNetConnCloseWrite checks the half-closes: after CloseWrite the peer
// reads end of file and can still write back, also through a *tls.Conn
// (whose CloseWrite sends close_notify and sets the inner conn's write
// deadline); after CloseRead a Read returns end of file while writing
// still works.
func TestNetConnCloseWrite(t *testing.T) {
	netTest(t, func(t *testing.T, e *netEnv) {
		buf := make([]byte, 64)
		for _, network := range streamNetworks {
			t.Run(network, func(t *testing.T) {
				c, s := e.pair(t, network)
				c.Write([]byte("last"))
				if err := c.CloseWrite(); err != nil {
					t.Fatalf("CloseWrite: %v", err)
				}
				got := within(t, 5*time.Second, "ReadAll", func() readAllResult { return readAll(s) })
				if got.err != nil || string(got.b) != "last" {
					t.Fatalf("peer read %q, %v until end of file; want \"last\", nil", got.b, got.err)
				}
				if _, err := c.Write([]byte("x")); !errors.Is(err, unix.EPIPE) {
					t.Fatalf("Write after CloseWrite: %v, want EPIPE", err)
				}
				if _, err := s.Write([]byte("back")); err != nil {
					t.Fatalf("peer Write after CloseWrite: %v", err)
				}
				if n, err := io.ReadFull(c, buf[:4]); err != nil || string(buf[:n]) != "back" {
					t.Fatalf("Read after CloseWrite = %q, %v; want \"back\", nil", buf[:n], err)
				}
			})
		}
		t.Run("CloseRead", func(t *testing.T) {
			for _, network := range streamNetworks {
				c, s := e.pair(t, network)
				if err := c.CloseRead(); err != nil {
					t.Fatalf("%s CloseRead: %v", network, err)
				}
				r := within(t, 5*time.Second, "Read", func() ioResult { return <-goRead(c, buf) })
				if r.n != 0 || r.err != io.EOF {
					t.Fatalf("%s Read after CloseRead = %d, %v; want 0, io.EOF", network, r.n, r.err)
				}
				c.Write([]byte("out"))
				if n, err := io.ReadFull(s, buf[:3]); err != nil || string(buf[:n]) != "out" {
					t.Fatalf("%s peer Read after CloseRead = %q, %v", network, buf[:n], err)
				}
			}
		})
		t.Run("TLS", func(t *testing.T) {
			cert, pool := selfSigned(t)
			c, s := e.pair(t, "tcp")
			tc := tls.Client(c, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
			ts := tls.Server(s, &tls.Config{Certificates: []tls.Certificate{cert}})
			hs := make(chan error, 1)
			go func() { hs <- ts.Handshake() }()
			if err := within(t, 10*time.Second, "client handshake", tc.Handshake); err != nil {
				t.Fatalf("client handshake: %v", err)
			}
			if err := within(t, 10*time.Second, "server handshake", func() error { return <-hs }); err != nil {
				t.Fatalf("server handshake: %v", err)
			}
			if _, err := tc.Write([]byte("request")); err != nil {
				t.Fatal(err)
			}
			if err := tc.CloseWrite(); err != nil {
				t.Fatalf("tls CloseWrite: %v", err)
			}
			got := within(t, 5*time.Second, "server ReadAll", func() readAllResult { return readAll(ts) })
			if got.err != nil || string(got.b) != "request" {
				t.Fatalf("server read %q, %v until end of file; want \"request\", nil", got.b, got.err)
			}
			if _, err := tc.Write([]byte("more")); err == nil {
				t.Fatal("tls Write after CloseWrite succeeded")
			}
			if _, err := ts.Write([]byte("response")); err != nil {
				t.Fatalf("server Write after the client's CloseWrite: %v", err)
			}
			n, err := within(t, 5*time.Second, "client ReadFull", func() ioResult {
				n, err := io.ReadFull(tc, buf[:8])
				return ioResult{n: n, err: err}
			}).unpack()
			if err != nil || string(buf[:n]) != "response" {
				t.Fatalf("client read %q, %v after its CloseWrite; want \"response\", nil", buf[:n], err)
			}
		})
	})
}

// TestNetConnSyscallConn checks the raw connection: Control runs on the
// connection's fd, and Read and Write call their function again only when
// the loop reports the fd ready, so a function that finds nothing to do
// is called a few times, not in a spin, however long it waits.
func TestNetConnSyscallConn(t *testing.T) {
	netTest(t, func(t *testing.T, e *netEnv) {
		t.Run("Control", func(t *testing.T) {
			c, _ := e.pair(t, "tcp")
			rc, err := c.SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			got, typ := -1, 0
			var soErr error
			if err := rc.Control(func(fd uintptr) {
				got = int(fd)
				typ, soErr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TYPE)
			}); err != nil {
				t.Fatalf("Control: %v", err)
			}
			if got != c.fd.sysfd || soErr != nil || typ != unix.SOCK_STREAM {
				t.Fatalf("Control saw fd %d (SO_TYPE %d, %v), want fd %d, a stream socket", got, typ, soErr, c.fd.sysfd)
			}
			c.Close()
			checkClosed(t, "Control after Close", rc.Control(func(uintptr) { t.Error("Control ran its function after Close") }))
		})
		t.Run("Read", func(t *testing.T) {
			c, s := e.pair(t, "tcp")
			rc, _ := c.SyscallConn()
			var calls atomic.Int32
			buf := make([]byte, 16)
			var n int
			var rerr error
			done := make(chan error, 1)
			go func() {
				done <- rc.Read(func(fd uintptr) bool {
					calls.Add(1)
					n, rerr = unix.Read(int(fd), buf)
					return rerr != unix.EAGAIN
				})
			}()
			waitArmed(t, c, reactor.Readable)
			parked := calls.Load()
			s.Write([]byte("hello"))
			if err := within(t, 5*time.Second, "raw Read", func() error { return <-done }); err != nil {
				t.Fatalf("raw Read: %v", err)
			}
			if rerr != nil || string(buf[:max(n, 0)]) != "hello" {
				t.Fatalf("raw Read's function read %q, %v; want \"hello\"", buf[:max(n, 0)], rerr)
			}
			total := calls.Load()
			t.Logf("raw Read called its function %d times, %d before the data came", total, parked)
			if total > 5 {
				t.Fatalf("raw Read called its function %d times (%d before the data came), want a few", total, parked)
			}
			// A deadline ends a parked raw Read.
			res := make(chan error, 1)
			go func() { res <- rc.Read(func(uintptr) bool { return false }) }()
			waitArmed(t, c, reactor.Readable)
			c.SetReadDeadline(time.Now().Add(-time.Second))
			checkTimeout(t, "parked raw Read", within(t, 5*time.Second, "parked raw Read", func() error { return <-res }))
		})
		t.Run("Write", func(t *testing.T) {
			c, s := e.pair(t, "tcp")
			rc, _ := c.SyscallConn()
			// Fill the send path until the kernel takes no more.
			filled := 0
			chunk := make([]byte, 64<<10)
			if err := rc.Control(func(fd uintptr) {
				for {
					n, err := unix.Write(int(fd), chunk)
					if err != nil {
						return
					}
					filled += n
				}
			}); err != nil {
				t.Fatal(err)
			}
			var calls atomic.Int32
			var werr error
			done := make(chan error, 1)
			go func() {
				done <- rc.Write(func(fd uintptr) bool {
					calls.Add(1)
					_, werr = unix.Write(int(fd), []byte("z"))
					return werr != unix.EAGAIN
				})
			}()
			waitArmed(t, c, reactor.Writable)
			parked := calls.Load()
			got := make([]byte, filled+1)
			if _, err := within(t, 30*time.Second, "peer ReadFull", func() ioResult {
				n, err := io.ReadFull(s, got)
				return ioResult{n: n, err: err}
			}).unpack(); err != nil {
				t.Fatalf("peer read: %v", err)
			}
			if err := within(t, 5*time.Second, "raw Write", func() error { return <-done }); err != nil || werr != nil {
				t.Fatalf("raw Write: %v, its function's write: %v", err, werr)
			}
			if got[filled] != 'z' {
				t.Fatalf("the peer read %q last, want the raw Write's 'z'", got[filled])
			}
			total := calls.Load()
			t.Logf("raw Write called its function %d times, %d before the peer read (%d bytes queued)", total, parked, filled)
			if total > 5 {
				t.Fatalf("raw Write called its function %d times (%d before the peer read), want a few", total, parked)
			}
		})
	})
}

// TestNetConnParkingCost checks what parking costs the loop. On an
// edge-triggered backend (epoll, kqueue) the fd is registered once for
// both directions, so a goroutine parks with no Post: 1000 one-byte round
// trips over one connection make no Add, Modify or Remove and wake the
// loop no more than a handful of times. Level-triggered (poll, select)
// every park arms the interest through a Post, and the event drops it:
// the same round trips add and remove the fd and wake the loop many
// times.
func TestNetConnParkingCost(t *testing.T) {
	netTest(t, func(t *testing.T, e *netEnv) {
		ce := e.counting(t, 1)
		c, s := ce.pair(t, "tcp")
		edge := e.b == poller.Epoll || e.b == poller.Kqueue
		if c.fd.edge != edge || s.fd.edge != edge {
			t.Fatalf("edge-triggered registration: dialled %v, accepted %v; want %v on %v", c.fd.edge, s.fd.edge, edge, e.b)
		}
		served := make(chan struct{})
		go func() {
			defer close(served)
			b := []byte{0}
			for {
				if _, err := io.ReadFull(s, b); err != nil {
					return
				}
				if _, err := s.Write(b); err != nil {
					return
				}
			}
		}()
		const rounds = 1000
		b := []byte{0}
		before := ce.count.snapshot()
		for i := range rounds {
			b[0] = byte(i)
			if _, err := c.Write(b); err != nil {
				t.Fatalf("round %d: Write: %v", i, err)
			}
			if _, err := io.ReadFull(c, b); err != nil || b[0] != byte(i) {
				t.Fatalf("round %d: Read = %d, %v", i, b[0], err)
			}
		}
		d := ce.count.snapshot().since(before)
		c.Close()
		within(t, 5*time.Second, "the echoing goroutine", func() bool { <-served; return true })
		t.Logf("%d round trips on %v: %+v", rounds, e.b, d)
		if edge {
			if d.Adds != 0 || d.Modifies != 0 || d.Removes != 0 || d.Wakes > 10 {
				t.Fatalf("%d round trips on %v: %d Add, %d Modify, %d Remove, %d Wake; want 0, 0, 0 and at most 10",
					rounds, e.b, d.Adds, d.Modifies, d.Removes, d.Wakes)
			}
			return
		}
		if d.Adds+d.Modifies+d.Removes < rounds/10 || d.Wakes < rounds/10 {
			t.Fatalf("%d round trips on %v: %d Add, %d Modify, %d Remove, %d Wake; want at least %d changes of interest and %d wakes",
				rounds, e.b, d.Adds, d.Modifies, d.Removes, d.Wakes, rounds/10, rounds/10)
		}
	})
}
