package poller_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/poller"
)

// forEachBackend runs fn as a subtest for every backend this OS has.
func forEachBackend(t *testing.T, fn func(t *testing.T, p poller.Poller)) {
	t.Helper()
	for _, b := range poller.Available() {
		t.Run(b.String(), func(t *testing.T) {
			fn(t, newPoller(t, b))
		})
	}
}

// newPoller returns a Poller that is closed when the test ends.
func newPoller(tb testing.TB, b poller.Backend) poller.Poller {
	tb.Helper()
	p, err := poller.New(b)
	if err != nil {
		tb.Fatalf("New(%v): %v", b, err)
	}
	tb.Cleanup(func() {
		if err := p.Close(); err != nil && !errors.Is(err, poller.ErrClosed) {
			tb.Errorf("Close: %v", err)
		}
	})
	return p
}

// closeLater closes fds when the test ends, unless the test closed them.
func closeLater(tb testing.TB, fds ...int) {
	tb.Cleanup(func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	})
}

// socketpair returns a connected pair of non-blocking unix stream sockets.
func socketpair(tb testing.TB) (a, b int) {
	tb.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		tb.Fatalf("socketpair: %v", err)
	}
	closeLater(tb, fds[0], fds[1])
	nonblock(tb, fds[:]...)
	return fds[0], fds[1]
}

// pipe returns a non-blocking pipe.
func pipe(tb testing.TB) (r, w int) {
	tb.Helper()
	var p [2]int
	if err := unix.Pipe(p[:]); err != nil {
		tb.Fatalf("pipe: %v", err)
	}
	closeLater(tb, p[0], p[1])
	nonblock(tb, p[:]...)
	return p[0], p[1]
}

// nonblock sets O_NONBLOCK on fds (portably: darwin has no SOCK_NONBLOCK).
func nonblock(tb testing.TB, fds ...int) {
	tb.Helper()
	for _, fd := range fds {
		if err := unix.SetNonblock(fd, true); err != nil {
			tb.Fatalf("SetNonblock(%d): %v", fd, err)
		}
	}
}

func mustAdd(tb testing.TB, p poller.Poller, fd int, token uint64, ev poller.Events) {
	tb.Helper()
	if err := p.Add(fd, token, ev); err != nil {
		tb.Fatalf("Add(%d, %d, %v): %v", fd, token, ev, err)
	}
}

func mustWrite(tb testing.TB, fd int, s string) {
	tb.Helper()
	if n, err := unix.Write(fd, []byte(s)); err != nil || n != len(s) {
		tb.Fatalf("write(%d): n=%d err=%v", fd, n, err)
	}
}

// drain reads fd until it would block.
func drain(tb testing.TB, fd int) {
	tb.Helper()
	var buf [4096]byte
	for {
		_, err := unix.Read(fd, buf[:])
		if err == unix.EAGAIN {
			return
		}
		if err != nil {
			tb.Fatalf("read(%d): %v", fd, err)
		}
	}
}

// sorted returns events ordered by fd, for comparison.
func sorted(evs []poller.Event) []poller.Event {
	evs = slices.Clone(evs)
	slices.SortFunc(evs, func(a, b poller.Event) int { return a.Fd - b.Fd })
	return evs
}

// expectEvents waits until one Wait reports exactly want (in any order) and
// fails with the last difference if that does not happen within 5 seconds.
// Level-triggered readiness makes every Wait a full snapshot, so the first
// Wait normally matches; the retries only absorb a kernel that publishes
// readiness a moment late.
func expectEvents(tb testing.TB, p poller.Poller, want ...poller.Event) {
	tb.Helper()
	want = sorted(want)
	evs := make([]poller.Event, 64)
	end := time.Now().Add(5 * time.Second)
	var diff string
	for time.Now().Before(end) {
		n, err := p.Wait(evs, 50*time.Millisecond)
		if err != nil {
			tb.Fatalf("Wait: %v", err)
		}
		if diff = cmp.Diff(want, sorted(evs[:n])); diff == "" {
			return
		}
	}
	tb.Fatalf("%v: events differ (-want +got):\n%s", p.Backend(), diff)
}

// expectNone asserts that a Wait of 20ms reports nothing.
func expectNone(tb testing.TB, p poller.Poller) {
	tb.Helper()
	evs := make([]poller.Event, 64)
	n, err := p.Wait(evs, 20*time.Millisecond)
	if err != nil {
		tb.Fatalf("Wait: %v", err)
	}
	if n != 0 {
		tb.Fatalf("%v: Wait reported %v, want nothing", p.Backend(), evs[:n])
	}
}

// hasHangUp says whether the backend reports a peer's close as HangUp;
// select has no such condition and reports it as Readable only.
func hasHangUp(p poller.Poller) bool { return p.Backend() != poller.Select }

// waitResult is what a Wait run in another goroutine returned.
type waitResult struct {
	n   int
	err error
}

// waitAsync runs Wait(timeout) in a goroutine and returns its result channel.
func waitAsync(p poller.Poller, timeout time.Duration) <-chan waitResult {
	ch := make(chan waitResult, 1)
	go func() {
		evs := make([]poller.Event, 8)
		n, err := p.Wait(evs, timeout)
		ch <- waitResult{n, err}
	}()
	return ch
}

// receive returns the result of an async Wait, failing if none comes in 10s.
func receive(tb testing.TB, ch <-chan waitResult) waitResult {
	tb.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		tb.Fatal("Wait did not return within 10s")
		return waitResult{}
	}
}
