package reactor

import (
	"errors"
	"os"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A loop lives in someone else's program, so every loop, whatever its
// engine, keeps one rule: the rest of the program runs as promptly beside
// it as beside Go's own net package. Two things would break it.
//
//   - A goroutine blocked in a system call keeps its P (the runtime's right
//     to run Go code), and the goroutines it has just made runnable (the
//     readers a Watcher signalled, a goroutine waiting for a posted
//     function's result, a worker a handler sent to) sit in that P's run
//     queue until the runtime's monitor takes the P back, 20 us to 10 ms
//     later.
//   - A loop that serves a long burst without entering the scheduler holds
//     back timers, other goroutines and the garbage collector for as long.
//
// So (Loop.block) after a turn that ran a Watcher, a timer or a posted
// function, the loop's next blocking wait parks in Go's netpoller on the
// engine's own fd (epoll's, kqueue's, the io_uring's), which leaves the P
// to what the turn made runnable and sleeps only when nothing is; on poll
// and select, which have no such fd, it yields instead. After any other
// turn that served something it yields twice (runtime.Gosched) and then
// blocks in its engine's wait: what a handler woke runs first, except when
// the scheduler's fairness check picks the loop from the global run queue
// before it, once in 61 schedules. And (Loop.pace) while it serves a
// turn, it yields whenever paceEvery has passed since it last did
// (Loop.paceDue), time in the engine's system calls included: the
// completion engine submits what the turn has filled first, so that the
// kernel's share of the turn's work comes in pieces too.
//
// None of this needs the loop's goroutine to own its thread: neither
// engine locks it (a locked goroutine's yield hands its P to another
// thread and back, 5 to 15 us where an unlocked one's costs 0.2 us;
// docs/io_uring.md has the measurements). Without the yields before
// blocking, the runtime's monitor takes the P from most waits of a few
// tens of microseconds and hands it to another thread that finds nothing
// to run; why yielding first prevents that is not traced.

// paceEvery is the longest a loop serves a turn without yielding to the
// rest of the program: the Go runtime itself only preempts a goroutine
// after 10 ms.
const paceEvery = 100 * time.Microsecond

// paceCheck is how many events or completions a loop serves between two
// looks at the clock (see pace).
const paceCheck = 16

// paceDue reports whether the loop has served for paceEvery since it last
// yielded (see yield); call it after each event or completion served. It
// reads the clock once in paceCheck calls.
func (l *Loop) paceDue() bool {
	l.paced++
	if l.paced < paceCheck {
		return false
	}
	l.paced = 0
	return l.clock()-l.yielded >= int64(paceEvery)
}

// yield lets the rest of the program run, and notes when.
func (l *Loop) yield() {
	runtime.Gosched()
	l.yielded = l.clock()
}

// block waits for up to timeout (!= 0) by the loop's rule: after a turn
// that woke goroutines it parks in Go's netpoller on *park (if the engine
// has one, and until parking fails, when *park is dropped); after any
// other busy turn it yields twice first; then it calls wait, the engine's
// blocking wait.
func (l *Loop) block(timeout time.Duration, park **runtimePark, wait func(time.Duration) error) error {
	if l.woke && *park != nil {
		err := (*park).wait(timeout)
		if err != errors.ErrUnsupported {
			l.yielded = l.clock()
			return err
		}
		(*park).close()
		*park = nil
	}
	if l.busy && !l.ownsThread {
		// Twice: one schedule in 61 takes the global run queue first,
		// where Gosched put the loop.
		runtime.Gosched()
		runtime.Gosched()
		l.yielded = l.clock()
	}
	return wait(timeout)
}

// runtimePark waits for an engine's fd in Go's own netpoller instead of in
// a blocking system call: the fd (epoll's, kqueue's, an io_uring's) is
// readable while the engine's wait would find something, so the loop
// goroutine parks on a duplicate of it like any goroutine parks on a
// socket, and its P runs other goroutines meanwhile. A look with timeout 0
// (ready) then collects what is there. It costs the runtime's own wait and
// the extra look, so the loop parks only after turns that may have made
// goroutines runnable (see Loop.block).
type runtimePark struct {
	f      *os.File
	rc     syscall.RawConn
	timed  bool // a read deadline is set on f
	err    error
	tries  int // calls of try in this wait
	loop   *Loop
	ready  func() (bool, error)
	tryOne func(uintptr) bool // try as a value made once: parking allocates nothing
}

// newRuntimePark returns a runtimePark of l on a duplicate of fd, with
// ready the engine's zero-timeout look, or nil if the runtime cannot poll
// fd.
func newRuntimePark(l *Loop, fd int, ready func() (bool, error)) *runtimePark {
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	if err := unix.SetNonblock(dup, true); err != nil {
		unix.Close(dup)
		return nil
	}
	f := os.NewFile(uintptr(dup), "reactor-loop") // pollable: non-blocking
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil
	}
	r := &runtimePark{f: f, rc: rc, loop: l, ready: ready}
	r.tryOne = r.try
	return r
}

// try is the RawConn.Read callback. The first call is done if the engine
// found something, failed, or functions were posted; a later one, made
// because the runtime saw the fd readable, is done whatever it found. A
// Wake shows as a look that finds nothing (the poller drains it), so a
// Wake the first look took would be lost if the loop parked then: but
// Post queues before it wakes, so the queue tells.
func (r *runtimePark) try(uintptr) bool {
	r.tries++
	if r.tries == 1 {
		// Let what the last turn woke run first: the events its work
		// leads to are then collected now, in one look, rather than by
		// a park and a wake each.
		runtime.Gosched()
	}
	var found bool
	found, r.err = r.ready()
	return found || r.err != nil || r.tries > 1 || r.loop.postPending()
}

// wait parks until the engine has something, for up to timeout (!= 0);
// the engine's look has collected it when wait returns. A failure of the
// runtime's side (not a deadline) is reported as errors.ErrUnsupported,
// and the loop goes back to blocking in its engine.
func (r *runtimePark) wait(timeout time.Duration) error {
	switch {
	case timeout > 0:
		r.f.SetReadDeadline(time.Now().Add(timeout))
		r.timed = true
	case r.timed:
		r.f.SetReadDeadline(time.Time{})
		r.timed = false
	}
	r.err, r.tries = nil, 0
	err := r.rc.Read(r.tryOne)
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		return errors.ErrUnsupported
	}
	return r.err
}

// close releases the duplicate fd.
func (r *runtimePark) close() { r.f.Close() }
