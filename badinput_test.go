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
	"github.com/muxkit/reactor/internal/badinput"
	"github.com/muxkit/reactor/internal/leakcheck"
	"github.com/muxkit/reactor/internal/sock"
	"github.com/muxkit/reactor/servers"
)

// TestBadInput feeds the root package's exported functions the inputs a
// caller gets wrong: bad Server options and backends, negative, closed and
// huge fds, bad and used addresses, calls after Close or Shutdown, a
// server started twice, a Conn used after its loop ended. Each must give a
// clear error (the documented sentinel where there is one), never a panic
// or a hang; where the documented answer is success (a zero-length write),
// that is asserted instead. The other packages' tables are in their own
// directories, run by the same runner (internal/badinput).
func TestBadInput(t *testing.T) {
	leakcheck.Check(t)
	t.Setenv(reactor.BackendEnv, "")
	badinput.Run(t, append(serverRows(), reactorConnRows()...))
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
			ln, err := servers.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
			return func() error { return (&reactor.Server{Handler: reactor.Echo, Loops: 1}).ServeFD(1<<32 + ln.Fd()) }
		}},
		{Name: "Server.ServeFD(socketpair end, not listening)", Setup: nonListening("socketpair")},
		{Name: "Server.ServeFD(unconnected TCP socket, not listening)", Setup: nonListening("tcp")},
		{Name: "Server.ServeFD with ReusePort", Want: errors.ErrUnsupported, Setup: func(t *testing.T) func() error {
			ln, err := servers.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
			return func() error {
				return (&reactor.Server{Handler: reactor.Echo, ReusePort: true}).ServeFD(ln.Fd())
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
