package reactor_test

import (
	"errors"
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
