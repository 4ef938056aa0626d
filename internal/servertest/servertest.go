// Package servertest is for tests of the blocking server models and of
// what serves with them: it starts a servers.Server on a loopback port,
// dials it, checks echoes and lists child processes. Every helper cleans
// up after itself when the test ends.
package servertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/muxkit/reactor/internal/procfs"
	"github.com/muxkit/reactor/servers"
)

// Check says what the cleanup of Start asserts after its Shutdown.
type Check int

const (
	// Nothing: the cleanup neither checks nor waits for Serve's result;
	// the test checks it, if it cares.
	Nothing Check = iota
	// Closed: Serve must return ErrServerClosed.
	Closed
	// Clean: Shutdown must return nil and Serve ErrServerClosed.
	Clean
)

// Served is the result of a Serve that Start began.
type Served struct {
	done chan struct{}
	err  error
}

// Err waits for Serve to return and returns its result. Any goroutine may
// call it, any number of times.
func (s *Served) Err() error {
	<-s.done
	return s.err
}

// Within is Err for a test: it fails the test if Serve has not returned
// within d.
func (s *Served) Within(t testing.TB, d time.Duration) error {
	t.Helper()
	select {
	case <-s.done:
		return s.err
	case <-time.After(d):
		t.Fatalf("timed out waiting for Serve")
		return nil
	}
}

// Start serves s on a fresh loopback Listener, on a goroutine of its own,
// and returns the Listener's address and Serve's result to come. Its
// cleanup, which runs before the cleanups registered ahead of Start (a
// leak check's), shuts s down with a 10 s deadline, again if the test
// did, asserts what check says, and closes the Listener.
func Start(t testing.TB, s servers.Server, check Check) (string, *Served) {
	t.Helper()
	ln, err := servers.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := &Served{done: make(chan struct{})}
	go func() {
		served.err = s.Serve(ln)
		close(served.done)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil && check == Clean {
			t.Errorf("Shutdown: %v", err)
		}
		if check != Nothing {
			if err := served.Err(); !errors.Is(err, servers.ErrServerClosed) {
				t.Errorf("Serve returned %v, want ErrServerClosed", err)
			}
		}
		ln.Close()
	})
	return ln.Addr().String(), served
}

// Dial connects to addr and, if timeout is not 0, sets the connection's
// deadline timeout from now. The connection is closed when the test ends.
func Dial(t testing.TB, addr string, timeout time.Duration) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if timeout != 0 {
		c.SetDeadline(time.Now().Add(timeout))
	}
	return c
}

// Echo writes msg on c, from another goroutine so that a message larger
// than the sockets' buffers cannot deadlock, reads len(msg) bytes back and
// reports whether they are msg. It sets no deadline: the caller does.
func Echo(c net.Conn, msg []byte) error {
	wrote := make(chan error, 1)
	go func() {
		_, err := c.Write(msg)
		wrote <- err
	}()
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return fmt.Errorf("read echo of %d bytes: %w", len(msg), err)
	}
	if err := <-wrote; err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if !bytes.Equal(got, msg) {
		if len(msg) <= 64 {
			return fmt.Errorf("echo of %q came back as %q", msg, got)
		}
		return fmt.Errorf("echo of %d bytes differs at byte %d", len(msg), firstDiff(got, msg))
	}
	return nil
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// Child is a child process: its pid and its state letter from
// /proc/PID/stat ("S" sleeping, "Z" zombie, ...).
type Child struct {
	Pid   int
	State string
}

// String is "pid state".
func (c Child) String() string { return strconv.Itoa(c.Pid) + " " + c.State }

// Children lists the child processes of the process parent, zombies
// included, from /proc; the test is skipped where /proc does not exist
// (linux has it).
func Children(t testing.TB, parent int) []Child {
	t.Helper()
	ps, err := procfs.All()
	if err != nil {
		t.Skip("no /proc:", err)
	}
	var kids []Child
	for _, p := range ps {
		if p.PPid == parent {
			kids = append(kids, Child{p.Pid, p.State})
		}
	}
	return kids
}

// Wait bounds every wait of these helpers and of the model tests: longer
// is a hang.
const Wait = 10 * time.Second

// Shutdown shuts s down with a Wait deadline and returns its result.
func Shutdown(t testing.TB, s servers.Server) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	return s.Shutdown(ctx)
}

// Within receives from ch, failing the test if nothing comes within Wait;
// what names the wait in the failure.
func Within[T any](t testing.TB, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(Wait):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// WaitFor polls cond until it holds, failing the test after d; what names
// the condition in the failure.
func WaitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, with a deadline
	}
}

// ServeTwice checks one promise of every model: a second Serve on s, which
// Start made serve at addr, is an error other than ErrServerClosed, and the
// first goes on serving; Shutdown then returns nil within d and the first
// Serve ErrServerClosed.
func ServeTwice(t testing.TB, s servers.Server, addr string, served *Served, d time.Duration) {
	t.Helper()
	c := Dial(t, addr, d)
	if err := Echo(c, []byte("first Serve is serving")); err != nil {
		t.Fatal(err)
	}
	ln2, err := servers.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln2.Close()
	if err := s.Serve(ln2); err == nil || errors.Is(err, servers.ErrServerClosed) {
		t.Fatalf("second Serve: %v, want an error other than ErrServerClosed", err)
	}
	if err := Echo(c, []byte("still serving")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := served.Within(t, d); !errors.Is(err, servers.ErrServerClosed) {
		t.Fatalf("Serve: %v, want ErrServerClosed", err)
	}
}
