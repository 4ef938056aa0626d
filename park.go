package reactor

import (
	"errors"
	"os"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/poller"
)

// runtimePark waits for a loop's poller in Go's own netpoller instead of in
// a blocking system call: the poller's fd (epoll, kqueue) is readable
// while a Wait would report something, so the loop goroutine parks on a
// duplicate of it like any goroutine parks on a socket, and its P runs
// other goroutines meanwhile. A Wait with timeout 0 then collects the
// events. It costs the runtime's own wait and the extra zero-timeout Wait,
// so the loop uses it only after turns that may have made goroutines
// runnable (see Loop).
type runtimePark struct {
	f      *os.File
	rc     syscall.RawConn
	timed  bool // a read deadline is set on f
	n      int  // what the last zero-timeout Wait returned
	err    error
	tries  int // calls of try in this wait
	loop   *Loop
	tryOne func(uintptr) bool // try as a value made once: parking allocates nothing
}

// newRuntimePark returns a runtimePark for l, or nil if l's poller has no
// pollable fd or the runtime cannot poll it.
func newRuntimePark(l *Loop) *runtimePark {
	var pfd int
	if l.eng != nil {
		pfd = l.eng.fd() // an eventfd the ring signals while the loop parks
	} else if fp, ok := l.p.(poller.FDPoller); ok {
		pfd = fp.Fd()
	} else {
		return nil
	}
	fd, err := unix.FcntlInt(uintptr(pfd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil
	}
	f := os.NewFile(uintptr(fd), "reactor-poller") // pollable: non-blocking
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil
	}
	r := &runtimePark{f: f, rc: rc, loop: l}
	r.tryOne = r.try
	return r
}

// try is the RawConn.Read callback: a zero-timeout Wait. The first call is
// done if it found something, failed, or functions were posted; a later
// one, made because the runtime saw the fd readable, is done whatever it
// found. A Wake shows as a Wait that returns no events (the poller drains
// it), so a Wake the first Wait took would be lost if the loop parked
// then: but Post queues before it wakes, so the queue tells.
func (r *runtimePark) try(uintptr) bool {
	r.tries++
	if r.tries == 1 && r.loop.eng == nil {
		// Let what the last turn woke run first: the events its work
		// leads to are then collected now, in one Wait, rather than by
		// a park and a wake each. Not on the engine: its loop is
		// locked to its thread, where a yield hands the P to another
		// thread and back.
		runtime.Gosched()
	}
	if e := r.loop.eng; e != nil {
		r.n, r.err = e.readyNow(), e.err
	} else {
		r.n, r.err = r.loop.p.Wait(r.loop.events, 0)
	}
	return r.n > 0 || r.err != nil || r.tries > 1 || r.loop.postPending()
}

// wait waits like Poller.Wait(events, timeout) with timeout != 0. A
// failure of the runtime's side (not a deadline) is reported as
// errors.ErrUnsupported, and the loop goes back to waiting in the poller.
func (r *runtimePark) wait(timeout time.Duration) (int, error) {
	switch {
	case timeout > 0:
		r.f.SetReadDeadline(time.Now().Add(timeout))
		r.timed = true
	case r.timed:
		r.f.SetReadDeadline(time.Time{})
		r.timed = false
	}
	r.n, r.err, r.tries = 0, nil, 0
	err := r.rc.Read(r.tryOne)
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		return 0, errors.ErrUnsupported
	}
	return r.n, r.err
}

// close releases the duplicate fd.
func (r *runtimePark) close() { r.f.Close() }

// wait is the loop's wait for up to timeout. After a turn that ran a
// Watcher, a timer or a posted function, any of which may have made
// goroutines runnable, a blocking wait parks in Go's netpoller (epoll,
// kqueue) so the P runs them first. After any other turn that served
// something, and on poll and select, which have no fd to park on, the loop
// yields twice (runtime.Gosched) and then blocks in the poller.
func (l *Loop) wait(timeout time.Duration) (int, error) {
	if timeout == 0 {
		return l.p.Wait(l.events, 0)
	}
	if l.woke && l.rpark != nil {
		n, err := l.rpark.wait(timeout)
		if err != errors.ErrUnsupported {
			return n, err
		}
		l.rpark.close()
		l.rpark = nil
	}
	if l.busy {
		// Twice: one schedule in 61 takes the global run queue first,
		// where Gosched put the loop.
		runtime.Gosched()
		runtime.Gosched()
	}
	return l.p.Wait(l.events, timeout)
}
