package servers_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/internal/leakcheck"
	"github.com/muxkit/reactor/internal/sock"
	"github.com/muxkit/reactor/servers"
	"github.com/muxkit/reactor/servers/multiprocess"
)

// TestMain is the re-exec hook for the multiprocess model's children
// (models_test.go). Then, before any test counts fds and goroutines, it
// warms the runtime (leakcheck.Warm): its netpoller (the tests' clients
// use package net) and os/signal's delivery goroutine (the multiprocess
// server watches SIGCHLD) are then in every leak check's baseline.
func TestMain(m *testing.M) {
	multiprocess.ServeChild(nil)
	leakcheck.Warm()
	os.Exit(m.Run())
}

// within fails the test unless ch delivers within 10 s.
func within[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// threadID is the calling thread's id, read from /proc/thread-self (linux);
// 0 where that does not exist.
func threadID() int {
	s, err := os.Readlink("/proc/thread-self")
	if err != nil {
		return 0
	}
	tid, _ := strconv.Atoi(s[strings.LastIndexByte(s, '/')+1:])
	return tid
}

// blocked calls fn on a goroutine locked to its own thread and returns that
// thread's id (0 where it cannot be known) and a channel carrying fn's
// error.
func blocked(fn func() error) (int, <-chan error) {
	tids, errc := make(chan int, 1), make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tids <- threadID()
		errc <- fn()
	}()
	return <-tids, errc
}

// waitInSyscall waits until thread tid sleeps in a system call whose
// argument number arg is want, read from /proc/self/task/TID/syscall. Where
// that file does not exist it returns at once: the test still holds, it is
// only less sure to have caught the call blocked.
func waitInSyscall(t *testing.T, tid, arg int, want uint64) {
	t.Helper()
	if tid == 0 {
		t.Log("no /proc/thread-self: not waiting for the call to block")
		return
	}
	path := "/proc/self/task/" + strconv.Itoa(tid) + "/syscall"
	end := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Logf("%v: not waiting for the call to block", err)
			return
		}
		f := strings.Fields(string(b)) // nr arg0 ... arg5 sp pc, or "running"
		if len(f) > 1+arg && f[0] != "running" {
			if v, err := strconv.ParseUint(strings.TrimPrefix(f[1+arg], "0x"), 16, 64); err == nil && v == want {
				return
			}
		}
		if time.Now().After(end) {
			t.Fatalf("thread %d not blocked in the expected call: %s", tid, b)
		}
		time.Sleep(time.Millisecond) // polling a condition, with a deadline
	}
}

// pair returns a Conn over one end of a socketpair and the other end's fd;
// both are closed when the test ends.
func pair(t *testing.T) (*servers.Conn, int) {
	t.Helper()
	a, b, err := sock.Socketpair()
	if err != nil {
		t.Fatal(err)
	}
	c, err := servers.NewConn(a)
	if err != nil {
		unix.Close(a)
		unix.Close(b)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		unix.Close(b)
	})
	return c, b
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

// TestListenErrors: a bad network or a bad address is an error.
func TestListenErrors(t *testing.T) {
	leakcheck.Check(t)
	for _, tc := range []struct{ network, address string }{
		{"udp", "127.0.0.1:0"},
		{"ip", "127.0.0.1"},
		{"tcp", "no port"},
		{"tcp", "127.0.0.1:99999"},
	} {
		ln, err := servers.Listen(tc.network, tc.address)
		if err == nil {
			ln.Close()
			t.Errorf("Listen(%q, %q) succeeded, want an error", tc.network, tc.address)
		}
	}
}

// TestListenAddressInUse: listening on an address another socket listens
// on is EADDRINUSE, and the socket made for it is closed.
func TestListenAddressInUse(t *testing.T) {
	leakcheck.Check(t)
	used := listen(t)
	ln, err := servers.Listen("tcp", used.Addr().String())
	if err == nil {
		ln.Close()
	}
	if !errors.Is(err, unix.EADDRINUSE) {
		t.Fatalf("Listen on an address in use: %v, want EADDRINUSE", err)
	}
}

// TestFileListener: FileListener(-1) is EBADF; a listening fd it is given
// reports the fd's address and accepts on it.
func TestFileListener(t *testing.T) {
	leakcheck.Check(t)
	if _, err := servers.FileListener(-1); !errors.Is(err, unix.EBADF) {
		t.Fatalf("FileListener(-1): %v, want EBADF", err)
	}
	fd, addr, err := sock.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.SetNonblock(fd, false); err != nil { // FileListener must set it
		unix.Close(fd)
		t.Fatal(err)
	}
	ln, err := servers.FileListener(fd)
	if err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	if got := ln.Addr().String(); got != addr.String() {
		t.Fatalf("Addr() = %s, want %s", got, addr)
	}
	client, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// TestAcceptAfterClose: Accept on a closed Listener fails with
// net.ErrClosed.
func TestAcceptAfterClose(t *testing.T) {
	leakcheck.Check(t)
	ln := listen(t)
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	if c, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
	}
}

// TestCloseWakesAccept: an Accept blocked in poll on another goroutine
// returns net.ErrClosed when the Listener is closed.
func TestCloseWakesAccept(t *testing.T) {
	leakcheck.Check(t)
	ln := listen(t)
	tid, errc := blocked(func() error {
		c, err := ln.Accept()
		if c != nil {
			c.Close()
		}
		return err
	})
	waitInSyscall(t, tid, 1, 2) // poll(fds, 2, -1): the socket and the wake pipe
	closed := make(chan error, 1)
	go func() { closed <- ln.Close() }()
	if err := within(t, "the blocked Accept", errc); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("blocked Accept after Close: %v, want net.ErrClosed", err)
	}
	if err := within(t, "Close", closed); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// TestListenerCloseIdempotent: a second Close returns nil and closes
// nothing else (the leak check counts the fds).
func TestListenerCloseIdempotent(t *testing.T) {
	leakcheck.Check(t)
	ln := listen(t)
	for i := range 3 {
		if err := ln.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
}

// TestConnAfterClose: Read and Write after Close fail with net.ErrClosed;
// Close again and Shutdown after Close return nil.
func TestConnAfterClose(t *testing.T) {
	leakcheck.Check(t)
	c, _ := pair(t)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read after Close: %v, want net.ErrClosed", err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write after Close: %v, want net.ErrClosed", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := c.Shutdown(unix.SHUT_RDWR); err != nil {
		t.Errorf("Shutdown after Close: %v", err)
	}
}

// TestConnReadEOF: bytes the peer sent are read, then its close is io.EOF.
func TestConnReadEOF(t *testing.T) {
	leakcheck.Check(t)
	c, peer := pair(t)
	if _, err := unix.Write(peer, []byte("bye")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Shutdown(peer, unix.SHUT_WR); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(readerOnly{c})
	if err != nil || string(got) != "bye" {
		t.Fatalf("read %q, %v; want \"bye\" then EOF", got, err)
	}
	if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("Read after the peer's close: %d, %v; want 0, io.EOF", n, err)
	}
}

// readerOnly hides every method but Read, so io.ReadAll cannot take a
// shortcut through the Conn.
type readerOnly struct{ io.Reader }

// TestConnShutdownWakesRead: Shutdown(SHUT_RD) from another goroutine ends
// a Read blocked in read(2) with io.EOF.
func TestConnShutdownWakesRead(t *testing.T) {
	leakcheck.Check(t)
	c, _ := pair(t)
	tid, errc := blocked(func() error {
		n, err := c.Read(make([]byte, 1))
		if n != 0 {
			return errors.New("read a byte nobody sent")
		}
		return err
	})
	waitInSyscall(t, tid, 0, uint64(c.Fd())) // read(fd, ...)
	if err := c.Shutdown(unix.SHUT_RD); err != nil {
		t.Fatal(err)
	}
	if err := within(t, "the blocked Read", errc); err != io.EOF {
		t.Fatalf("blocked Read after Shutdown(SHUT_RD): %v, want io.EOF", err)
	}
}

// TestNewConnBadFD: NewConn(-1) is EBADF.
func TestNewConnBadFD(t *testing.T) {
	if c, err := servers.NewConn(-1); !errors.Is(err, unix.EBADF) || c != nil {
		t.Fatalf("NewConn(-1) = %v, %v; want nil, EBADF", c, err)
	}
}

// TestEcho: Echo writes back every byte, across several reads, and returns
// nil when the peer closes.
func TestEcho(t *testing.T) {
	leakcheck.Check(t)
	c, peer := pair(t)
	served := make(chan error, 1)
	go func() { served <- servers.Echo(c) }()
	msg := bytes.Repeat([]byte("0123456789abcdef"), 4<<10) // 64 KiB: several 16 KiB reads
	wrote := make(chan error, 1)
	go func() {
		_, err := writeAll(peer, msg)
		if err == nil {
			err = unix.Shutdown(peer, unix.SHUT_WR)
		}
		wrote <- err
	}()
	got := make([]byte, len(msg))
	if err := readFull(peer, got); err != nil {
		t.Fatal(err)
	}
	if err := within(t, "the writer", wrote); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echoed %d bytes, want the %d sent", len(got), len(msg))
	}
	if err := within(t, "Echo to return", served); err != nil {
		t.Fatalf("Echo after the peer closed: %v, want nil", err)
	}
}

// readFull reads len(p) bytes from the blocking fd.
func readFull(fd int, p []byte) error {
	for n := 0; n < len(p); {
		m, err := unix.Read(fd, p[n:])
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return err
		case m == 0:
			return io.ErrUnexpectedEOF
		}
		n += m
	}
	return nil
}

func writeAll(fd int, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := unix.Write(fd, p[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		n += m
	}
	return n, nil
}

// serveClient runs h on c as a blocking server does, recorded in cs, on a
// goroutine locked to its thread; it returns the thread id and h's error.
func serveClient(t *testing.T, cs *servers.Clients, c *servers.Conn, h servers.Handler) (int, <-chan error) {
	t.Helper()
	if !cs.Add(c) {
		t.Fatal("Add before Shutdown reported false")
	}
	return blocked(func() error {
		defer cs.Done(c)
		return h(c)
	})
}

// TestClientsShutdownNone: with no clients, Shutdown returns nil at once.
func TestClientsShutdownNone(t *testing.T) {
	var cs servers.Clients
	done := make(chan error, 1)
	go func() { done <- cs.Shutdown(context.Background()) }()
	if err := within(t, "Shutdown with no clients", done); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// TestClientsShutdownEndsReader: Shutdown ends a client whose handler is
// blocked in Read (it sees io.EOF) and returns nil once it is Done.
func TestClientsShutdownEndsReader(t *testing.T) {
	leakcheck.Check(t)
	var cs servers.Clients
	c, _ := pair(t)
	tid, served := serveClient(t, &cs, c, servers.Echo)
	waitInSyscall(t, tid, 0, uint64(c.Fd()))
	if got := cs.Len(); got != 1 {
		t.Fatalf("Len() = %d, want 1", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cs.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := within(t, "the handler", served); err != nil {
		t.Fatalf("handler: %v, want nil (io.EOF from Read)", err)
	}
	if got := cs.Len(); got != 0 {
		t.Fatalf("Len() after Shutdown = %d, want 0", got)
	}
}

// TestClientsShutdownEscalates: a handler blocked writing to a peer that
// does not read is not ended by shutting its socket for reading; when ctx
// ends Shutdown shuts it both ways, the Write fails, and Shutdown returns
// ctx's error.
func TestClientsShutdownEscalates(t *testing.T) {
	leakcheck.Check(t)
	var cs servers.Clients
	c, _ := pair(t) // the peer never reads
	big := make([]byte, 16<<20)
	tid, served := serveClient(t, &cs, c, func(c *servers.Conn) error {
		_, err := c.Write(big)
		return err
	})
	waitInSyscall(t, tid, 0, uint64(c.Fd())) // write(fd, ...)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := cs.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown with a writer blocked: %v, want context.DeadlineExceeded", err)
	}
	if err := within(t, "the blocked Write", served); err == nil {
		t.Fatal("the blocked Write of 16 MiB to a peer that never reads succeeded")
	}
}

// TestClientsAddAfterShutdown: Add after Shutdown reports false and closes
// the conn.
func TestClientsAddAfterShutdown(t *testing.T) {
	leakcheck.Check(t)
	var cs servers.Clients
	if err := cs.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	c, peer := pair(t)
	if cs.Add(c) {
		t.Fatal("Add after Shutdown reported true")
	}
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read on a conn Add refused: %v, want net.ErrClosed", err)
	}
	if n, err := unix.Read(peer, make([]byte, 1)); n != 0 || err != nil {
		t.Fatalf("peer read: %d, %v; want end of file", n, err)
	}
	if got := cs.Len(); got != 0 {
		t.Fatalf("Len() = %d, want 0", got)
	}
}

// TestBaseServeErrors: a nil Listener, no accept loops, a second Serve, and
// Serve after Shutdown are errors, the last one ErrServerClosed.
func TestBaseServeErrors(t *testing.T) {
	leakcheck.Check(t)
	none := func(int, *servers.Conn) { t.Error("serve called") }
	var b servers.Base
	if err := b.Serve("t", nil, 1, false, none); err == nil || errors.Is(err, servers.ErrServerClosed) {
		t.Errorf("Serve(nil Listener): %v, want an error", err)
	}
	ln := listen(t)
	for _, n := range []int{0, -1} {
		if err := b.Serve("t", ln, n, false, none); err == nil || errors.Is(err, servers.ErrServerClosed) {
			t.Errorf("Serve with %d accept loops: %v, want an error", n, err)
		}
	}

	// A refused Serve leaves the Base able to serve once.
	accepted := make(chan int, 1)
	served := make(chan error, 1)
	go func() {
		served <- b.Serve("t", ln, 1, false, func(i int, c *servers.Conn) {
			b.Clients.Done(c)
			accepted <- i
		})
	}()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if i := within(t, "the client accepted", accepted); i != 0 {
		t.Errorf("serve got accept loop %d, want 0", i)
	}
	if err := b.Serve("t", listen(t), 1, false, none); err == nil || errors.Is(err, servers.ErrServerClosed) {
		t.Errorf("second Serve: %v, want an error", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := within(t, "Serve to return", served); !errors.Is(err, servers.ErrServerClosed) {
		t.Fatalf("Serve after Shutdown: %v, want ErrServerClosed", err)
	}

	var b2 servers.Base
	if err := b2.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown before Serve: %v", err)
	}
	if err := b2.Serve("t", listen(t), 1, false, none); !errors.Is(err, servers.ErrServerClosed) {
		t.Fatalf("Serve after Shutdown: %v, want ErrServerClosed", err)
	}
}

// TestClientsShutdownTwice: a second Shutdown, made while the first still
// waits for a client, does not strand the first: both return once the
// client is Done.
func TestClientsShutdownTwice(t *testing.T) {
	leakcheck.Check(t)
	var cs servers.Clients
	c, _ := pair(t)
	release := make(chan struct{})
	sawEOF := make(chan struct{})
	_, served := serveClient(t, &cs, c, func(c *servers.Conn) error {
		_, err := c.Read(make([]byte, 1))
		close(sawEOF)
		<-release // still being served while the second Shutdown runs
		return err
	})
	first := make(chan error, 1)
	go func() { first <- cs.Shutdown(context.Background()) }()
	within(t, "the first Shutdown to end the Read", sawEOF)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := cs.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("second Shutdown with a cancelled ctx and a client left: %v, want context.Canceled", err)
	}
	close(release)
	if err := within(t, "the handler", served); err != io.EOF {
		t.Fatalf("handler: %v, want io.EOF", err)
	}
	if err := within(t, "the first Shutdown", first); err != nil {
		t.Fatalf("first Shutdown: %v, want nil", err)
	}
}
