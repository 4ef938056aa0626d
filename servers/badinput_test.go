package servers_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor"
	"github.com/muxkit/reactor/internal/badinput"
	"github.com/muxkit/reactor/internal/leakcheck"
	"github.com/muxkit/reactor/internal/servertest"
	"github.com/muxkit/reactor/servers"
	"github.com/muxkit/reactor/servers/iterative"
	"github.com/muxkit/reactor/servers/multiplex"
	"github.com/muxkit/reactor/servers/multiprocess"
	"github.com/muxkit/reactor/servers/threadpool"
)

// init is the re-exec hook of the multiprocess rows: a child that a
// multiprocess.Server started from this binary serves its client with
// servers.Echo here and exits, before TestMain; in this process it
// returns at once. It is an init and not a line of TestMain so that the
// hook sits beside the rows that need it.
func init() {
	multiprocess.ServeChild(nil)
}

// TestBadInput feeds the package's exported functions, and the four models
// through the Server interface, the inputs a caller gets wrong: networks
// it does not serve, bad and used addresses, negative and closed fds, calls
// after Close, a nil or closed Listener, a Server served twice or shut down
// first, negative sizes. Each must give a clear error (the documented
// sentinel where there is one), never a panic or a hang; where the
// documented answer is success (an idempotent Close, a zero-length read or
// write), that is asserted instead.
func TestBadInput(t *testing.T) {
	leakcheck.Check(t)
	t.Setenv(reactor.BackendEnv, "") // the multiplex model serves on the default backend
	badinput.Run(t, append(serversRows(), modelRows()...))
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

func serversRows() []badinput.Row {
	closedConn := func(fn func(c *servers.Conn) error) func(*testing.T) func() error {
		return func(t *testing.T) func() error {
			a, _ := badinput.Socketpair(t)
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
			a, _ := badinput.Socketpair(t)
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
	return []badinput.Row{
		{Name: "servers.Listen(udp)", Setup: badinput.Call(func() error {
			_, err := servers.Listen("udp", "127.0.0.1:0")
			return err
		})},
		{Name: "servers.Listen(port 99999)", Setup: badinput.Call(func() error {
			_, err := servers.Listen("tcp", "127.0.0.1:99999")
			return err
		})},
		{Name: "servers.Listen(address in use)", Want: unix.EADDRINUSE, Setup: func(t *testing.T) func() error {
			ln := biServersListener(t)
			return func() error {
				_, err := servers.Listen("tcp", ln.Addr().String())
				return err
			}
		}},
		{Name: "servers.FileListener(-1)", Want: unix.EBADF, Setup: badinput.Call(func() error {
			_, err := servers.FileListener(-1)
			return err
		})},
		{Name: "servers.FileListener(closed fd)", Want: unix.EBADF, Setup: func(t *testing.T) func() error {
			fd := badinput.UnusedFD(t)
			return func() error {
				_, err := servers.FileListener(fd)
				return err
			}
		}},
		{Name: "servers.NewConn(-1)", Want: unix.EBADF, Setup: badinput.Call(func() error {
			_, err := servers.NewConn(-1)
			return err
		})},
		{Name: "servers.NewConn(closed fd)", Want: unix.EBADF, Setup: func(t *testing.T) func() error {
			fd := badinput.UnusedFD(t)
			return func() error {
				_, err := servers.NewConn(fd)
				return err
			}
		}},
		{Name: "servers.Listener.Accept after Close", Want: net.ErrClosed, Setup: func(t *testing.T) func() error {
			ln := biServersListener(t)
			if err := ln.Close(); err != nil {
				t.Fatal(err)
			}
			return func() error {
				_, err := ln.Accept()
				return err
			}
		}},
		{Name: "servers.Listener.Close twice → nil (idempotent)", OK: true, Setup: func(t *testing.T) func() error {
			ln := biServersListener(t)
			if err := ln.Close(); err != nil {
				t.Fatal(err)
			}
			return ln.Close
		}},
		{Name: "servers.Conn.Read after Close", Want: net.ErrClosed, Setup: closedConn(func(c *servers.Conn) error {
			_, err := c.Read(make([]byte, 8))
			return err
		})},
		{Name: "servers.Conn.Write after Close", Want: net.ErrClosed, Setup: closedConn(func(c *servers.Conn) error {
			_, err := c.Write([]byte("x"))
			return err
		})},
		{Name: "servers.Conn.Close twice → nil (idempotent)", OK: true, Setup: closedConn(func(c *servers.Conn) error {
			return c.Close()
		})},
		{Name: "servers.Conn.Shutdown after Close → nil (does nothing)", OK: true, Setup: closedConn(func(c *servers.Conn) error {
			return c.Shutdown(unix.SHUT_RDWR)
		})},
		{Name: "servers.Conn.Shutdown(bad how)", Setup: open(func(c *servers.Conn) error {
			return c.Shutdown(99)
		})},
		{Name: "servers.Conn.Write(empty) → 0, nil", OK: true, Setup: open(func(c *servers.Conn) error {
			return badinput.ZeroN(c.Write(nil))
		})},
		{Name: "servers.Conn.Read(empty) → 0, nil", OK: true, Setup: open(func(c *servers.Conn) error {
			return badinput.ZeroN(c.Read(nil))
		})},
		{Name: "servers.Base.Serve(0 accept loops)", Setup: func(t *testing.T) func() error {
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
	badinput.Echo(t, addr)
	return addr
}

func modelRows() []badinput.Row {
	var rows []badinput.Row
	for _, m := range biModels() {
		pre := "servers/" + m.name + "/"
		rows = append(rows,
			badinput.Row{Name: pre + "Serve(nil)", Setup: badinput.Call(func() error {
				return m.new().Serve(nil)
			})},
			badinput.Row{Name: pre + "Serve twice, a client being served", Setup: func(t *testing.T) func() error {
				s := m.new()
				addr := biStartModel(t, s)
				c, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() }) // before Shutdown: cleanups run last first
				if err := badinput.RoundTrip(c, "being served"); err != nil {
					t.Fatal(err)
				}
				ln := biServersListener(t)
				return func() error { return s.Serve(ln) }
			}},
			badinput.Row{Name: pre + "Shutdown before Serve → nil, then Serve", Want: servers.ErrServerClosed, Setup: func(t *testing.T) func() error {
				s := m.new()
				ln := biServersListener(t)
				return func() error {
					if err := s.Shutdown(context.Background()); err != nil {
						return fmt.Errorf("Shutdown before Serve: %v", err) // %v: not the want
					}
					return s.Serve(ln)
				}
			}},
			badinput.Row{Name: pre + "Shutdown twice → nil or ErrServerClosed", OK: true, Setup: func(t *testing.T) func() error {
				s := m.new()
				biStartModel(t, s)
				return func() error {
					if err := s.Shutdown(context.Background()); err != nil {
						return fmt.Errorf("first Shutdown: %v", err)
					}
					return badinput.NilOr(s.Shutdown(context.Background()), servers.ErrServerClosed)
				}
			}},
			badinput.Row{Name: pre + "Serve(closed Listener)", Setup: func(t *testing.T) func() error {
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
		rows = append(rows, badinput.Row{Name: "servers/" + b.name, Setup: func(t *testing.T) func() error {
			ln := biServersListener(t)
			t.Cleanup(func() { b.s.Shutdown(context.Background()) })
			return func() error { return b.s.Serve(ln) }
		}})
	}
	return rows
}
