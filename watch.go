package reactor

import (
	"fmt"

	"github.com/muxkit/reactor/fdtable"
	"github.com/muxkit/reactor/poller"
)

// Events is a set of readiness conditions, as package poller defines it:
// Readable, Writable and EdgeTriggered as interest; Readable, Writable,
// HangUp and Error as readiness.
type Events = poller.Events

// The readiness conditions and interest bits, re-exported from package
// poller so that watching an fd needs only this package.
const (
	Readable      = poller.Readable
	Writable      = poller.Writable
	HangUp        = poller.HangUp
	Error         = poller.Error
	EdgeTriggered = poller.EdgeTriggered
)

// Watcher receives the readiness of an fd watched on a Loop (see
// Loop.Watch). Both methods run on the loop goroutine and must not block.
type Watcher interface {
	// OnReady is called with the fd's readiness: Readable, Writable,
	// HangUp, Error. Spurious readiness is possible: read or write until
	// EAGAIN.
	OnReady(ev Events)
	// OnStop is called once if the loop ends while the fd is watched
	// (reason ErrLoopClosed, or ErrServerClosed for a Server's loop being
	// shut down); the watch has ended then, and the fd is still the
	// caller's to close.
	OnStop(reason error)
}

// Watch is one fd watched on a Loop, made by Loop.Watch. Its methods belong
// to the loop goroutine.
type Watch struct {
	loop   *Loop
	fd     int
	handle fdtable.Handle
	ev     Events // interest; the fd is in the poller iff ev != 0
	w      Watcher
}

// Watch starts watching fd for the interest ev (Readable, Writable, and
// EdgeTriggered where the backend has it: epoll and kqueue) and calls w's
// OnReady on the loop goroutine whenever the fd is ready; it is mio's
// SourceFd and gnet's Register. The fd stays the caller's: Watch does not
// change its flags (make it non-blocking first) and Stop does not close it;
// call Stop before closing it.
//
// An interest of 0 keeps the fd in the loop's table but out of its poller:
// level-triggered pollers report a hang-up or an error whatever the
// interest, so an fd nobody wants to hear from would make the loop spin.
// The fd is still checked now (select refuses an fd past FD_SETSIZE), so
// Watch fails early rather than at the first Modify.
//
// Call Watch on the loop goroutine (a callback of the loop, or a function
// given to Post). It allocates the Watch. EdgeTriggered on a backend
// without it is an error matching errors.ErrUnsupported; an fd already
// watched on this loop is an error.
func (l *Loop) Watch(fd int, ev Events, w Watcher) (*Watch, error) {
	if w == nil {
		return nil, fmt.Errorf("reactor: Watch of fd %d with a nil Watcher", fd)
	}
	if l.exited {
		return nil, ErrLoopClosed
	}
	x := &Watch{loop: l, fd: fd, ev: ev, w: w}
	h, err := l.tab.Put(fd, x)
	if err != nil {
		return nil, fmt.Errorf("reactor: Watch: %w", err)
	}
	x.handle = h
	err = l.p.Add(fd, uint64(h), ev)
	if err == nil && ev == 0 {
		err = l.p.Remove(fd)
	}
	if err != nil {
		l.tab.Delete(h)
		return nil, err
	}
	return x, nil
}

// Fd returns the watched fd.
func (x *Watch) Fd() int { return x.fd }

// Loop returns the loop that watches the fd.
func (x *Watch) Loop() *Loop { return x.loop }

// Interest returns the interest set by Watch or the last Modify.
func (x *Watch) Interest() Events { return x.ev }

// Modify changes the interest; with 0 the fd leaves the poller (see
// Loop.Watch) until a later Modify asks for something again. Call it on the
// loop goroutine; it makes a system call only when the interest changes,
// and does not allocate. After Stop it returns an error matching
// ErrLoopClosed.
func (x *Watch) Modify(ev Events) error {
	if x.handle == 0 {
		return errWatchStopped
	}
	if ev == x.ev {
		return nil
	}
	var err error
	switch {
	case x.ev == 0:
		err = x.loop.p.Add(x.fd, uint64(x.handle), ev)
	case ev == 0:
		err = x.loop.p.Remove(x.fd)
	default:
		err = x.loop.p.Modify(x.fd, uint64(x.handle), ev)
	}
	if err != nil {
		return err
	}
	x.ev = ev
	return nil
}

// Stop ends the watch: the fd leaves the poller and the loop's table, and
// OnReady is not called again. It does not close the fd. Call it on the
// loop goroutine; a second Stop returns an error.
func (x *Watch) Stop() error {
	if x.handle == 0 {
		return errWatchStopped
	}
	var err error
	if x.ev != 0 {
		err = x.loop.p.Remove(x.fd)
		x.ev = 0
	}
	x.loop.tab.Delete(x.handle)
	x.handle = 0
	return err
}

// errWatchStopped is returned by Modify and Stop of a watch that ended.
var errWatchStopped = fmt.Errorf("reactor: watch stopped: %w", ErrLoopClosed)

func (x *Watch) onEvent(ev poller.Events) {
	x.loop.watched = true
	x.w.OnReady(ev)
}

func (x *Watch) onStop(reason error) {
	x.Stop()
	x.w.OnStop(reason)
}
