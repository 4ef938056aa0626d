package iterative_test

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/muxkit/reactor/internal/leakcheck"
	"github.com/muxkit/reactor/internal/servertest"
	"github.com/muxkit/reactor/servers"
	"github.com/muxkit/reactor/servers/iterative"
)

// TestMain warms the runtime (leakcheck.Warm) before any test counts fds
// and goroutines: the tests' clients use package net, whose netpoller the
// runtime starts once and keeps.
func TestMain(m *testing.M) {
	leakcheck.Warm()
	os.Exit(m.Run())
}

// start serves s on a loopback port; it returns the address and Serve's
// result to come. The Listener is closed when the test ends, after a
// Shutdown if the test did not call one.
func start(t *testing.T, s *iterative.Server) (string, *servertest.Served) {
	return servertest.Start(t, s, servertest.Nothing)
}

func dial(t *testing.T, addr string) net.Conn { return servertest.Dial(t, addr, 10*time.Second) }

// echo sends msg on c and checks that it comes back.
func echo(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if err := servertest.Echo(c, []byte(msg)); err != nil {
		t.Fatal(err)
	}
}

// TestServeTwice: a second Serve while the first serves is an error, and
// the first goes on serving.
func TestServeTwice(t *testing.T) {
	leakcheck.Check(t)
	s := &iterative.Server{}
	addr, served := start(t, s)
	servertest.ServeTwice(t, s, addr, served, 10*time.Second)
}

// TestShutdownBeforeServe: Serve after Shutdown returns ErrServerClosed at
// once.
func TestShutdownBeforeServe(t *testing.T) {
	leakcheck.Check(t)
	s := &iterative.Server{}
	if err := servertest.Shutdown(t, s); err != nil {
		t.Fatalf("Shutdown before Serve: %v", err)
	}
	ln, err := servers.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	if err := servertest.Within(t, "Serve", served); !errors.Is(err, servers.ErrServerClosed) {
		t.Fatalf("Serve after Shutdown: %v, want ErrServerClosed", err)
	}
}

// TestShutdownEndsIdleClient: with a client connected and idle (the
// handler blocked in Read), Shutdown returns nil, well before its
// deadline, the client sees end of file and Serve returns ErrServerClosed.
func TestShutdownEndsIdleClient(t *testing.T) {
	leakcheck.Check(t)
	s := &iterative.Server{}
	addr, served := start(t, s)
	c := dial(t, addr)
	echo(t, c, "now idle")
	if err := servertest.Shutdown(t, s); err != nil {
		t.Fatalf("Shutdown with an idle client: %v, want nil", err)
	}
	if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("idle client after Shutdown: %d, %v; want io.EOF", n, err)
	}
	if err := served.Within(t, 10*time.Second); !errors.Is(err, servers.ErrServerClosed) {
		t.Fatalf("Serve: %v, want ErrServerClosed", err)
	}
}

// TestNilHandlerEchoes: a Server with no Handler echoes.
func TestNilHandlerEchoes(t *testing.T) {
	leakcheck.Check(t)
	addr, _ := start(t, &iterative.Server{})
	echo(t, dial(t, addr), "echoed by servers.Echo")
}

// TestHandler: a custom Handler's bytes reach the client, and the server
// closes the connection when the Handler returns.
func TestHandler(t *testing.T) {
	leakcheck.Check(t)
	const greeting = "hello from a custom handler\n"
	addr, _ := start(t, &iterative.Server{Handler: func(c *servers.Conn) error {
		_, err := c.Write([]byte(greeting))
		return err
	}})
	got, err := io.ReadAll(dial(t, addr))
	if err != nil || string(got) != greeting {
		t.Fatalf("client read %q, %v; want %q then end of file", got, err, greeting)
	}
}
