package reactor

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/poller"
)

// TestUringSupport says whether the engine's tests run here: where the
// kernel refuses it, every per-backend test runs without it and this test
// is skipped with the reason.
func TestUringSupport(t *testing.T) {
	if err := UringSupport(); err != nil {
		if !errors.Is(err, errors.ErrUnsupported) {
			t.Fatalf("UringSupport() = %v, want nil or an error matching ErrUnsupported", err)
		}
		t.Skipf("the io_uring engine cannot run here, its tests are skipped: %v", err)
	}
	if !slices.Contains(Backends(), Uring) {
		t.Fatalf("Backends() = %v, without uring", Backends())
	}
}

// TestUringRefusedClearly: a kernel that lacks an operation the engine
// needs (here, one the probe is made to ask for and no kernel has) makes
// every way of asking for the engine fail at start with an error matching
// errors.ErrUnsupported, and Backends leaves it out.
func TestUringRefusedClearly(t *testing.T) {
	if err := UringSupport(); err != nil {
		t.Skip(err)
	}
	saved, savedOps := ringSupport, ringOps
	ringOps = append(slices.Clone(ringOps), 250) // no such opcode
	ringSupport = sync.OnceValue(probeRing)
	t.Cleanup(func() { ringSupport, ringOps = saved, savedOps })

	if slices.Contains(Backends(), Uring) {
		t.Errorf("Backends() = %v, with uring", Backends())
	}
	s := &Server{Handler: Echo, Backend: Uring}
	if err := s.Listen("tcp", "127.0.0.1:0"); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Listen with Backend Uring: %v, want ErrUnsupported", err)
	}
	t.Setenv(BackendEnv, "uring")
	s = &Server{Handler: Echo}
	if err := s.Listen("tcp", "127.0.0.1:0"); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Listen with %s=uring: %v, want ErrUnsupported", BackendEnv, err)
	}
	if g, err := NewGroup(GroupConfig{Loops: 1, Backend: Uring}); !errors.Is(err, errors.ErrUnsupported) {
		if g != nil {
			g.Close()
		}
		t.Errorf("NewGroup with Backend Uring: %v, want ErrUnsupported", err)
	}
}

// ringTestLoop returns a loop on the engine for the test to turn on its
// own goroutine, closed when the test ends; it skips the test where the
// engine cannot run.
func ringTestLoop(t *testing.T) *Loop {
	t.Helper()
	if err := UringSupport(); err != nil {
		t.Skip(err)
	}
	l, err := newTestLoop(Uring)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeTestLoop(l) }) // on the test's goroutine, the ring's issuer
	return l
}

// TestRingNoStaleCompletion: a connection closed with its receive in
// flight is told at once (OnClose), but keeps its fd and table slot until
// the cancelled receive completes, so no completion can name a reused fd;
// then both go, and no completion was stale.
func TestRingNoStaleCompletion(t *testing.T) {
	l := ringTestLoop(t)
	a, peer := socketpairFDs(t)
	defer unix.Close(peer)
	closed := 0
	h := HandlerFuncs{Close: func(*Conn, error) { closed++ }}
	c, err := l.newConn(a, newService(h, Limits{}, 0, 0, 0), poller.Readable)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.serveOnce(0); err != nil { // submits the receive
		t.Fatal(err)
	}
	if !c.is(stRecv) {
		t.Fatal("no receive in flight")
	}
	c.closeNow(nil)
	if closed != 1 || c.Fd() != -1 {
		t.Fatalf("after closeNow: OnClose ran %d times, Fd() = %d; want 1, -1", closed, c.Fd())
	}
	if _, err := unix.FcntlInt(uintptr(a), unix.F_GETFD, 0); err != nil {
		t.Fatalf("fd closed with its receive in flight: %v", err)
	}
	if l.tab.Len() != 1 {
		t.Fatalf("table holds %d, want the closing connection", l.tab.Len())
	}
	for end := time.Now().Add(5 * time.Second); l.tab.Len() > 0; {
		if time.Now().After(end) {
			t.Fatal("the cancelled receive never completed")
		}
		if err := l.serveOnce(100 * time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := unix.FcntlInt(uintptr(a), unix.F_GETFD, 0); err != unix.EBADF {
		t.Fatalf("fd after the receive completed: %v, want EBADF (closed)", err)
	}
	if n := l.stats.stale.Load(); n != 0 || closed != 1 {
		t.Fatalf("stale completions %d, OnClose %d times; want 0, 1", n, closed)
	}
}

// TestRingManySendmsgInOneTurn: more connections than the engine has
// sendmsg headers (ringMsgSlots) each send a queue of several chunks in one
// turn; every peer gets its bytes, in order. The engine must submit when
// the headers run out without handing the kernel a half-made entry or
// reusing a header an entry still points to.
func TestRingManySendmsgInOneTurn(t *testing.T) {
	l := ringTestLoop(t)
	const conns, size = ringMsgSlots + 6, 40 << 10 // three chunks each
	svc := newService(HandlerFuncs{}, Limits{}, 0, 0, 0)
	var cs []*Conn
	var peers []int
	for i := range conns {
		a, peer := socketpairFDs(t)
		defer unix.Close(peer)
		if err := unix.SetNonblock(peer, true); err != nil {
			t.Fatal(err)
		}
		c, err := l.newConn(a, svc, poller.Readable)
		if err != nil {
			t.Fatal(err)
		}
		defer c.closeNow(nil)
		msg := make([]byte, size)
		for j := range msg {
			msg[j] = byte(i + j)
		}
		if _, err := c.sock.Queue(msg); err != nil { // below Write's send-at-once size
			t.Fatal(err)
		}
		cs, peers = append(cs, c), append(peers, peer)
	}
	for _, c := range cs {
		c.ringSend() // all in one batch, as one turn's flushes are
	}
	got := make([][]byte, conns)
	buf := make([]byte, size)
	for turns := 0; ; turns++ {
		done := 0
		for i, p := range peers {
			for len(got[i]) < size {
				n, err := unix.Read(p, buf)
				if n <= 0 {
					if err != unix.EAGAIN {
						t.Fatalf("peer %d: %v", i, err)
					}
					break
				}
				got[i] = append(got[i], buf[:n]...)
			}
			if len(got[i]) == size {
				done++
			}
		}
		if done == conns {
			break
		}
		if turns == 200 {
			t.Fatalf("%d of %d peers got their %d bytes after %d turns", done, conns, size, turns)
		}
		if err := l.serveOnce(10 * time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	for i := range got {
		for j, b := range got[i] {
			if b != byte(i+j) {
				t.Fatalf("peer %d: byte %d is %d, want %d", i, j, b, byte(i+j))
			}
		}
	}
}

// TestUringWaitPolicies: every way a loop on the engine can wait (a Hold
// after a busy turn, no Hold, and wake batching with its bound) serves
// many clients with every echo intact, leaks nothing, and lets Shutdown
// finish.
func TestUringWaitPolicies(t *testing.T) {
	if err := UringSupport(); err != nil {
		t.Skip(err)
	}
	for _, cfg := range []UringConfig{
		{},
		{Hold: -1},
		{Hold: 50 * time.Microsecond},
		{BatchWait: 100 * time.Microsecond},
		{Hold: -1, BatchWait: 10 * time.Microsecond},
	} {
		t.Run(fmt.Sprintf("%+v", cfg), func(t *testing.T) {
			checkLeaks(t)
			addr := serve(t, &Server{Handler: Echo, Backend: Uring, Loops: 2, Uring: cfg})
			echoManyClients(t, addr, 40, 5, nil)
		})
	}
}

// TestUringConfigRefused: a UringConfig out of bounds is an error when the
// loops start, from Serve and NewGroup alike, and no loop runs; a batching
// bound on a kernel without a minimum wait is one matching ErrUnsupported.
func TestUringConfigRefused(t *testing.T) {
	if err := UringSupport(); err != nil {
		t.Skip(err)
	}
	for _, cfg := range []UringConfig{
		{Hold: 11 * time.Millisecond},
		{BatchWait: time.Second},
		{BatchWait: 500 * time.Nanosecond},
	} {
		checkLeaks(t)
		s := &Server{Handler: Echo, Backend: Uring, Uring: cfg}
		if err := s.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if err := s.Serve(); err == nil || errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve with %+v: %v, want an error", cfg, err)
		} else if !strings.Contains(err.Error(), "UringConfig") {
			t.Errorf("Serve with %+v: %v, want it to name UringConfig", cfg, err)
		}
		if g, err := NewGroup(GroupConfig{Loops: 1, Backend: Uring, Uring: cfg}); err == nil {
			g.Close()
			t.Errorf("NewGroup with %+v succeeded", cfg)
		}
	}
	// A kernel without the minimum wait: made so by asking for a
	// feature bit no kernel has.
	saved := minWaitFeature
	minWaitFeature = 1 << 31
	t.Cleanup(func() { minWaitFeature = saved })
	g, err := NewGroup(GroupConfig{Loops: 1, Backend: Uring, Uring: UringConfig{BatchWait: 100 * time.Microsecond}})
	if !errors.Is(err, errors.ErrUnsupported) {
		if g != nil {
			g.Close()
		}
		t.Errorf("NewGroup with BatchWait on a kernel without a minimum wait: %v, want ErrUnsupported", err)
	}
	if g, err := NewGroup(GroupConfig{Loops: 1, Backend: Uring}); err != nil {
		t.Errorf("NewGroup without BatchWait on that kernel: %v", err)
	} else {
		g.Close()
	}
}

// TestUringHoldOnOneP: with one P, a loop that holds it after each busy
// turn still lets the client goroutine, which needs that P, make progress:
// the hold ends at its bound, so round trips go on rather than starve.
// (Each waits out the hold, about 5 ms here against 0.2 ms on epoll: the
// worst case UringConfig.Hold documents.)
func TestUringHoldOnOneP(t *testing.T) {
	if err := UringSupport(); err != nil {
		t.Skip(err)
	}
	checkLeaks(t)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	addr := serve(t, &Server{Handler: Echo, Backend: Uring, Loops: 1})
	c := dial(t, addr) // 30 s deadline: a starved client fails, not hangs
	msg := []byte("ping")
	for range 200 {
		if got := roundTrip(t, c, msg); string(got) != string(msg) {
			t.Fatalf("echo %q, want %q", got, msg)
		}
	}
}
