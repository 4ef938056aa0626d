package multiprocess_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/muxkit/reactor/internal/leakcheck"
	"github.com/muxkit/reactor/internal/servertest"
	"github.com/muxkit/reactor/servers"
	"github.com/muxkit/reactor/servers/multiprocess"
)

// variants are the two ways the package serves: a process per client and
// a pool of two pre-forked workers.
var variants = []struct {
	name    string
	prefork int
}{
	{"perclient", 0},
	{"prefork", 2},
}

// start serves s on a loopback port; it returns the address and Serve's
// result to come. When the test ends s is shut down (again, if the test
// did) and the Listener closed.
func start(t *testing.T, s *multiprocess.Server) (string, *servertest.Served) {
	return servertest.Start(t, s, servertest.Nothing)
}

func dial(t *testing.T, addr string) net.Conn { return servertest.Dial(t, addr, 20*time.Second) }

// echo sends msg on c and reports whether it came back.
func echo(c net.Conn, msg string) error { return servertest.Echo(c, []byte(msg)) }

// children lists this process's child processes in any state, zombies
// included, printed as "pid state".
func children(t *testing.T) []servertest.Child { return servertest.Children(t, os.Getpid()) }

// TestCrashHarmsNoOther: a child that crashes while serving its client
// ends only that client; the other client goes on being served, a new
// client is served, and the crashed child is reaped.
func TestCrashHarmsNoOther(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			leakcheck.Check(t)
			s := &multiprocess.Server{Prefork: v.prefork}
			addr, _ := start(t, s)
			victim, other := dial(t, addr), dial(t, addr)
			for _, c := range []net.Conn{victim, other} {
				if err := echo(c, "served"); err != nil {
					t.Fatal(err)
				}
			}
			if got := s.Children(); got != 2 {
				t.Fatalf("Children() = %d with two clients served, want 2", got)
			}
			if _, err := victim.Write([]byte(crashMsg)); err != nil {
				t.Fatal(err)
			}
			if n, err := victim.Read(make([]byte, 1)); err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("client of the crashed child: read %d bytes, %v; want end of file or a reset", n, err)
			}
			if err := echo(other, "unharmed"); err != nil {
				t.Fatalf("the other client after a crash: %v", err)
			}
			if err := echo(dial(t, addr), "new client"); err != nil {
				t.Fatalf("a new client after a crash: %v", err)
			}
			// The other client's child and the new client's: the crashed
			// one is reaped, and for the pool replaced.
			servertest.WaitFor(t, "the crashed child reaped", 20*time.Second, func() bool { return s.Children() == 2 })
		})
	}
}

// TestShutdownReapsChildren: Shutdown with idle clients connected ends
// them (they see end of file), returns nil, Serve returns ErrServerClosed,
// and by then every child has been reaped: none is left, not even a
// zombie.
func TestShutdownReapsChildren(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			leakcheck.Check(t)
			if kids := children(t); len(kids) != 0 {
				t.Fatalf("child processes before the test: %v", kids)
			}
			s := &multiprocess.Server{Prefork: v.prefork}
			addr, served := start(t, s)
			cs := []net.Conn{dial(t, addr), dial(t, addr)}
			for _, c := range cs {
				if err := echo(c, "now idle"); err != nil {
					t.Fatal(err)
				}
			}
			if kids := children(t); len(kids) != 2 {
				t.Fatalf("child processes with two clients: %v, want 2", kids)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := s.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown with idle clients: %v, want nil", err)
			}
			for i, c := range cs {
				if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
					t.Errorf("client %d after Shutdown: %d, %v; want io.EOF", i, n, err)
				}
			}
			if err := served.Within(t, 20*time.Second); !errors.Is(err, servers.ErrServerClosed) {
				t.Fatalf("Serve: %v, want ErrServerClosed", err)
			}
			if kids := children(t); len(kids) != 0 {
				t.Fatalf("child processes (pid state) left after Serve returned: %v", kids)
			}
			if got := s.Children(); got != 0 {
				t.Fatalf("Children() = %d after Serve returned, want 0", got)
			}
		})
	}
}

// TestPreforkNegative: a negative Prefork is an error, not
// ErrServerClosed, and starts nothing.
func TestPreforkNegative(t *testing.T) {
	leakcheck.Check(t)
	ln, err := servers.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s := &multiprocess.Server{Prefork: -1}
	if err := s.Serve(ln); err == nil || errors.Is(err, servers.ErrServerClosed) {
		t.Fatalf("Serve with Prefork -1: %v, want an error", err)
	}
}

// TestServeTwice: a second Serve while the first serves is an error, and
// the first goes on serving.
func TestServeTwice(t *testing.T) {
	leakcheck.Check(t)
	s := &multiprocess.Server{}
	addr, served := start(t, s)
	servertest.ServeTwice(t, s, addr, served, 20*time.Second)
}
