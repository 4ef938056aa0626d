package reactor

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/internal/uring"
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
		t.Skipf("the completion engine cannot run here, its tests are skipped: %v", err)
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
	t.Cleanup(func() { closeTestLoop(l) })
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
	e := l.eng.(*completion)
	for _, c := range cs {
		e.sendQueue(c) // all in one batch, as one turn's flushes are
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

// TestUringWaitPolicies: every way a loop on the engine can wait (one
// completion at a time by default, wake batching with several bounds;
// receive buffers that must grow from the fewest) serves many clients with every echo intact,
// leaks nothing, and lets Shutdown finish.
func TestUringWaitPolicies(t *testing.T) {
	if err := UringSupport(); err != nil {
		t.Skip(err)
	}
	for _, cfg := range []UringConfig{
		{},
		{BatchWait: 100 * time.Microsecond},
		{BatchWait: 1 * time.Millisecond},
		{BatchWait: 10 * time.Microsecond},
		{Buffers: ringBufsMin},
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
// bound on a kernel without a minimum wait is one matching ErrUnsupported;
// the default does not batch.
func TestUringConfigRefused(t *testing.T) {
	if err := UringSupport(); err != nil {
		t.Skip(err)
	}
	for _, cfg := range []UringConfig{
		{BatchWait: time.Second},
		{BatchWait: 500 * time.Nanosecond},
		{Buffers: 100},
		{Buffers: 32},
		{Buffers: 1 << 16},
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
	// The default does not batch.
	if g, err := NewGroup(GroupConfig{Loops: 2, Backend: Uring}); err != nil {
		t.Errorf("NewGroup with the default: %v", err)
	} else {
		bw := g.loops[0].eng.(*completion).cfg.BatchWait
		g.Close()
		if bw > 0 {
			t.Errorf("default BatchWait: %v, want none", bw)
		}
	}
	// A kernel without the minimum wait, made so by asking for a feature
	// bit no kernel has, refuses batching clearly, and starts without it.
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
	g, err = NewGroup(GroupConfig{Loops: 2, Backend: Uring})
	if err != nil {
		t.Fatalf("NewGroup with the default on that kernel: %v", err)
	}
	g.Close()
}

// TestRingBatchPolicy: a wait batches for half the connections that
// received in the loop clock's current or previous millisecond (at most
// ringBatchMax) and only with four or more of them; never for one busy
// connection, never past the wait's bound, never when turned off.
func TestRingBatchPolicy(t *testing.T) {
	const mw = 100 * time.Microsecond
	ms := int64(time.Millisecond)
	e := &completion{cfg: UringConfig{BatchWait: mw}}
	conns := make([]Conn, 300)
	recv := func(now int64, cs []Conn, times int) {
		e.tick(now)
		for range times {
			for i := range cs {
				e.received(&cs[i])
				cs[i].active = now
			}
		}
	}
	check := func(what string, bound time.Duration, wantN uint32, wantMin time.Duration) {
		t.Helper()
		if n, m := e.batch(bound); n != wantN || m != wantMin {
			t.Errorf("%s: batch(%v) = %d, %v; want %d, %v", what, bound, n, m, wantN, wantMin)
		}
	}
	recv(10*ms, conns[:1], 50)
	check("one connection, 50 receives", -1, 1, 0)
	recv(10*ms+1, conns[:3], 1)
	check("three connections", -1, 1, 0)
	recv(10*ms+2, conns[:10], 1)
	check("ten connections", -1, 5, mw)
	check("ten connections, a bound of the minimum wait", mw, 1, 0)
	check("ten connections, a longer bound", 2*mw, 5, mw)
	recv(11*ms, nil, 0)
	check("the next millisecond, none yet", -1, 5, mw)
	recv(11*ms+1, conns[:2], 1)
	check("the next millisecond, two", -1, 5, mw)
	recv(13*ms, nil, 0)
	check("two milliseconds on: none in this one or the last", -1, 1, 0)
	recv(20*ms, nil, 0)
	check("after a quiet gap", -1, 1, 0)
	recv(21*ms, conns, 1)
	check("300 connections", -1, ringBatchMax, mw)
	e.cfg.BatchWait = -1
	check("batching off", -1, 1, 0)
}

// TestMultishotRecvProbe: on linux 6.17 or later the probe finds the
// multishot receive with a byte limit, so the engine uses it; before, it
// does not, and each receive is armed once.
func TestMultishotRecvProbe(t *testing.T) {
	if err := UringSupport(); err != nil {
		t.Skip(err)
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	var major, minor int
	fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &major, &minor)
	want := major > 6 || major == 6 && minor >= 17
	if got := multishotRecv(); got != want {
		t.Errorf("multishotRecv() on linux %d.%d = %v, want %v", major, minor, got, want)
	}
}

// TestUringOneShotRecv: the engine's receive armed once per completion,
// as on a kernel without a limited multishot receive, still echoes many
// clients and holds a client that never reads to the high watermark.
func TestUringOneShotRecv(t *testing.T) {
	if err := UringSupport(); err != nil {
		t.Skip(err)
	}
	old := multishotRecv
	multishotRecv = func() bool { return false }
	t.Cleanup(func() { multishotRecv = old }) // after the server's shutdown, a later cleanup
	checkLeaks(t)
	var multi atomic.Int32
	s := &Server{Handler: Echo, Backend: Uring, Loops: 2, OnLoopStart: func(l *Loop) {
		if l.eng.(*completion).multishot {
			multi.Add(1)
		}
	}}
	addr := serve(t, s)
	echoManyClients(t, addr, 40, 5, nil)
	backpressure(t, Uring, s.OnLoopStart)
	if n := multi.Load(); n != 0 {
		t.Fatalf("%d loops armed multishot receives with multishotRecv off", n)
	}
}

// dedicatedSupport skips t unless this kernel runs dedicated loops
// (UringConfig.Dedicated: deferred task running, linux 6.1).
func dedicatedSupport(t *testing.T) {
	t.Helper()
	if err := UringSupport(); err != nil {
		t.Skip(err)
	}
	r, err := uring.New(8, dedicatedFlags)
	if err != nil {
		t.Skipf("no deferred task running here: %v", err)
	}
	r.Close()
}

// TestUringDedicated runs Server tests on dedicated loops: echo to many
// clients, backpressure, a stop-the-world while a loop waits holding its
// P, and an idle loop giving its P up on one P.
func TestUringDedicated(t *testing.T) {
	dedicatedSupport(t)
	forceDedicated = true
	t.Cleanup(func() { forceDedicated = false }) // after the servers' shutdowns
	var dedicated atomic.Int32
	onStart := func(l *Loop) {
		if l.eng.(*completion).dedicated {
			dedicated.Add(1)
		}
	}
	t.Run("echo", func(t *testing.T) {
		checkLeaks(t)
		s := &Server{Handler: Echo, Backend: Uring, Loops: 1, OnLoopStart: onStart}
		if UringSupport() == nil && ringMinWait() {
			s.Uring.BatchWait = 100 * time.Microsecond
		}
		echoManyClients(t, serve(t, s), 40, 5, nil)
	})
	t.Run("backpressure", func(t *testing.T) { backpressure(t, Uring, onStart) })
	t.Run("stop-the-world", func(t *testing.T) {
		// Right after a round trip the loop waits in a raw system call,
		// keeping its P; the stop-the-world's signal must end that wait
		// (no completion will).
		checkLeaks(t)
		c := dial(t, serve(t, &Server{Handler: Echo, Backend: Uring, Loops: 1, OnLoopStart: onStart}))
		for i := range 20 {
			roundTrip(t, c, []byte("stw"))
			done := make(chan struct{})
			go func() { runtime.GC(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("GC %d did not finish in 10s beside an idle dedicated loop", i)
			}
		}
	})
	t.Run("idle", func(t *testing.T) {
		// With one P, held by an idle loop's raw wait, this goroutine
		// runs again only if the runtime's preemption ends that wait and
		// the loop then waits in a system call its P can be taken from:
		// otherwise the sleep never returns (the test times out).
		checkLeaks(t)
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
		c := dial(t, serve(t, &Server{Handler: Echo, Backend: Uring, Loops: 1, OnLoopStart: onStart}))
		roundTrip(t, c, []byte("idle"))
		for range 5 {
			time.Sleep(10 * time.Millisecond) // what is tested: that it returns
		}
	})
	if n := dedicated.Load(); n != 4 {
		t.Errorf("%d dedicated loops started, want 4", n)
	}
}

// ringMinWait reports whether this kernel has the minimum wait BatchWait
// needs.
func ringMinWait() bool {
	r, err := uring.New(8, ringFlags)
	if err != nil {
		return false
	}
	defer r.Close()
	return r.Features()&minWaitFeature != 0
}
