package netconn

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor"
)

// fd is a socket used by ordinary goroutines in blocking style and driven
// by a reactor loop, the way Go's internal/poll.FD is driven by the
// runtime's netpoller: a goroutine tries the system call first; on EAGAIN
// it parks on its direction's waiter, which the loop signals when the fd is
// ready, hangs up or fails, when the deadline's loop timer fires, or when
// Close or the loop's end wakes everything.
//
// A waiter is a state word and a 1-buffered channel, as the runtime's
// pollDesc is a state word and a parked goroutine. The state is idle,
// ready (a signal came and nobody waited: the next park returns at once)
// or waiting (a goroutine is receiving from the channel). A signal turns
// idle into ready, or waiting into idle plus one token on the channel; a
// park turns idle into waiting and receives, or consumes ready. So a
// signal with nobody waiting, the common case for the write side, where
// nearly every edge says writable, is one atomic operation, and the
// channel carries exactly one token per park, never a stale one.
//
// Registration: on a backend with edge-triggering (epoll, kqueue) the fd is
// watched for both directions, edge-triggered, from the first moment to
// Close, and every readiness edge signals its waiter. Parking then costs no
// system call, no Post and no wake of the loop: an edge that came between
// the EAGAIN and the park has left the state ready. On poll and select
// (level-triggered only) the fd is in the loop's table for its life but in
// the poller only while a goroutine waits: each park Posts an arm that adds
// the interest, and the event drops it again (an fd nobody waits for would
// be reported ready, or hung up, on every wait).
//
// A ready state can be stale (an edge for data that was read before the
// goroutine parked, a timer for a deadline since moved): a woken goroutine
// always retries its system call, so it costs one retry, never a wrong
// result, as with the runtime's pdReady. Read and Write reset it before
// their first system call (waiter.prepare), as the runtime's prepareRead
// does, so the usual stale one, an edge for the data that call reads,
// costs nothing.
//
// Deadlines are loop timers, armed only while a goroutine waits with a
// deadline set: setting one to the past signals the waiter directly,
// clearing one or moving it later costs nothing (the timer, when it fires,
// reads the deadline again and re-arms for the new one or drops out), and
// only moving it earlier under a parked goroutine Posts a re-arm.
//
// No system call runs on an fd Close has released: every one holds fdmu
// for reading, and Close takes it for writing before handing the fd to the
// loop to forget and close.
type fd struct {
	sysfd   int
	loop    *reactor.Loop
	closing atomic.Bool
	fdmu    sync.RWMutex // read-held around every system call on sysfd
	r, w    waiter
	// failed is set when the loop stops watching the fd (it ended, or the
	// poller refused an interest); a woken goroutine returns it.
	failed atomic.Pointer[error]

	// Set on the loop goroutine by register, before newFD returns.
	edge bool // watched edge-triggered for life: parking needs no arm

	// Owned by the loop goroutine.
	watch *reactor.Watch // nil once stopped
	want  reactor.Events // level-triggered: the interest armed
}

// waiter is one direction's parking place.
type waiter struct {
	fd       *fd
	dir      reactor.Events // Readable or Writable
	state    atomic.Int32   // idle, ready or waiting (see fd)
	ch       chan struct{}  // one token per park that a signal ended
	parked   atomic.Bool    // a goroutine is in wait (for setDeadline)
	deadline atomic.Int64   // monotonic ns (see mono); 0 means none
	timerAt  atomic.Int64   // the deadline the loop timer is armed for; 0 none
	timer    *reactor.Timer // loop-owned, made on first use
	arm      func()         // w.doArm as a value made once: parking allocates nothing
	fire     func()         // w.onTimer likewise
}

// epoch is the origin of the monotonic deadline clock.
var epoch = time.Now()

// now is the monotonic clock in nanoseconds since epoch.
func now() int64 { return int64(time.Since(epoch)) }

// mono converts a deadline to the monotonic clock; the zero time is 0 (no
// deadline), and any time before epoch is 1, long past.
func mono(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return max(int64(t.Sub(epoch)), 1)
}

func (w *waiter) init(f *fd, dir reactor.Events) {
	w.fd, w.dir = f, dir
	w.ch = make(chan struct{}, 1)
	w.arm = w.doArm
	w.fire = w.onTimer
}

// The states of a waiter.
const (
	idle int32 = iota
	ready
	waiting
)

// signal wakes the goroutine parked on w, or makes the next park return
// at once; safe from any goroutine, and one atomic operation when nobody
// waits.
func (w *waiter) signal() {
	for {
		switch w.state.Load() {
		case ready:
			return
		case waiting:
			if w.state.CompareAndSwap(waiting, idle) {
				w.ch <- struct{}{} // never blocks: one token per park
				return
			}
		default:
			if w.state.CompareAndSwap(idle, ready) {
				return
			}
		}
	}
}

// park waits for a signal, or consumes one that came first. One goroutine
// parks on a waiter at a time.
func (w *waiter) park() {
	if w.state.CompareAndSwap(idle, waiting) {
		<-w.ch
		return
	}
	w.state.Store(idle) // it was ready; only park leaves that state
}

// prepare drops a signal left from before the system call about to be
// made: that call sees whatever the signal was for (data, room, a closed
// fd, a passed deadline), and keeping it would cost a retry that returns
// EAGAIN. Go's runtime resets its pdReady the same way (prepareRead). It
// is one atomic load when there is none.
func (w *waiter) prepare() {
	if w.state.Load() == ready {
		w.state.CompareAndSwap(ready, idle)
	}
}

// expired reports whether w's deadline has passed.
func (w *waiter) expired() bool {
	d := w.deadline.Load()
	return d != 0 && now() >= d
}

// newFD watches sysfd (non-blocking, close-on-exec) on l; it blocks until
// the loop has done so. On failure sysfd is still the caller's.
func newFD(l *reactor.Loop, sysfd int) (*fd, error) {
	f := &fd{sysfd: sysfd, loop: l}
	f.r.init(f, reactor.Readable)
	f.w.init(f, reactor.Writable)
	errc := make(chan error, 1)
	if err := l.Post(func() { errc <- f.register() }); err != nil {
		return nil, err
	}
	if err := <-errc; err != nil {
		return nil, err
	}
	return f, nil
}

// register watches the fd, edge-triggered for both directions where the
// backend can, else with no interest until a goroutine parks; on the loop
// goroutine.
func (f *fd) register() error {
	x, err := f.loop.Watch(f.sysfd, reactor.Readable|reactor.Writable|reactor.EdgeTriggered, f)
	if err == nil {
		f.watch, f.edge = x, true
		return nil
	}
	if !errors.Is(err, errors.ErrUnsupported) {
		return err
	}
	x, err = f.loop.Watch(f.sysfd, 0, f)
	if err != nil {
		return err
	}
	f.watch = x
	return nil
}

// OnReady wakes the parked goroutines the readiness concerns; level-
// triggered, it also drops the interest of the directions woken (the
// goroutine arms again after its next EAGAIN). On the loop goroutine.
func (f *fd) OnReady(ev reactor.Events) {
	if ev&(reactor.Readable|reactor.HangUp|reactor.Error) != 0 {
		f.r.signal()
	}
	if ev&(reactor.Writable|reactor.HangUp|reactor.Error) != 0 {
		f.w.signal()
	}
	if f.edge {
		return
	}
	want := f.want
	if ev&(reactor.Readable|reactor.HangUp|reactor.Error) != 0 {
		want &^= reactor.Readable
	}
	if ev&(reactor.Writable|reactor.HangUp|reactor.Error) != 0 {
		want &^= reactor.Writable
	}
	f.setWant(want)
}

// OnStop is the loop ending while the fd is watched: every waiter wakes and
// returns the reason.
func (f *fd) OnStop(reason error) {
	f.watch = nil
	f.fail(reason)
}

// fail records why the fd can no longer be waited for and wakes both
// directions; on the loop goroutine.
func (f *fd) fail(err error) {
	f.failed.CompareAndSwap(nil, &err)
	f.r.signal()
	f.w.signal()
}

// setWant changes the level-triggered interest; on the loop goroutine.
func (f *fd) setWant(want reactor.Events) {
	if want == f.want || f.watch == nil {
		return
	}
	if err := f.watch.Modify(want); err != nil {
		// The poller will not watch the fd: every wait would fail the
		// same way, forever, so fail them all now.
		f.watch.Modify(0)
		f.want = 0
		f.fail(err)
		return
	}
	f.want = want
}

// doArm prepares the loop for a goroutine parking on w: the deadline's
// timer and, level-triggered, the interest. On the loop goroutine.
func (w *waiter) doArm() {
	f := w.fd
	if f.closing.Load() || f.watch == nil {
		w.signal()
		return
	}
	if d := w.deadline.Load(); d != 0 {
		left := d - now()
		if left <= 0 {
			w.signal()
			return
		}
		if w.timerAt.Load() != d {
			w.setTimer(d, left)
		}
	}
	if !f.edge {
		f.setWant(f.want | w.dir)
	}
}

// setTimer arms w's loop timer for deadline d, left from now.
func (w *waiter) setTimer(d, left int64) {
	if w.timer == nil {
		w.timer = w.fd.loop.AfterFunc(time.Duration(left), w.fire)
	} else {
		w.timer.Reset(time.Duration(left))
	}
	w.timerAt.Store(d)
}

// onTimer is w's loop timer: it reads the deadline again, so a deadline
// cleared or moved later since the timer was armed costs nothing more than
// this check and a re-arm.
func (w *waiter) onTimer() {
	d := w.deadline.Load()
	if d == 0 || w.fd.closing.Load() {
		w.timerAt.Store(0)
		return
	}
	if left := d - now(); left > 0 {
		w.setTimer(d, left)
		return
	}
	w.timerAt.Store(0)
	w.signal()
}

// wait parks until the loop signals w; the error is the loop's, when it
// has stopped watching the fd.
func (f *fd) wait(w *waiter) error {
	w.parked.Store(true)
	if e := f.failed.Load(); e != nil {
		// The loop stopped watching the fd and woke the waiters once
		// (fail); edge-triggered, nothing would wake this park.
		w.parked.Store(false)
		return *e
	}
	if !f.edge {
		if err := f.loop.Post(w.arm); err != nil {
			w.parked.Store(false)
			return err
		}
	} else if d := w.deadline.Load(); d != 0 {
		if at := w.timerAt.Load(); at == 0 || at > d {
			if err := f.loop.Post(w.arm); err != nil {
				w.parked.Store(false)
				return err
			}
		}
	}
	w.park()
	w.parked.Store(false)
	if e := f.failed.Load(); e != nil {
		return *e
	}
	return nil
}

// setDeadline sets w's deadline. It does not allocate, and makes the loop
// do something only when a goroutine is parked and the new deadline comes
// before the timer armed for it.
func (f *fd) setDeadline(w *waiter, t time.Time) {
	d := mono(t)
	w.deadline.Store(d)
	switch {
	case d == 0:
		// A timer armed finds no deadline when it fires.
	case d <= now():
		w.signal()
	case w.parked.Load():
		if at := w.timerAt.Load(); at == 0 || at > d {
			f.loop.Post(w.arm)
		}
	}
}

// close marks f closed, wakes both waiters, waits for system calls in
// flight, and has the loop forget and close the fd; it blocks until then.
// A second close returns net.ErrClosed.
func (f *fd) close() error {
	if !f.closing.CompareAndSwap(false, true) {
		return net.ErrClosed
	}
	f.r.signal()
	f.w.signal()
	f.fdmu.Lock()
	f.fdmu.Unlock()
	done := make(chan struct{})
	if f.loop.Post(func() { f.detach(); close(done) }) != nil {
		// The loop has ended, so nothing watches the fd any more.
		unix.Close(f.sysfd)
		return nil
	}
	<-done
	return nil
}

// detach forgets the fd and closes it; on the loop goroutine.
func (f *fd) detach() {
	for _, w := range [...]*waiter{&f.r, &f.w} {
		if w.timer != nil {
			w.timer.Stop()
		}
	}
	if f.watch != nil {
		f.watch.Stop()
		f.watch = nil
	}
	unix.Close(f.sysfd)
}

// syscall runs fn on the fd unless f is closed, holding fdmu for reading.
func (f *fd) syscall(fn func(fd int) (int, error)) (int, error) {
	f.fdmu.RLock()
	defer f.fdmu.RUnlock()
	if f.closing.Load() {
		return 0, net.ErrClosed
	}
	return fn(f.sysfd)
}
