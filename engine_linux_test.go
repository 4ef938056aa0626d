package reactor

import (
	"errors"
	"slices"
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

// TestRingNoStaleCompletion: a connection closed with its receive in
// flight is told at once (OnClose), but keeps its fd and table slot until
// the cancelled receive completes, so no completion can name a reused fd;
// then both go, and no completion was stale.
func TestRingNoStaleCompletion(t *testing.T) {
	if err := UringSupport(); err != nil {
		t.Skip(err)
	}
	l, err := newTestLoop(Uring)
	if err != nil {
		t.Fatal(err)
	}
	defer closeTestLoop(l)
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
	if err := UringSupport(); err != nil {
		t.Skip(err)
	}
	l, err := newTestLoop(Uring)
	if err != nil {
		t.Fatal(err)
	}
	defer closeTestLoop(l)
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
