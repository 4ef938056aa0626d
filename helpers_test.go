package reactor

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/internal/leakcheck"
	"github.com/muxkit/reactor/poller"
)

// forEachBackend runs fn as a subtest for every backend this OS has.
func forEachBackend(t *testing.T, fn func(t *testing.T, b poller.Backend)) {
	t.Helper()
	for _, b := range testBackends(t) {
		t.Run(b.String(), func(t *testing.T) { fn(t, b) })
	}
}

// testBackends is Backends, with the reason logged when the completion
// engine cannot run here (TestUringSupport skips saying so).
func testBackends(t testing.TB) []poller.Backend {
	bs := poller.Available()
	if err := UringSupport(); err != nil {
		t.Logf("uring skipped: %v", err)
		return bs
	}
	return append(bs, Uring)
}

// openFDs is the number of open fds (linux).
func openFDs() int { return leakcheck.OpenFDs() }

// checkLeaks fails the test if it leaves an fd or a goroutine behind.
func checkLeaks(t *testing.T) {
	t.Helper()
	leakcheck.Check(t)
}

// serve starts s on a loopback port and returns the address; the server is
// shut down when the test ends and Serve must then return ErrServerClosed.
func serve(t *testing.T, s *Server) string {
	t.Helper()
	if err := s.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	return serveListening(t, s)
}

// serveListening is serve for a server that is listening already.
func serveListening(t *testing.T, s *Server) string {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return s.Addr().String()
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return c
}

// roundTrip writes msg and reads back as many bytes.
func roundTrip(t *testing.T, c net.Conn, msg []byte) []byte {
	t.Helper()
	if _, err := c.Write(msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read back: %v", err)
	}
	return got
}

// onLoop runs fn on l's goroutine and waits for it.
func onLoop(t testing.TB, l *Loop, fn func()) {
	t.Helper()
	done := make(chan struct{})
	if err := l.Post(func() { fn(); close(done) }); err != nil {
		t.Fatal(err)
	}
	<-done
}

// loopsOf waits until s serves and returns its loops.
func loopsOf(t testing.TB, s *Server) []*Loop {
	t.Helper()
	end := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		st, loops := s.state, s.loops
		s.mu.Unlock()
		if st == stateServing {
			return loops
		}
		if time.Now().After(end) {
			t.Fatal("server not serving within 5s")
		}
		time.Sleep(time.Millisecond) // polling a condition, with a deadline
	}
}

func socketpairFDs(t *testing.T) (int, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	return fds[0], fds[1]
}

func unavailableBackend() poller.Backend {
	for _, b := range []poller.Backend{poller.Epoll, poller.Kqueue} {
		p, err := poller.New(b)
		if err != nil {
			return b
		}
		p.Close()
	}
	return poller.Backend(99)
}
