package reactor_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor"
	"github.com/muxkit/reactor/conn"
	"github.com/muxkit/reactor/internal/badinput"
	"github.com/muxkit/reactor/internal/leakcheck"
	"github.com/muxkit/reactor/internal/sock"
)

// TestBadInput feeds the root package's exported functions the inputs a
// caller gets wrong: bad Server options and backends, negative, closed and
// huge fds, bad and used addresses, calls after Close or Shutdown, a
// server started twice, a Conn used after its loop ended, datagram
// sockets opened on networks and addresses they cannot have and written
// to wrongly. Each must give a clear error (the documented sentinel where
// there is one, else the *net.OpError net's calls return), never a panic
// or a hang; where the documented answer is success (a zero-length
// write), that is asserted instead. The other packages' tables are in
// their own directories, run by the same runner (internal/badinput).
func TestBadInput(t *testing.T) {
	leakcheck.Check(t)
	t.Setenv(reactor.BackendEnv, "")
	rows := append(serverRows(), reactorConnRows()...)
	rows = append(rows, packetOpenRows()...)
	badinput.Run(t, append(rows, packetConnRows()...))
}

// biListener returns a listening loopback TCP socket's fd, closed when the
// test ends.
func biListener(t *testing.T) int {
	t.Helper()
	fd, _, err := sock.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
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
	badinput.Echo(t, s.Addr().String())
	return s.Addr().String()
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

func serverRows() []badinput.Row {
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
				fd, _ = badinput.Socketpair(t)
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
	return []badinput.Row{
		{Name: "Server nil Handler", Setup: badinput.Call(func() error { return listenServe(&reactor.Server{}) })},
		{Name: "Server Backend 99", Want: errors.ErrUnsupported, Setup: badinput.Call(func() error {
			return listenServe(&reactor.Server{Handler: reactor.Echo, Backend: 99})
		})},
		{Name: "Server Backend not on this OS", Want: errors.ErrUnsupported, Setup: badinput.Call(func() error {
			return listenServe(&reactor.Server{Handler: reactor.Echo, Backend: badinput.UnavailableBackend()})
		})},
		{Name: "Server REACTOR_BACKEND=bogus", Setup: func(t *testing.T) func() error {
			t.Setenv(reactor.BackendEnv, "bogus")
			return func() error { return listenServe(&reactor.Server{Handler: reactor.Echo}) }
		}},
		{Name: "Server.Listen alone, REACTOR_BACKEND=bogus", Setup: func(t *testing.T) func() error {
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
		{Name: "ResolveBackend(0) with REACTOR_BACKEND=bogus", Setup: func(t *testing.T) func() error {
			t.Setenv(reactor.BackendEnv, "bogus")
			return func() error {
				_, err := reactor.ResolveBackend(0)
				return err
			}
		}},
		{Name: "Server negative Loops", Setup: badinput.Call(func() error {
			return listenServe(&reactor.Server{Handler: reactor.Echo, Loops: -1})
		})},
		{Name: "Server Loops math.MinInt", Setup: badinput.Call(func() error {
			return listenServe(&reactor.Server{Handler: reactor.Echo, Loops: math.MinInt})
		})},
		{Name: "Server negative MaxConns", Setup: badinput.Call(func() error {
			return listenServe(&reactor.Server{Handler: reactor.Echo, MaxConns: -1})
		})},
		{Name: "Server negative IdleTimeout", Setup: badinput.Call(func() error {
			return listenServe(&reactor.Server{Handler: reactor.Echo, IdleTimeout: -1})
		})},
		{Name: "Server bad Limits", Setup: badinput.Call(func() error {
			return listenServe(&reactor.Server{Handler: reactor.Echo, Limits: conn.Limits{MaxQueued: -1}})
		})},
		{Name: "Server.Serve without Listen", Setup: badinput.Call(func() error {
			return (&reactor.Server{Handler: reactor.Echo}).Serve()
		})},
		{Name: "Server.ServeFD(-1)", Setup: badinput.Call(func() error {
			return (&reactor.Server{Handler: reactor.Echo}).ServeFD(-1)
		})},
		{Name: "Server.ServeFD(math.MaxInt)", Setup: badinput.Call(func() error {
			return (&reactor.Server{Handler: reactor.Echo}).ServeFD(math.MaxInt)
		})},
		{Name: "Server.ServeFD(closed fd)", Want: unix.EBADF, Setup: func(t *testing.T) func() error {
			fd := badinput.UnusedFD(t)
			return func() error { return (&reactor.Server{Handler: reactor.Echo}).ServeFD(fd) }
		}},
		{Name: "Server.ServeFD(1<<32+listening fd)", Setup: func(t *testing.T) func() error {
			fd := biListener(t)
			return func() error { return (&reactor.Server{Handler: reactor.Echo, Loops: 1}).ServeFD(1<<32 + fd) }
		}},
		{Name: "Server.ServeFD(socketpair end, not listening)", Setup: nonListening("socketpair")},
		{Name: "Server.ServeFD(unconnected TCP socket, not listening)", Setup: nonListening("tcp")},
		{Name: "Server.ServeFD with ReusePort", Want: errors.ErrUnsupported, Setup: func(t *testing.T) func() error {
			fd := biListener(t)
			return func() error {
				return (&reactor.Server{Handler: reactor.Echo, ReusePort: true}).ServeFD(fd)
			}
		}},
		{Name: "Server.Listen(unix) with ReusePort", Want: errors.ErrUnsupported, Setup: badinput.Call(func() error {
			s := &reactor.Server{Handler: reactor.Echo, ReusePort: true, Loops: 1}
			return s.Listen("unix", "/tmp/reactor-badinput-reuseport.sock")
		})},
		{Name: "Server.Listen(udp)", Setup: badinput.Call(func() error {
			return (&reactor.Server{Handler: reactor.Echo}).Listen("udp", "127.0.0.1:0")
		})},
		{Name: "Server.Listen(empty network)", Setup: badinput.Call(func() error {
			return (&reactor.Server{Handler: reactor.Echo}).Listen("", "127.0.0.1:0")
		})},
		{Name: "Server.Listen(port 99999)", Setup: badinput.Call(func() error {
			return (&reactor.Server{Handler: reactor.Echo}).Listen("tcp", "127.0.0.1:99999")
		})},
		{Name: "Server.Listen(garbage address)", Setup: badinput.Call(func() error {
			return (&reactor.Server{Handler: reactor.Echo}).Listen("tcp", "::::not an address")
		})},
		{Name: "Server.Listen(unix path too long)", Setup: badinput.Call(func() error {
			return (&reactor.Server{Handler: reactor.Echo}).Listen("unix", longUnix)
		})},
		{Name: "Server.Listen(address in use)", Want: unix.EADDRINUSE, Setup: func(t *testing.T) func() error {
			addr := biServe(t, &reactor.Server{Handler: reactor.Echo, Loops: 1})
			return func() error {
				s := &reactor.Server{Handler: reactor.Echo}
				err := s.Listen("tcp", addr)
				s.Shutdown(context.Background())
				return err
			}
		}},
		{Name: "Server.Listen twice", Setup: func(t *testing.T) func() error {
			s := &reactor.Server{Handler: reactor.Echo}
			if err := s.Listen("tcp", "127.0.0.1:0"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { shutNow(t, s) })
			return func() error { return s.Listen("tcp", "127.0.0.1:0") }
		}},
		{Name: "Server.Addr before Listen → nil", OK: true, Setup: badinput.Call(func() error {
			if a := (&reactor.Server{}).Addr(); a != nil {
				return fmt.Errorf("Addr %v, want nil", a)
			}
			return nil
		})},
		{Name: "Server.Serve twice", Setup: served(func(s *reactor.Server) error { return s.Serve() })},
		{Name: "Server.ServeFD while serving", Setup: served(func(s *reactor.Server) error { return s.ServeFD(0) })},
		{Name: "Server.Listen while serving", Setup: served(func(s *reactor.Server) error { return s.Listen("tcp", "127.0.0.1:0") })},
		{Name: "Server.Shutdown before start → nil", OK: true, Setup: badinput.Call(func() error {
			return (&reactor.Server{Handler: reactor.Echo}).Shutdown(context.Background())
		})},
		{Name: "Server.Shutdown twice before start → nil or ErrServerClosed", OK: true, Setup: shut(func(s *reactor.Server) error {
			return badinput.NilOr(s.Shutdown(context.Background()), reactor.ErrServerClosed)
		})},
		{Name: "Server.Shutdown twice after serving → nil or ErrServerClosed", OK: true, Setup: served(func(s *reactor.Server) error {
			if err := s.Shutdown(context.Background()); err != nil {
				return fmt.Errorf("first Shutdown: %v", err)
			}
			return badinput.NilOr(s.Shutdown(context.Background()), reactor.ErrServerClosed)
		})},
		{Name: "Server.Shutdown(ctx already done) before start → nil", OK: true, Setup: badinput.Call(func() error {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return (&reactor.Server{Handler: reactor.Echo}).Shutdown(ctx)
		})},
		{Name: "Server.Serve after Shutdown", Want: reactor.ErrServerClosed, Setup: shut(func(s *reactor.Server) error { return s.Serve() })},
		{Name: "Server.ServeFD after Shutdown", Want: reactor.ErrServerClosed, Setup: shut(func(s *reactor.Server) error { return s.ServeFD(0) })},
		{Name: "Server.ListenAndServe after Shutdown", Want: reactor.ErrServerClosed,
			Setup: shut(func(s *reactor.Server) error { return s.ListenAndServe("tcp", "127.0.0.1:0") })},
		{Name: "Server.Serve after Listen and Shutdown", Setup: func(t *testing.T) func() error {
			s := &reactor.Server{Handler: reactor.Echo}
			if err := s.Listen("tcp", "127.0.0.1:0"); err != nil {
				t.Fatal(err)
			}
			shutNow(t, s)
			return func() error { return s.Serve() }
		}, Want: reactor.ErrServerClosed},
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

func reactorConnRows() []badinput.Row {
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
	return []badinput.Row{
		{Name: "reactor.Conn.Write after Close", Want: net.ErrClosed, Setup: closedLive(true, func(c *reactor.Conn) error {
			_, err := c.Write([]byte("x"))
			return err
		})},
		{Name: "reactor.Conn.Close twice", Want: net.ErrClosed, Setup: closedLive(true, func(c *reactor.Conn) error {
			return c.Close()
		})},
		{Name: "reactor.Conn.AsyncWrite after Close → nil (bytes dropped)", OK: true, Setup: closedLive(false, func(c *reactor.Conn) error {
			return c.AsyncWrite([]byte("x"))
		})},
		{Name: "reactor.Conn.AsyncClose after Close → nil", OK: true, Setup: closedLive(false, func(c *reactor.Conn) error {
			return c.AsyncClose()
		})},
		// Close is graceful: the fd stays open until the peer's end of file
		// (or a drain timeout), so Fd turns -1 once the client has closed.
		{Name: "reactor.Conn.Fd, Pending after Close and the peer's close → -1, 0", OK: true, Setup: func(t *testing.T) func() error {
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
		{Name: "reactor.Conn.Write(nil) → 0, nil", OK: true, Setup: live(func(c *reactor.Conn) error {
			return badinput.ZeroN(c.Write(nil))
		})},
		{Name: "reactor.Conn.AsyncWrite(nil) → nil", OK: true, Setup: func(t *testing.T) func() error {
			_, c, _ := biHandlerConn(t)
			return func() error { return c.AsyncWrite(nil) }
		}},
		{Name: "reactor.Conn.Write larger than MaxQueued (connection stays open)", Want: conn.ErrQueueFull, Setup: func(t *testing.T) func() error {
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
		{Name: "reactor.Conn.Write after Shutdown", Want: net.ErrClosed, Setup: afterShutdown(func(c *reactor.Conn) error {
			_, err := c.Write([]byte("x"))
			return err
		})},
		{Name: "reactor.Conn.Close after Shutdown", Want: net.ErrClosed, Setup: afterShutdown(func(c *reactor.Conn) error {
			return c.Close()
		})},
		{Name: "reactor.Conn.AsyncWrite after Shutdown", Want: reactor.ErrServerClosed, Setup: afterShutdown(func(c *reactor.Conn) error {
			return c.AsyncWrite([]byte("x"))
		})},
		{Name: "reactor.Conn.AsyncClose after Shutdown", Want: reactor.ErrServerClosed, Setup: afterShutdown(func(c *reactor.Conn) error {
			return c.AsyncClose()
		})},
		{Name: "reactor.Loop.Post after Shutdown", Want: reactor.ErrLoopClosed, Setup: afterShutdown(func(c *reactor.Conn) error {
			ran := false
			err := c.Loop().Post(func() { ran = true })
			if ran {
				return errors.New("a function posted after Shutdown ran")
			}
			return err
		})},
		{Name: "reactor.Loop.AfterFunc after Shutdown → a Timer that never fires, no panic (no error to return)", OK: true, Setup: afterShutdown(func(c *reactor.Conn) error {
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
		{Name: "reactor.Conn.Pending, Fd, addresses after Shutdown → 0, -1, no panic", OK: true, Setup: afterShutdown(func(c *reactor.Conn) error {
			if c.Fd() != -1 || c.Pending() != 0 {
				return fmt.Errorf("Fd %d, Pending %d; want -1, 0", c.Fd(), c.Pending())
			}
			_, _, _ = c.LocalAddr(), c.RemoteAddr(), c.String()
			return nil
		})},
	}
}

// biLoop returns a loop of a one-loop Group, closed when the test ends,
// and a function that runs fn on it and returns fn's error.
func biLoop(t *testing.T) (*reactor.Loop, func(fn func() error) error) {
	t.Helper()
	g, err := reactor.NewGroup(reactor.GroupConfig{Loops: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	l := g.Loop(0)
	return l, func(fn func() error) error {
		res := make(chan error, 1)
		if err := l.Post(func() { res <- fn() }); err != nil {
			return fmt.Errorf("Post: %v", err)
		}
		return <-res
	}
}

// biNoPacket is a PacketHandler that does nothing.
var biNoPacket = reactor.PacketHandlerFuncs{}

// biPort returns a loopback UDP address in use (bound by a socket closed
// when the test ends).
func biPort(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.LocalAddr().String()
}

// The rows of Server.ListenPacket, Group.ListenPacket, Loop.ListenPacket
// and Loop.DialPacket: networks that are not datagram networks, addresses
// that cannot be bound or reached, bad PacketOptions, and calls at the
// wrong time.
func packetOpenRows() []badinput.Row {
	longPath := "/tmp/" + strings.Repeat("p", 200)
	// server: a Server's ListenPacket with network, address and opt; no
	// socket may be left open (the test's leak check).
	server := func(network, address string, h reactor.PacketHandler, opt *reactor.PacketOptions) func() error {
		return func() error {
			s := &reactor.Server{Loops: 1}
			_, err := s.ListenPacket(network, address, h, opt)
			s.Shutdown(context.Background())
			return err
		}
	}
	serverOp := func(network, address string, want error) func(*testing.T) func() error {
		return badinput.Call(func() error {
			return badinput.NetOp(server(network, address, biNoPacket, nil)(), "listen", network, want)
		})
	}
	group := func(network, address string, h reactor.PacketHandler, opt *reactor.PacketOptions) func(*testing.T) func() error {
		return func(t *testing.T) func() error {
			g, err := reactor.NewGroup(reactor.GroupConfig{Loops: 2})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { g.Close() })
			return func() error {
				ps, err := g.ListenPacket(network, address, h, opt)
				if err == nil || len(ps) != 0 {
					return fmt.Errorf("%d sockets, %v", len(ps), err)
				}
				return badinput.NetOp(err, "listen", network, nil)
			}
		}
	}
	// onLoop: Loop.ListenPacket (listen) or DialPacket on the loop.
	onLoop := func(listen bool, network, address string, opt *reactor.PacketOptions, want error) func(*testing.T) func() error {
		return func(t *testing.T) func() error {
			l, run := biLoop(t)
			return func() error {
				return run(func() error {
					open, op := l.DialPacket, "dial"
					if listen {
						open, op = l.ListenPacket, "listen"
					}
					p, err := open(network, address, biNoPacket, opt)
					if p != nil {
						p.Close()
						return fmt.Errorf("opened %v", p)
					}
					if want == badinput.ErrNetOp {
						return badinput.NetOp(err, op, network, nil)
					}
					return err
				})
			}
		}
	}
	// ended: a loop whose group has closed, called from the test goroutine
	// (no goroutine runs the loop any more).
	ended := func(listen bool) func(*testing.T) func() error {
		return func(t *testing.T) func() error {
			g, err := reactor.NewGroup(reactor.GroupConfig{Loops: 1})
			if err != nil {
				t.Fatal(err)
			}
			if err := g.Close(); err != nil {
				t.Fatal(err)
			}
			l := g.Loop(0)
			return func() error {
				var err error
				if listen {
					_, err = l.ListenPacket("udp4", "127.0.0.1:0", biNoPacket, nil)
				} else {
					_, err = l.DialPacket("udp4", "127.0.0.1:9", biNoPacket, nil)
				}
				return err
			}
		}
	}
	rows := []badinput.Row{
		{Name: "Server.ListenPacket(unixgram, path too long) → OpError, EINVAL", Want: badinput.ErrNetOp, Setup: serverOp("unixgram", longPath, unix.EINVAL)},
		{Name: "Server.ListenPacket(unixgram, no path) → OpError", Want: badinput.ErrNetOp, Setup: serverOp("unixgram", "", nil)},
		{Name: "Server.ListenPacket(unixgram, missing directory) → OpError, ENOENT", Want: badinput.ErrNetOp,
			Setup: serverOp("unixgram", "/nonexistent/reactor-badinput.sock", unix.ENOENT)},
		{Name: "Server.ListenPacket(udp4 on an IPv6 address) → OpError", Want: badinput.ErrNetOp, Setup: serverOp("udp4", "[::1]:0", nil)},
		{Name: "Server.ListenPacket(port 99999) → OpError", Want: badinput.ErrNetOp, Setup: serverOp("udp4", "127.0.0.1:99999", nil)},
		{Name: "Server.ListenPacket(garbage address) → OpError", Want: badinput.ErrNetOp, Setup: serverOp("udp", "::::not an address", nil)},
		{Name: "Server.ListenPacket(address in use) → OpError, EADDRINUSE", Want: badinput.ErrNetOp, Setup: func(t *testing.T) func() error {
			addr := biPort(t)
			return func() error {
				return badinput.NetOp(server("udp4", addr, biNoPacket, nil)(), "listen", "udp4", unix.EADDRINUSE)
			}
		}},
		{Name: "Server.ListenPacket(nil PacketHandler) → OpError", Want: badinput.ErrNetOp, Setup: badinput.Call(func() error {
			return badinput.NetOp(server("udp4", "127.0.0.1:0", nil, nil)(), "listen", "udp4", nil)
		})},
		{Name: "Server.ListenPacket(MaxDatagram 65536)", Setup: badinput.Call(server("udp4", "127.0.0.1:0", biNoPacket, &reactor.PacketOptions{MaxDatagram: 65536}))},
		{Name: "Server.ListenPacket(negative MaxQueued)", Setup: badinput.Call(server("udp4", "127.0.0.1:0", biNoPacket, &reactor.PacketOptions{MaxQueued: -1}))},
		{Name: "Server.ListenPacket(negative ReadBuffer)", Setup: badinput.Call(server("udp4", "127.0.0.1:0", biNoPacket, &reactor.PacketOptions{ReadBuffer: -1}))},
		{Name: "Server.ListenPacket(unixgram with ReusePort)", Want: errors.ErrUnsupported,
			Setup: badinput.Call(server("unixgram", "/tmp/reactor-badinput-reuseport.dgram", biNoPacket, &reactor.PacketOptions{ReusePort: true}))},
		// As Listen, ListenPacket takes a backend it does not know, and
		// Serve refuses it, closing the socket.
		{Name: "Server.ListenPacket(Backend 99), Serve", Want: errors.ErrUnsupported, Setup: badinput.Call(func() error {
			s := &reactor.Server{Backend: 99}
			if _, err := s.ListenPacket("udp4", "127.0.0.1:0", biNoPacket, nil); err != nil {
				return fmt.Errorf("ListenPacket: %w", err)
			}
			return s.Serve()
		})},
		{Name: "Server.ListenPacket(Backend not on this OS)", Want: errors.ErrUnsupported, Setup: badinput.Call(func() error {
			s := &reactor.Server{Backend: badinput.UnavailableBackend()}
			if _, err := s.ListenPacket("udp4", "127.0.0.1:0", biNoPacket, nil); err != nil {
				return err
			}
			return s.Serve()
		})},
		{Name: "Server.ListenPacket while serving", Setup: func(t *testing.T) func() error {
			s := &reactor.Server{Handler: reactor.Echo, Loops: 1}
			biServe(t, s)
			return func() error {
				_, err := s.ListenPacket("udp4", "127.0.0.1:0", biNoPacket, nil)
				return err
			}
		}},
		{Name: "Server.ListenPacket after Shutdown", Want: reactor.ErrServerClosed, Setup: func(t *testing.T) func() error {
			s := &reactor.Server{Loops: 1}
			shutNow(t, s)
			return func() error {
				_, err := s.ListenPacket("udp4", "127.0.0.1:0", biNoPacket, nil)
				return err
			}
		}},
		{Name: "Group.ListenPacket(unixgram, path too long) → OpError", Want: badinput.ErrNetOp, Setup: group("unixgram", longPath, biNoPacket, nil)},
		{Name: "Group.ListenPacket(nil PacketHandler) → OpError", Want: badinput.ErrNetOp, Setup: group("udp4", "127.0.0.1:0", nil, nil)},
		{Name: "Group.ListenPacket(unixgram with ReusePort)", Want: errors.ErrUnsupported, Setup: func(t *testing.T) func() error {
			g, err := reactor.NewGroup(reactor.GroupConfig{Loops: 2})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { g.Close() })
			return func() error {
				_, err := g.ListenPacket("unixgram", "/tmp/reactor-badinput-reuseport.dgram", biNoPacket, &reactor.PacketOptions{ReusePort: true})
				return err
			}
		}},
		{Name: "Group.ListenPacket(MaxDatagram -1)", Setup: func(t *testing.T) func() error {
			g, err := reactor.NewGroup(reactor.GroupConfig{Loops: 1})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { g.Close() })
			return func() error {
				_, err := g.ListenPacket("udp4", "127.0.0.1:0", biNoPacket, &reactor.PacketOptions{MaxDatagram: -1})
				return err
			}
		}},
		{Name: "Group.ListenPacket on one of its loops", Setup: func(t *testing.T) func() error {
			g, err := reactor.NewGroup(reactor.GroupConfig{Loops: 1})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { g.Close() })
			return func() error {
				res := make(chan error, 1)
				g.Loop(0).Post(func() {
					_, err := g.ListenPacket("udp4", "127.0.0.1:0", biNoPacket, nil)
					res <- err
				})
				return <-res
			}
		}},
		{Name: "Group.ListenPacket after Close", Want: reactor.ErrLoopClosed, Setup: func(t *testing.T) func() error {
			g, err := reactor.NewGroup(reactor.GroupConfig{Loops: 1})
			if err != nil {
				t.Fatal(err)
			}
			if err := g.Close(); err != nil {
				t.Fatal(err)
			}
			return func() error {
				_, err := g.ListenPacket("udp4", "127.0.0.1:0", biNoPacket, nil)
				return err
			}
		}},
		{Name: "Loop.ListenPacket(unixgram, path too long)", Want: unix.EINVAL, Setup: onLoop(true, "unixgram", longPath, nil, unix.EINVAL)},
		{Name: "Loop.ListenPacket(nil PacketHandler)", Want: badinput.ErrNetOp, Setup: func(t *testing.T) func() error {
			l, run := biLoop(t)
			return func() error {
				return run(func() error {
					_, err := l.ListenPacket("udp4", "127.0.0.1:0", nil, nil)
					return badinput.NetOp(err, "listen", "udp4", nil)
				})
			}
		}},
		{Name: "Loop.DialPacket(udp4, no port) → OpError", Want: badinput.ErrNetOp, Setup: onLoop(false, "udp4", "127.0.0.1", nil, badinput.ErrNetOp)},
		{Name: "Loop.DialPacket(udp4 to an IPv6 address) → OpError", Want: badinput.ErrNetOp, Setup: onLoop(false, "udp4", "[::1]:9", nil, badinput.ErrNetOp)},
		{Name: "Loop.DialPacket(unixgram, no such socket)", Want: unix.ENOENT, Setup: onLoop(false, "unixgram", "/nonexistent/reactor-badinput.sock", nil, unix.ENOENT)},
		{Name: "Loop.DialPacket(unixgram, path too long)", Want: unix.EINVAL, Setup: onLoop(false, "unixgram", longPath, nil, unix.EINVAL)},
		{Name: "Loop.DialPacket with ReusePort", Want: errors.ErrUnsupported,
			Setup: onLoop(false, "udp4", "127.0.0.1:9", &reactor.PacketOptions{ReusePort: true}, errors.ErrUnsupported)},
		{Name: "Loop.ListenPacket after the loop ended", Want: reactor.ErrLoopClosed, Setup: ended(true)},
		{Name: "Loop.DialPacket after the loop ended", Want: reactor.ErrLoopClosed, Setup: ended(false)},
	}
	// Networks that are not datagram networks, for each way to open.
	for _, network := range []string{"tcp", "", "udp7"} {
		rows = append(rows,
			badinput.Row{Name: fmt.Sprintf("Server.ListenPacket(%q) → OpError", network), Want: badinput.ErrNetOp, Setup: serverOp(network, "127.0.0.1:0", nil)},
			badinput.Row{Name: fmt.Sprintf("Group.ListenPacket(%q) → OpError", network), Want: badinput.ErrNetOp, Setup: group(network, "127.0.0.1:0", biNoPacket, nil)},
			badinput.Row{Name: fmt.Sprintf("Loop.ListenPacket(%q) → OpError", network), Want: badinput.ErrNetOp, Setup: onLoop(true, network, "127.0.0.1:0", nil, badinput.ErrNetOp)},
			badinput.Row{Name: fmt.Sprintf("Loop.DialPacket(%q) → OpError", network), Want: badinput.ErrNetOp, Setup: onLoop(false, network, "127.0.0.1:9", nil, badinput.ErrNetOp)},
		)
	}
	return rows
}

// biPacketConn opens a datagram socket on network (udp4, udp6 or
// unixgram; connected to peer if peer is not "") with opt on a one-loop
// Group, and returns it with a function that runs fn on its loop; errs
// gets what OnError gets. Both end with the test.
func biPacketConn(t *testing.T, network, peer string, opt *reactor.PacketOptions) (*reactor.PacketConn, func(fn func() error) error, chan error) {
	t.Helper()
	l, run := biLoop(t)
	errs := make(chan error, 8)
	h := reactor.PacketHandlerFuncs{Error: func(p *reactor.PacketConn, err error) {
		select {
		case errs <- err:
		default:
		}
	}}
	address := "127.0.0.1:0"
	switch network {
	case "udp6":
		address = "[::1]:0"
	case "unixgram":
		dir, err := os.MkdirTemp("", "bi") // short: a socket path has 107 bytes at most
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		address = filepath.Join(dir, "s")
	}
	var p *reactor.PacketConn
	err := run(func() error {
		var err error
		if peer != "" {
			p, err = l.DialPacket(network, peer, h, opt)
		} else {
			p, err = l.ListenPacket(network, address, h, opt)
		}
		return err
	})
	if err != nil {
		if network == "udp6" {
			t.Skipf("no IPv6 loopback: %v", err)
		}
		t.Fatal(err)
	}
	return p, run, errs
}

// The rows of PacketConn: writes the socket cannot send (refused with
// nothing queued), writes that are documented to succeed, and calls after
// Close and after the loop or the Server ended.
func packetConnRows() []badinput.Row {
	v4 := reactor.AddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:9"))
	v6 := reactor.AddrFromAddrPort(netip.MustParseAddrPort("[::1]:9"))
	path := reactor.AddrFromPath("/tmp/reactor-badinput-peer.dgram")
	// write: fn writes to a fresh socket of network on its loop.
	write := func(network, peer string, opt *reactor.PacketOptions, fn func(p *reactor.PacketConn) error) func(*testing.T) func() error {
		return func(t *testing.T) func() error {
			p, run, _ := biPacketConn(t, network, peer, opt)
			return func() error { return run(func() error { return fn(p) }) }
		}
	}
	// writeTo: WriteTo(b, to) takes all of b, or is refused with nothing
	// queued.
	writeTo := func(network string, b []byte, to reactor.Addr) func(*testing.T) func() error {
		return write(network, "", nil, func(p *reactor.PacketConn) error {
			n, err := p.WriteTo(b, to)
			switch {
			case err == nil && (n != len(b) || p.Queued() != 1):
				return fmt.Errorf("n = %d, %d queued; want %d, 1", n, p.Queued(), len(b))
			case err != nil && (n != 0 || p.Queued() != 0):
				return fmt.Errorf("refused (%v) with n = %d, %d queued", err, n, p.Queued())
			}
			return err
		})
	}
	// closed: fn runs on the loop after p's Close (nothing queued: p is
	// closed at once).
	closed := func(peer string, fn func(p *reactor.PacketConn) error) func(*testing.T) func() error {
		return func(t *testing.T) func() error {
			p, run, _ := biPacketConn(t, "udp4", peer, nil)
			if err := run(p.Close); err != nil {
				t.Fatal(err)
			}
			return func() error { return run(func() error { return fn(p) }) }
		}
	}
	// ended: p's loop has ended (its Group closed); fn runs on the test
	// goroutine.
	ended := func(fn func(p *reactor.PacketConn) error) func(*testing.T) func() error {
		return func(t *testing.T) func() error {
			g, err := reactor.NewGroup(reactor.GroupConfig{Loops: 1})
			if err != nil {
				t.Fatal(err)
			}
			ps, err := g.ListenPacket("udp4", "127.0.0.1:0", biNoPacket, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := g.Close(); err != nil {
				t.Fatal(err)
			}
			return func() error { return fn(ps[0]) }
		}
	}
	// shut: p is a Server's socket (the handler hands it over with the
	// first datagram) and the Server has shut down.
	shut := func(fn func(p *reactor.PacketConn) error) func(*testing.T) func() error {
		return func(t *testing.T) func() error {
			got := make(chan *reactor.PacketConn, 1)
			h := reactor.PacketHandlerFuncs{Packet: func(p *reactor.PacketConn, _ *reactor.Packet) {
				select {
				case got <- p:
				default:
				}
			}}
			s := &reactor.Server{Loops: 1}
			addr, err := s.ListenPacket("udp4", "127.0.0.1:0", h, nil)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- s.Serve() }()
			c, err := net.DialUDP("udp4", nil, addr.(*net.UDPAddr))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Write([]byte("hello"))
			var p *reactor.PacketConn
			select {
			case p = <-got:
			case <-time.After(10 * time.Second):
				t.Fatal("no datagram reached the Server's handler within 10s")
			}
			shutNow(t, s)
			if err := <-done; !errors.Is(err, reactor.ErrServerClosed) {
				t.Fatalf("Serve returned %v", err)
			}
			return func() error { return fn(p) }
		}
	}
	connectTo := func(t *testing.T) string { return biPort(t) }
	return []badinput.Row{
		{Name: "PacketConn.WriteTo(no address)", Want: reactor.ErrAddrFamily, Setup: writeTo("udp4", []byte("x"), reactor.Addr{})},
		{Name: "PacketConn.WriteTo(IPv6 address on udp4)", Want: reactor.ErrAddrFamily, Setup: writeTo("udp4", []byte("x"), v6)},
		{Name: "PacketConn.WriteTo(a path on udp4)", Want: reactor.ErrAddrFamily, Setup: writeTo("udp4", []byte("x"), path)},
		{Name: "PacketConn.WriteTo(an IP address on unixgram)", Want: reactor.ErrAddrFamily, Setup: writeTo("unixgram", []byte("x"), v4)},
		{Name: "PacketConn.WriteTo(no address on unixgram)", Want: reactor.ErrAddrFamily, Setup: writeTo("unixgram", []byte("x"), reactor.Addr{})},
		{Name: "PacketConn.WriteTo(65,508 bytes on udp4)", Want: reactor.ErrDatagramTooLong, Setup: writeTo("udp4", make([]byte, 65508), v4)},
		{Name: "PacketConn.WriteTo(65,528 bytes on udp6)", Want: reactor.ErrDatagramTooLong, Setup: writeTo("udp6", make([]byte, 65528), v6)},
		{Name: "PacketConn.WriteTo(65,507 bytes on udp4) → 65507, nil", OK: true, Setup: writeTo("udp4", make([]byte, 65507), v4)},
		{Name: "PacketConn.WriteTo(nil, an address) → 0, nil (an empty datagram)", OK: true, Setup: writeTo("udp4", nil, v4)},
		{Name: "PacketConn.WriteTo(IPv4 address on udp6) → nil (IPv4-mapped)", OK: true, Setup: writeTo("udp6", []byte("x"), v4)},
		{Name: "PacketConn.Write not connected", Want: reactor.ErrNoPeer, Setup: write("udp4", "", nil, func(p *reactor.PacketConn) error {
			_, err := p.Write([]byte("x"))
			return err
		})},
		{Name: "PacketConn.WriteTo(another address) connected", Want: reactor.ErrNoPeer, Setup: func(t *testing.T) func() error {
			return write("udp4", connectTo(t), nil, func(p *reactor.PacketConn) error {
				_, err := p.WriteTo([]byte("x"), v4)
				return err
			})(t)
		}},
		{Name: "PacketConn.WriteTo(its peer) connected → nil", OK: true, Setup: func(t *testing.T) func() error {
			return write("udp4", connectTo(t), nil, func(p *reactor.PacketConn) error {
				_, err := p.WriteTo([]byte("x"), p.RemoteAddr())
				return err
			})(t)
		}},
		{Name: "PacketConn.WriteToTOS on unixgram", Want: reactor.ErrAddrFamily, Setup: write("unixgram", "", nil, func(p *reactor.PacketConn) error {
			_, err := p.WriteToTOS([]byte("x"), path, 1)
			return err
		})},
		{Name: "PacketConn.WriteTo past MaxQueued (1)", Want: reactor.ErrQueueFull, Setup: write("udp4", "", &reactor.PacketOptions{MaxQueued: 1}, func(p *reactor.PacketConn) error {
			if _, err := p.WriteTo([]byte("first"), v4); err != nil {
				return fmt.Errorf("first WriteTo: %v", err)
			}
			_, err := p.WriteTo([]byte("second"), v4)
			if p.Queued() != 1 {
				return fmt.Errorf("%v, with %d queued; want 1", err, p.Queued())
			}
			return err
		})},
		{Name: "PacketConn.WriteTo past MaxQueuedBytes (100)", Want: reactor.ErrQueueFull, Setup: write("udp4", "", &reactor.PacketOptions{MaxQueuedBytes: 100}, func(p *reactor.PacketConn) error {
			_, err := p.WriteTo(make([]byte, 101), v4)
			return err
		})},
		{Name: "PacketConn.AsyncWriteTo(wrong family) → nil, then OnError(ErrAddrFamily)", Want: reactor.ErrAddrFamily, Setup: func(t *testing.T) func() error {
			p, _, errs := biPacketConn(t, "udp4", "", nil)
			return func() error {
				if err := p.AsyncWriteTo([]byte("x"), v6); err != nil {
					return fmt.Errorf("AsyncWriteTo: %v", err)
				}
				select {
				case err := <-errs:
					return err
				case <-time.After(4 * time.Second):
					return errors.New("no OnError within 4s")
				}
			}
		}},
		{Name: "PacketConn.WriteTo after Close", Want: net.ErrClosed, Setup: closed("", func(p *reactor.PacketConn) error {
			_, err := p.WriteTo([]byte("x"), v4)
			return err
		})},
		{Name: "PacketConn.Write after Close (connected)", Want: net.ErrClosed, Setup: func(t *testing.T) func() error {
			return closed(connectTo(t), func(p *reactor.PacketConn) error {
				_, err := p.Write([]byte("x"))
				return err
			})(t)
		}},
		{Name: "PacketConn.WriteToTOS after Close", Want: net.ErrClosed, Setup: closed("", func(p *reactor.PacketConn) error {
			_, err := p.WriteToTOS([]byte("x"), v4, 1)
			return err
		})},
		{Name: "PacketConn.Close twice", Want: net.ErrClosed, Setup: closed("", func(p *reactor.PacketConn) error { return p.Close() })},
		{Name: "PacketConn.Flush after Close (nothing queued)", Want: net.ErrClosed, Setup: closed("", func(p *reactor.PacketConn) error { return p.Flush() })},
		{Name: "PacketConn.Fd after Close → -1", OK: true, Setup: closed("", func(p *reactor.PacketConn) error {
			if fd := p.Fd(); fd != -1 {
				return fmt.Errorf("Fd %d", fd)
			}
			return nil
		})},
		{Name: "PacketConn.AsyncWriteTo after Close → nil (dropped)", OK: true, Setup: closed("", func(p *reactor.PacketConn) error {
			return p.AsyncWriteTo([]byte("x"), v4)
		})},
		{Name: "PacketConn.AsyncClose after Close → nil", OK: true, Setup: closed("", func(p *reactor.PacketConn) error { return p.AsyncClose() })},
		{Name: "PacketConn.AsyncWriteTo after its loop ended", Want: reactor.ErrLoopClosed, Setup: ended(func(p *reactor.PacketConn) error {
			return p.AsyncWriteTo([]byte("x"), v4)
		})},
		{Name: "PacketConn.AsyncClose after its loop ended", Want: reactor.ErrLoopClosed, Setup: ended(func(p *reactor.PacketConn) error { return p.AsyncClose() })},
		{Name: "PacketConn.Fd, addresses after its loop ended → -1, no panic", OK: true, Setup: ended(func(p *reactor.PacketConn) error {
			if fd := p.Fd(); fd != -1 {
				return fmt.Errorf("Fd %d", fd)
			}
			_, _, _ = p.LocalAddr(), p.RemoteAddr(), p.String()
			return nil
		})},
		{Name: "PacketConn.AsyncWriteTo after Server.Shutdown", Want: reactor.ErrServerClosed, Setup: shut(func(p *reactor.PacketConn) error {
			return p.AsyncWriteTo([]byte("x"), v4)
		})},
		{Name: "PacketConn.AsyncClose after Server.Shutdown", Want: reactor.ErrServerClosed, Setup: shut(func(p *reactor.PacketConn) error { return p.AsyncClose() })},
		{Name: "PacketConn.WriteTo after Server.Shutdown", Want: net.ErrClosed, Setup: shut(func(p *reactor.PacketConn) error {
			_, err := p.WriteTo([]byte("x"), v4)
			return err
		})},
	}
}
