package reactor

import (
	"errors"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/poller"
)

// readiness is the engine over a poller.Poller: the loop waits until its
// fds are ready and then reads and writes them itself (see engine).
type readiness struct {
	l    *Loop
	park *runtimePark // nil where the poller has no pollable fd (poll, select)
	n    int          // events the last wait returned
}

// newReadiness returns the readiness engine of l, over l's poller.
func newReadiness(l *Loop) *readiness {
	e := &readiness{l: l}
	if fp, ok := l.p.(poller.FDPoller); ok {
		e.park = newRuntimePark(l, fp.Fd(), e.ready)
	}
	return e
}

func (e *readiness) backend() poller.Backend { return e.l.p.Backend() }

// turn waits for events by the loop's rule and serves them.
func (e *readiness) turn(timeout time.Duration) (bool, error) {
	l := e.l
	e.n = 0
	var err error
	if timeout == 0 {
		e.n, err = l.p.Wait(l.events, 0)
	} else {
		err = l.block(timeout, &e.park, e.wait)
	}
	if err != nil {
		if !errors.Is(err, unix.EINTR) {
			return false, err
		}
		// The contract has Wait retry EINTR, but a Poller from
		// Server.NewPoller may not: serve timers and posts, wait again.
		e.n = 0
	}
	l.beginTurn()
	l.serveEvents(e.n)
	return e.n > 0, nil
}

// wait is the blocking wait of Loop.block: the poller's.
func (e *readiness) wait(timeout time.Duration) (err error) {
	e.n, err = e.l.p.Wait(e.l.events, timeout)
	return err
}

// ready is the park's zero-timeout look: the poller's Wait with timeout 0.
func (e *readiness) ready() (bool, error) {
	var err error
	e.n, err = e.l.p.Wait(e.l.events, 0)
	return e.n > 0, err
}

// open registers c with the interest newConn gave it.
func (e *readiness) open(c *Conn) error {
	return e.l.p.Add(c.sock.Fd(), uint64(c.handle), c.want)
}

// send writes c's queue now; an error closes c and is returned.
func (e *readiness) send(c *Conn, _ bool) error {
	l := e.l
	before := c.sock.Pending()
	err := c.sock.Flush()
	sent := before - c.sock.Pending()
	l.tout += int64(sent)
	l.tqueued -= int64(sent)
	if err != nil {
		c.closeNow(err)
	}
	return err
}

// writev writes c's queue and then bufs with one writev(2), queueing what
// the kernel does not take.
func (e *readiness) writev(c *Conn, bufs [][]byte) (int, error) {
	l := e.l
	before := c.sock.Pending()
	n, err := c.sock.Writev(bufs)
	if err != nil {
		if !errors.Is(err, ErrQueueFull) {
			c.closeNow(err)
		}
		return 0, err
	}
	after := c.sock.Pending()
	l.tqueued += int64(after - before)
	l.tout += int64(before + n - after)
	return n, nil
}

// interest sets c's poller interest: Readable while it reads or lingers,
// Writable while bytes are queued (or its connect is in progress). A
// connection that wants neither leaves the poller until it does again: a
// level-triggered poller reports a hang-up whatever the interest, and would
// make the loop spin on it. A lingering c is read at once, in case the
// peer's end of file is there already.
func (e *readiness) interest(c *Conn) {
	var want poller.Events
	switch {
	case c.is(stConnecting):
		want = poller.Writable
	case c.is(stLinger):
		if c.linger() {
			return // closed
		}
		want = poller.Readable
	case c.reading():
		want = poller.Readable
	}
	if c.sock.Pending() > 0 {
		want |= poller.Writable
	}
	e.setInterest(c, want)
}

// setInterest moves c's registration to want; a failure closes c.
func (e *readiness) setInterest(c *Conn, want poller.Events) {
	if want == c.want {
		return
	}
	l := e.l
	fd := c.sock.Fd()
	var err error
	switch {
	case c.want == 0:
		err = l.p.Add(fd, uint64(c.handle), want)
	case want == 0:
		err = l.p.Remove(fd)
	default:
		err = l.p.Modify(fd, uint64(c.handle), want)
	}
	if err != nil {
		l.logError("changing a connection's poller interest", err, "fd", fd)
		c.closeNow(err)
		return
	}
	c.want = want
}

// abort takes closed c out of the poller; nothing else is in flight, so
// its fd may close at once.
func (e *readiness) abort(c *Conn) bool {
	if c.want != 0 {
		if err := e.l.p.Remove(c.sock.Fd()); err != nil {
			e.l.logError("removing a closed connection from the poller", err, "fd", c.sock.Fd())
		}
		c.want = 0
	}
	return true
}

// listen adds a's listener to the poller, or removes it.
func (e *readiness) listen(a *acceptor, on bool) (bool, error) {
	if on {
		return true, e.l.p.Add(a.fd, uint64(a.handle), poller.Readable)
	}
	err := e.l.p.Remove(a.fd)
	if errors.Is(err, poller.ErrClosed) {
		err = nil
	}
	return true, err
}

// close releases the park's duplicate fd; the loop closes the poller.
func (e *readiness) close() {
	if e.park != nil {
		e.park.close()
		e.park = nil
	}
}
