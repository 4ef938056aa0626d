package reactor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/poller"
)

func TestEchoManyClients(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b poller.Backend) {
		checkLeaks(t)
		addr := serve(t, &Server{Handler: Echo, Backend: b, Loops: 2})
		echoManyClients(t, addr, 40, 5, nil)
	})
}

// echoManyClients runs clients concurrent clients against the echo server
// at addr, each sending msgs random messages of up to 200 KiB and checking
// every echo. Once every client has connected and had its first echo (or
// failed), connected runs, if not nil, while all of them stay open.
func echoManyClients(t *testing.T, addr string, clients, msgs int, connected func()) {
	t.Helper()
	var wg, up sync.WaitGroup
	all := make(chan struct{})
	errs := make(chan error, clients)
	for i := range clients {
		wg.Add(1)
		up.Add(1)
		go func() {
			defer wg.Done()
			first := true
			defer func() {
				if first {
					up.Done()
				}
			}()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			r := rand.New(rand.NewPCG(uint64(i), 1))
			for range msgs {
				msg := make([]byte, 1+r.IntN(200<<10))
				for j := range msg {
					msg[j] = byte(r.Uint32())
				}
				// Write and read concurrently: a large message would
				// otherwise fill both socket buffers and stall.
				werr := make(chan error, 1)
				go func() { _, err := c.Write(msg); werr <- err }()
				got := make([]byte, len(msg))
				if _, err := io.ReadFull(c, got); err != nil {
					errs <- fmt.Errorf("client %d: read: %w", i, err)
					return
				}
				if err := <-werr; err != nil {
					errs <- err
					return
				}
				// bytes.Equal decides; go-cmp, which walks a slice by
				// reflection, only describes a mismatch.
				if !bytes.Equal(msg, got) {
					errs <- fmt.Errorf("client %d: echo of %d bytes differs:\n%s", i, len(msg), cmp.Diff(msg, got))
					return
				}
				if first {
					first = false
					up.Done()
					<-all
				}
			}
		}()
	}
	up.Wait()
	func() {
		defer close(all) // also when connected fails the test
		if connected != nil {
			connected()
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestHandlerSeesOpenDataClose(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b poller.Backend) {
		checkLeaks(t)
		var mu sync.Mutex
		var log []string
		closed := make(chan struct{})
		h := HandlerFuncs{
			Open: func(c *Conn) {
				mu.Lock()
				log = append(log, "open")
				mu.Unlock()
			},
			Data: func(c *Conn, data []byte) {
				mu.Lock()
				log = append(log, "data "+string(data))
				mu.Unlock()
				c.Write([]byte("bye"))
				c.Close()
			},
			Close: func(c *Conn, err error) {
				mu.Lock()
				log = append(log, fmt.Sprintf("close %v", err))
				mu.Unlock()
				close(closed)
			},
		}
		addr := serve(t, &Server{Handler: h, Backend: b, Loops: 1})
		c := dial(t, addr)
		c.Write([]byte("hi"))
		got, err := io.ReadAll(c) // "bye", then end of file: Close flushed first
		if err != nil || string(got) != "bye" {
			t.Fatalf("client read %q, %v; want \"bye\" then EOF", got, err)
		}
		<-closed
		mu.Lock()
		defer mu.Unlock()
		if diff := cmp.Diff([]string{"open", "data hi", "close <nil>"}, log); diff != "" {
			t.Fatalf("handler calls (-want +got):\n%s", diff)
		}
	})
}

// TestBackpressure: a client that sends and never reads. The server stops
// reading it once its queue passes the high watermark, so its memory stays
// bounded, and another client is served meanwhile.
func TestBackpressure(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b poller.Backend) { backpressure(t, b, nil) })
}

// backpressure is TestBackpressure on backend b; onLoopStart, if set, is
// the Server's OnLoopStart.
func backpressure(t *testing.T, b poller.Backend, onLoopStart func(*Loop)) {
	checkLeaks(t)
	lim := Limits{HighWater: 256 << 10, LowWater: 64 << 10, MaxQueued: 1 << 20}
	var maxPending atomic.Int64
	var queueFull atomic.Int64
	h := HandlerFuncs{Data: func(c *Conn, data []byte) {
		if _, err := c.Write(data); errors.Is(err, ErrQueueFull) {
			queueFull.Add(1)
		}
		if p := int64(c.Pending()); p > maxPending.Load() {
			maxPending.Store(p)
		}
	}}
	addr := serve(t, &Server{Handler: h, Backend: b, Loops: 1, Limits: lim, OnLoopStart: onLoopStart})

	hog := dial(t, addr)
	// Send far more than the server may hold; the write stalls once
	// the server stops reading and the socket buffers fill.
	hog.SetWriteDeadline(time.Now().Add(2 * time.Second))
	sent, _ := hog.Write(make([]byte, 64<<20))
	if sent >= 64<<20 {
		t.Fatalf("the server read all %d bytes of a client that never reads", sent)
	}

	// Another client on the same loop is still served.
	other := dial(t, addr)
	for i := range 20 {
		msg := []byte(fmt.Sprintf("ping %d", i))
		if got := roundTrip(t, other, msg); !bytes.Equal(got, msg) {
			t.Fatalf("other client got %q, want %q", got, msg)
		}
	}
	// Bounded: at most one read buffer past the high watermark.
	if p := maxPending.Load(); p > int64(lim.HighWater+readBufferSize) {
		t.Fatalf("queue grew to %d bytes, past high watermark %d + one read", p, lim.HighWater)
	}
	if queueFull.Load() != 0 {
		t.Fatalf("hit the hard cap %d times: backpressure should have paused reading first", queueFull.Load())
	}
	t.Logf("client sent %d bytes before stalling; server queue peaked at %d", sent, maxPending.Load())
}

func TestIdleTimeout(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b poller.Backend) {
		checkLeaks(t)
		const idle = 100 * time.Millisecond
		reasons := make(chan error, 4)
		h := HandlerFuncs{
			Data:  func(c *Conn, data []byte) { c.Write(data) },
			Close: func(c *Conn, err error) { reasons <- err },
		}
		addr := serve(t, &Server{Handler: h, Backend: b, Loops: 1, IdleTimeout: idle})

		// A busy client outlives several idle timeouts.
		busy := dial(t, addr)
		start := time.Now()
		for time.Since(start) < 4*idle {
			roundTrip(t, busy, []byte("x"))
		}
		// An idle one is closed with ErrIdleTimeout.
		silent := dial(t, addr)
		if _, err := silent.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("idle client read: %v, want EOF from the server's close", err)
		}
		if err := <-reasons; !errors.Is(err, ErrIdleTimeout) {
			t.Fatalf("close reason %v, want ErrIdleTimeout", err)
		}
	})
}

func TestTimers(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b poller.Backend) {
		checkLeaks(t)
		s := &Server{Handler: Echo, Backend: b, Loops: 1}
		serve(t, s)
		l := loopsOf(t, s)[0]
		fired := make(chan string, 16)
		onLoop(t, l, func() {
			for _, d := range []int{30, 10, 50, 0, 20} {
				l.AfterFunc(time.Duration(d)*time.Millisecond, func() { fired <- fmt.Sprint(d) })
			}
			stopped := l.AfterFunc(5*time.Millisecond, func() { fired <- "stopped" })
			if !stopped.Stop() || stopped.Stop() {
				t.Error("Stop: want true then false")
			}
			moved := l.AfterFunc(time.Millisecond, func() { fired <- "reset" })
			moved.Reset(40 * time.Millisecond)
		})
		var got []string
		for range 6 {
			got = append(got, <-fired)
		}
		if diff := cmp.Diff([]string{"0", "10", "20", "30", "reset", "50"}, got); diff != "" {
			t.Fatalf("firing order (-want +got):\n%s", diff)
		}
	})
}

// TestPostAndAsyncWrite: many goroutines write to one connection at once;
// every message arrives whole, each goroutine's in its order.
func TestPostAndAsyncWrite(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b poller.Backend) {
		checkLeaks(t)
		conns := make(chan *Conn, 1)
		addr := serve(t, &Server{Handler: HandlerFuncs{Open: func(c *Conn) { conns <- c }}, Backend: b, Loops: 2})
		client := dial(t, addr)
		c := <-conns
		const writers, each = 16, 200
		var wg sync.WaitGroup
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					if err := c.AsyncWrite([]byte(fmt.Sprintf("%02d:%04d\n", w, i))); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		var posted atomic.Int64
		for range 100 {
			if err := c.Loop().Post(func() { posted.Add(1) }); err != nil {
				t.Fatal(err)
			}
		}
		wg.Wait()
		buf := make([]byte, writers*each*8)
		if _, err := io.ReadFull(client, buf); err != nil {
			t.Fatal(err)
		}
		next := make([]int, writers)
		for line := range bytes.Lines(buf) {
			var w, i int
			if _, err := fmt.Sscanf(string(line), "%d:%d\n", &w, &i); err != nil {
				t.Fatalf("garbled line %q", line)
			}
			if i != next[w] {
				t.Fatalf("writer %d: message %d arrived when %d was due", w, i, next[w])
			}
			next[w]++
		}
		onLoop(t, c.Loop(), func() {})
		if posted.Load() != 100 {
			t.Fatalf("%d of 100 posted functions ran", posted.Load())
		}
	})
}

// TestShutdownFlushes: bytes queued when Shutdown starts all reach a client
// that only begins reading afterwards.
func TestShutdownFlushes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b poller.Backend) {
		shutdownFlushes(t, &Server{Backend: b, Loops: 1}, 1)
	})
}

// shutdownFlushes serves with s (its Handler and Limits are set here):
// clients connect, each is sent 4 MiB on open (most of it queued in the
// server), Shutdown starts, and only then do the clients read. Every byte
// must arrive, every OnClose must say ErrServerClosed, Serve must return
// ErrServerClosed, new dials must be refused, and no fd or goroutine may be
// left.
func shutdownFlushes(t *testing.T, s *Server, clients int) {
	t.Helper()
	checkLeaks(t)
	payload := make([]byte, 4<<20)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	opened := make(chan struct{}, clients)
	reasons := make(chan error, clients)
	s.Handler = HandlerFuncs{
		Open: func(c *Conn) {
			c.Write(payload) // far more than the socket buffers: most is queued
			opened <- struct{}{}
		},
		Close: func(c *Conn, err error) { reasons <- err },
	}
	s.Limits = Limits{MaxQueued: 8 << 20, HighWater: 8 << 20, LowWater: 1 << 20}
	if err := s.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	cs := make([]net.Conn, clients)
	for i := range cs {
		cs[i] = dial(t, s.Addr().String())
	}
	for range clients {
		<-opened
	}
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		shut <- s.Shutdown(ctx)
	}()
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := io.ReadAll(c)
			c.Close() // done: the server's drain (Conn.endClose) ends here
			if err != nil {
				t.Errorf("client %d: read: %v", i, err)
			} else if !bytes.Equal(got, payload) {
				t.Errorf("client %d got %d bytes, want all %d queued before Shutdown", i, len(got), len(payload))
			}
		}()
	}
	wg.Wait()
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-done; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
	for range clients {
		if err := <-reasons; !errors.Is(err, ErrServerClosed) {
			t.Fatalf("close reason %v, want ErrServerClosed", err)
		}
	}
	// New clients are refused once the listeners are closed.
	if c, err := net.DialTimeout("tcp", s.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Fatal("dial after Shutdown succeeded")
	}
}

func TestShutdownDeadlineForcesClose(t *testing.T) {
	checkLeaks(t)
	h := HandlerFuncs{Open: func(c *Conn) { c.Write(make([]byte, 4<<20)) }}
	s := &Server{Handler: h, Loops: 1, Limits: Limits{MaxQueued: 8 << 20, HighWater: 8 << 20, LowWater: 1 << 20}}
	if err := s.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	client := dial(t, s.Addr().String()) // never reads
	roundTripOpen(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v, want DeadlineExceeded", err)
	}
	if err := <-done; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
	client.Close()
}

// roundTripOpen waits until s has registered a connection.
func roundTripOpen(t *testing.T, s *Server) {
	t.Helper()
	end := time.Now().Add(5 * time.Second)
	for s.nconns.Load() == 0 {
		if time.Now().After(end) {
			t.Fatal("no connection registered within 5s")
		}
		time.Sleep(time.Millisecond) // polling a condition, with a deadline
	}
}

// TestStaleEventInOneBatch: two connections are ready in one Wait batch;
// serving the first closes the second and a new fd takes the second's
// number before its event is dispatched. The generation in the token must
// stop the old event from reaching the new connection.
func TestStaleEventInOneBatch(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b poller.Backend) {
		if b == Uring {
			// The engine closes an fd only once its operations are
			// done, so no completion names a reused fd: nothing to
			// turn by hand here (see TestRingNoStaleCompletion).
			t.Skip("readiness batches only")
		}
		checkLeaks(t)
		var l *Loop
		var first, second *Conn
		var reused *Conn
		dataFor := map[*Conn]int{}
		var svc *service
		srv := &Server{}
		srv.Handler = HandlerFuncs{Data: func(c *Conn, data []byte) {
			dataFor[c]++
			if reused != nil {
				return
			}
			victim := second
			if c == second {
				victim = first
			}
			fd := victim.Fd()
			victim.closeNow(nil)
			// A new connection gets the same fd number.
			a, bb := socketpairFDs(t)
			if a != fd {
				if err := unix.Dup2(a, fd); err != nil {
					t.Fatal(err)
				}
				unix.Close(a)
			}
			var err error
			reused, err = l.newConn(fd, svc, poller.Readable)
			if err != nil {
				t.Fatal(err)
			}
			unix.Write(bb, []byte("new data")) // readable too: a stale event would be served
			t.Cleanup(func() { unix.Close(bb) })
		}}
		var err error
		if l, err = newTestLoop(b); err != nil {
			t.Fatal(err)
		}
		defer closeTestLoop(l)
		svc = newService(srv.Handler, Limits{}, 0, 0, 0)
		var peers []int
		for _, cp := range []**Conn{&first, &second} {
			a, bb := socketpairFDs(t)
			if *cp, err = l.newConn(a, svc, poller.Readable); err != nil {
				t.Fatal(err)
			}
			unix.Write(bb, []byte("hello"))
			peers = append(peers, bb)
		}
		defer func() {
			for _, fd := range peers {
				unix.Close(fd)
			}
		}()
		if err := l.serveOnce(time.Second); err != nil {
			t.Fatal(err)
		}
		if reused == nil {
			t.Fatal("no event was served")
		}
		if n := l.Stats().StaleEvents; n != 1 {
			t.Fatalf("stale events dropped: %d, want 1", n)
		}
		if dataFor[reused] != 0 {
			t.Fatal("the closed connection's event was delivered to the fd's new owner")
		}
		// In the next batch the new connection is served normally.
		if err := l.serveOnce(time.Second); err != nil {
			t.Fatal(err)
		}
		if dataFor[reused] != 1 {
			t.Fatalf("new connection served %d times, want 1", dataFor[reused])
		}
		for _, c := range l.liveConns() {
			c.closeNow(nil)
		}
	})
}

func TestMaxConns(t *testing.T) {
	checkLeaks(t)
	addr := serve(t, &Server{Handler: Echo, Loops: 1, MaxConns: 2})
	a, b := dial(t, addr), dial(t, addr)
	roundTrip(t, a, []byte("a"))
	roundTrip(t, b, []byte("b"))
	c := dial(t, addr)
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("third connection past MaxConns=2 was served")
	}
	a.Close()
	end := time.Now().Add(5 * time.Second)
	for { // a slot frees once the server has seen a's close
		d := dial(t, addr)
		d.SetDeadline(time.Now().Add(time.Second))
		if _, err := d.Write([]byte("d")); err == nil {
			if _, err := io.ReadFull(d, make([]byte, 1)); err == nil {
				break
			}
		}
		if time.Now().After(end) {
			t.Fatal("no new connection served after one closed")
		}
	}
}

func TestServerMisuse(t *testing.T) {
	checkLeaks(t)
	t.Setenv(BackendEnv, "")
	for _, tc := range []struct {
		name string
		s    *Server
	}{
		{"nil handler", &Server{}},
		{"negative loops", &Server{Handler: Echo, Loops: -1}},
		{"negative idle", &Server{Handler: Echo, IdleTimeout: -time.Second}},
		{"bad limits", &Server{Handler: Echo, Limits: Limits{HighWater: 10, LowWater: 20}}},
		{"unavailable backend", &Server{Handler: Echo, Backend: unavailableBackend()}},
	} {
		err := tc.s.ListenAndServe("tcp", "127.0.0.1:0")
		if err == nil || errors.Is(err, ErrServerClosed) {
			t.Errorf("%s: ListenAndServe: %v, want a configuration error", tc.name, err)
		}
	}
	s := &Server{Handler: Echo, Loops: 1}
	if err := s.Serve(); err == nil {
		t.Error("Serve before Listen succeeded")
	}
	if err := s.ServeFD(-1); err == nil {
		t.Error("ServeFD(-1) succeeded")
	}
	serve(t, s)
	loopsOf(t, s)
	if err := s.Listen("tcp", "127.0.0.1:0"); err == nil {
		t.Error("Listen on a serving Server succeeded")
	}
	if err := s.Serve(); err == nil {
		t.Error("second Serve succeeded")
	}
	// Shutdown before Serve: Serve then returns ErrServerClosed at once.
	idle := &Server{Handler: Echo}
	if err := idle.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := idle.ListenAndServe("tcp", "127.0.0.1:0"); err == nil {
		t.Error("ListenAndServe after Shutdown succeeded")
	}
}

func TestBackendEnv(t *testing.T) {
	for _, b := range testBackends(t) {
		t.Setenv(BackendEnv, b.String())
		if got, err := ResolveBackend(0); err != nil || got != b {
			t.Errorf("%s=%s: %v, %v", BackendEnv, b, got, err)
		}
		if got, _ := ResolveBackend(poller.Poll); got != poller.Poll {
			t.Errorf("an explicit Backend must win over %s", BackendEnv)
		}
	}
	t.Setenv(BackendEnv, "epol")
	if _, err := ResolveBackend(0); err == nil {
		t.Error("unknown backend name accepted")
	}
	s := &Server{Handler: Echo}
	if err := s.ListenAndServe("tcp", "127.0.0.1:0"); err == nil || errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve with %s=epol: %v, want an error", BackendEnv, err)
	}
	t.Setenv(BackendEnv, "")
	if got, _ := ResolveBackend(0); got != DefaultBackend {
		t.Errorf("empty %s: %v, want DefaultBackend", BackendEnv, got)
	}
}

// TestShutdownNoResetLoss: a client that sends without reading has its
// bytes sitting unread in the server's socket when Shutdown closes it.
// Closing a socket with unread input makes the kernel send a reset and
// drop what it has not yet transmitted, so every byte the server flushed
// must still reach the client: Conn.endClose shuts the sending side and
// lingers (reads until the peer's end of file) before it closes.
func TestShutdownNoResetLoss(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b poller.Backend) {
		checkLeaks(t)
		var echoed atomic.Int64
		h := HandlerFuncs{Data: func(c *Conn, data []byte) {
			if n, err := c.Write(data); err == nil {
				echoed.Add(int64(n))
			}
		}}
		lim := Limits{HighWater: 256 << 10, LowWater: 64 << 10, MaxQueued: 1 << 20}
		s := &Server{Handler: h, Backend: b, Loops: 1, Limits: lim}
		if err := s.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- s.Serve() }()
		c := dial(t, s.Addr().String())
		// Fill both directions: the server pauses reading this client, and
		// what it sends stays unread on the server's side.
		c.SetWriteDeadline(time.Now().Add(time.Second))
		sent, _ := c.Write(make([]byte, 32<<20))
		if sent >= 32<<20 {
			t.Fatal("the server took every byte of a client that never reads")
		}
		shut := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			shut <- s.Shutdown(ctx)
		}()
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		got, err := io.Copy(io.Discard, c)
		c.Close()
		if err != nil {
			t.Errorf("client read: %v (a reset?) after %d bytes", err, got)
		}
		if err := <-shut; err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Fatalf("Serve: %v", err)
		}
		if got != echoed.Load() {
			t.Fatalf("client received %d bytes, the server's Writes took %d", got, echoed.Load())
		}
		t.Logf("sent %d, echoed and received %d", sent, got)
	})
}

// TestAcceptBurstInOneTurn: connections waiting in the listener's backlog
// are accepted in the loop turn that accepts the first (up to acceptBatch),
// on every backend, the completion engine included: a function the first
// OnOpen posts, which runs at the end of that turn, finds them all open.
func TestAcceptBurstInOneTurn(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b poller.Backend) {
		checkLeaks(t)
		const n = 20
		opened := 0 // on the loop goroutine only
		seen := make(chan int, 1)
		h := HandlerFuncs{Open: func(c *Conn) {
			opened++
			if opened == 1 {
				if err := c.Loop().Post(func() { seen <- opened }); err != nil {
					t.Errorf("Post: %v", err)
				}
			}
		}}
		s := &Server{Handler: h, Backend: b, Loops: 1}
		if err := s.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		// Connected before Serve: all n wait in the backlog.
		for range n {
			dial(t, s.Addr().String())
		}
		serveListening(t, s)
		select {
		case got := <-seen:
			if got != n {
				t.Errorf("at the end of the turn that accepted the first connection, %d were open; want all %d", got, n)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no connection opened")
		}
	})
}

// TestShutdownFromHandler: Shutdown called in a handler, on the loop it
// would otherwise wait for, returns nil at once; the shutdown goes on
// (the reply written before it is flushed, the client then reads end of
// file) and Serve returns ErrServerClosed. A second Shutdown from a
// handler returns at once too.
func TestShutdownFromHandler(t *testing.T) {
	for _, b := range testBackends(t) {
		t.Run(b.String(), func(t *testing.T) {
			checkLeaks(t)
			results := make(chan error, 2)
			var s *Server
			s = &Server{Backend: b, Loops: 2, Handler: HandlerFuncs{Data: func(c *Conn, data []byte) {
				c.Write(data)
				results <- s.Shutdown(context.Background())
				results <- s.Shutdown(context.Background())
			}}}
			if err := s.Listen("tcp", "127.0.0.1:0"); err != nil {
				t.Fatal(err)
			}
			served := make(chan error, 1)
			go func() { served <- s.Serve() }()
			c := dial(t, s.Addr().String())
			if _, err := c.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
			for i := range 2 {
				select {
				case err := <-results:
					if err != nil {
						t.Fatalf("Shutdown %d from a handler: %v, want nil", i+1, err)
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("Shutdown %d from a handler did not return within 10s", i+1)
				}
			}
			got, err := io.ReadAll(c)
			if err != nil || string(got) != "x" {
				t.Fatalf("client read %q, %v; want \"x\" then end of file", got, err)
			}
			select {
			case err := <-served:
				if !errors.Is(err, ErrServerClosed) {
					t.Fatalf("Serve returned %v, want ErrServerClosed", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Serve did not return within 10s of a Shutdown from a handler")
			}
			// From another goroutine, after the end, Shutdown returns too.
			if err := s.Shutdown(context.Background()); err != nil {
				t.Fatalf("Shutdown after the end: %v", err)
			}
		})
	}
}
