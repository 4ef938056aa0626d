package poller_test

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/poller"
)

// The conformance suite: every test runs against every backend in
// poller.Available(), so all four are held to one contract.

func TestReadable(t *testing.T) {
	forEachBackend(t, func(t *testing.T, p poller.Poller) {
		a, b := socketpair(t)
		mustAdd(t, p, a, 7, poller.Readable)
		expectNone(t, p)
		mustWrite(t, b, "x")
		expectEvents(t, p, poller.Event{Fd: a, Token: 7, Events: poller.Readable})
	})
}

func TestWritable(t *testing.T) {
	forEachBackend(t, func(t *testing.T, p poller.Poller) {
		a, _ := socketpair(t)
		mustAdd(t, p, a, 1, poller.Writable)
		expectEvents(t, p, poller.Event{Fd: a, Token: 1, Events: poller.Writable})
	})
}

func TestReadableAndWritableCombined(t *testing.T) {
	forEachBackend(t, func(t *testing.T, p poller.Poller) {
		a, b := socketpair(t)
		mustAdd(t, p, a, 2, poller.Readable|poller.Writable)
		mustWrite(t, b, "x")
		// One Event for the fd, both conditions in it.
		expectEvents(t, p, poller.Event{Fd: a, Token: 2, Events: poller.Readable | poller.Writable})
	})
}

func TestIdleSocketsNotReported(t *testing.T) {
	forEachBackend(t, func(t *testing.T, p poller.Poller) {
		for i := range 10 {
			a, _ := socketpair(t)
			mustAdd(t, p, a, uint64(i), poller.Readable)
		}
		expectNone(t, p)
	})
}

func TestLevelTriggered(t *testing.T) {
	forEachBackend(t, func(t *testing.T, p poller.Poller) {
		a, b := socketpair(t)
		mustAdd(t, p, a, 3, poller.Readable)
		mustWrite(t, b, "hello")
		want := poller.Event{Fd: a, Token: 3, Events: poller.Readable}
		expectEvents(t, p, want)
		// Unread data is reported again, and again.
		expectEvents(t, p, want)
		expectEvents(t, p, want)
		drain(t, a)
		expectNone(t, p)
	})
}

func TestModify(t *testing.T) {
	forEachBackend(t, func(t *testing.T, p poller.Poller) {
		a, b := socketpair(t)
		mustAdd(t, p, a, 10, poller.Readable)
		mustWrite(t, b, "x")
		expectEvents(t, p, poller.Event{Fd: a, Token: 10, Events: poller.Readable})

		// New interest and new token: the data is still there but no longer
		// watched; writability is.
		if err := p.Modify(a, 20, poller.Writable); err != nil {
			t.Fatal(err)
		}
		expectEvents(t, p, poller.Event{Fd: a, Token: 20, Events: poller.Writable})

		// No interest: registered, reported for nothing.
		if err := p.Modify(a, 30, 0); err != nil {
			t.Fatal(err)
		}
		expectNone(t, p)

		if err := p.Modify(a, 40, poller.Readable|poller.Writable); err != nil {
			t.Fatal(err)
		}
		expectEvents(t, p, poller.Event{Fd: a, Token: 40, Events: poller.Readable | poller.Writable})
	})
}

func TestRemove(t *testing.T) {
	forEachBackend(t, func(t *testing.T, p poller.Poller) {
		a, b := socketpair(t)
		c, d := socketpair(t)
		mustAdd(t, p, a, 1, poller.Readable)
		mustAdd(t, p, c, 2, poller.Readable)
		mustWrite(t, b, "x")
		mustWrite(t, d, "y")
		if err := p.Remove(a); err != nil {
			t.Fatal(err)
		}
		expectEvents(t, p, poller.Event{Fd: c, Token: 2, Events: poller.Readable})
		if err := p.Remove(a); !errors.Is(err, poller.ErrNotRegistered) {
			t.Fatalf("second Remove: got %v, want ErrNotRegistered", err)
		}
		// A removed fd can be added again, with a new token.
		mustAdd(t, p, a, 3, poller.Readable)
		expectEvents(t, p,
			poller.Event{Fd: a, Token: 3, Events: poller.Readable},
			poller.Event{Fd: c, Token: 2, Events: poller.Readable})
	})
}

func TestTokenRoundTrip(t *testing.T) {
	tokens := []uint64{0, 1, math.MaxUint64, 0xdeadbeef << 32, 1<<63 | 5}
	forEachBackend(t, func(t *testing.T, p poller.Poller) {
		var want []poller.Event
		for _, tok := range tokens {
			a, b := socketpair(t)
			mustAdd(t, p, a, tok, poller.Readable)
			mustWrite(t, b, "x")
			want = append(want, poller.Event{Fd: a, Token: tok, Events: poller.Readable})
		}
		expectEvents(t, p, want...)
	})
}

func TestPeerCloseSocket(t *testing.T) {
	forEachBackend(t, func(t *testing.T, p poller.Poller) {
		a, b := socketpair(t)
		mustAdd(t, p, a, 5, poller.Readable)
		expectNone(t, p)
		unix.Close(b)
		want := poller.Readable
		if hasHangUp(p) {
			want |= poller.HangUp
		}
		expectEvents(t, p, poller.Event{Fd: a, Token: 5, Events: want})
	})
}

func TestPeerClosePipe(t *testing.T) {
	forEachBackend(t, func(t *testing.T, p poller.Poller) {
		r, w := pipe(t)
		mustAdd(t, p, r, 6, poller.Readable)
		expectNone(t, p)
		unix.Close(w)
		// epoll and poll report a pipe's hang-up without POLLIN; the
		// poller adds Readable because a read returns end of file at once.
		want := poller.Readable
		if hasHangUp(p) {
			want |= poller.HangUp
		}
		expectEvents(t, p, poller.Event{Fd: r, Token: 6, Events: want})
	})
}

func TestPeerCloseWithUnreadData(t *testing.T) {
	forEachBackend(t, func(t *testing.T, p poller.Poller) {
		a, b := socketpair(t)
		mustAdd(t, p, a, 8, poller.Readable)
		mustWrite(t, b, "last words")
		unix.Close(b)
		want := poller.Readable
		if hasHangUp(p) {
			want |= poller.HangUp
		}
		expectEvents(t, p, poller.Event{Fd: a, Token: 8, Events: want})
		var buf [64]byte
		if n, err := unix.Read(a, buf[:]); err != nil || string(buf[:n]) != "last words" {
			t.Fatalf("read: %q, %v", buf[:n], err)
		}
		if n, err := unix.Read(a, buf[:]); n != 0 || err != nil {
			t.Fatalf("read after data: n=%d err=%v, want end of file", n, err)
		}
	})
}

func TestWakeBeforeWait(t *testing.T) {
	forEachBackend(t, func(t *testing.T, p poller.Poller) {
		for range 3 { // wakes before one Wait coalesce
			if err := p.Wake(); err != nil {
				t.Fatal(err)
			}
		}
		r := receive(t, waitAsync(p, -1))
		if r.err != nil || r.n != 0 {
			t.Fatalf("Wait after Wake: n=%d err=%v, want 0, nil", r.n, r.err)
		}
		// The wake was consumed: a later Wait does not see it again.
		expectNone(t, p)
	})
}

func TestWakeDuringWait(t *testing.T) {
	forEachBackend(t, func(t *testing.T, p poller.Poller) {
		a, _ := socketpair(t)
		mustAdd(t, p, a, 1, poller.Readable)
		ch := waitAsync(p, -1)
		if err := p.Wake(); err != nil {
			t.Fatal(err)
		}
		if r := receive(t, ch); r.err != nil || r.n != 0 {
			t.Fatalf("Wait: n=%d err=%v, want 0, nil", r.n, r.err)
		}
	})
}

func TestWaitTimeout(t *testing.T) {
	forEachBackend(t, func(t *testing.T, p poller.Poller) {
		a, _ := socketpair(t)
		mustAdd(t, p, a, 1, poller.Readable)
		evs := make([]poller.Event, 4)
		for _, d := range []time.Duration{0, time.Microsecond, 30 * time.Millisecond} {
			start := time.Now()
			n, err := p.Wait(evs, d)
			if err != nil || n != 0 {
				t.Fatalf("Wait(%v): n=%d err=%v", d, n, err)
			}
			// Rounding to the backend's resolution goes up, never down.
			if el := time.Since(start); el < d {
				t.Fatalf("Wait(%v) returned after %v, early", d, el)
			}
		}
	})
}

func TestCloseDuringWait(t *testing.T) {
	forEachBackend(t, func(t *testing.T, p poller.Poller) {
		a, _ := socketpair(t)
		mustAdd(t, p, a, 1, poller.Readable)
		ch := waitAsync(p, -1)
		if err := p.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if r := receive(t, ch); !errors.Is(r.err, poller.ErrClosed) {
			t.Fatalf("blocked Wait after Close: err=%v, want ErrClosed", r.err)
		}
	})
}

func TestCallsAfterClose(t *testing.T) {
	forEachBackend(t, func(t *testing.T, p poller.Poller) {
		a, _ := socketpair(t)
		mustAdd(t, p, a, 1, poller.Readable)
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		evs := make([]poller.Event, 1)
		_, waitErr := p.Wait(evs, 0)
		for name, err := range map[string]error{
			"Add":    p.Add(a, 1, poller.Readable),
			"Modify": p.Modify(a, 1, poller.Readable),
			"Remove": p.Remove(a),
			"Wait":   waitErr,
			"Wake":   p.Wake(),
			"Close":  p.Close(),
		} {
			if !errors.Is(err, poller.ErrClosed) {
				t.Errorf("%s after Close: %v, want ErrClosed", name, err)
			}
		}
	})
}

// TestRefusedCallChangesNothing: on every backend, a call refused for bad
// input leaves the poller as it was.
func TestRefusedCallChangesNothing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, p poller.Poller) {
		a, _ := socketpair(t)
		mustAdd(t, p, a, 1, poller.Readable)
		closedR, closedW := pipe(t)
		unix.Close(closedR)
		unix.Close(closedW)

		edge := error(nil)
		if p.Backend() == poller.Poll || p.Backend() == poller.Select {
			edge = errors.ErrUnsupported
		}
		for _, tc := range []struct {
			name string
			err  error
			want error
		}{
			{"Add negative fd", p.Add(-1, 0, poller.Readable), poller.ErrBadFD},
			{"Add closed fd", p.Add(closedR, 0, poller.Readable), unix.EBADF},
			{"Add closed fd, no interest", p.Add(closedW, 0, 0), unix.EBADF},
			{"Add twice", p.Add(a, 2, poller.Readable), poller.ErrRegistered},
			{"Add HangUp interest", p.Add(closedR, 0, poller.HangUp), poller.ErrInterest},
			{"Modify unknown", p.Modify(closedR, 0, poller.Readable), poller.ErrNotRegistered},
			{"Modify negative fd", p.Modify(-5, 0, poller.Readable), poller.ErrBadFD},
			{"Modify Error interest", p.Modify(a, 0, poller.Error), poller.ErrInterest},
			{"Remove unknown", p.Remove(closedR), poller.ErrNotRegistered},
			{"Remove negative fd", p.Remove(-1), poller.ErrBadFD},
			{"Wait empty slice", waitErr(p, nil), poller.ErrNoEvents},
			{"Modify EdgeTriggered", p.Modify(a, 1, poller.Readable|poller.EdgeTriggered), edge},
		} {
			if !errors.Is(tc.err, tc.want) || (tc.want == nil) != (tc.err == nil) {
				t.Errorf("%s: got %v, want %v", tc.name, tc.err, tc.want)
			}
		}
		// A failed call changes nothing: a is still registered and works.
		if err := p.Modify(a, 1, poller.Readable); err != nil {
			t.Fatal(err)
		}
		expectNone(t, p)
	})
}

func waitErr(p poller.Poller, evs []poller.Event) error {
	_, err := p.Wait(evs, 0)
	return err
}

func TestEdgeTriggered(t *testing.T) {
	forEachBackend(t, func(t *testing.T, p poller.Poller) {
		a, b := socketpair(t)
		err := p.Add(a, 1, poller.Readable|poller.EdgeTriggered)
		if p.Backend() == poller.Poll || p.Backend() == poller.Select {
			if !errors.Is(err, errors.ErrUnsupported) {
				t.Fatalf("Add EdgeTriggered: %v, want ErrUnsupported", err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		mustWrite(t, b, "x")
		expectEvents(t, p, poller.Event{Fd: a, Token: 1, Events: poller.Readable})
		expectNone(t, p) // unread, but reported once per change
		mustWrite(t, b, "y")
		expectEvents(t, p, poller.Event{Fd: a, Token: 1, Events: poller.Readable})
	})
}

// TestNoStarvation: more ready fds than the events slice holds; every one
// must be reported within ceil(ready/len) Waits.
func TestNoStarvation(t *testing.T) {
	const ready, room = 10, 3
	forEachBackend(t, func(t *testing.T, p poller.Poller) {
		for i := range ready {
			a, b := socketpair(t)
			mustAdd(t, p, a, uint64(i), poller.Readable)
			mustWrite(t, b, "x")
		}
		seen := map[uint64]int{}
		evs := make([]poller.Event, room)
		for range (ready + room - 1) / room {
			n, err := p.Wait(evs, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range evs[:n] {
				seen[e.Token]++
			}
		}
		if len(seen) != ready {
			t.Fatalf("after %d Waits of %d, saw %d of %d ready fds: %v", (ready+room-1)/room, room, len(seen), ready, seen)
		}
	})
}

// TestManyFDs registers many fds with exactly one ready: 10,000, or for
// select as many as an fd_set holds room for (1,000).
func TestManyFDs(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 10,000 fds")
	}
	forEachBackend(t, func(t *testing.T, p poller.Poller) {
		n := 10000
		if p.Backend() == poller.Select {
			n = 1000
		}
		fds, peers := registerMany(t, p, n)
		hot := len(fds) / 2
		mustWrite(t, peers[hot], "x")
		expectEvents(t, p, poller.Event{Fd: fds[hot], Token: uint64(hot), Events: poller.Readable})
	})
}

// registerMany registers n fds for reading, both ends of n/2 socketpairs (so
// n fds, not 2n, are open); peers[i] is the other end of fds[i].
func registerMany(tb testing.TB, p poller.Poller, n int) (fds, peers []int) {
	tb.Helper()
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err == nil && uint64(lim.Cur) < uint64(n+100) {
		tb.Skipf("RLIMIT_NOFILE %d is too low for %d fds", lim.Cur, n)
	}
	for len(fds) < n {
		a, b := socketpair(tb)
		fds, peers = append(fds, a), append(peers, b)
		if len(fds) < n {
			fds, peers = append(fds, b), append(peers, a)
		}
	}
	for i, fd := range fds {
		mustAdd(tb, p, fd, uint64(i), poller.Readable)
	}
	return fds, peers
}

func TestSelectRefusesFDPastSetSize(t *testing.T) {
	p, err := poller.New(poller.Select)
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skip("no select backend here")
	}
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	a, _ := socketpair(t)
	for _, min := range []int{1023, 1024, 5000} {
		fd, err := unix.FcntlInt(uintptr(a), unix.F_DUPFD_CLOEXEC, min)
		if err != nil {
			t.Skipf("cannot dup to fd >= %d: %v", min, err)
		}
		closeLater(t, fd)
		err = p.Add(fd, 1, poller.Readable)
		switch {
		case fd < 1024 && err != nil:
			t.Errorf("Add(%d): %v, want success below FD_SETSIZE", fd, err)
		case fd >= 1024 && !errors.Is(err, poller.ErrFDTooLarge):
			t.Errorf("Add(%d): %v, want ErrFDTooLarge", fd, err)
		}
	}
}

// TestWaitDoesNotAllocate: no allocation per Wait in steady state.
func TestWaitDoesNotAllocate(t *testing.T) {
	forEachBackend(t, func(t *testing.T, p poller.Poller) {
		a, b := socketpair(t)
		mustAdd(t, p, a, 1, poller.Readable)
		mustWrite(t, b, "x")
		evs := make([]poller.Event, 16)
		allocs := testing.AllocsPerRun(100, func() {
			if n, err := p.Wait(evs, time.Second); n != 1 || err != nil {
				t.Fatalf("Wait: n=%d err=%v", n, err)
			}
		})
		if allocs != 0 {
			t.Fatalf("Wait allocates %.1f times per call, want 0", allocs)
		}
	})
}

func TestClosedWhileRegistered(t *testing.T) {
	// Closing before Remove breaks the contract; it must still not wedge
	// the poller: Wait keeps working for the other fds and Remove forgets
	// the closed one.
	forEachBackend(t, func(t *testing.T, p poller.Poller) {
		a, _ := socketpair(t)
		c, d := socketpair(t)
		mustAdd(t, p, a, 1, poller.Readable)
		mustAdd(t, p, c, 2, poller.Readable)
		unix.Close(a)
		mustWrite(t, d, "x")
		evs := make([]poller.Event, 8)
		seenC := false
		for range 3 {
			n, err := p.Wait(evs, time.Second)
			if err != nil {
				t.Fatalf("Wait with a closed fd registered: %v", err)
			}
			for _, e := range evs[:n] {
				switch {
				case e.Fd == c:
					seenC = true
				case e.Fd == a && e.Events&poller.Error == 0:
					t.Fatalf("closed fd reported as %v, want Error", e.Events)
				}
			}
		}
		if !seenC {
			t.Fatal("ready fd beside a closed one never reported")
		}
		if err := p.Remove(a); err != nil {
			t.Fatalf("Remove of a closed fd: %v", err)
		}
		expectEvents(t, p, poller.Event{Fd: c, Token: 2, Events: poller.Readable})
	})
}

// TestFullBatchAfterWake: a pending wake must not cost a ready fd its place
// in a batch that has exactly enough room (found by FuzzPollerOps: epoll's
// wake fd took one of the kernel slots, kqueue's two filters per fd two).
func TestFullBatchAfterWake(t *testing.T) {
	const ready = 8
	forEachBackend(t, func(t *testing.T, p poller.Poller) {
		var want []poller.Event
		for i := range ready {
			a, b := socketpair(t)
			mustAdd(t, p, a, uint64(i), poller.Readable|poller.Writable)
			mustWrite(t, b, "x")
			want = append(want, poller.Event{Fd: a, Token: uint64(i), Events: poller.Readable | poller.Writable})
		}
		for range 3 {
			if err := p.Wake(); err != nil {
				t.Fatal(err)
			}
			evs := make([]poller.Event, ready)
			n, err := p.Wait(evs, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(sorted(want), sorted(evs[:n])); diff != "" {
				t.Fatalf("Wait with room for exactly the %d ready fds (-want +got):\n%s", ready, diff)
			}
		}
	})
}
