package netconn

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor"
	"github.com/muxkit/reactor/internal/badinput"
	"github.com/muxkit/reactor/internal/sock"
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

// TestBadInput feeds the package's exported functions the inputs a caller
// gets wrong: networks it does not serve, bad and refused addresses, an
// ended context, a closed group, calls after Close. Each must give a clear
// error (the documented sentinel where there is one), never a panic or a
// hang; where the documented answer is success (a zero-length read or
// write), that is asserted instead. The rows use the shared group, as a
// caller of Listen and Dial does.
func TestBadInput(t *testing.T) {
	netCheckLeaks(t)
	t.Setenv(reactor.BackendEnv, "")
	var table []badinput.Row
	for _, r := range netconnRows() {
		table = append(table, badinput.Row{Name: r.name, Setup: r.setup, Want: r.want, OK: r.ok})
	}
	badinput.Run(t, table)
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

// biNetListener returns a Listen listener, closed when the test ends.
func biNetListener(t *testing.T) net.Listener {
	t.Helper()
	ln, err := Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// biNetConn returns a Dial connection to an echo peer, closed when the
// test ends.
func biNetConn(t *testing.T) *Conn {
	t.Helper()
	ln := biNetListener(t)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()
	c, err := Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*Conn)
}

// refusedAddr returns a loopback address bound but not listening: a
// connect to it is refused.
func refusedAddr(t *testing.T) string {
	t.Helper()
	fd, err := sock.Socket(unix.AF_INET)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", sa.(*unix.SockaddrInet4).Port)
}

// closedGroup returns a Config on a group that has been closed.
func closedGroup(t *testing.T) Config {
	t.Helper()
	g, err := reactor.NewGroup(reactor.GroupConfig{Loops: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	return Config{Group: g}
}

func netconnRows() []badInput {
	closedConn := func(fn func(c *Conn) error) func(*testing.T) func() error {
		return func(t *testing.T) func() error {
			c := biNetConn(t)
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			return func() error { return fn(c) }
		}
	}
	open := func(fn func(c *Conn) error) func(*testing.T) func() error {
		return func(t *testing.T) func() error {
			c := biNetConn(t)
			return func() error { return fn(c) }
		}
	}
	longUnix := "/tmp/" + strings.Repeat("y", 200)
	return []badInput{
		{name: "netconn.Listen(udp)", setup: call(func() error {
			_, err := Listen("udp", "127.0.0.1:0")
			return err
		})},
		{name: "netconn.Listen(port -1)", setup: call(func() error {
			_, err := Listen("tcp", "127.0.0.1:-1")
			return err
		})},
		{name: "netconn.Listen(unix path too long)", setup: call(func() error {
			_, err := Listen("unix", longUnix)
			return err
		})},
		{name: "netconn.Listen(address in use)", want: unix.EADDRINUSE, setup: func(t *testing.T) func() error {
			ln := biNetListener(t)
			return func() error {
				_, err := Listen("tcp", ln.Addr().String())
				return err
			}
		}},
		{name: "netconn.Dial(udp)", setup: call(func() error {
			_, err := Dial("udp", "127.0.0.1:9")
			return err
		})},
		{name: "netconn.Dial(empty address)", want: errMissingAddress, setup: call(func() error {
			_, err := Dial("tcp", "")
			return err
		})},
		{name: "netconn.Dial(garbage address)", setup: call(func() error {
			_, err := Dial("tcp", "no port here")
			return err
		})},
		{name: "netconn.Dial(refused)", want: unix.ECONNREFUSED, setup: func(t *testing.T) func() error {
			addr := refusedAddr(t)
			return func() error {
				_, err := Dial("tcp", addr)
				return err
			}
		}},
		{name: "netconn.Dial(unix, no such socket)", setup: call(func() error {
			_, err := Dial("unix", "/nonexistent/netconn-badinput.sock")
			return err
		})},
		{name: "netconn.DialContext(canceled ctx)", want: context.Canceled, setup: func(t *testing.T) func() error {
			ln := biNetListener(t)
			return func() error {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				_, err := DialContext(ctx, "tcp", ln.Addr().String())
				return err
			}
		}},
		{name: "netconn.Config.Listen(closed Group)", want: reactor.ErrLoopClosed, setup: func(t *testing.T) func() error {
			cfg := closedGroup(t)
			return func() error {
				_, err := cfg.Listen("tcp", "127.0.0.1:0")
				return err
			}
		}},
		{name: "netconn.Config.Dial(closed Group)", want: reactor.ErrLoopClosed, setup: func(t *testing.T) func() error {
			cfg := closedGroup(t)
			ln := biNetListener(t)
			return func() error {
				_, err := cfg.Dial("tcp", ln.Addr().String())
				return err
			}
		}},
		{name: "netconn.Listen listener Accept after Close", want: net.ErrClosed, setup: func(t *testing.T) func() error {
			ln := biNetListener(t)
			if err := ln.Close(); err != nil {
				t.Fatal(err)
			}
			return func() error {
				_, err := ln.Accept()
				return err
			}
		}},
		{name: "netconn.Listen listener Close twice", want: net.ErrClosed, setup: func(t *testing.T) func() error {
			ln := biNetListener(t)
			if err := ln.Close(); err != nil {
				t.Fatal(err)
			}
			return ln.Close
		}},
		{name: "netconn.Conn.Read after Close", want: net.ErrClosed, setup: closedConn(func(c *Conn) error {
			_, err := c.Read(make([]byte, 8))
			return err
		})},
		{name: "netconn.Conn.Write after Close", want: net.ErrClosed, setup: closedConn(func(c *Conn) error {
			_, err := c.Write([]byte("x"))
			return err
		})},
		{name: "netconn.Conn.SetDeadline after Close", want: net.ErrClosed, setup: closedConn(func(c *Conn) error {
			return c.SetDeadline(time.Now())
		})},
		{name: "netconn.Conn.SetNoDelay after Close", want: net.ErrClosed, setup: closedConn(func(c *Conn) error {
			return c.SetNoDelay(true)
		})},
		{name: "netconn.Conn.CloseWrite after Close", want: net.ErrClosed, setup: closedConn(func(c *Conn) error {
			return c.CloseWrite()
		})},
		{name: "netconn.Conn.SyscallConn Control after Close", want: net.ErrClosed, setup: closedConn(func(c *Conn) error {
			rc, err := c.SyscallConn()
			if err != nil {
				return err
			}
			return rc.Control(func(uintptr) {})
		})},
		{name: "netconn.Conn.Close twice", want: net.ErrClosed, setup: closedConn(func(c *Conn) error {
			return c.Close()
		})},
		{name: "netconn.Conn.Write(empty) → 0, nil", ok: true, setup: open(func(c *Conn) error {
			return zeroN(c.Write(nil))
		})},
		{name: "netconn.Conn.Read(empty) → 0, nil", ok: true, setup: open(func(c *Conn) error {
			return zeroN(c.Read(nil))
		})},
		{name: "netconn.Conn deadline in the past", want: os.ErrDeadlineExceeded, setup: open(func(c *Conn) error {
			c.SetReadDeadline(time.Unix(1, 0))
			_, err := c.Read(make([]byte, 1))
			return err
		})},
	}
}
