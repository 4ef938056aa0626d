// Package leakcheck is for tests: it checks that a test leaves no fd and
// no goroutine behind. It reads /proc/self/fd, so fd counts work on linux
// only; elsewhere only goroutines are checked.
package leakcheck

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// OpenFDs is the number of fds the process has open, or -1 where
// /proc/self/fd does not exist.
func OpenFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// describe lists the open fds and what they are, for a leak report.
func describe() string {
	ents, _ := os.ReadDir("/proc/self/fd")
	var b bytes.Buffer
	for _, e := range ents {
		target, _ := os.Readlink("/proc/self/fd/" + e.Name())
		fmt.Fprintf(&b, "\n\tfd %s -> %s", e.Name(), target)
	}
	return b.String()
}

// Warm starts what the Go runtime starts once and then keeps for the
// life of the process: its netpoller, whose epoll (or kqueue) and wake fds
// serve every client made with package net, by listening on a loopback
// port and closing it; and os/signal's delivery goroutine, by watching
// SIGCHLD (as a multiprocess server does) and stopping. A TestMain calls
// it before m.Run, so that what the runtime keeps is in every leak
// check's baseline and no test is blamed for starting it. It blocks only
// briefly and may be called more than once.
func Warm() {
	if ln, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
		ln.Close()
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, unix.SIGCHLD)
	signal.Stop(ch)
}

// Check records the fd and goroutine counts now and, when the test ends
// (after every cleanup registered after it), waits up to 5 s for both to
// be back to at most what they were; it fails the test if they are not.
func Check(t testing.TB) {
	t.Helper()
	fds, gs := OpenFDs(), runtime.NumGoroutine()
	t.Cleanup(func() {
		end := time.Now().Add(5 * time.Second)
		for {
			nf, ng := OpenFDs(), runtime.NumGoroutine()
			if nf <= fds && ng <= gs {
				return
			}
			if time.Now().After(end) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("leak: fds %d -> %d, goroutines %d -> %d%s\n%s", fds, nf, gs, ng, describe(), buf)
				return
			}
			time.Sleep(10 * time.Millisecond) // polling a condition, with a deadline
		}
	})
}
