package reactor_test

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor"
	"github.com/muxkit/reactor/internal/leakcheck"
	"github.com/muxkit/reactor/internal/sock"
	"github.com/muxkit/reactor/poller"
)

// watchRecorder is a Watcher that hands what the loop tells it to the test.
type watchRecorder struct {
	ready   chan reactor.Events
	stopped chan error
}

func newWatchRecorder() *watchRecorder {
	return &watchRecorder{ready: make(chan reactor.Events, 64), stopped: make(chan error, 4)}
}

func (r *watchRecorder) OnReady(ev reactor.Events) {
	select {
	case r.ready <- ev:
	default: // level-triggered and unread: the test has seen enough
	}
}

func (r *watchRecorder) OnStop(err error) { r.stopped <- err }

// expectReady waits for an OnReady with every bit of want.
func (r *watchRecorder) expectReady(t *testing.T, want reactor.Events) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case ev := <-r.ready:
			if ev&want == want {
				return
			}
		case <-deadline:
			t.Fatalf("no OnReady with %v within 5s", want)
		}
	}
}

// expectQuiet checks that no OnReady comes while the loop turns a few
// times (a Post round trip is one turn after every pending event).
func (r *watchRecorder) expectQuiet(t *testing.T, l *reactor.Loop) {
	t.Helper()
	for range 3 {
		onLoop(t, l, func() {})
	}
	select {
	case ev := <-r.ready:
		t.Fatalf("OnReady(%v), want none", ev)
	default:
	}
}

// onLoop runs fn on l and waits for it.
func onLoop(t *testing.T, l *reactor.Loop, fn func()) {
	t.Helper()
	done := make(chan struct{})
	if err := l.Post(func() { fn(); close(done) }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("posted function did not run within 5s")
	}
}

// newGroup starts a group of n loops on b, closed when the test ends.
func newGroup(t *testing.T, b poller.Backend, n int) *reactor.Group {
	t.Helper()
	g, err := reactor.NewGroup(reactor.GroupConfig{Backend: b, Loops: n})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

func pipeFDs(t *testing.T) (r, w int) {
	t.Helper()
	r, w, err := sock.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(r); unix.Close(w) })
	return r, w
}

// TestWatch: an fd watched on a loop of a Group with no Server reports
// readiness to its Watcher, Modify(0) silences it, Stop ends it without
// closing the fd, on every backend.
func TestWatch(t *testing.T) {
	for _, b := range reactor.TestBackends(t) {
		t.Run(b.String(), func(t *testing.T) {
			leakcheck.Check(t)
			g := newGroup(t, b, 1)
			l := g.Loop(0)
			if l.Backend() != b {
				t.Fatalf("loop backend %v, want %v", l.Backend(), b)
			}
			r, w := pipeFDs(t)
			rec := newWatchRecorder()
			var x *reactor.Watch
			onLoop(t, l, func() {
				var err error
				if x, err = l.Watch(r, reactor.Readable, rec); err != nil {
					t.Error(err)
				}
			})
			if x == nil {
				t.FailNow()
			}
			rec.expectQuiet(t, l)
			unix.Write(w, []byte("x"))
			rec.expectReady(t, reactor.Readable)

			onLoop(t, l, func() {
				if err := x.Modify(0); err != nil {
					t.Error(err)
				}
			})
			for len(rec.ready) > 0 {
				<-rec.ready
			}
			rec.expectQuiet(t, l) // still readable, but nobody asked
			onLoop(t, l, func() {
				if err := x.Modify(reactor.Readable); err != nil {
					t.Error(err)
				}
			})
			rec.expectReady(t, reactor.Readable)

			onLoop(t, l, func() {
				if err := x.Stop(); err != nil {
					t.Error(err)
				}
				if err := x.Stop(); !errors.Is(err, reactor.ErrLoopClosed) {
					t.Errorf("second Stop: %v, want ErrLoopClosed", err)
				}
				if err := x.Modify(reactor.Readable); err == nil {
					t.Error("Modify after Stop succeeded")
				}
			})
			for len(rec.ready) > 0 {
				<-rec.ready
			}
			rec.expectQuiet(t, l)
			if _, err := unix.FcntlInt(uintptr(r), unix.F_GETFD, 0); err != nil {
				t.Fatalf("Stop closed the fd: %v", err)
			}
			select {
			case err := <-rec.stopped:
				t.Fatalf("OnStop(%v) after Stop", err)
			default:
			}
		})
	}
}

// TestWatchErrors: the errors Watch promises.
func TestWatchErrors(t *testing.T) {
	for _, b := range reactor.TestBackends(t) {
		t.Run(b.String(), func(t *testing.T) {
			g := newGroup(t, b, 1)
			l := g.Loop(0)
			r, _ := pipeFDs(t)
			onLoop(t, l, func() {
				x, err := l.Watch(r, reactor.Readable|reactor.EdgeTriggered, newWatchRecorder())
				// The engine watches fds with its loop's epoll.
				edge := b == poller.Epoll || b == poller.Kqueue || b == reactor.Uring
				switch {
				case edge && err != nil:
					t.Errorf("EdgeTriggered on %v: %v", b, err)
				case !edge && !errors.Is(err, errors.ErrUnsupported):
					t.Errorf("EdgeTriggered on %v: %v, want ErrUnsupported", b, err)
				}
				if x != nil {
					if _, err := l.Watch(r, reactor.Readable, newWatchRecorder()); err == nil {
						t.Error("a second Watch of one fd succeeded")
					}
					x.Stop()
				}
				if _, err := l.Watch(r, reactor.Readable, nil); err == nil {
					t.Error("Watch with a nil Watcher succeeded")
				}
				if _, err := l.Watch(-1, reactor.Readable, newWatchRecorder()); err == nil {
					t.Error("Watch of fd -1 succeeded")
				}
				if _, err := l.Watch(r, reactor.HangUp, newWatchRecorder()); !errors.Is(err, poller.ErrInterest) {
					t.Errorf("Watch with interest HangUp: %v, want poller.ErrInterest", err)
				}
			})
		})
	}
}

// TestGroupClose: Close tells every watch OnStop(ErrLoopClosed) once, ends
// the loop goroutines, and Posts after it fail with ErrLoopClosed.
func TestGroupClose(t *testing.T) {
	leakcheck.Check(t)
	g, err := reactor.NewGroup(reactor.GroupConfig{Loops: 2})
	if err != nil {
		t.Fatal(err)
	}
	if g.Len() != 2 {
		t.Fatalf("Len %d, want 2", g.Len())
	}
	if a, b2, c := g.Next(), g.Next(), g.Next(); a == b2 || a != c {
		t.Fatal("Next does not take the loops in turn")
	}
	var recs []*watchRecorder
	for i := range g.Len() {
		r, _ := pipeFDs(t)
		rec := newWatchRecorder()
		recs = append(recs, rec)
		l := g.Loop(i)
		onLoop(t, l, func() {
			if _, err := l.Watch(r, reactor.Readable, rec); err != nil {
				t.Error(err)
			}
		})
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	for i, rec := range recs {
		select {
		case err := <-rec.stopped:
			if !errors.Is(err, reactor.ErrLoopClosed) {
				t.Errorf("watch %d: OnStop(%v), want ErrLoopClosed", i, err)
			}
		default:
			t.Errorf("watch %d: no OnStop", i)
		}
		if len(rec.stopped) != 0 {
			t.Errorf("watch %d: OnStop more than once", i)
		}
	}
	for i := range g.Len() {
		select {
		case <-g.Loop(i).Done():
		default:
			t.Errorf("loop %d not done after Close", i)
		}
		if err := g.Loop(i).Post(func() {}); !errors.Is(err, reactor.ErrLoopClosed) {
			t.Errorf("Post after Close: %v, want ErrLoopClosed", err)
		}
	}
	if err := g.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestNewGroupBadConfig: a bad config is an error and starts nothing.
func TestNewGroupBadConfig(t *testing.T) {
	leakcheck.Check(t)
	if _, err := reactor.NewGroup(reactor.GroupConfig{Loops: -1}); err == nil {
		t.Error("Loops -1 accepted")
	}
	if _, err := reactor.NewGroup(reactor.GroupConfig{Backend: poller.Kqueue}); runtime.GOOS == "linux" && !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("kqueue on linux: %v, want ErrUnsupported", err)
	}
	t.Setenv(reactor.BackendEnv, "nope")
	if _, err := reactor.NewGroup(reactor.GroupConfig{}); err == nil {
		t.Errorf("%s=nope accepted", reactor.BackendEnv)
	}
}

// waitSpy wraps a Poller and, at every Wait that may block, records
// whether check() held.
type waitSpy struct {
	poller.Poller
	check  func() bool
	mu     sync.Mutex
	failed int
}

func (s *waitSpy) Wait(events []poller.Event, timeout time.Duration) (int, error) {
	if timeout != 0 && !s.check() {
		s.mu.Lock()
		s.failed++
		s.mu.Unlock()
	}
	return s.Poller.Wait(events, timeout)
}

// fdWaitSpy is a waitSpy over an FDPoller, so the loop can park in Go's
// netpoller on its fd.
type fdWaitSpy struct{ *waitSpy }

func (s fdWaitSpy) Fd() int { return s.Poller.(poller.FDPoller).Fd() }

// TestLoopYieldsBeforeBlocking: with one P, a goroutine a posted function
// made runnable has run by the time the loop next blocks in its poller
// (on epoll the loop parks in Go's netpoller instead, and blocks in the
// poller only after turns that woke nothing; elsewhere it yields first).
// A loop that blocked at once would keep the P in the system call, and
// the goroutine would wait for the runtime's monitor to take it back.
func TestLoopYieldsBeforeBlocking(t *testing.T) {
	for _, fd := range []bool{false, true} {
		name := "yield"
		if fd {
			name = "netpoller"
		}
		t.Run(name, func(t *testing.T) {
			if fd && reactor.DefaultBackend != poller.Epoll && reactor.DefaultBackend != poller.Kqueue {
				t.Skip("the default backend has no pollable fd")
			}
			testLoopYields(t, fd)
		})
	}
}

func testLoopYields(t *testing.T, fd bool) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var woken, ran atomic.Int64
	spy := &waitSpy{check: func() bool { return ran.Load() == woken.Load() }}
	g, err := reactor.NewGroup(reactor.GroupConfig{Loops: 1, NewPoller: func() (poller.Poller, error) {
		p, err := poller.New(reactor.DefaultBackend)
		spy.Poller = p
		if fd {
			return fdWaitSpy{spy}, err
		}
		return spy, err
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	l := g.Loop(0)
	ch := make(chan struct{})
	done := make(chan struct{})
	go func() {
		for range ch {
			ran.Add(1)
		}
		close(done)
	}()
	const rounds = 200
	for range rounds {
		fin := make(chan struct{})
		if err := l.Post(func() {
			woken.Add(1)
			ch <- struct{}{} // the receiver is parked: this makes it runnable
			close(fin)
		}); err != nil {
			t.Fatal(err)
		}
		<-fin
		for ran.Load() != woken.Load() {
			runtime.Gosched()
		}
	}
	close(ch)
	<-done
	spy.mu.Lock()
	defer spy.mu.Unlock()
	if spy.failed != 0 {
		t.Fatalf("the loop blocked %d times of %d with a goroutine it woke still waiting for the P", spy.failed, rounds)
	}
}

// TestGroupCloseFromCallback: Close called on one of the group's own loops
// returns at once and the group still ends.
func TestGroupCloseFromCallback(t *testing.T) {
	leakcheck.Check(t)
	g, err := reactor.NewGroup(reactor.GroupConfig{Loops: 2})
	if err != nil {
		t.Fatal(err)
	}
	res := make(chan error, 1)
	if err := g.Loop(1).Post(func() { res <- g.Close() }); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-res:
		if err != nil {
			t.Fatalf("Close from a loop: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close from a loop did not return within 10s")
	}
	if err := g.Close(); err != nil {
		t.Fatalf("Close from the test: %v", err)
	}
	for i := range g.Len() {
		select {
		case <-g.Loop(i).Done():
		default:
			t.Errorf("loop %d not done", i)
		}
	}
}
