package reactor

import (
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/poller"
)

// TestReusePortEcho: with ReusePort every loop listens on a socket of its
// own on one port and serves what it accepts; echoes are exact, and the
// connections are served by more than one loop, each by the loop whose
// listener took it.
func TestReusePortEcho(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b poller.Backend) {
		for _, loops := range []int{2, 4} {
			t.Run(fmt.Sprintf("loops=%d", loops), func(t *testing.T) {
				checkLeaks(t)
				s := &Server{Handler: Echo, Backend: b, Loops: loops, ReusePort: true}
				addr := serve(t, s)
				ls := loopsOf(t, s)
				if len(ls) != loops || len(s.lnfds) != loops || len(s.accs) != loops {
					t.Fatalf("%d loops, %d listeners, %d acceptors; want %d of each", len(ls), len(s.lnfds), len(s.accs), loops)
				}
				port := s.Addr().(*net.TCPAddr).Port
				for i, a := range s.accs {
					if a.loop != ls[i] || a.spread {
						t.Fatalf("acceptor %d: on loop %p (want %p), spread %v", i, a.loop, ls[i], a.spread)
					}
					if got := lnPort(t, a.fd); got != port {
						t.Fatalf("listener %d on port %d, want the shared %d", i, got, port)
					}
				}
				const clients = 40
				echoManyClients(t, addr, clients, 3, func() {
					per, total, used := make([]int, loops), 0, 0
					for i, l := range ls {
						var accepted int
						st := l.Stats()
						per[i], accepted = int(st.Open), int(st.Accepted)
						if per[i] != accepted {
							t.Errorf("loop %d serves %d connections; its listener took %d", i, per[i], accepted)
						}
						total += per[i]
						if per[i] > 0 {
							used++
						}
					}
					t.Logf("connections per loop: %v", per)
					if total != clients {
						t.Errorf("loops hold %d connections, want %d", total, clients)
					}
					// All 40 on one of the loops by chance: 1 in 2^39 or less.
					if used < 2 {
						t.Errorf("every connection on one loop: %v", per)
					}
				})
			})
		}
	})
}

// lnPort is the port the listening socket fd is bound to.
func lnPort(t *testing.T, fd int) int {
	t.Helper()
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return sa.(*unix.SockaddrInet4).Port
}

// TestReusePortShutdownFlushes: Shutdown with a listener per loop flushes
// every queued byte on every loop, closes every listener and leaks nothing.
func TestReusePortShutdownFlushes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b poller.Backend) {
		shutdownFlushes(t, &Server{Backend: b, Loops: 2, ReusePort: true}, 6)
	})
}

// TestReusePortListenNoServe: Shutdown of a Server that listened with
// ReusePort but never served closes every listener.
func TestReusePortListenNoServe(t *testing.T) {
	checkLeaks(t)
	s := &Server{Handler: Echo, Loops: 3, ReusePort: true}
	if err := s.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if len(s.lnfds) != 3 {
		t.Fatalf("%d listeners, want 3", len(s.lnfds))
	}
	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(); err != ErrServerClosed {
		t.Fatalf("Serve after Shutdown: %v", err)
	}
}

// TestReusePortMaxConns: the cap holds across the loops' acceptors.
func TestReusePortMaxConns(t *testing.T) {
	checkLeaks(t)
	s := &Server{Handler: Echo, Loops: 2, MaxConns: 3, ReusePort: true}
	addr := serve(t, s)
	var served []net.Conn
	for len(served) < 3 {
		c := dial(t, addr)
		roundTrip(t, c, []byte("x"))
		served = append(served, c)
	}
	// Past the cap every new connection is closed at once, whichever
	// loop's listener takes it.
	for range 8 {
		c := dial(t, addr)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte("y"))
		if n, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatalf("connection past MaxConns=3 was served (%d byte)", n)
		} else if err != io.EOF && !isReset(err) {
			t.Fatalf("connection past MaxConns: %v, want EOF or reset", err)
		}
	}
	if n := s.nconns.Load(); n != 3 {
		t.Fatalf("server counts %d connections, want 3", n)
	}
}

func isReset(err error) bool { return errors.Is(err, unix.ECONNRESET) }
