package servers_test

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/internal/leakcheck"
	"github.com/muxkit/reactor/internal/servertest"
	"github.com/muxkit/reactor/poller"
	"github.com/muxkit/reactor/servers"
	"github.com/muxkit/reactor/servers/iterative"
	"github.com/muxkit/reactor/servers/multiplex"
	"github.com/muxkit/reactor/servers/multiprocess"
	"github.com/muxkit/reactor/servers/threadpool"
)

// model is one server model, configured, as the cross-model suite runs it.
type model struct {
	name string
	new  func() servers.Server
}

// models lists every model and variant: multiplex once per backend.
func models() []model {
	ms := []model{
		{"iterative", func() servers.Server { return &iterative.Server{} }},
		{"multiprocess", func() servers.Server { return &multiprocess.Server{} }},
		{"multiprocess-prefork", func() servers.Server { return &multiprocess.Server{Prefork: 3} }},
		{"threadpool", func() servers.Server { return &threadpool.Server{Workers: 4} }},
		{"threadpool-perclient", func() servers.Server { return &threadpool.Server{PerClient: true} }},
	}
	for _, b := range poller.Available() {
		ms = append(ms, model{"multiplex-" + b.String(), func() servers.Server {
			return &multiplex.Server{Backend: b, Loops: 2}
		}})
	}
	return ms
}

// start serves s on a loopback port and returns the address. When the test
// ends, s is shut down and Serve must have returned ErrServerClosed.
func start(t *testing.T, s servers.Server) string {
	addr, _ := servertest.Start(t, s, servertest.Clean)
	return addr
}

func dial(t *testing.T, addr string) net.Conn { return servertest.Dial(t, addr, 0) }

// echo sends msg on c and reads it back, within a deadline.
func echo(c net.Conn, msg []byte) error {
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return servertest.Echo(c, msg)
}

// TestModelsEcho is the echo conformance test every model passes: clients
// at once, each sending messages of random sizes and checking every byte
// of the echo, then a clean shutdown that leaks no fd and no goroutine.
func TestModelsEcho(t *testing.T) {
	for _, m := range models() {
		t.Run(m.name, func(t *testing.T) {
			leakcheck.Check(t)
			addr := start(t, m.new())
			const clients, msgs = 8, 6
			var wg sync.WaitGroup
			errs := make(chan error, clients)
			for i := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c, err := net.Dial("tcp", addr)
					if err != nil {
						errs <- err
						return
					}
					defer c.Close()
					rng := rand.New(rand.NewPCG(uint64(i), 7))
					for range msgs {
						msg := make([]byte, 1+rng.IntN(64<<10))
						for j := range msg {
							msg[j] = byte(rng.Uint32())
						}
						if err := echo(c, msg); err != nil {
							errs <- fmt.Errorf("client %d: %w", i, err)
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, with a deadline
	}
}

// queued waits until exactly n clients sit in ln's accept queue, connected
// but not accepted; it fails if the server accepts one meanwhile.
func queued(t *testing.T, s servers.Server, addr string, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d queued clients", n), func() bool {
		q, err := acceptQueue(addr)
		if err != nil {
			t.Skip(err)
		}
		return q == n
	})
}

// TestIterativeQueuesSecondClient: while one client is served, the next
// waits unaccepted in the kernel's queue; it is served when the first
// leaves.
func TestIterativeQueuesSecondClient(t *testing.T) {
	leakcheck.Check(t)
	s := &iterative.Server{}
	addr := start(t, s)
	c1 := dial(t, addr)
	if err := echo(c1, []byte("one")); err != nil {
		t.Fatal(err)
	}
	c2 := dial(t, addr)
	if _, err := c2.Write([]byte("two")); err != nil {
		t.Fatal(err)
	}
	queued(t, s, addr, 1)
	if err := echo(c1, []byte("one again")); err != nil {
		t.Fatal(err)
	}
	c1.Close()
	got := make([]byte, 3)
	c2.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c2, got); err != nil || string(got) != "two" {
		t.Fatalf("second client after the first left: %q, %v", got, err)
	}
	queued(t, s, addr, 0)
}

// TestThreadpoolTwoAtOnceThirdWaits: two workers serve two clients at the
// same time; the third waits until one of them leaves.
func TestThreadpoolTwoAtOnceThirdWaits(t *testing.T) {
	leakcheck.Check(t)
	s := &threadpool.Server{Workers: 2}
	addr := start(t, s)
	c1, c2 := dial(t, addr), dial(t, addr)
	for i := range 3 { // interleaved: both are being served at once
		for _, c := range []net.Conn{c1, c2} {
			if err := echo(c, []byte(strconv.Itoa(i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	c3 := dial(t, addr)
	if _, err := c3.Write([]byte("three")); err != nil {
		t.Fatal(err)
	}
	queued(t, s, addr, 1)
	if err := echo(c2, []byte("still served")); err != nil {
		t.Fatal(err)
	}
	c1.Close()
	got := make([]byte, 5)
	c3.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c3, got); err != nil || string(got) != "three" {
		t.Fatalf("third client after the first left: %q, %v", got, err)
	}
}

// children lists the pids of this process's child processes, zombies
// left out.
func children(t *testing.T) []int {
	var pids []int
	for _, c := range servertest.Children(t, os.Getpid()) {
		if c.State != "Z" {
			pids = append(pids, c.Pid)
		}
	}
	return pids
}

// TestMultiprocessProcessPerClient: each client is served by a child
// process of its own; killing one child ends only its client, and the
// server keeps serving; shutdown leaves no child behind.
func TestMultiprocessProcessPerClient(t *testing.T) {
	leakcheck.Check(t)
	before := len(children(t))
	s := &multiprocess.Server{}
	addr := start(t, s)
	const n = 4
	cs := make([]net.Conn, n)
	for i := range cs {
		cs[i] = dial(t, addr)
		if err := echo(cs[i], []byte("hello")); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(children(t)) - before; got != n {
		t.Fatalf("%d child processes for %d clients", got, n)
	}
	if got := s.Children(); got != n {
		t.Fatalf("Children() = %d, want %d", got, n)
	}
	victim := servedBy(t, cs[0])
	if err := unix.Kill(victim, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cs[0].SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := cs[0].Read(make([]byte, 1)); err == nil {
		t.Fatal("the killed child's client can still read")
	}
	for _, c := range cs[1:] {
		if err := echo(c, []byte("unharmed")); err != nil {
			t.Fatal(err)
		}
	}
	c := dial(t, addr)
	if err := echo(c, []byte("new client")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the killed child reaped", func() bool { return s.Children() == n })
}

// TestMultiprocessPrefork: a pool of two worker processes serves two
// clients at once and queues the third; a worker that dies is replaced.
func TestMultiprocessPrefork(t *testing.T) {
	leakcheck.Check(t)
	before := len(children(t))
	s := &multiprocess.Server{Prefork: 2}
	addr := start(t, s)
	c1, c2 := dial(t, addr), dial(t, addr)
	for _, c := range []net.Conn{c1, c2, c1, c2} {
		if err := echo(c, []byte("hi")); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(children(t)) - before; got != 2 {
		t.Fatalf("%d worker processes, want 2", got)
	}
	c3 := dial(t, addr)
	if _, err := c3.Write([]byte("three")); err != nil {
		t.Fatal(err)
	}
	queued(t, s, addr, 1)
	unix.Kill(servedBy(t, c1), unix.SIGKILL) // a crash harms only its client
	got := make([]byte, 5)
	c3.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c3, got); err != nil || string(got) != "three" {
		t.Fatalf("third client after a worker died: %q, %v", got, err)
	}
	if err := echo(c2, []byte("unharmed")); err != nil {
		t.Fatal(err)
	}
}

// TestMultiplexManyClientsFewThreads: 5,000 clients connected and served
// at once by one event loop, with the process's OS thread count staying a
// handful (clients included: they use package net, whose goroutines park
// in the runtime's netpoller, not on threads).
func TestMultiplexManyClientsFewThreads(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: 10,000 sockets")
	}
	const n = 5000
	for _, b := range poller.Available() {
		if b == poller.Select {
			continue // FD_SETSIZE is 1024: select cannot hold 5,000 clients
		}
		t.Run(b.String(), func(t *testing.T) {
			leakcheck.Check(t)
			addr := start(t, &multiplex.Server{Backend: b, Loops: 1})
			cs := make([]net.Conn, n)
			var mu sync.Mutex
			var firstErr error
			parallel := func(fn func(i int) error) {
				var wg sync.WaitGroup
				const workers = 32
				for w := range workers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := w; i < n; i += workers {
							if err := fn(i); err != nil {
								mu.Lock()
								firstErr = cmpErr(firstErr, err)
								mu.Unlock()
								return
							}
						}
					}()
				}
				wg.Wait()
				if firstErr != nil {
					t.Fatal(firstErr)
				}
			}
			defer func() {
				for _, c := range cs {
					if c != nil {
						c.Close()
					}
				}
			}()
			parallel(func(i int) (err error) {
				cs[i], err = net.Dial("tcp", addr)
				if err != nil {
					return err
				}
				return echo(cs[i], []byte("x"))
			})
			// Every client still connected: each is served again.
			parallel(func(i int) error { return echo(cs[i], []byte("again")) })
			threads := osThreads(t)
			t.Logf("%s: %d clients connected and served, %d OS threads in the process", b, n, threads)
			if threads > 40 {
				t.Errorf("%d OS threads for %d clients: want a handful", threads, n)
			}
		})
	}
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// osThreads is the Threads line of /proc/self/status.
func osThreads(t *testing.T) int {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skip("no /proc:", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no Threads line in /proc/self/status")
	return 0
}
