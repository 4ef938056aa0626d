package multiplex_test

import (
	"errors"
	"net"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/muxkit/reactor"
	"github.com/muxkit/reactor/internal/leakcheck"
	"github.com/muxkit/reactor/internal/servertest"
	"github.com/muxkit/reactor/poller"
	"github.com/muxkit/reactor/servers"
	"github.com/muxkit/reactor/servers/multiplex"
)

// TestMain warms the runtime (leakcheck.Warm) before any test counts fds
// and goroutines: the tests' clients use package net, whose netpoller the
// runtime starts once and keeps.
func TestMain(m *testing.M) {
	leakcheck.Warm()
	os.Exit(m.Run())
}

func listen(t *testing.T) *servers.Listener {
	t.Helper()
	ln, err := servers.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// TestNilListener: Serve(nil) is an error, not ErrServerClosed.
func TestNilListener(t *testing.T) {
	s := &multiplex.Server{}
	if err := s.Serve(nil); err == nil || errors.Is(err, servers.ErrServerClosed) {
		t.Fatalf("Serve(nil): %v, want an error", err)
	}
}

// TestUnavailableBackend: a backend this OS lacks makes Serve fail with an
// error matching errors.ErrUnsupported, leaving nothing open.
func TestUnavailableBackend(t *testing.T) {
	var missing poller.Backend
	for _, b := range []poller.Backend{poller.Epoll, poller.Kqueue, poller.Poll, poller.Select} {
		if !slices.Contains(poller.Available(), b) {
			missing = b
			break
		}
	}
	if missing == 0 {
		t.Skip("this OS has every backend")
	}
	leakcheck.Check(t)
	s := &multiplex.Server{Backend: missing, Loops: 1}
	served := make(chan error, 1)
	go func() { served <- s.Serve(listen(t)) }()
	if err := servertest.Within(t, "Serve", served); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("Serve with backend %v: %v, want errors.ErrUnsupported", missing, err)
	}
}

// TestBadBackendEnv: with no Backend set, an unknown $REACTOR_BACKEND makes
// Serve fail instead of falling back to the default.
func TestBadBackendEnv(t *testing.T) {
	t.Setenv(reactor.BackendEnv, "bogus")
	leakcheck.Check(t)
	s := &multiplex.Server{Loops: 1}
	served := make(chan error, 1)
	go func() { served <- s.Serve(listen(t)) }()
	if err := servertest.Within(t, "Serve", served); err == nil || errors.Is(err, servers.ErrServerClosed) {
		t.Fatalf("Serve with %s=bogus: %v, want an error", reactor.BackendEnv, err)
	}
}

// TestShutdownBeforeServe: Serve after Shutdown returns ErrServerClosed at
// once.
func TestShutdownBeforeServe(t *testing.T) {
	leakcheck.Check(t)
	s := &multiplex.Server{Loops: 1}
	if err := servertest.Shutdown(t, s); err != nil {
		t.Fatalf("Shutdown before Serve: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(listen(t)) }()
	if err := servertest.Within(t, "Serve", served); !errors.Is(err, servers.ErrServerClosed) {
		t.Fatalf("Serve after Shutdown: %v, want ErrServerClosed", err)
	}
}

// serve serves s on a new loopback Listener until a client is echoed, so
// Serve is known to have started; it returns the Listener and the channel
// Serve's result arrives on.
func serve(t *testing.T, s *multiplex.Server) (*servers.Listener, <-chan error) {
	t.Helper()
	ln := listen(t)
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() { servertest.Shutdown(t, s) })
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 1)); err != nil {
		t.Fatalf("echo: %v", err)
	}
	return ln, served
}

// refused reports whether a client can no longer connect to ln: its socket
// is closed.
func refused(ln *servers.Listener) bool {
	c, err := net.DialTimeout("tcp", ln.Addr().String(), 10*time.Second)
	if err == nil {
		c.Close()
	}
	return err != nil
}

// TestShutdownClosesListener: Shutdown makes Serve return ErrServerClosed
// and closes the Listener Serve was given.
func TestShutdownClosesListener(t *testing.T) {
	leakcheck.Check(t)
	s := &multiplex.Server{Loops: 1}
	ln, served := serve(t, s)
	if err := servertest.Shutdown(t, s); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := servertest.Within(t, "Serve", served); !errors.Is(err, servers.ErrServerClosed) {
		t.Fatalf("Serve: %v, want ErrServerClosed", err)
	}
	if !refused(ln) {
		t.Fatal("a client connected to the Listener after Shutdown: it was not closed")
	}
}

// TestServeTwice: a second Serve while the first serves is an error and
// changes nothing: Shutdown still closes the first one's Listener.
func TestServeTwice(t *testing.T) {
	leakcheck.Check(t)
	s := &multiplex.Server{Loops: 1}
	ln, served := serve(t, s)
	if err := s.Serve(listen(t)); err == nil || errors.Is(err, servers.ErrServerClosed) {
		t.Errorf("second Serve: %v, want an error other than ErrServerClosed", err)
	}
	if err := servertest.Shutdown(t, s); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := servertest.Within(t, "Serve", served); !errors.Is(err, servers.ErrServerClosed) {
		t.Fatalf("Serve: %v, want ErrServerClosed", err)
	}
	if !refused(ln) {
		t.Fatal("a client connected to the first Listener after Shutdown: the refused second Serve made Shutdown close the wrong one")
	}
}
