package pollertest_test

import (
	"errors"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/poller"
	"github.com/muxkit/reactor/poller/pollertest"
)

// The contract of package poller, checked on the fake. The conformance
// suite in package poller needs kernel readiness on real fds, which the
// fake does not look at, so the same guarantees are checked here with
// injected readiness instead.

// newFake returns a fake closed when the test ends.
func newFake(t *testing.T) *pollertest.Poller {
	t.Helper()
	p := pollertest.New()
	t.Cleanup(func() { p.Close() })
	return p
}

func mustAdd(t *testing.T, p poller.Poller, fd int, token uint64, ev poller.Events) {
	t.Helper()
	if err := p.Add(fd, token, ev); err != nil {
		t.Fatalf("Add(%d, %d, %v): %v", fd, token, ev, err)
	}
}

func mustInject(t *testing.T, p *pollertest.Poller, fd int, ev poller.Events) {
	t.Helper()
	if err := p.Inject(fd, ev); err != nil {
		t.Fatalf("Inject(%d, %v): %v", fd, ev, err)
	}
}

// wait is one Wait with a zero timeout into a slice of size n.
func wait(t *testing.T, p poller.Poller, n int) []poller.Event {
	t.Helper()
	evs := make([]poller.Event, n)
	got, err := p.Wait(evs, 0)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	return evs[:got]
}

// expect checks that one Wait (zero timeout, room for 16) reports exactly
// want, in this order: the fake's order is deterministic.
func expect(t *testing.T, p poller.Poller, want ...poller.Event) {
	t.Helper()
	if want == nil {
		want = []poller.Event{}
	}
	if diff := cmp.Diff(want, wait(t, p, 16)); diff != "" {
		t.Fatalf("events differ (-want +got):\n%s", diff)
	}
}

type result struct {
	n   int
	err error
	d   time.Duration
}

// waitAsync runs Wait(timeout) in a goroutine.
func waitAsync(p poller.Poller, timeout time.Duration) <-chan result {
	ch := make(chan result, 1)
	go func() {
		start := time.Now()
		n, err := p.Wait(make([]poller.Event, 8), timeout)
		ch <- result{n, err, time.Since(start)}
	}()
	return ch
}

func receive(t *testing.T, ch <-chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not return within 10s")
		return result{}
	}
}

// blockedWait starts a Wait(-1) and returns once it is blocked, as far as
// the fake can tell: it has entered and found nothing to report.
func blockedWait(t *testing.T, p *pollertest.Poller) <-chan result {
	t.Helper()
	before := p.Waits()
	ch := waitAsync(p, -1)
	end := time.Now().Add(10 * time.Second)
	for p.Waits() == before {
		if time.Now().After(end) {
			t.Fatal("Wait was not called within 10s")
		}
		time.Sleep(time.Millisecond) // polling a condition, with a deadline
	}
	return ch
}

func TestRegistrationErrors(t *testing.T) {
	p := newFake(t)
	if err := p.Add(-1, 0, poller.Readable); !errors.Is(err, poller.ErrBadFD) {
		t.Errorf("Add(-1): %v, want ErrBadFD", err)
	}
	if err := p.Modify(-1, 0, poller.Readable); !errors.Is(err, poller.ErrBadFD) {
		t.Errorf("Modify(-1): %v, want ErrBadFD", err)
	}
	if err := p.Remove(-1); !errors.Is(err, poller.ErrBadFD) {
		t.Errorf("Remove(-1): %v, want ErrBadFD", err)
	}
	if err := p.Add(3, 0, poller.HangUp); !errors.Is(err, poller.ErrInterest) {
		t.Errorf("Add with HangUp interest: %v, want ErrInterest", err)
	}
	mustAdd(t, p, 3, 1, poller.Readable)
	if err := p.Add(3, 2, poller.Writable); !errors.Is(err, poller.ErrRegistered) {
		t.Errorf("second Add: %v, want ErrRegistered", err)
	}
	if err := p.Modify(3, 0, poller.Error); !errors.Is(err, poller.ErrInterest) {
		t.Errorf("Modify with Error interest: %v, want ErrInterest", err)
	}
	if err := p.Modify(4, 0, poller.Readable); !errors.Is(err, poller.ErrNotRegistered) {
		t.Errorf("Modify of an unregistered fd: %v, want ErrNotRegistered", err)
	}
	if err := p.Remove(4); !errors.Is(err, poller.ErrNotRegistered) {
		t.Errorf("Remove of an unregistered fd: %v, want ErrNotRegistered", err)
	}
	if err := p.Inject(4, poller.Readable); !errors.Is(err, poller.ErrNotRegistered) {
		t.Errorf("Inject on an unregistered fd: %v, want ErrNotRegistered", err)
	}
	if err := p.Inject(3, poller.EdgeTriggered); err == nil {
		t.Error("Inject of EdgeTriggered succeeded")
	}
	if err := p.Inject(3, 0); err == nil {
		t.Error("Inject of nothing succeeded")
	}
	if _, err := p.Wait(nil, 0); !errors.Is(err, poller.ErrNoEvents) {
		t.Errorf("Wait(nil): %v, want ErrNoEvents", err)
	}
	if err := p.Remove(3); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := p.Registered(3); ok {
		t.Error("fd 3 still registered after Remove")
	}
	mustAdd(t, p, 3, 9, poller.Writable|poller.EdgeTriggered) // a removed fd can come back
	if tok, ev, ok := p.Registered(3); !ok || tok != 9 || ev != poller.Writable|poller.EdgeTriggered {
		t.Errorf("Registered(3) = %d, %v, %v; want 9, Writable|EdgeTriggered, true", tok, ev, ok)
	}
}

func TestTokensAndInterest(t *testing.T) {
	p := newFake(t)
	mustAdd(t, p, 5, math.MaxUint64, poller.Readable)
	mustAdd(t, p, 6, 0, poller.Writable)
	mustAdd(t, p, 7, 1<<63|7, poller.Readable|poller.Writable)
	expect(t, p) // registered, not ready

	mustInject(t, p, 7, poller.Writable)
	mustInject(t, p, 5, poller.Readable)
	mustInject(t, p, 7, poller.Readable) // combined with 7's Writable, in 7's place
	expect(t, p,
		poller.Event{Fd: 7, Token: 1<<63 | 7, Events: poller.Readable | poller.Writable},
		poller.Event{Fd: 5, Token: math.MaxUint64, Events: poller.Readable})
	expect(t, p) // reported once

	// Outside the interest: pending until asked for, then with the new token.
	mustInject(t, p, 6, poller.Readable)
	expect(t, p)
	if got := p.Pending(6); got != poller.Readable {
		t.Fatalf("Pending(6) = %v, want Readable", got)
	}
	if err := p.Modify(6, 66, poller.Readable); err != nil {
		t.Fatal(err)
	}
	expect(t, p, poller.Event{Fd: 6, Token: 66, Events: poller.Readable})

	// HangUp and Error whatever the interest, even none.
	if err := p.Modify(6, 67, 0); err != nil {
		t.Fatal(err)
	}
	mustInject(t, p, 6, poller.Readable|poller.HangUp|poller.Error)
	expect(t, p, poller.Event{Fd: 6, Token: 67, Events: poller.HangUp | poller.Error})

	// Remove drops what was pending.
	if err := p.Remove(6); err != nil {
		t.Fatal(err)
	}
	mustAdd(t, p, 6, 68, poller.Readable)
	expect(t, p)
	if diff := cmp.Diff([]int{5, 6, 7}, p.Fds()); diff != "" {
		t.Errorf("Fds (-want +got):\n%s", diff)
	}
}

func TestNoStarvation(t *testing.T) {
	p := newFake(t)
	for fd := range 5 {
		mustAdd(t, p, fd, uint64(100+fd), poller.Readable)
		mustInject(t, p, fd, poller.Readable)
	}
	var got []int
	for range 3 {
		for _, ev := range wait(t, p, 2) {
			got = append(got, ev.Fd)
		}
	}
	if diff := cmp.Diff([]int{0, 1, 2, 3, 4}, got); diff != "" {
		t.Fatalf("fds reported over three Waits of 2 (-want +got):\n%s", diff)
	}
}

func TestInjectEvents(t *testing.T) {
	p := newFake(t)
	mustAdd(t, p, 3, 1, poller.Readable)
	mustInject(t, p, 3, poller.Readable)
	raw := []poller.Event{
		{Fd: 3, Token: 99, Events: poller.Writable}, // a stale token, outside the interest
		{Fd: 42, Token: 7, Events: poller.Readable}, // never registered
	}
	if err := p.InjectEvents(raw...); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(raw[:1], wait(t, p, 1)); diff != "" {
		t.Fatalf("first Wait (-want +got):\n%s", diff)
	}
	expect(t, p, raw[1], poller.Event{Fd: 3, Token: 1, Events: poller.Readable})
}

func TestWait(t *testing.T) {
	t.Run("zero timeout", func(t *testing.T) {
		p := newFake(t)
		if n, err := p.Wait(make([]poller.Event, 1), 0); n != 0 || err != nil {
			t.Fatalf("Wait(0) = %d, %v; want 0, nil", n, err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		p := newFake(t)
		const timeout = 30 * time.Millisecond
		r := receive(t, waitAsync(p, timeout))
		if r.n != 0 || r.err != nil || r.d < timeout {
			t.Fatalf("Wait(%v) = %d, %v after %v", timeout, r.n, r.err, r.d)
		}
	})
	t.Run("wake before", func(t *testing.T) {
		p := newFake(t)
		for range 3 {
			if err := p.Wake(); err != nil {
				t.Fatal(err)
			}
		}
		if r := receive(t, waitAsync(p, -1)); r.n != 0 || r.err != nil {
			t.Fatalf("Wait after Wake = %d, %v", r.n, r.err)
		}
		expect(t, p) // the Wakes coalesced into one
		r := receive(t, waitAsync(p, 20*time.Millisecond))
		if r.n != 0 || r.err != nil || r.d < 20*time.Millisecond {
			t.Fatalf("Wait after the Wake was taken = %d, %v after %v; want a timeout", r.n, r.err, r.d)
		}
	})
	t.Run("wake during", func(t *testing.T) {
		p := newFake(t)
		ch := blockedWait(t, p)
		p.Wake()
		if r := receive(t, ch); r.n != 0 || r.err != nil {
			t.Fatalf("woken Wait = %d, %v", r.n, r.err)
		}
	})
	t.Run("inject during", func(t *testing.T) {
		p := newFake(t)
		mustAdd(t, p, 3, 1, poller.Readable)
		ch := blockedWait(t, p)
		mustInject(t, p, 3, poller.Writable) // not watched: no return
		mustInject(t, p, 3, poller.Readable)
		if r := receive(t, ch); r.n != 1 || r.err != nil {
			t.Fatalf("Wait = %d, %v; want 1, nil", r.n, r.err)
		}
	})
	t.Run("close during", func(t *testing.T) {
		p := newFake(t)
		ch := blockedWait(t, p)
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		if r := receive(t, ch); !errors.Is(r.err, poller.ErrClosed) {
			t.Fatalf("Wait blocked in Close: %v, want ErrClosed", r.err)
		}
	})
	t.Run("after close", func(t *testing.T) {
		p := newFake(t)
		mustAdd(t, p, 3, 1, poller.Readable)
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		for name, err := range map[string]error{
			"Add":          p.Add(4, 0, poller.Readable),
			"Modify":       p.Modify(3, 0, poller.Readable),
			"Remove":       p.Remove(3),
			"Wake":         p.Wake(),
			"Close":        p.Close(),
			"Inject":       p.Inject(3, poller.Readable),
			"InjectEvents": p.InjectEvents(),
		} {
			if !errors.Is(err, poller.ErrClosed) {
				t.Errorf("%s after Close: %v, want ErrClosed", name, err)
			}
		}
		if _, err := p.Wait(make([]poller.Event, 1), 0); !errors.Is(err, poller.ErrClosed) {
			t.Errorf("Wait after Close: %v, want ErrClosed", err)
		}
		if !p.Closed() {
			t.Error("Closed() = false after Close")
		}
	})
}

func TestFailures(t *testing.T) {
	p := newFake(t)
	errA, errB := errors.New("a"), errors.New("b")

	p.FailNextAdd(unix.ENOMEM)
	if err := p.Add(-1, 0, poller.Readable); !errors.Is(err, poller.ErrBadFD) {
		t.Fatalf("Add(-1) with a failure scripted: %v, want ErrBadFD first", err)
	}
	if err := p.Add(3, 1, poller.Readable); !errors.Is(err, unix.ENOMEM) {
		t.Fatalf("Add: %v, want the scripted ENOMEM", err)
	}
	if _, _, ok := p.Registered(3); ok {
		t.Fatal("a failed Add registered the fd")
	}
	mustAdd(t, p, 3, 1, poller.Readable) // once only

	p.FailNextModify(errA)
	if err := p.Modify(3, 2, poller.Writable); !errors.Is(err, errA) {
		t.Fatalf("Modify: %v, want errA", err)
	}
	if tok, ev, _ := p.Registered(3); tok != 1 || ev != poller.Readable {
		t.Fatalf("a failed Modify changed the registration to %d, %v", tok, ev)
	}

	p.FailNextRemove(errB)
	if err := p.Remove(3); !errors.Is(err, errB) {
		t.Fatalf("Remove: %v, want errB", err)
	}
	if _, _, ok := p.Registered(3); !ok {
		t.Fatal("a failed Remove forgot the fd")
	}

	// Wait failures queue up, one per Wait, before any events.
	mustInject(t, p, 3, poller.Readable)
	p.FailNextWait(unix.EINTR)
	p.FailNextWait(errA)
	for _, want := range []error{unix.EINTR, errA} {
		if _, err := p.Wait(make([]poller.Event, 1), -1); !errors.Is(err, want) {
			t.Fatalf("Wait: %v, want %v", err, want)
		}
	}
	expect(t, p, poller.Event{Fd: 3, Token: 1, Events: poller.Readable})

	// A blocked Wait gets its failure at once.
	ch := blockedWait(t, p)
	p.FailNextWait(errB)
	if r := receive(t, ch); !errors.Is(r.err, errB) {
		t.Fatalf("blocked Wait: %v, want errB", r.err)
	}
}

// TestInterrupt: an EINTR in Wait is retried with the time left, never
// returned and never cutting the timeout short.
func TestInterrupt(t *testing.T) {
	p := newFake(t)
	p.Interrupt()
	p.Interrupt()
	const timeout = 30 * time.Millisecond
	start := time.Now()
	if n, err := p.Wait(make([]poller.Event, 1), timeout); n != 0 || err != nil {
		t.Fatalf("interrupted Wait = %d, %v; want 0, nil", n, err)
	}
	if d := time.Since(start); d < timeout {
		t.Fatalf("interrupted Wait(%v) returned after %v", timeout, d)
	}
	if got := p.Retries(); got != 2 {
		t.Fatalf("Retries() = %d, want 2", got)
	}
	ch := blockedWait(t, p)
	p.Interrupt()
	end := time.Now().Add(10 * time.Second)
	for p.Retries() != 3 {
		if time.Now().After(end) {
			t.Fatal("blocked Wait did not retry the Interrupt within 10s")
		}
		time.Sleep(time.Millisecond) // polling a condition, with a deadline
	}
	select {
	case r := <-ch:
		t.Fatalf("Wait(-1) returned %d, %v on an Interrupt", r.n, r.err)
	default:
	}
	p.Wake()
	if r := receive(t, ch); r.n != 0 || r.err != nil {
		t.Fatalf("Wait = %d, %v", r.n, r.err)
	}
}

func TestWaitDoesNotAllocate(t *testing.T) {
	p := newFake(t)
	for fd := range 8 {
		mustAdd(t, p, fd, uint64(fd), poller.Readable)
	}
	evs := make([]poller.Event, 8)
	allocs := testing.AllocsPerRun(100, func() {
		for fd := range 8 {
			p.Inject(fd, poller.Readable)
		}
		if n, err := p.Wait(evs, time.Second); n != 8 || err != nil {
			t.Fatalf("Wait = %d, %v", n, err)
		}
		p.Wait(evs, time.Microsecond) // arms and stops the timer
	})
	if allocs != 0 {
		t.Fatalf("Inject and Wait allocate %v times per run, want 0", allocs)
	}
}

// TestConcurrent injects and wakes from other goroutines while one
// goroutine waits; run it with -race. Every injected condition is
// reported exactly once.
func TestConcurrent(t *testing.T) {
	p := newFake(t)
	const fds, rounds = 8, 200
	for fd := range fds {
		mustAdd(t, p, fd, uint64(fd), poller.Readable)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	injected := 0
	for fd := range fds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				// Inject only what has been reported, so none coalesce.
				for p.Pending(fd) != 0 {
					p.Wake()
					time.Sleep(10 * time.Microsecond) // yielding while polling a condition
				}
				if err := p.Inject(fd, poller.Readable); err != nil {
					t.Error(err) // not Fatal: this is not the test's goroutine
					return
				}
				mu.Lock()
				injected++
				mu.Unlock()
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	got := 0
	evs := make([]poller.Event, 3)
	for {
		n, err := p.Wait(evs, 10*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		got += n
		select {
		case <-done:
			got += len(wait(t, p, fds))
			if got != fds*rounds || injected != fds*rounds {
				t.Fatalf("reported %d of %d injected (want %d)", got, injected, fds*rounds)
			}
			return
		default:
		}
	}
}
