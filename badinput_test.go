package reactor_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor"
	"github.com/muxkit/reactor/conn"
	"github.com/muxkit/reactor/fdtable"
	"github.com/muxkit/reactor/internal/badinput"
	"github.com/muxkit/reactor/internal/leakcheck"
	"github.com/muxkit/reactor/internal/servertest"
	"github.com/muxkit/reactor/internal/sock"
	"github.com/muxkit/reactor/poller"
	"github.com/muxkit/reactor/servers"
	"github.com/muxkit/reactor/servers/iterative"
	"github.com/muxkit/reactor/servers/multiplex"
	"github.com/muxkit/reactor/servers/multiprocess"
	"github.com/muxkit/reactor/servers/threadpool"
)

// badInput is one row of TestBadInput: a misuse of an exported function
// and what it must answer, as badinput.Row says (want nil: any error; ok:
// the documented answer is success).
type badInput struct {
	name  string
	setup func(t *testing.T) func() error
	want  error
	ok    bool
}

// call makes a row's setup of a call that needs none.
func call(fn func() error) func(*testing.T) func() error {
	return func(*testing.T) func() error { return fn }
}

// TestBadInput feeds every exported function of every package the inputs
// a caller gets wrong: negative, closed and huge fds, zero and huge sizes,
// nil handlers and listeners, calls after Close or Shutdown, a server
// started twice. Each must give a clear error (the documented sentinel
// where there is one), never a panic or a hang; where the documented
// answer is success (a zero-length write), that is asserted instead.
func TestBadInput(t *testing.T) {
	leakcheck.Check(t)
	t.Setenv(reactor.BackendEnv, "")
	var rows []badInput
	rows = append(rows, pollerRows()...)
	rows = append(rows, fdtableRows()...)
	rows = append(rows, connRows()...)
	rows = append(rows, serverRows()...)
	rows = append(rows, reactorConnRows()...)
	rows = append(rows, serversRows()...)
	rows = append(rows, modelRows()...)
	var table []badinput.Row
	for _, r := range rows {
		table = append(table, badinput.Row{Name: r.name, Setup: r.setup, Want: r.want, OK: r.ok})
	}
	badinput.Run(t, table)
}

// biUnusedFD returns an fd number that is not open: what a closed fd
// looks like to the kernel. It is high, so that nothing the test opens
// meanwhile takes it (the kernel hands out the lowest free fd), and below
// FD_SETSIZE, so that select gets as far as asking the kernel.
func biUnusedFD(t *testing.T) int {
	t.Helper()
	for fd := 900; fd < 1000; fd++ {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == unix.EBADF {
			return fd
		}
	}
	t.Fatal("no unused fd between 900 and 1000")
	return -1
}

// biSocketpair returns a connected pair of unix stream sockets, closed when
// the test ends unless the test closed them already.
func biSocketpair(t *testing.T) (a, b int) {
	t.Helper()
	a, b, err := sock.Socketpair()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		unix.Close(a)
		unix.Close(b)
	})
	return a, b
}

// biPoller returns a poller of backend b, closed when the test ends.
func biPoller(t *testing.T, b poller.Backend) poller.Poller {
	t.Helper()
	p, err := poller.New(b)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// biClosedPoller returns a poller that has been closed, with one fd that
// was registered before Close.
func biClosedPoller(t *testing.T, b poller.Backend) (poller.Poller, int) {
	t.Helper()
	p := biPoller(t, b)
	a, _ := biSocketpair(t)
	if err := p.Add(a, 1, poller.Readable); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	return p, a
}

// biHighFD duplicates a socket to an fd at or above min, or skips.
func biHighFD(t *testing.T, min int) int {
	t.Helper()
	a, _ := biSocketpair(t)
	fd, err := unix.FcntlInt(uintptr(a), unix.F_DUPFD_CLOEXEC, min)
	if err != nil {
		t.Skipf("cannot dup to fd >= %d: %v", min, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// unavailable returns a backend this OS lacks (kqueue on linux, epoll on
// the BSDs).
func unavailable() poller.Backend {
	have := map[poller.Backend]bool{}
	for _, b := range poller.Available() {
		have[b] = true
	}
	for _, b := range []poller.Backend{poller.Epoll, poller.Kqueue} {
		if !have[b] {
			return b
		}
	}
	return poller.Backend(99)
}

func pollerRows() []badInput {
	rows := []badInput{
		{name: "poller.New(0)", want: errors.ErrUnsupported, setup: call(func() error {
			_, err := poller.New(0)
			return err
		})},
		{name: "poller.New(99)", want: errors.ErrUnsupported, setup: call(func() error {
			_, err := poller.New(99)
			return err
		})},
		{name: "poller.New(" + unavailable().String() + ", not on this OS)", want: errors.ErrUnsupported, setup: call(func() error {
			_, err := poller.New(unavailable())
			return err
		})},
		{name: "poller.ParseBackend(empty)", setup: call(func() error {
			_, err := poller.ParseBackend("")
			return err
		})},
		{name: "poller.ParseBackend(EPOLL, wrong case)", setup: call(func() error {
			_, err := poller.ParseBackend("EPOLL")
			return err
		})},
	}
	for _, b := range poller.Available() {
		pre := "poller/" + b.String() + "/"
		fresh := func(fn func(p poller.Poller) error) func(*testing.T) func() error {
			return func(t *testing.T) func() error {
				p := biPoller(t, b)
				return func() error { return fn(p) }
			}
		}
		withFD := func(fn func(p poller.Poller, fd int) error) func(*testing.T) func() error {
			return func(t *testing.T) func() error {
				p := biPoller(t, b)
				a, _ := biSocketpair(t)
				return func() error { return fn(p, a) }
			}
		}
		closed := func(fn func(p poller.Poller, fd int) error) func(*testing.T) func() error {
			return func(t *testing.T) func() error {
				p, fd := biClosedPoller(t, b)
				return func() error { return fn(p, fd) }
			}
		}
		edgeWant, edgeOK := error(errors.ErrUnsupported), false
		if b == poller.Epoll || b == poller.Kqueue {
			edgeWant, edgeOK = nil, true
		}
		edgeName := "Add EdgeTriggered → ErrUnsupported"
		if edgeOK {
			edgeName = "Add EdgeTriggered → nil (the kernel has it)"
		}
		// An fd past the 32-bit range: the kernel truncates it to an int
		// and so may see an open fd; the poller must refuse it itself.
		aliasWant := poller.ErrBadFD
		rows = append(rows,
			badInput{name: pre + "Add(-1)", want: poller.ErrBadFD, setup: fresh(func(p poller.Poller) error {
				return p.Add(-1, 1, poller.Readable)
			})},
			badInput{name: pre + "Add(math.MinInt)", want: poller.ErrBadFD, setup: fresh(func(p poller.Poller) error {
				return p.Add(math.MinInt, 1, poller.Readable)
			})},
			badInput{name: pre + "Modify(-1)", want: poller.ErrBadFD, setup: fresh(func(p poller.Poller) error {
				return p.Modify(-1, 1, poller.Readable)
			})},
			badInput{name: pre + "Remove(-1)", want: poller.ErrBadFD, setup: fresh(func(p poller.Poller) error {
				return p.Remove(-1)
			})},
			badInput{name: pre + "Add(closed fd)", want: unix.EBADF, setup: func(t *testing.T) func() error {
				p, fd := biPoller(t, b), biUnusedFD(t)
				return func() error { return p.Add(fd, 1, poller.Readable) }
			}},
			badInput{name: pre + "Add(1<<31, past int32)", setup: fresh(func(p poller.Poller) error {
				return p.Add(1<<31, 1, poller.Readable)
			})},
			badInput{name: pre + "Add(math.MaxInt)", setup: fresh(func(p poller.Poller) error {
				return p.Add(math.MaxInt, 1, poller.Readable)
			})},
			badInput{name: pre + "Add(1<<32+open fd)", want: aliasWant, setup: withFD(func(p poller.Poller, fd int) error {
				return p.Add(1<<32+fd, 1, poller.Readable)
			})},
			badInput{name: pre + "Modify(unregistered fd)", want: poller.ErrNotRegistered, setup: withFD(func(p poller.Poller, fd int) error {
				return p.Modify(fd, 1, poller.Writable)
			})},
			badInput{name: pre + "Remove(unregistered fd)", want: poller.ErrNotRegistered, setup: withFD(func(p poller.Poller, fd int) error {
				return p.Remove(fd)
			})},
			badInput{name: pre + "Remove twice", want: poller.ErrNotRegistered, setup: withFD(func(p poller.Poller, fd int) error {
				if err := p.Add(fd, 1, poller.Readable); err != nil {
					return fmt.Errorf("Add: %v", err)
				}
				if err := p.Remove(fd); err != nil {
					return fmt.Errorf("first Remove: %v", err)
				}
				return p.Remove(fd)
			})},
			badInput{name: pre + "Add twice", want: poller.ErrRegistered, setup: withFD(func(p poller.Poller, fd int) error {
				if err := p.Add(fd, 1, poller.Readable); err != nil {
					return fmt.Errorf("first Add: %v", err)
				}
				return p.Add(fd, 2, poller.Writable)
			})},
			badInput{name: pre + "Add with unknown interest bits", want: poller.ErrInterest, setup: withFD(func(p poller.Poller, fd int) error {
				return p.Add(fd, 1, poller.HangUp|poller.Readable)
			})},
			badInput{name: pre + "Modify with unknown interest bits", want: poller.ErrInterest, setup: withFD(func(p poller.Poller, fd int) error {
				if err := p.Add(fd, 1, poller.Readable); err != nil {
					return fmt.Errorf("Add: %v", err)
				}
				return p.Modify(fd, 1, 1<<6)
			})},
			badInput{name: pre + edgeName, want: edgeWant, ok: edgeOK, setup: withFD(func(p poller.Poller, fd int) error {
				return p.Add(fd, 1, poller.Readable|poller.EdgeTriggered)
			})},
			badInput{name: pre + "Wait(nil)", want: poller.ErrNoEvents, setup: fresh(func(p poller.Poller) error {
				_, err := p.Wait(nil, 0)
				return err
			})},
			badInput{name: pre + "Wait(empty slice)", want: poller.ErrNoEvents, setup: fresh(func(p poller.Poller) error {
				_, err := p.Wait([]poller.Event{}, -1)
				return err
			})},
			badInput{name: pre + "Wait(math.MaxInt64 timeout) after Wake → returns, nil", ok: true, setup: fresh(func(p poller.Poller) error {
				if err := p.Wake(); err != nil {
					return err
				}
				_, err := p.Wait(make([]poller.Event, 1), math.MaxInt64)
				return err
			})},
			badInput{name: pre + "Wait(-1, blocking) after Wake → returns, nil", ok: true, setup: fresh(func(p poller.Poller) error {
				if err := p.Wake(); err != nil {
					return err
				}
				_, err := p.Wait(make([]poller.Event, 1), -1)
				return err
			})},
			badInput{name: pre + "Wait(math.MinInt64 timeout) after Wake → returns, nil", ok: true, setup: fresh(func(p poller.Poller) error {
				if err := p.Wake(); err != nil {
					return err
				}
				_, err := p.Wait(make([]poller.Event, 1), math.MinInt64)
				return err
			})},
			badInput{name: pre + "Add after Close", want: poller.ErrClosed, setup: closed(func(p poller.Poller, fd int) error {
				return p.Add(fd+1000, 1, poller.Readable)
			})},
			badInput{name: pre + "Add(-1) after Close", want: poller.ErrClosed, setup: closed(func(p poller.Poller, fd int) error {
				return p.Add(-1, 1, poller.Readable)
			})},
			badInput{name: pre + "Modify after Close", want: poller.ErrClosed, setup: closed(func(p poller.Poller, fd int) error {
				return p.Modify(fd, 1, poller.Writable)
			})},
			badInput{name: pre + "Remove after Close", want: poller.ErrClosed, setup: closed(func(p poller.Poller, fd int) error {
				return p.Remove(fd)
			})},
			badInput{name: pre + "Wait after Close", want: poller.ErrClosed, setup: closed(func(p poller.Poller, fd int) error {
				_, err := p.Wait(make([]poller.Event, 4), -1)
				return err
			})},
			badInput{name: pre + "Wake after Close", want: poller.ErrClosed, setup: closed(func(p poller.Poller, fd int) error {
				return p.Wake()
			})},
			badInput{name: pre + "Close twice", want: poller.ErrClosed, setup: closed(func(p poller.Poller, fd int) error {
				return p.Close()
			})},
		)
		if b == poller.Select {
			rows = append(rows, badInput{name: pre + "Add(fd >= FD_SETSIZE)", want: poller.ErrFDTooLarge, setup: func(t *testing.T) func() error {
				p, fd := biPoller(t, b), biHighFD(t, 1500)
				return func() error { return p.Add(fd, 1, poller.Readable) }
			}})
		}
	}
	return rows
}

func fdtableRows() []badInput {
	type tab = fdtable.Table[int]
	withOne := func(fn func(tb *tab, h fdtable.Handle) error) func(*testing.T) func() error {
		return func(t *testing.T) func() error {
			tb := fdtable.New[int](8)
			h, err := tb.Put(3, 30)
			if err != nil {
				t.Fatal(err)
			}
			return func() error { return fn(tb, h) }
		}
	}
	notFound := func(ok bool) error {
		if ok {
			return errors.New("found")
		}
		return nil
	}
	return []badInput{
		{name: "fdtable/Put(-1)", want: fdtable.ErrBadFD, setup: call(func() error {
			_, err := fdtable.New[int](0).Put(-1, 1)
			return err
		})},
		{name: "fdtable/Put(math.MinInt)", want: fdtable.ErrBadFD, setup: call(func() error {
			_, err := new(tab).Put(math.MinInt, 1)
			return err
		})},
		{name: "fdtable/Put(MaxFD+1)", want: fdtable.ErrBadFD, setup: call(func() error {
			_, err := new(tab).Put(fdtable.MaxFD+1, 1)
			return err
		})},
		{name: "fdtable/Put(math.MaxInt)", want: fdtable.ErrBadFD, setup: call(func() error {
			_, err := new(tab).Put(math.MaxInt, 1)
			return err
		})},
		{name: "fdtable/Put twice", want: fdtable.ErrExists, setup: withOne(func(tb *tab, _ fdtable.Handle) error {
			_, err := tb.Put(3, 31)
			return err
		})},
		{name: "fdtable/Delete(zero Handle)", want: fdtable.ErrStale, setup: withOne(func(tb *tab, _ fdtable.Handle) error {
			_, err := tb.Delete(0)
			return err
		})},
		{name: "fdtable/Delete twice (stale handle)", want: fdtable.ErrStale, setup: withOne(func(tb *tab, h fdtable.Handle) error {
			if _, err := tb.Delete(h); err != nil {
				return fmt.Errorf("first Delete: %v", err)
			}
			_, err := tb.Delete(h)
			return err
		})},
		{name: "fdtable/Delete(forged handle past the table)", want: fdtable.ErrStale, setup: withOne(func(tb *tab, _ fdtable.Handle) error {
			_, err := tb.Delete(fdtable.Handle(1<<63 | fdtable.MaxFD))
			return err
		})},
		{name: "fdtable/Delete(all bits set)", want: fdtable.ErrStale, setup: withOne(func(tb *tab, _ fdtable.Handle) error {
			_, err := tb.Delete(fdtable.Handle(math.MaxUint64))
			return err
		})},
		{name: "fdtable/Delete on the zero Table", want: fdtable.ErrStale, setup: call(func() error {
			var tb tab
			_, err := tb.Delete(fdtable.Handle(1 << 63))
			return err
		})},
		{name: "fdtable/Get(zero Handle) → not found", ok: true, setup: withOne(func(tb *tab, _ fdtable.Handle) error {
			_, ok := tb.Get(0)
			return notFound(ok)
		})},
		{name: "fdtable/Get(all bits set) → not found", ok: true, setup: withOne(func(tb *tab, _ fdtable.Handle) error {
			_, ok := tb.Get(fdtable.Handle(math.MaxUint64))
			return notFound(ok)
		})},
		{name: "fdtable/Lookup(-1) → not found", ok: true, setup: withOne(func(tb *tab, _ fdtable.Handle) error {
			_, _, ok := tb.Lookup(-1)
			return notFound(ok)
		})},
		{name: "fdtable/Lookup(math.MaxInt) → not found", ok: true, setup: withOne(func(tb *tab, _ fdtable.Handle) error {
			_, _, ok := tb.Lookup(math.MaxInt)
			return notFound(ok)
		})},
		{name: "fdtable/New(-5) → an empty table of Cap 0", ok: true, setup: call(func() error {
			if tb := fdtable.New[int](-5); tb.Cap() != 0 || tb.Len() != 0 {
				return fmt.Errorf("Cap %d, Len %d; want 0, 0", tb.Cap(), tb.Len())
			}
			return nil
		})},
		{name: "fdtable/New(math.MaxInt) → a usable table", ok: true,
			setup: call(func() error {
				fdtable.New[int](math.MaxInt)
				return nil
			})},
	}
}

// biConn returns a conn.Conn over one end of a socketpair whose other end
// never reads, closed when the test ends.
func biConn(t *testing.T, lim *conn.Limits) *conn.Conn {
	t.Helper()
	a, b, err := sock.Socketpair()
	if err != nil {
		t.Fatal(err)
	}
	c, err := conn.New(a, lim)
	if err != nil {
		unix.Close(a)
		unix.Close(b)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		unix.Close(b)
	})
	return c
}

// zeroN turns an (n, err) result whose documented answer is 0, nil into an
// error for an ok row.
func zeroN(n int, err error) error {
	if err != nil {
		return err
	}
	if n != 0 {
		return fmt.Errorf("n = %d, want 0", n)
	}
	return nil
}

func connRows() []badInput {
	open := func(fn func(c *conn.Conn) error) func(*testing.T) func() error {
		return func(t *testing.T) func() error {
			c := biConn(t, nil)
			return func() error { return fn(c) }
		}
	}
	closed := func(fn func(c *conn.Conn) error) func(*testing.T) func() error {
		return func(t *testing.T) func() error {
			c := biConn(t, nil)
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			return func() error { return fn(c) }
		}
	}
	small := conn.Limits{HighWater: 8 << 10, LowWater: 4 << 10, MaxQueued: 16 << 10}
	return []badInput{
		{name: "conn.New(-1)", want: unix.EBADF, setup: call(func() error {
			_, err := conn.New(-1, nil)
			return err
		})},
		{name: "conn.New(math.MinInt)", want: unix.EBADF, setup: call(func() error {
			_, err := conn.New(math.MinInt, nil)
			return err
		})},
		{name: "conn.New(closed fd)", want: unix.EBADF, setup: func(t *testing.T) func() error {
			fd := biUnusedFD(t)
			return func() error {
				_, err := conn.New(fd, nil)
				return err
			}
		}},
		{name: "conn.New(negative Limits)", setup: func(t *testing.T) func() error {
			a, _ := biSocketpair(t)
			return func() error {
				_, err := conn.New(a, &conn.Limits{HighWater: -1})
				return err
			}
		}},
		{name: "conn.New(LowWater above HighWater)", setup: func(t *testing.T) func() error {
			a, _ := biSocketpair(t)
			return func() error {
				_, err := conn.New(a, &conn.Limits{HighWater: 1 << 10, LowWater: 2 << 10})
				return err
			}
		}},
		{name: "conn.Limits{MaxQueued: 1000}.Validate", setup: call(func() error {
			return conn.Limits{MaxQueued: 1000}.Validate()
		})},
		{name: "conn.Conn.Init twice", setup: func(t *testing.T) func() error {
			c := biConn(t, nil)
			b, _ := biSocketpair(t)
			return func() error { return c.Init(b, nil) }
		}},
		{name: "conn.Conn.Read after Close", want: net.ErrClosed, setup: closed(func(c *conn.Conn) error {
			_, err := c.Read(make([]byte, 8))
			return err
		})},
		{name: "conn.Conn.Write after Close", want: net.ErrClosed, setup: closed(func(c *conn.Conn) error {
			_, err := c.Write([]byte("x"))
			return err
		})},
		{name: "conn.Conn.Write(empty) after Close", want: net.ErrClosed, setup: closed(func(c *conn.Conn) error {
			_, err := c.Write(nil)
			return err
		})},
		{name: "conn.Conn.Flush after Close", want: net.ErrClosed, setup: closed(func(c *conn.Conn) error {
			return c.Flush()
		})},
		{name: "conn.Conn.CloseWrite after Close", want: net.ErrClosed, setup: closed(func(c *conn.Conn) error {
			return c.CloseWrite()
		})},
		{name: "conn.Conn.Close twice", want: net.ErrClosed, setup: closed(func(c *conn.Conn) error {
			return c.Close()
		})},
		{name: "conn.Conn.Fd after Close → -1", ok: true, setup: closed(func(c *conn.Conn) error {
			if c.Fd() != -1 || c.Pending() != 0 {
				return fmt.Errorf("Fd %d, Pending %d; want -1, 0", c.Fd(), c.Pending())
			}
			return nil
		})},
		{name: "conn.Conn.Write(nil) → 0, nil", ok: true, setup: open(func(c *conn.Conn) error {
			return zeroN(c.Write(nil))
		})},
		{name: "conn.Conn.Write(empty) → 0, nil", ok: true, setup: open(func(c *conn.Conn) error {
			return zeroN(c.Write([]byte{}))
		})},
		{name: "conn.Conn.Read(empty) → 0, nil", ok: true, setup: open(func(c *conn.Conn) error {
			return zeroN(c.Read(nil))
		})},
		{name: "conn.Conn.Read with no data", want: conn.ErrWouldBlock, setup: open(func(c *conn.Conn) error {
			_, err := c.Read(make([]byte, 8))
			return err
		})},
		{name: "conn.Conn.Write larger than MaxQueued", want: conn.ErrQueueFull, setup: open(func(c *conn.Conn) error {
			n, err := c.Write(make([]byte, conn.DefaultLimits().MaxQueued+1))
			if n != 0 || c.Pending() != 0 {
				return fmt.Errorf("n %d, Pending %d after a refused Write; want 0, 0", n, c.Pending())
			}
			return err
		})},
		{name: "conn.Conn.Write past MaxQueued to a peer that never reads", want: conn.ErrQueueFull, setup: func(t *testing.T) func() error {
			c := biConn(t, &small)
			return func() error {
				chunk := make([]byte, 3000)
				for sent := 0; sent < 64<<20; sent += len(chunk) {
					before := c.Pending()
					if _, err := c.Write(chunk); err != nil {
						if c.Pending() != before || before+len(chunk) <= small.MaxQueued {
							return fmt.Errorf("%v with Pending %d (was %d), MaxQueued %d", err, c.Pending(), before, small.MaxQueued)
						}
						return err
					}
				}
				return errors.New("64 MiB written to a peer that never reads")
			}
		}},
		{name: "conn.Conn zero value Write",
			setup: call(func() error {
				var c conn.Conn
				_, err := c.Write([]byte("x"))
				return err
			})},
	}
}

// biServe serves s on a loopback port and returns the address; s is shut
// down when the test ends.
func biServe(t *testing.T, s *reactor.Server) string {
	t.Helper()
	if err := s.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		if err := <-done; !errors.Is(err, reactor.ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	biEcho(t, s.Addr().String())
	return s.Addr().String()
}

// biEcho checks that the server at addr echoes one message.
func biEcho(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := biRoundTrip(c, "ping"); err != nil {
		t.Fatal(err)
	}
}

// biRoundTrip sends msg on c and checks the echo, within 10 s.
func biRoundTrip(c net.Conn, msg string) error {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return servertest.Echo(c, []byte(msg))
}

func listenServe(s *reactor.Server) error { return s.ListenAndServe("tcp", "127.0.0.1:0") }

// shutNow shuts s down, for rows whose call follows a Shutdown.
func shutNow(t *testing.T, s *reactor.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// nilOr accepts nil or an error matching want as success.
func nilOr(err, want error) error {
	if err == nil || errors.Is(err, want) {
		return nil
	}
	return err
}

func serverRows() []badInput {
	served := func(fn func(s *reactor.Server) error) func(*testing.T) func() error {
		return func(t *testing.T) func() error {
			s := &reactor.Server{Handler: reactor.Echo, Loops: 1}
			biServe(t, s)
			return func() error { return fn(s) }
		}
	}
	shut := func(fn func(s *reactor.Server) error) func(*testing.T) func() error {
		return func(t *testing.T) func() error {
			s := &reactor.Server{Handler: reactor.Echo, Loops: 1}
			shutNow(t, s)
			return func() error { return fn(s) }
		}
	}
	nonListening := func(kind string) func(*testing.T) func() error {
		return func(t *testing.T) func() error {
			var fd int
			if kind == "socketpair" {
				fd, _ = biSocketpair(t)
			} else {
				var err error
				if fd, err = sock.Socket(unix.AF_INET); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { unix.Close(fd) })
			}
			s := &reactor.Server{Handler: reactor.Echo, Loops: 1}
			t.Cleanup(func() { shutNow(t, s) })
			return func() error { return s.ServeFD(fd) }
		}
	}
	longUnix := "/tmp/" + strings.Repeat("x", 200)
	return []badInput{
		{name: "Server nil Handler", setup: call(func() error { return listenServe(&reactor.Server{}) })},
		{name: "Server Backend 99", want: errors.ErrUnsupported, setup: call(func() error {
			return listenServe(&reactor.Server{Handler: reactor.Echo, Backend: 99})
		})},
		{name: "Server Backend not on this OS", want: errors.ErrUnsupported, setup: call(func() error {
			return listenServe(&reactor.Server{Handler: reactor.Echo, Backend: unavailable()})
		})},
		{name: "Server REACTOR_BACKEND=bogus", setup: func(t *testing.T) func() error {
			t.Setenv(reactor.BackendEnv, "bogus")
			return func() error { return listenServe(&reactor.Server{Handler: reactor.Echo}) }
		}},
		{name: "Server.Listen alone, REACTOR_BACKEND=bogus", setup: func(t *testing.T) func() error {
			t.Setenv(reactor.BackendEnv, "bogus")
			return func() error {
				s := &reactor.Server{Handler: reactor.Echo}
				err := s.Listen("tcp", "127.0.0.1:0")
				if err == nil {
					s.Shutdown(context.Background())
				} else if s.Addr() != nil {
					return fmt.Errorf("Listen failed (%v) but left a listening address %v", err, s.Addr())
				}
				return err
			}
		}},
		{name: "ResolveBackend(0) with REACTOR_BACKEND=bogus", setup: func(t *testing.T) func() error {
			t.Setenv(reactor.BackendEnv, "bogus")
			return func() error {
				_, err := reactor.ResolveBackend(0)
				return err
			}
		}},
		{name: "Server negative Loops", setup: call(func() error {
			return listenServe(&reactor.Server{Handler: reactor.Echo, Loops: -1})
		})},
		{name: "Server Loops math.MinInt", setup: call(func() error {
			return listenServe(&reactor.Server{Handler: reactor.Echo, Loops: math.MinInt})
		})},
		{name: "Server negative MaxConns", setup: call(func() error {
			return listenServe(&reactor.Server{Handler: reactor.Echo, MaxConns: -1})
		})},
		{name: "Server negative IdleTimeout", setup: call(func() error {
			return listenServe(&reactor.Server{Handler: reactor.Echo, IdleTimeout: -1})
		})},
		{name: "Server bad Limits", setup: call(func() error {
			return listenServe(&reactor.Server{Handler: reactor.Echo, Limits: conn.Limits{MaxQueued: -1}})
		})},
		{name: "Server.Serve without Listen", setup: call(func() error {
			return (&reactor.Server{Handler: reactor.Echo}).Serve()
		})},
		{name: "Server.ServeFD(-1)", setup: call(func() error {
			return (&reactor.Server{Handler: reactor.Echo}).ServeFD(-1)
		})},
		{name: "Server.ServeFD(math.MaxInt)", setup: call(func() error {
			return (&reactor.Server{Handler: reactor.Echo}).ServeFD(math.MaxInt)
		})},
		{name: "Server.ServeFD(closed fd)", want: unix.EBADF, setup: func(t *testing.T) func() error {
			fd := biUnusedFD(t)
			return func() error { return (&reactor.Server{Handler: reactor.Echo}).ServeFD(fd) }
		}},
		{name: "Server.ServeFD(1<<32+listening fd)", setup: func(t *testing.T) func() error {
			ln, err := servers.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
			return func() error { return (&reactor.Server{Handler: reactor.Echo, Loops: 1}).ServeFD(1<<32 + ln.Fd()) }
		}},
		{name: "Server.ServeFD(socketpair end, not listening)", setup: nonListening("socketpair")},
		{name: "Server.ServeFD(unconnected TCP socket, not listening)", setup: nonListening("tcp")},
		{name: "Server.ServeFD with ReusePort", want: errors.ErrUnsupported, setup: func(t *testing.T) func() error {
			ln, err := servers.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
			return func() error {
				return (&reactor.Server{Handler: reactor.Echo, ReusePort: true}).ServeFD(ln.Fd())
			}
		}},
		{name: "Server.Listen(unix) with ReusePort", want: errors.ErrUnsupported, setup: call(func() error {
			s := &reactor.Server{Handler: reactor.Echo, ReusePort: true, Loops: 1}
			return s.Listen("unix", "/tmp/reactor-badinput-reuseport.sock")
		})},
		{name: "Server.Listen(udp)", setup: call(func() error {
			return (&reactor.Server{Handler: reactor.Echo}).Listen("udp", "127.0.0.1:0")
		})},
		{name: "Server.Listen(empty network)", setup: call(func() error {
			return (&reactor.Server{Handler: reactor.Echo}).Listen("", "127.0.0.1:0")
		})},
		{name: "Server.Listen(port 99999)", setup: call(func() error {
			return (&reactor.Server{Handler: reactor.Echo}).Listen("tcp", "127.0.0.1:99999")
		})},
		{name: "Server.Listen(garbage address)", setup: call(func() error {
			return (&reactor.Server{Handler: reactor.Echo}).Listen("tcp", "::::not an address")
		})},
		{name: "Server.Listen(unix path too long)", setup: call(func() error {
			return (&reactor.Server{Handler: reactor.Echo}).Listen("unix", longUnix)
		})},
		{name: "Server.Listen(address in use)", want: unix.EADDRINUSE, setup: func(t *testing.T) func() error {
			addr := biServe(t, &reactor.Server{Handler: reactor.Echo, Loops: 1})
			return func() error {
				s := &reactor.Server{Handler: reactor.Echo}
				err := s.Listen("tcp", addr)
				s.Shutdown(context.Background())
				return err
			}
		}},
		{name: "Server.Listen twice", setup: func(t *testing.T) func() error {
			s := &reactor.Server{Handler: reactor.Echo}
			if err := s.Listen("tcp", "127.0.0.1:0"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { shutNow(t, s) })
			return func() error { return s.Listen("tcp", "127.0.0.1:0") }
		}},
		{name: "Server.Addr before Listen → nil", ok: true, setup: call(func() error {
			if a := (&reactor.Server{}).Addr(); a != nil {
				return fmt.Errorf("Addr %v, want nil", a)
			}
			return nil
		})},
		{name: "Server.Serve twice", setup: served(func(s *reactor.Server) error { return s.Serve() })},
		{name: "Server.ServeFD while serving", setup: served(func(s *reactor.Server) error { return s.ServeFD(0) })},
		{name: "Server.Listen while serving", setup: served(func(s *reactor.Server) error { return s.Listen("tcp", "127.0.0.1:0") })},
		{name: "Server.Shutdown before start → nil", ok: true, setup: call(func() error {
			return (&reactor.Server{Handler: reactor.Echo}).Shutdown(context.Background())
		})},
		{name: "Server.Shutdown twice before start → nil or ErrServerClosed", ok: true, setup: shut(func(s *reactor.Server) error {
			return nilOr(s.Shutdown(context.Background()), reactor.ErrServerClosed)
		})},
		{name: "Server.Shutdown twice after serving → nil or ErrServerClosed", ok: true, setup: served(func(s *reactor.Server) error {
			if err := s.Shutdown(context.Background()); err != nil {
				return fmt.Errorf("first Shutdown: %v", err)
			}
			return nilOr(s.Shutdown(context.Background()), reactor.ErrServerClosed)
		})},
		{name: "Server.Shutdown(ctx already done) before start → nil", ok: true, setup: call(func() error {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return (&reactor.Server{Handler: reactor.Echo}).Shutdown(ctx)
		})},
		{name: "Server.Serve after Shutdown", want: reactor.ErrServerClosed, setup: shut(func(s *reactor.Server) error { return s.Serve() })},
		{name: "Server.ServeFD after Shutdown", want: reactor.ErrServerClosed, setup: shut(func(s *reactor.Server) error { return s.ServeFD(0) })},
		{name: "Server.ListenAndServe after Shutdown", want: reactor.ErrServerClosed,
			setup: shut(func(s *reactor.Server) error { return s.ListenAndServe("tcp", "127.0.0.1:0") })},
		{name: "Server.Serve after Listen and Shutdown", setup: func(t *testing.T) func() error {
			s := &reactor.Server{Handler: reactor.Echo}
			if err := s.Listen("tcp", "127.0.0.1:0"); err != nil {
				t.Fatal(err)
			}
			shutNow(t, s)
			return func() error { return s.Serve() }
		}, want: reactor.ErrServerClosed},
	}
}

// biHandlerConn serves an echo server and returns it with the server's
// Conn for one client (the handler hands it over in OnOpen) and that
// client.
func biHandlerConn(t *testing.T) (*reactor.Server, *reactor.Conn, net.Conn) {
	t.Helper()
	opened := make(chan *reactor.Conn, 1)
	s := &reactor.Server{Loops: 1, Handler: reactor.HandlerFuncs{
		Open: func(c *reactor.Conn) { opened <- c },
		Data: func(c *reactor.Conn, data []byte) { c.Write(data) },
	}}
	addr := biServe(t, s) // its echo check is the first client
	<-opened
	client, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	select {
	case c := <-opened:
		return s, c, client
	case <-time.After(10 * time.Second):
		t.Fatal("OnOpen not called within 10s")
		return nil, nil, nil
	}
}

// onConnLoop runs fn on c's loop goroutine and returns its error.
func onConnLoop(c *reactor.Conn, fn func() error) error {
	res := make(chan error, 1)
	if err := c.Loop().Post(func() { res <- fn() }); err != nil {
		return fmt.Errorf("Post: %v", err)
	}
	return <-res
}

func reactorConnRows() []badInput {
	// live: fn runs on the loop of a served Conn.
	live := func(fn func(c *reactor.Conn) error) func(*testing.T) func() error {
		return func(t *testing.T) func() error {
			_, c, _ := biHandlerConn(t)
			return func() error { return onConnLoop(c, func() error { return fn(c) }) }
		}
	}
	// closedLive: c was closed on its loop, which still runs; fn runs on
	// the test goroutine for the methods safe there, else via the loop.
	closedLive := func(onLoop bool, fn func(c *reactor.Conn) error) func(*testing.T) func() error {
		return func(t *testing.T) func() error {
			_, c, _ := biHandlerConn(t)
			if err := onConnLoop(c, c.Close); err != nil {
				t.Fatal(err)
			}
			if onLoop {
				return func() error { return onConnLoop(c, func() error { return fn(c) }) }
			}
			return func() error { return fn(c) }
		}
	}
	// afterShutdown: the server was shut down; every loop has returned, so
	// the test goroutine may call any method (Shutdown's return orders it
	// after the loop's last access).
	afterShutdown := func(fn func(c *reactor.Conn) error) func(*testing.T) func() error {
		return func(t *testing.T) func() error {
			s, c, _ := biHandlerConn(t)
			shutNow(t, s)
			return func() error { return fn(c) }
		}
	}
	return []badInput{
		{name: "reactor.Conn.Write after Close", want: net.ErrClosed, setup: closedLive(true, func(c *reactor.Conn) error {
			_, err := c.Write([]byte("x"))
			return err
		})},
		{name: "reactor.Conn.Close twice", want: net.ErrClosed, setup: closedLive(true, func(c *reactor.Conn) error {
			return c.Close()
		})},
		{name: "reactor.Conn.AsyncWrite after Close → nil (bytes dropped)", ok: true, setup: closedLive(false, func(c *reactor.Conn) error {
			return c.AsyncWrite([]byte("x"))
		})},
		{name: "reactor.Conn.AsyncClose after Close → nil", ok: true, setup: closedLive(false, func(c *reactor.Conn) error {
			return c.AsyncClose()
		})},
		// Close is graceful: the fd stays open until the peer's end of file
		// (or a drain timeout), so Fd turns -1 once the client has closed.
		{name: "reactor.Conn.Fd, Pending after Close and the peer's close → -1, 0", ok: true, setup: func(t *testing.T) func() error {
			_, c, client := biHandlerConn(t)
			if err := onConnLoop(c, c.Close); err != nil {
				t.Fatal(err)
			}
			client.Close()
			return func() error {
				end := time.Now().Add(4 * time.Second)
				for {
					var fd, pending int
					onConnLoop(c, func() error { fd, pending = c.Fd(), c.Pending(); return nil })
					if fd == -1 && pending == 0 {
						return onConnLoop(c, func() error { _ = c.String(); return nil })
					}
					if time.Now().After(end) {
						return fmt.Errorf("Fd %d, Pending %d; want -1, 0", fd, pending)
					}
					time.Sleep(5 * time.Millisecond) // polling a condition, with a deadline
				}
			}
		}},
		{name: "reactor.Conn.Write(nil) → 0, nil", ok: true, setup: live(func(c *reactor.Conn) error {
			return zeroN(c.Write(nil))
		})},
		{name: "reactor.Conn.AsyncWrite(nil) → nil", ok: true, setup: func(t *testing.T) func() error {
			_, c, _ := biHandlerConn(t)
			return func() error { return c.AsyncWrite(nil) }
		}},
		{name: "reactor.Conn.Write larger than MaxQueued (connection stays open)", want: conn.ErrQueueFull, setup: func(t *testing.T) func() error {
			_, c, client := biHandlerConn(t)
			return func() error {
				var werr error
				err := onConnLoop(c, func() error {
					_, werr = c.Write(make([]byte, conn.DefaultLimits().MaxQueued+1))
					return nil
				})
				if err != nil {
					return err
				}
				// Still open: it echoes.
				client.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := client.Write([]byte("ok")); err != nil {
					return fmt.Errorf("after ErrQueueFull: %v", err)
				}
				if _, err := io.ReadFull(client, make([]byte, 2)); err != nil {
					return fmt.Errorf("after ErrQueueFull: %v", err)
				}
				return werr
			}
		}},
		{name: "reactor.Conn.Write after Shutdown", want: net.ErrClosed, setup: afterShutdown(func(c *reactor.Conn) error {
			_, err := c.Write([]byte("x"))
			return err
		})},
		{name: "reactor.Conn.Close after Shutdown", want: net.ErrClosed, setup: afterShutdown(func(c *reactor.Conn) error {
			return c.Close()
		})},
		{name: "reactor.Conn.AsyncWrite after Shutdown", want: reactor.ErrServerClosed, setup: afterShutdown(func(c *reactor.Conn) error {
			return c.AsyncWrite([]byte("x"))
		})},
		{name: "reactor.Conn.AsyncClose after Shutdown", want: reactor.ErrServerClosed, setup: afterShutdown(func(c *reactor.Conn) error {
			return c.AsyncClose()
		})},
		{name: "reactor.Loop.Post after Shutdown", want: reactor.ErrLoopClosed, setup: afterShutdown(func(c *reactor.Conn) error {
			ran := false
			err := c.Loop().Post(func() { ran = true })
			if ran {
				return errors.New("a function posted after Shutdown ran")
			}
			return err
		})},
		{name: "reactor.Loop.AfterFunc after Shutdown → a Timer that never fires, no panic (no error to return)", ok: true, setup: afterShutdown(func(c *reactor.Conn) error {
			fired := make(chan struct{})
			tm := c.Loop().AfterFunc(time.Millisecond, func() { close(fired) })
			if tm == nil {
				return errors.New("nil Timer")
			}
			tm.Reset(time.Millisecond)
			if !tm.Stop() {
				return errors.New("Stop reported a timer of an ended loop as fired")
			}
			select {
			case <-fired:
				return errors.New("a timer of an ended loop fired")
			default:
				return nil
			}
		})},
		{name: "reactor.Conn.Pending, Fd, addresses after Shutdown → 0, -1, no panic", ok: true, setup: afterShutdown(func(c *reactor.Conn) error {
			if c.Fd() != -1 || c.Pending() != 0 {
				return fmt.Errorf("Fd %d, Pending %d; want -1, 0", c.Fd(), c.Pending())
			}
			_, _, _ = c.LocalAddr(), c.RemoteAddr(), c.String()
			return nil
		})},
	}
}

// biServersListener returns a servers.Listener, closed when the test ends.
func biServersListener(t *testing.T) *servers.Listener {
	t.Helper()
	ln, err := servers.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func serversRows() []badInput {
	closedConn := func(fn func(c *servers.Conn) error) func(*testing.T) func() error {
		return func(t *testing.T) func() error {
			a, _ := biSocketpair(t)
			fd, err := unix.Dup(a)
			if err != nil {
				t.Fatal(err)
			}
			c, err := servers.NewConn(fd)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			return func() error { return fn(c) }
		}
	}
	open := func(fn func(c *servers.Conn) error) func(*testing.T) func() error {
		return func(t *testing.T) func() error {
			a, _ := biSocketpair(t)
			fd, err := unix.Dup(a)
			if err != nil {
				t.Fatal(err)
			}
			c, err := servers.NewConn(fd)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			return func() error { return fn(c) }
		}
	}
	return []badInput{
		{name: "servers.Listen(udp)", setup: call(func() error {
			_, err := servers.Listen("udp", "127.0.0.1:0")
			return err
		})},
		{name: "servers.Listen(port 99999)", setup: call(func() error {
			_, err := servers.Listen("tcp", "127.0.0.1:99999")
			return err
		})},
		{name: "servers.Listen(address in use)", want: unix.EADDRINUSE, setup: func(t *testing.T) func() error {
			ln := biServersListener(t)
			return func() error {
				_, err := servers.Listen("tcp", ln.Addr().String())
				return err
			}
		}},
		{name: "servers.FileListener(-1)", want: unix.EBADF, setup: call(func() error {
			_, err := servers.FileListener(-1)
			return err
		})},
		{name: "servers.FileListener(closed fd)", want: unix.EBADF, setup: func(t *testing.T) func() error {
			fd := biUnusedFD(t)
			return func() error {
				_, err := servers.FileListener(fd)
				return err
			}
		}},
		{name: "servers.NewConn(-1)", want: unix.EBADF, setup: call(func() error {
			_, err := servers.NewConn(-1)
			return err
		})},
		{name: "servers.NewConn(closed fd)", want: unix.EBADF, setup: func(t *testing.T) func() error {
			fd := biUnusedFD(t)
			return func() error {
				_, err := servers.NewConn(fd)
				return err
			}
		}},
		{name: "servers.Listener.Accept after Close", want: net.ErrClosed, setup: func(t *testing.T) func() error {
			ln := biServersListener(t)
			if err := ln.Close(); err != nil {
				t.Fatal(err)
			}
			return func() error {
				_, err := ln.Accept()
				return err
			}
		}},
		{name: "servers.Listener.Close twice → nil (idempotent)", ok: true, setup: func(t *testing.T) func() error {
			ln := biServersListener(t)
			if err := ln.Close(); err != nil {
				t.Fatal(err)
			}
			return ln.Close
		}},
		{name: "servers.Conn.Read after Close", want: net.ErrClosed, setup: closedConn(func(c *servers.Conn) error {
			_, err := c.Read(make([]byte, 8))
			return err
		})},
		{name: "servers.Conn.Write after Close", want: net.ErrClosed, setup: closedConn(func(c *servers.Conn) error {
			_, err := c.Write([]byte("x"))
			return err
		})},
		{name: "servers.Conn.Close twice → nil (idempotent)", ok: true, setup: closedConn(func(c *servers.Conn) error {
			return c.Close()
		})},
		{name: "servers.Conn.Shutdown after Close → nil (does nothing)", ok: true, setup: closedConn(func(c *servers.Conn) error {
			return c.Shutdown(unix.SHUT_RDWR)
		})},
		{name: "servers.Conn.Shutdown(bad how)", setup: open(func(c *servers.Conn) error {
			return c.Shutdown(99)
		})},
		{name: "servers.Conn.Write(empty) → 0, nil", ok: true, setup: open(func(c *servers.Conn) error {
			return zeroN(c.Write(nil))
		})},
		{name: "servers.Conn.Read(empty) → 0, nil", ok: true, setup: open(func(c *servers.Conn) error {
			return zeroN(c.Read(nil))
		})},
		{name: "servers.Base.Serve(0 accept loops)", setup: func(t *testing.T) func() error {
			ln := biServersListener(t)
			return func() error {
				var b servers.Base
				return b.Serve("test", ln, 0, false, func(int, *servers.Conn) {})
			}
		}},
	}
}

// biModel is one model as the bad-input rows build it.
type biModel struct {
	name string
	new  func() servers.Server
}

func biModels() []biModel {
	return []biModel{
		{"iterative", func() servers.Server { return &iterative.Server{} }},
		{"threadpool", func() servers.Server { return &threadpool.Server{Workers: 2} }},
		{"threadpool-perclient", func() servers.Server { return &threadpool.Server{PerClient: true} }},
		{"multiprocess", func() servers.Server { return &multiprocess.Server{} }},
		{"multiprocess-prefork", func() servers.Server { return &multiprocess.Server{Prefork: 1} }},
		{"multiplex", func() servers.Server { return &multiplex.Server{Loops: 1} }},
	}
}

// biStartModel serves s on a fresh listener until the test ends, once it
// has echoed a client, and returns the listener's address.
func biStartModel(t *testing.T, s servers.Server) string {
	t.Helper()
	addr, _ := servertest.Start(t, s, servertest.Closed)
	biEcho(t, addr)
	return addr
}

func modelRows() []badInput {
	var rows []badInput
	for _, m := range biModels() {
		pre := "servers/" + m.name + "/"
		rows = append(rows,
			badInput{name: pre + "Serve(nil)", setup: call(func() error {
				return m.new().Serve(nil)
			})},
			badInput{name: pre + "Serve twice, a client being served", setup: func(t *testing.T) func() error {
				s := m.new()
				addr := biStartModel(t, s)
				c, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() }) // before Shutdown: cleanups run last first
				if err := biRoundTrip(c, "being served"); err != nil {
					t.Fatal(err)
				}
				ln := biServersListener(t)
				return func() error { return s.Serve(ln) }
			}},
			badInput{name: pre + "Shutdown before Serve → nil, then Serve", want: servers.ErrServerClosed, setup: func(t *testing.T) func() error {
				s := m.new()
				ln := biServersListener(t)
				return func() error {
					if err := s.Shutdown(context.Background()); err != nil {
						return fmt.Errorf("Shutdown before Serve: %v", err) // %v: not the want
					}
					return s.Serve(ln)
				}
			}},
			badInput{name: pre + "Shutdown twice → nil or ErrServerClosed", ok: true, setup: func(t *testing.T) func() error {
				s := m.new()
				biStartModel(t, s)
				return func() error {
					if err := s.Shutdown(context.Background()); err != nil {
						return fmt.Errorf("first Shutdown: %v", err)
					}
					return nilOr(s.Shutdown(context.Background()), servers.ErrServerClosed)
				}
			}},
			badInput{name: pre + "Serve(closed Listener)", setup: func(t *testing.T) func() error {
				s := m.new()
				ln := biServersListener(t)
				ln.Close()
				t.Cleanup(func() { s.Shutdown(context.Background()) })
				return func() error { return s.Serve(ln) }
			}},
		)
	}
	bad := []struct {
		name string
		s    servers.Server
	}{
		{"threadpool/Workers -1", &threadpool.Server{Workers: -1}},
		{"threadpool/MaxThreads -1", &threadpool.Server{PerClient: true, MaxThreads: -1}},
		{"multiprocess/Prefork -1", &multiprocess.Server{Prefork: -1}},
		{"multiplex/Loops -1", &multiplex.Server{Loops: -1}},
		{"multiplex/Backend 99", &multiplex.Server{Backend: 99}},
	}
	for _, b := range bad {
		rows = append(rows, badInput{name: "servers/" + b.name, setup: func(t *testing.T) func() error {
			ln := biServersListener(t)
			t.Cleanup(func() { b.s.Shutdown(context.Background()) })
			return func() error { return b.s.Serve(ln) }
		}})
	}
	return rows
}
