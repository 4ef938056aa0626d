package poller_test

import (
	"os"
	"os/signal"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/poller"
)

// TestWaitRetriesEINTR interrupts a timed Wait with signals aimed at its
// thread: Wait must neither fail nor return early, but retry with the time
// left.
func TestWaitRetriesEINTR(t *testing.T) {
	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs, unix.SIGUSR1)
	defer signal.Stop(sigs)

	const timeout = 200 * time.Millisecond
	forEachBackend(t, func(t *testing.T, p poller.Poller) {
		a, _ := socketpair(t)
		mustAdd(t, p, a, 1, poller.Readable)
		tid := make(chan int, 1)
		done := make(chan waitResult, 1)
		var elapsed time.Duration
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			tid <- unix.Gettid()
			evs := make([]poller.Event, 4)
			start := time.Now()
			n, err := p.Wait(evs, timeout)
			elapsed = time.Since(start)
			done <- waitResult{n, err}
		}()
		thread := <-tid
		interrupted := 0
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		giveUp := time.After(10 * time.Second)
		for {
			select {
			case <-giveUp:
				t.Fatalf("Wait(%v) has not returned after 10s", timeout)
			case r := <-done:
				if r.err != nil || r.n != 0 {
					t.Fatalf("Wait: n=%d err=%v, want 0, nil", r.n, r.err)
				}
				if elapsed < timeout {
					t.Fatalf("Wait(%v) returned after %v: EINTR cut it short", timeout, elapsed)
				}
				if interrupted == 0 {
					t.Fatal("no signal was sent during Wait")
				}
				return
			case <-tick.C:
				if err := unix.Tgkill(unix.Getpid(), thread, unix.SIGUSR1); err != nil {
					t.Fatal(err)
				}
				interrupted++
			}
		}
	})
}
