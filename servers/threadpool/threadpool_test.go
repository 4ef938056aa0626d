package threadpool_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/internal/leakcheck"
	"github.com/muxkit/reactor/internal/servertest"
	"github.com/muxkit/reactor/internal/sock"
	"github.com/muxkit/reactor/servers"
	"github.com/muxkit/reactor/servers/threadpool"
)

// TestMain warms the runtime (leakcheck.Warm) before any test counts fds
// and goroutines: the tests' clients use package net, whose netpoller the
// runtime starts once and keeps.
func TestMain(m *testing.M) {
	leakcheck.Warm()
	os.Exit(m.Run())
}

// variants are the two ways the package serves, with small sizes.
var variants = []struct {
	name string
	new  func(h servers.Handler) *threadpool.Server
}{
	{"pool", func(h servers.Handler) *threadpool.Server { return &threadpool.Server{Handler: h, Workers: 2} }},
	{"perclient", func(h servers.Handler) *threadpool.Server { return &threadpool.Server{Handler: h, PerClient: true} }},
}

// start serves s on a loopback port; it returns the address and Serve's
// result to come. When the test ends s is shut down (again, if the test
// did) and the Listener closed.
func start(t *testing.T, s *threadpool.Server) (string, *servertest.Served) {
	return servertest.Start(t, s, servertest.Nothing)
}

func dial(t *testing.T, addr string) net.Conn { return servertest.Dial(t, addr, 10*time.Second) }

// echo sends msg on c and reports whether it came back.
func echo(c net.Conn, msg string) error { return servertest.Echo(c, []byte(msg)) }

// threadID is the calling thread's id, from /proc/thread-self (linux); 0
// where that does not exist.
func threadID() int {
	s, err := os.Readlink("/proc/thread-self")
	if err != nil {
		return 0
	}
	tid, _ := strconv.Atoi(s[strings.LastIndexByte(s, '/')+1:])
	return tid
}

// TestNegativeSizes: a negative Workers or MaxThreads is an error, not
// ErrServerClosed.
func TestNegativeSizes(t *testing.T) {
	leakcheck.Check(t)
	for _, s := range []*threadpool.Server{
		{Workers: -1},
		{PerClient: true, MaxThreads: -1},
	} {
		ln, err := servers.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		err = s.Serve(ln)
		ln.Close()
		if err == nil || errors.Is(err, servers.ErrServerClosed) {
			t.Errorf("Serve with Workers %d, MaxThreads %d: %v, want an error", s.Workers, s.MaxThreads, err)
		}
	}
}

// TestPerClientMaxThreads: with PerClient and MaxThreads 2, a third client
// at once is closed at once while the first two go on being served; when
// one of them leaves, a new client is served again.
func TestPerClientMaxThreads(t *testing.T) {
	leakcheck.Check(t)
	addr, _ := start(t, &threadpool.Server{PerClient: true, MaxThreads: 2})
	c1, c2 := dial(t, addr), dial(t, addr)
	for _, c := range []net.Conn{c1, c2} {
		if err := echo(c, "served"); err != nil {
			t.Fatal(err)
		}
	}
	c3 := dial(t, addr)
	c3.Write([]byte("refused?"))
	if n, err := c3.Read(make([]byte, 1)); err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("third client past MaxThreads: read %d bytes, %v; want end of file or a reset", n, err)
	}
	for _, c := range []net.Conn{c1, c2} {
		if err := echo(c, "still served"); err != nil {
			t.Fatal(err)
		}
	}
	c1.Close()
	// The first client's thread ends on its own time; until it has, a new
	// client may still be refused.
	servertest.WaitFor(t, "a new client served after one left", 10*time.Second, func() bool {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		return echo(c, "served again") == nil
	})
}

// TestHandlerOnLockedThread: the handler runs on an OS thread locked to
// it. Each round the handler starts a goroutine that blocks its thread in
// a read(2), then parks on a channel: were the handler not locked, the new
// goroutine would take over the handler's thread (it is next in the
// handler's run queue) and the handler would resume on another one.
func TestHandlerOnLockedThread(t *testing.T) {
	if threadID() == 0 {
		t.Skip("no /proc/thread-self")
	}
	const rounds = 5
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			leakcheck.Check(t)
			r, w, err := sock.Socketpair() // blocking, unlike sock.Pipe
			if err != nil {
				t.Fatal(err)
			}
			var blockers sync.WaitGroup
			t.Cleanup(func() {
				unix.Write(w, make([]byte, rounds))
				blockers.Wait()
				unix.Close(r)
				unix.Close(w)
			})
			blocking := make(chan struct{}, rounds)
			step := make(chan struct{})
			moved := make(chan bool, 1)
			addr, _ := start(t, v.new(func(c *servers.Conn) error {
				m := false
				for range rounds {
					first := threadID()
					blockers.Add(1)
					go func() {
						defer blockers.Done()
						blocking <- struct{}{}
						unix.Read(r, make([]byte, 1)) // holds whichever thread runs it
					}()
					<-step
					m = m || threadID() != first
				}
				moved <- m
				return servers.Echo(c)
			}))
			c := dial(t, addr)
			for range rounds {
				servertest.Within(t, "the handler's goroutine", blocking)
				step <- struct{}{}
			}
			if servertest.Within(t, "the handler", moved) {
				t.Fatal("the handler resumed on another OS thread: it is not locked to its thread")
			}
			if err := echo(c, "served"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestPerClientThreadExits: with PerClient, the thread a client was served
// on ends when the client leaves.
func TestPerClientThreadExits(t *testing.T) {
	if threadID() == 0 {
		t.Skip("no /proc/thread-self")
	}
	leakcheck.Check(t)
	tids := make(chan int, 1)
	addr, _ := start(t, &threadpool.Server{PerClient: true, Handler: func(c *servers.Conn) error {
		tids <- threadID()
		return servers.Echo(c)
	}})
	c := dial(t, addr)
	if err := echo(c, "served"); err != nil {
		t.Fatal(err)
	}
	task := "/proc/self/task/" + strconv.Itoa(servertest.Within(t, "the handler", tids))
	if _, err := os.Stat(task); err != nil {
		t.Fatalf("the handler's thread while it serves: %v", err)
	}
	c.Close()
	servertest.WaitFor(t, "the client's thread to end", 10*time.Second, func() bool {
		_, err := os.Stat(task)
		return errors.Is(err, os.ErrNotExist)
	})
}

// TestShutdownEndsIdleClients: Shutdown with idle clients connected (their
// handlers blocked in Read) returns nil, the clients see end of file, Serve
// returns ErrServerClosed, and no fd or goroutine is left.
func TestShutdownEndsIdleClients(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			leakcheck.Check(t)
			s := v.new(nil)
			addr, served := start(t, s)
			cs := []net.Conn{dial(t, addr), dial(t, addr)}
			for _, c := range cs {
				if err := echo(c, "now idle"); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := s.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown with idle clients: %v, want nil", err)
			}
			for i, c := range cs {
				if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
					t.Errorf("client %d after Shutdown: %d, %v; want io.EOF", i, n, err)
				}
			}
			if err := served.Within(t, 10*time.Second); !errors.Is(err, servers.ErrServerClosed) {
				t.Fatalf("Serve: %v, want ErrServerClosed", err)
			}
		})
	}
}
