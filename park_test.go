package reactor_test

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/muxkit/reactor"
	"github.com/muxkit/reactor/poller"
)

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
