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
	badinput.Run(t, netconnRows())
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

func netconnRows() []badinput.Row {
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
	return []badinput.Row{
		{Name: "netconn.Listen(udp)", Setup: badinput.Call(func() error {
			_, err := Listen("udp", "127.0.0.1:0")
			return err
		})},
		{Name: "netconn.Listen(port -1)", Setup: badinput.Call(func() error {
			_, err := Listen("tcp", "127.0.0.1:-1")
			return err
		})},
		{Name: "netconn.Listen(unix path too long)", Setup: badinput.Call(func() error {
			_, err := Listen("unix", longUnix)
			return err
		})},
		{Name: "netconn.Listen(address in use)", Want: unix.EADDRINUSE, Setup: func(t *testing.T) func() error {
			ln := biNetListener(t)
			return func() error {
				_, err := Listen("tcp", ln.Addr().String())
				return err
			}
		}},
		{Name: "netconn.Dial(sctp)", Setup: badinput.Call(func() error {
			_, err := Dial("sctp", "127.0.0.1:9")
			return err
		})},
		{Name: "netconn.Dial(udp, no port)", Setup: badinput.Call(func() error {
			_, err := Dial("udp", "127.0.0.1")
			return err
		})},
		{Name: "netconn.ListenPacket(tcp)", Setup: badinput.Call(func() error {
			_, err := ListenPacket("tcp", "127.0.0.1:0")
			return err
		})},
		{Name: "netconn.ListenPacket(udp4 on an IPv6 address)", Setup: badinput.Call(func() error {
			_, err := ListenPacket("udp4", "[::1]:0")
			return err
		})},
		{Name: "netconn.ListenPacket(unixgram, no path)", Setup: badinput.Call(func() error {
			_, err := ListenPacket("unixgram", "")
			return err
		})},
		{Name: "netconn.Dial(empty address)", Want: errMissingAddress, Setup: badinput.Call(func() error {
			_, err := Dial("tcp", "")
			return err
		})},
		{Name: "netconn.Dial(garbage address)", Setup: badinput.Call(func() error {
			_, err := Dial("tcp", "no port here")
			return err
		})},
		{Name: "netconn.Dial(refused)", Want: unix.ECONNREFUSED, Setup: func(t *testing.T) func() error {
			addr := refusedAddr(t)
			return func() error {
				_, err := Dial("tcp", addr)
				return err
			}
		}},
		{Name: "netconn.Dial(unix, no such socket)", Setup: badinput.Call(func() error {
			_, err := Dial("unix", "/nonexistent/netconn-badinput.sock")
			return err
		})},
		{Name: "netconn.DialContext(canceled ctx)", Want: context.Canceled, Setup: func(t *testing.T) func() error {
			ln := biNetListener(t)
			return func() error {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				_, err := DialContext(ctx, "tcp", ln.Addr().String())
				return err
			}
		}},
		{Name: "netconn.Config.Listen(closed Group)", Want: reactor.ErrLoopClosed, Setup: func(t *testing.T) func() error {
			cfg := closedGroup(t)
			return func() error {
				_, err := cfg.Listen("tcp", "127.0.0.1:0")
				return err
			}
		}},
		{Name: "netconn.Config.Dial(closed Group)", Want: reactor.ErrLoopClosed, Setup: func(t *testing.T) func() error {
			cfg := closedGroup(t)
			ln := biNetListener(t)
			return func() error {
				_, err := cfg.Dial("tcp", ln.Addr().String())
				return err
			}
		}},
		{Name: "netconn.Listen listener Accept after Close", Want: net.ErrClosed, Setup: func(t *testing.T) func() error {
			ln := biNetListener(t)
			if err := ln.Close(); err != nil {
				t.Fatal(err)
			}
			return func() error {
				_, err := ln.Accept()
				return err
			}
		}},
		{Name: "netconn.Listen listener Close twice", Want: net.ErrClosed, Setup: func(t *testing.T) func() error {
			ln := biNetListener(t)
			if err := ln.Close(); err != nil {
				t.Fatal(err)
			}
			return ln.Close
		}},
		{Name: "netconn.Conn.Read after Close", Want: net.ErrClosed, Setup: closedConn(func(c *Conn) error {
			_, err := c.Read(make([]byte, 8))
			return err
		})},
		{Name: "netconn.Conn.Write after Close", Want: net.ErrClosed, Setup: closedConn(func(c *Conn) error {
			_, err := c.Write([]byte("x"))
			return err
		})},
		{Name: "netconn.Conn.SetDeadline after Close", Want: net.ErrClosed, Setup: closedConn(func(c *Conn) error {
			return c.SetDeadline(time.Now())
		})},
		{Name: "netconn.Conn.SetNoDelay after Close", Want: net.ErrClosed, Setup: closedConn(func(c *Conn) error {
			return c.SetNoDelay(true)
		})},
		{Name: "netconn.Conn.CloseWrite after Close", Want: net.ErrClosed, Setup: closedConn(func(c *Conn) error {
			return c.CloseWrite()
		})},
		{Name: "netconn.Conn.SyscallConn Control after Close", Want: net.ErrClosed, Setup: closedConn(func(c *Conn) error {
			rc, err := c.SyscallConn()
			if err != nil {
				return err
			}
			return rc.Control(func(uintptr) {})
		})},
		{Name: "netconn.Conn.Close twice", Want: net.ErrClosed, Setup: closedConn(func(c *Conn) error {
			return c.Close()
		})},
		{Name: "netconn.Conn.Write(empty) → 0, nil", OK: true, Setup: open(func(c *Conn) error {
			return badinput.ZeroN(c.Write(nil))
		})},
		{Name: "netconn.Conn.Read(empty) → 0, nil", OK: true, Setup: open(func(c *Conn) error {
			return badinput.ZeroN(c.Read(nil))
		})},
		{Name: "netconn.Conn deadline in the past", Want: os.ErrDeadlineExceeded, Setup: open(func(c *Conn) error {
			c.SetReadDeadline(time.Unix(1, 0))
			_, err := c.Read(make([]byte, 1))
			return err
		})},
	}
}
