package conn_test

import (
	"errors"
	"fmt"
	"math"
	"net"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/conn"
	"github.com/muxkit/reactor/internal/badinput"
	"github.com/muxkit/reactor/internal/leakcheck"
	"github.com/muxkit/reactor/internal/sock"
)

// TestBadInput feeds New, Limits and Conn the inputs a caller gets wrong:
// negative and closed fds, bad Limits, a Conn initialised twice, calls
// after Close, writes past MaxQueued, the zero Conn. Each must give a clear
// error (the documented sentinel where there is one), never a panic or a
// hang; where the documented answer is success (a zero-length read or
// write), that is asserted instead.
func TestBadInput(t *testing.T) {
	leakcheck.Check(t)
	badinput.Run(t, connRows())
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

func connRows() []badinput.Row {
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
	return []badinput.Row{
		{Name: "conn.New(-1)", Want: unix.EBADF, Setup: badinput.Call(func() error {
			_, err := conn.New(-1, nil)
			return err
		})},
		{Name: "conn.New(math.MinInt)", Want: unix.EBADF, Setup: badinput.Call(func() error {
			_, err := conn.New(math.MinInt, nil)
			return err
		})},
		{Name: "conn.New(closed fd)", Want: unix.EBADF, Setup: func(t *testing.T) func() error {
			fd := badinput.UnusedFD(t)
			return func() error {
				_, err := conn.New(fd, nil)
				return err
			}
		}},
		{Name: "conn.New(negative Limits)", Setup: func(t *testing.T) func() error {
			a, _ := badinput.Socketpair(t)
			return func() error {
				_, err := conn.New(a, &conn.Limits{HighWater: -1})
				return err
			}
		}},
		{Name: "conn.New(LowWater above HighWater)", Setup: func(t *testing.T) func() error {
			a, _ := badinput.Socketpair(t)
			return func() error {
				_, err := conn.New(a, &conn.Limits{HighWater: 1 << 10, LowWater: 2 << 10})
				return err
			}
		}},
		{Name: "conn.Limits{MaxQueued: 1000}.Validate", Setup: badinput.Call(func() error {
			return conn.Limits{MaxQueued: 1000}.Validate()
		})},
		{Name: "conn.Conn.Init twice", Setup: func(t *testing.T) func() error {
			c := biConn(t, nil)
			b, _ := badinput.Socketpair(t)
			return func() error { return c.Init(b, nil) }
		}},
		{Name: "conn.Conn.Read after Close", Want: net.ErrClosed, Setup: closed(func(c *conn.Conn) error {
			_, err := c.Read(make([]byte, 8))
			return err
		})},
		{Name: "conn.Conn.Write after Close", Want: net.ErrClosed, Setup: closed(func(c *conn.Conn) error {
			_, err := c.Write([]byte("x"))
			return err
		})},
		{Name: "conn.Conn.Write(empty) after Close", Want: net.ErrClosed, Setup: closed(func(c *conn.Conn) error {
			_, err := c.Write(nil)
			return err
		})},
		{Name: "conn.Conn.Flush after Close", Want: net.ErrClosed, Setup: closed(func(c *conn.Conn) error {
			return c.Flush()
		})},
		{Name: "conn.Conn.CloseWrite after Close", Want: net.ErrClosed, Setup: closed(func(c *conn.Conn) error {
			return c.CloseWrite()
		})},
		{Name: "conn.Conn.Close twice", Want: net.ErrClosed, Setup: closed(func(c *conn.Conn) error {
			return c.Close()
		})},
		{Name: "conn.Conn.Fd after Close → -1", OK: true, Setup: closed(func(c *conn.Conn) error {
			if c.Fd() != -1 || c.Pending() != 0 {
				return fmt.Errorf("Fd %d, Pending %d; want -1, 0", c.Fd(), c.Pending())
			}
			return nil
		})},
		{Name: "conn.Conn.Write(nil) → 0, nil", OK: true, Setup: open(func(c *conn.Conn) error {
			return badinput.ZeroN(c.Write(nil))
		})},
		{Name: "conn.Conn.Write(empty) → 0, nil", OK: true, Setup: open(func(c *conn.Conn) error {
			return badinput.ZeroN(c.Write([]byte{}))
		})},
		{Name: "conn.Conn.Read(empty) → 0, nil", OK: true, Setup: open(func(c *conn.Conn) error {
			return badinput.ZeroN(c.Read(nil))
		})},
		{Name: "conn.Conn.Read with no data", Want: conn.ErrWouldBlock, Setup: open(func(c *conn.Conn) error {
			_, err := c.Read(make([]byte, 8))
			return err
		})},
		{Name: "conn.Conn.Write larger than MaxQueued", Want: conn.ErrQueueFull, Setup: open(func(c *conn.Conn) error {
			n, err := c.Write(make([]byte, conn.DefaultLimits().MaxQueued+1))
			if n != 0 || c.Pending() != 0 {
				return fmt.Errorf("n %d, Pending %d after a refused Write; want 0, 0", n, c.Pending())
			}
			return err
		})},
		{Name: "conn.Conn.Write past MaxQueued to a peer that never reads", Want: conn.ErrQueueFull, Setup: func(t *testing.T) func() error {
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
		{Name: "conn.Conn zero value Write",
			Setup: badinput.Call(func() error {
				var c conn.Conn
				_, err := c.Write([]byte("x"))
				return err
			})},
	}
}
