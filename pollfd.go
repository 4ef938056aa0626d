package reactor

import (
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/fdtable"
	"github.com/muxkit/reactor/poller"
)

// pollFD is an fd used by ordinary goroutines in blocking style and driven
// by a Loop, the way Go's own internal/poll.FD is driven by the runtime
// netpoller: a goroutine tries the system call first; on EAGAIN it asks the
// loop to watch the fd for that direction (a one-shot interest) and parks
// on a 1-buffered channel; the loop signals the channel on readiness,
// hang-up, error, Close, or the deadline timer firing (deadlines are loop
// timers, not a goroutine or time.Timer per call), and the goroutine tries
// again. No goroutine spins, and no syscall runs on an fd Close has
// released: syscalls hold fdmu for reading, Close takes it for writing.
//
// A signal can be stale (left by a timer or an event for a goroutine that
// has since returned); a woken goroutine always retries its system call, so
// a stale signal costs one retry, never a wrong result.
//
// The fd is in the loop's poller only while some direction is armed. An
// fd with no interest cannot stay there: epoll and poll report a hang-up
// or an error whatever the interest, level-triggered, so a reset connection
// nobody reads would make its loop spin at 100% CPU.
type pollFD struct {
	fd     int
	loop   *Loop
	closed atomic.Bool
	fdmu   sync.RWMutex // read-held around every syscall on fd
	r, w   waiter
	// failed is set by the loop when the poller refuses to watch the fd;
	// a parked goroutine woken then returns it instead of retrying.
	failed atomic.Pointer[pollError]

	// Owned by the loop goroutine.
	handle  fdtable.Handle
	want    poller.Events // interest; the fd is in the poller iff want != 0
	nevents int           // events served, for tests that check the loop is not spinning

	// Method values made once, so parking and deadline changes do not
	// allocate a closure.
	armR, armW     func()
	rearmR, rearmW func()
}

// pollError boxes the error that stopped the loop watching a pollFD.
type pollError struct{ err error }

// waiter is one direction's parking place.
type waiter struct {
	dir      poller.Events // Readable or Writable
	ch       chan struct{} // the loop's signal, 1-buffered
	deadline atomic.Int64  // wall clock unix nanoseconds; 0 means none
	timer    Timer         // the deadline on the loop's heap; loop-owned
}

// signal wakes a goroutine parked on w, or the next one to park.
func (w *waiter) signal() {
	select {
	case w.ch <- struct{}{}:
	default:
	}
}

// expired reports whether w's deadline has passed.
func (w *waiter) expired() bool {
	d := w.deadline.Load()
	return d != 0 && time.Now().UnixNano() >= d
}

// newPollFD puts fd (non-blocking, close-on-exec) in l's table, not yet in
// its poller; it blocks until the loop has done so.
func newPollFD(l *Loop, fd int) (*pollFD, error) {
	p := &pollFD{fd: fd, loop: l}
	p.r = waiter{dir: poller.Readable, ch: make(chan struct{}, 1)}
	p.w = waiter{dir: poller.Writable, ch: make(chan struct{}, 1)}
	p.r.timer = Timer{loop: l, index: -1, fn: p.r.signal}
	p.w.timer = Timer{loop: l, index: -1, fn: p.w.signal}
	p.armR = func() { p.arm(&p.r) }
	p.armW = func() { p.arm(&p.w) }
	p.rearmR = func() { p.rearm(&p.r) }
	p.rearmW = func() { p.rearm(&p.w) }
	errc := make(chan error, 1)
	if err := l.Post(func() { errc <- p.register() }); err != nil {
		return nil, err
	}
	if err := <-errc; err != nil {
		return nil, err
	}
	return p, nil
}

// register puts p in the loop's table; on the loop goroutine. The first
// arm adds the fd to the poller; adding and removing it here already makes
// an fd the poller cannot take (select's FD_SETSIZE) fail now, in Accept
// or Dial, rather than at the first wait.
func (p *pollFD) register() error {
	h, err := p.loop.tab.Put(p.fd, p)
	if err != nil {
		return err
	}
	if err := p.loop.p.Add(p.fd, uint64(h), 0); err != nil {
		p.loop.tab.Delete(h)
		return err
	}
	p.loop.p.Remove(p.fd)
	p.handle = h
	return nil
}

// arm watches the fd for w's direction and schedules w's deadline; on the
// loop goroutine. It signals at once if p is closed or the deadline passed,
// so the parked goroutine rechecks.
func (p *pollFD) arm(w *waiter) {
	if p.closed.Load() || p.handle == 0 {
		w.signal()
		return
	}
	if d := w.deadline.Load(); d != 0 {
		left := time.Until(time.Unix(0, d))
		if left <= 0 {
			w.signal()
			return
		}
		w.timer.Reset(left)
	} else {
		w.timer.Stop()
	}
	p.setWant(p.want | w.dir)
}

// rearm applies a deadline change to w; on the loop goroutine. It reads the
// deadline now, so of several quick changes the last one counts. A parked
// goroutine is re-armed with the new deadline (and woken if it passed);
// with nobody parked the timer is dropped, the next arm sets it again.
func (p *pollFD) rearm(w *waiter) {
	if w.deadline.Load() == 0 || p.want&w.dir == 0 {
		w.timer.Stop()
		return
	}
	p.arm(w)
}

// setWant changes the poller interest; on the loop goroutine. The fd
// enters the poller with the first interest and leaves it with the last
// (see pollFD for why it may not stay with none).
func (p *pollFD) setWant(want poller.Events) {
	if want == p.want {
		return
	}
	var err error
	switch {
	case p.want == 0:
		err = p.loop.p.Add(p.fd, uint64(p.handle), want)
	case want == 0:
		err = p.loop.p.Remove(p.fd)
	default:
		err = p.loop.p.Modify(p.fd, uint64(p.handle), want)
	}
	if err != nil {
		// The poller will not watch the fd: record why and wake both
		// sides, which return the error (a retry would fail the same way,
		// forever).
		p.failed.CompareAndSwap(nil, &pollError{err})
		p.loop.p.Remove(p.fd)
		p.want = 0
		p.r.signal()
		p.w.signal()
		return
	}
	p.want = want
}

// onEvent wakes the parked goroutines the event concerns and drops the
// interest they had (one-shot: the goroutine re-arms after EAGAIN).
func (p *pollFD) onEvent(ev poller.Events) {
	p.nevents++
	want := p.want
	if ev&(poller.Readable|poller.HangUp|poller.Error) != 0 && want&poller.Readable != 0 {
		want &^= poller.Readable
		p.r.timer.Stop()
		p.r.signal()
	}
	if ev&(poller.Writable|poller.HangUp|poller.Error) != 0 && want&poller.Writable != 0 {
		want &^= poller.Writable
		p.w.timer.Stop()
		p.w.signal()
	}
	p.setWant(want)
}

// wait parks until the loop signals w. Each call hands the loop one arm
// request (no allocation: armR and armW are made once); the error is the
// loop's, when it has ended.
func (p *pollFD) wait(w *waiter) error {
	arm := p.armR
	if w == &p.w {
		arm = p.armW
	}
	if err := p.loop.Post(arm); err != nil {
		return err
	}
	<-w.ch
	if e := p.failed.Load(); e != nil {
		return e.err
	}
	return nil
}

// setDeadline sets w's deadline and has the loop re-arm a parked waiter.
// It does not allocate.
func (p *pollFD) setDeadline(w *waiter, t time.Time) {
	var d int64
	if !t.IsZero() {
		d = t.UnixNano()
	}
	w.deadline.Store(d)
	rearm := p.rearmR
	if w == &p.w {
		rearm = p.rearmW
	}
	p.loop.Post(rearm)
}

// close marks p closed, wakes both waiters, waits for syscalls in flight,
// and has the loop forget and close the fd; it blocks until then.
func (p *pollFD) close() error {
	if !p.closed.CompareAndSwap(false, true) {
		return errClosing
	}
	p.r.signal()
	p.w.signal()
	p.fdmu.Lock()
	p.fdmu.Unlock()
	done := make(chan struct{})
	detach := func() {
		defer close(done)
		p.r.timer.Stop()
		p.w.timer.Stop()
		if p.want != 0 {
			p.loop.p.Remove(p.fd)
			p.want = 0
		}
		if p.handle != 0 {
			p.loop.tab.Delete(p.handle)
			p.handle = 0
		}
		unix.Close(p.fd)
	}
	if p.loop.Post(detach) != nil {
		// The loop has ended, so nothing watches the fd any more.
		unix.Close(p.fd)
		return nil
	}
	<-done
	return nil
}

// wakeAll wakes both directions; after the loop ended, nothing else will.
func (p *pollFD) wakeAll() {
	p.r.signal()
	p.w.signal()
}

// syscall runs fn on the fd unless p is closed, holding fdmu for reading.
func (p *pollFD) syscall(fn func(fd int) (int, error)) (int, error) {
	p.fdmu.RLock()
	defer p.fdmu.RUnlock()
	if p.closed.Load() {
		return 0, errClosing
	}
	return fn(p.fd)
}
