package poller_test

import (
	"errors"
	"fmt"
	"math"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/internal/badinput"
	"github.com/muxkit/reactor/internal/leakcheck"
	"github.com/muxkit/reactor/poller"
)

// TestBadInput feeds the Poller of every backend this OS has, and
// New and ParseBackend, the inputs a caller gets wrong: negative, closed,
// unregistered and huge fds, unknown interest bits, empty event slices,
// extreme timeouts, calls after Close. Each must give a clear error (the
// documented sentinel where there is one), never a panic or a hang; where
// the documented answer is success, that is asserted instead.
// (TestRefusedCallChangesNothing checks that a refused call changes nothing.)
func TestBadInput(t *testing.T) {
	leakcheck.Check(t)
	badinput.Run(t, pollerRows())
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
	a, _ := badinput.Socketpair(t)
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
	a, _ := badinput.Socketpair(t)
	fd, err := unix.FcntlInt(uintptr(a), unix.F_DUPFD_CLOEXEC, min)
	if err != nil {
		t.Skipf("cannot dup to fd >= %d: %v", min, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func pollerRows() []badinput.Row {
	rows := []badinput.Row{
		{Name: "poller.New(0)", Want: errors.ErrUnsupported, Setup: badinput.Call(func() error {
			_, err := poller.New(0)
			return err
		})},
		{Name: "poller.New(99)", Want: errors.ErrUnsupported, Setup: badinput.Call(func() error {
			_, err := poller.New(99)
			return err
		})},
		{Name: "poller.New(" + badinput.UnavailableBackend().String() + ", not on this OS)", Want: errors.ErrUnsupported, Setup: badinput.Call(func() error {
			_, err := poller.New(badinput.UnavailableBackend())
			return err
		})},
		{Name: "poller.ParseBackend(empty)", Setup: badinput.Call(func() error {
			_, err := poller.ParseBackend("")
			return err
		})},
		{Name: "poller.ParseBackend(EPOLL, wrong case)", Setup: badinput.Call(func() error {
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
				a, _ := badinput.Socketpair(t)
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
			badinput.Row{Name: pre + "Add(-1)", Want: poller.ErrBadFD, Setup: fresh(func(p poller.Poller) error {
				return p.Add(-1, 1, poller.Readable)
			})},
			badinput.Row{Name: pre + "Add(math.MinInt)", Want: poller.ErrBadFD, Setup: fresh(func(p poller.Poller) error {
				return p.Add(math.MinInt, 1, poller.Readable)
			})},
			badinput.Row{Name: pre + "Modify(-1)", Want: poller.ErrBadFD, Setup: fresh(func(p poller.Poller) error {
				return p.Modify(-1, 1, poller.Readable)
			})},
			badinput.Row{Name: pre + "Remove(-1)", Want: poller.ErrBadFD, Setup: fresh(func(p poller.Poller) error {
				return p.Remove(-1)
			})},
			badinput.Row{Name: pre + "Add(closed fd)", Want: unix.EBADF, Setup: func(t *testing.T) func() error {
				p, fd := biPoller(t, b), badinput.UnusedFD(t)
				return func() error { return p.Add(fd, 1, poller.Readable) }
			}},
			badinput.Row{Name: pre + "Add(1<<31, past int32)", Setup: fresh(func(p poller.Poller) error {
				return p.Add(1<<31, 1, poller.Readable)
			})},
			badinput.Row{Name: pre + "Add(math.MaxInt)", Setup: fresh(func(p poller.Poller) error {
				return p.Add(math.MaxInt, 1, poller.Readable)
			})},
			badinput.Row{Name: pre + "Add(1<<32+open fd)", Want: aliasWant, Setup: withFD(func(p poller.Poller, fd int) error {
				return p.Add(1<<32+fd, 1, poller.Readable)
			})},
			badinput.Row{Name: pre + "Modify(unregistered fd)", Want: poller.ErrNotRegistered, Setup: withFD(func(p poller.Poller, fd int) error {
				return p.Modify(fd, 1, poller.Writable)
			})},
			badinput.Row{Name: pre + "Remove(unregistered fd)", Want: poller.ErrNotRegistered, Setup: withFD(func(p poller.Poller, fd int) error {
				return p.Remove(fd)
			})},
			badinput.Row{Name: pre + "Remove twice", Want: poller.ErrNotRegistered, Setup: withFD(func(p poller.Poller, fd int) error {
				if err := p.Add(fd, 1, poller.Readable); err != nil {
					return fmt.Errorf("Add: %v", err)
				}
				if err := p.Remove(fd); err != nil {
					return fmt.Errorf("first Remove: %v", err)
				}
				return p.Remove(fd)
			})},
			badinput.Row{Name: pre + "Add twice", Want: poller.ErrRegistered, Setup: withFD(func(p poller.Poller, fd int) error {
				if err := p.Add(fd, 1, poller.Readable); err != nil {
					return fmt.Errorf("first Add: %v", err)
				}
				return p.Add(fd, 2, poller.Writable)
			})},
			badinput.Row{Name: pre + "Add with unknown interest bits", Want: poller.ErrInterest, Setup: withFD(func(p poller.Poller, fd int) error {
				return p.Add(fd, 1, poller.HangUp|poller.Readable)
			})},
			badinput.Row{Name: pre + "Modify with unknown interest bits", Want: poller.ErrInterest, Setup: withFD(func(p poller.Poller, fd int) error {
				if err := p.Add(fd, 1, poller.Readable); err != nil {
					return fmt.Errorf("Add: %v", err)
				}
				return p.Modify(fd, 1, 1<<6)
			})},
			badinput.Row{Name: pre + edgeName, Want: edgeWant, OK: edgeOK, Setup: withFD(func(p poller.Poller, fd int) error {
				return p.Add(fd, 1, poller.Readable|poller.EdgeTriggered)
			})},
			badinput.Row{Name: pre + "Wait(nil)", Want: poller.ErrNoEvents, Setup: fresh(func(p poller.Poller) error {
				_, err := p.Wait(nil, 0)
				return err
			})},
			badinput.Row{Name: pre + "Wait(empty slice)", Want: poller.ErrNoEvents, Setup: fresh(func(p poller.Poller) error {
				_, err := p.Wait([]poller.Event{}, -1)
				return err
			})},
			badinput.Row{Name: pre + "Wait(math.MaxInt64 timeout) after Wake → returns, nil", OK: true, Setup: fresh(func(p poller.Poller) error {
				if err := p.Wake(); err != nil {
					return err
				}
				_, err := p.Wait(make([]poller.Event, 1), math.MaxInt64)
				return err
			})},
			badinput.Row{Name: pre + "Wait(-1, blocking) after Wake → returns, nil", OK: true, Setup: fresh(func(p poller.Poller) error {
				if err := p.Wake(); err != nil {
					return err
				}
				_, err := p.Wait(make([]poller.Event, 1), -1)
				return err
			})},
			badinput.Row{Name: pre + "Wait(math.MinInt64 timeout) after Wake → returns, nil", OK: true, Setup: fresh(func(p poller.Poller) error {
				if err := p.Wake(); err != nil {
					return err
				}
				_, err := p.Wait(make([]poller.Event, 1), math.MinInt64)
				return err
			})},
			badinput.Row{Name: pre + "Add after Close", Want: poller.ErrClosed, Setup: closed(func(p poller.Poller, fd int) error {
				return p.Add(fd+1000, 1, poller.Readable)
			})},
			badinput.Row{Name: pre + "Add(-1) after Close", Want: poller.ErrClosed, Setup: closed(func(p poller.Poller, fd int) error {
				return p.Add(-1, 1, poller.Readable)
			})},
			badinput.Row{Name: pre + "Modify after Close", Want: poller.ErrClosed, Setup: closed(func(p poller.Poller, fd int) error {
				return p.Modify(fd, 1, poller.Writable)
			})},
			badinput.Row{Name: pre + "Remove after Close", Want: poller.ErrClosed, Setup: closed(func(p poller.Poller, fd int) error {
				return p.Remove(fd)
			})},
			badinput.Row{Name: pre + "Wait after Close", Want: poller.ErrClosed, Setup: closed(func(p poller.Poller, fd int) error {
				_, err := p.Wait(make([]poller.Event, 4), -1)
				return err
			})},
			badinput.Row{Name: pre + "Wake after Close", Want: poller.ErrClosed, Setup: closed(func(p poller.Poller, fd int) error {
				return p.Wake()
			})},
			badinput.Row{Name: pre + "Close twice", Want: poller.ErrClosed, Setup: closed(func(p poller.Poller, fd int) error {
				return p.Close()
			})},
		)
		if b == poller.Select {
			rows = append(rows, badinput.Row{Name: pre + "Add(fd >= FD_SETSIZE)", Want: poller.ErrFDTooLarge, Setup: func(t *testing.T) func() error {
				p, fd := biPoller(t, b), biHighFD(t, 1500)
				return func() error { return p.Add(fd, 1, poller.Readable) }
			}})
		}
	}
	return rows
}
