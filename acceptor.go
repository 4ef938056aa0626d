package reactor

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/fdtable"
	"github.com/muxkit/reactor/internal/sock"
	"github.com/muxkit/reactor/poller"
)

// acceptBatch caps the connections accepted per wake-up, so a connection
// storm cannot starve established clients of the acceptor's loop.
const acceptBatch = 64

// acceptor accepts on one listening socket from its loop. Without
// ReusePort there is one, on the first loop, and it hands connections to
// the loops in turn (spread); with ReusePort every loop has one and keeps
// what it accepts.
type acceptor struct {
	srv     *Server
	loop    *Loop
	fd      int
	handle  fdtable.Handle
	spread  bool
	next    int
	backoff sock.AcceptBackoff
	paused  bool
	stopped bool
	armed   bool // the completion engine's accept is in flight
}

// onEvent accepts up to acceptBatch connections. When the process or the
// system is out of fds, it stops watching the listener and retries after a
// backoff (sock.AcceptBackoff: 10ms doubling to 1s): pending clients wait in the kernel's
// backlog instead of the loop spinning on a listener that stays readable.
func (a *acceptor) onEvent(poller.Events) {
	for range acceptBatch {
		fd, err := sock.Accept(a.fd)
		if err != nil {
			if !a.failed(err) {
				continue
			}
			return
		}
		a.backoff.Reset()
		a.take(fd)
	}
}

// failed acts on an accept's error and reports whether accepting should
// wait: a temporary error (the client gave up) is passed over; running out
// of fds pauses the listener; anything else stops it and the Server.
func (a *acceptor) failed(err error) bool {
	switch {
	case errors.Is(err, unix.EAGAIN):
		a.backoff.Reset()
	case sock.IsTemporaryAcceptError(err):
		return false
	case sock.IsFDExhausted(err):
		a.loop.stats.fdExhausted.Add(1)
		a.pause(err)
	default:
		// Not a listening socket any more (EINVAL), or worse: the
		// listener stays readable, so carrying on would spin.
		a.stop()
		a.srv.fail(fmt.Errorf("reactor: accept: %w", err))
	}
	return true
}

// take hands an accepted fd to its loop, or closes it past MaxConns.
func (a *acceptor) take(fd int) {
	s := a.srv
	// Count first, then check: with ReusePort several acceptors count at
	// once, and a load-then-add could let two pass for one slot.
	if n := s.nconns.Add(1); s.MaxConns > 0 && n > int64(s.MaxConns) {
		s.nconns.Add(-1)
		a.loop.stats.refused.Add(1)
		unix.Close(fd)
		return
	}
	if !a.spread {
		s.register(a.loop, fd)
		return
	}
	l := s.loops[a.next]
	a.next = (a.next + 1) % len(s.loops)
	if l == a.loop {
		s.register(l, fd)
	} else if err := l.Post(func() { s.register(l, fd) }); err != nil {
		a.loop.logError("handing a connection to its loop", err, "fd", fd)
		unix.Close(fd)
		s.nconns.Add(-1)
	}
}

// pause stops watching the listener for a backoff period; err is why.
func (a *acceptor) pause(err error) {
	if a.paused || a.stopped {
		return
	}
	d := a.backoff.Next()
	a.paused = true
	if l := a.loop.log; l != nil {
		l.Warn("reactor: accept: out of file descriptors; pausing the listener", "err", err, "retry", d)
	}
	a.loop.AfterFunc(d, a.resume)
	if _, err := a.loop.eng.listen(a, false); err != nil {
		a.loop.logError("pausing the listener", err, "fd", a.fd)
	}
}

// resume ends a pause: the listener is accepted on again.
func (a *acceptor) resume() {
	if a.stopped {
		return
	}
	a.paused = false
	if _, err := a.loop.eng.listen(a, true); err != nil {
		a.loop.logError("resuming the listener", err, "fd", a.fd)
	}
}

// onStop is the loop ending with the acceptor registered (a poller
// failure): it stops.
func (a *acceptor) onStop(error) { a.stop() }

// stop stops accepting: the listener leaves the engine and the table, and
// is closed if the Server opened it. When the engine has an operation in
// flight on it (the completion engine's accept), the release waits for
// that operation's end.
func (a *acceptor) stop() {
	if a.stopped {
		return
	}
	a.stopped = true
	done := true
	if !a.paused { // a paused listener is out of the engine already
		var err error
		if done, err = a.loop.eng.listen(a, false); err != nil {
			a.loop.logError("stopping the listener", err, "fd", a.fd)
		}
	}
	if done {
		a.release()
	}
}

// release frees the stopped listener's table slot and closes it if the
// Server opened it.
func (a *acceptor) release() {
	a.armed = false
	if _, err := a.loop.tab.Delete(a.handle); err != nil {
		return // released already
	}
	if a.srv.ownLn {
		if err := unix.Close(a.fd); err != nil {
			a.loop.logError("closing the listener", err, "fd", a.fd)
		}
	}
}

// register adds a freshly accepted fd as a Conn of loop l; on l's
// goroutine.
func (s *Server) register(l *Loop, fd int) {
	if s.tcp {
		// Go's net defaults; a failure (the peer reset already) shows at
		// the first read or write.
		sock.SetTCPDefaults(fd, s.KeepAlive)
	}
	c, err := l.newConn(fd, s.svc, poller.Readable)
	if err != nil {
		s.nconns.Add(-1)
		l.logError("registering an accepted connection", err, "fd", fd)
		return
	}
	l.stats.accepted.Add(1)
	c.armIdle()
	s.Handler.OnOpen(c) // what it writes leaves when the callback returns
	if c.is(stClosed | stClosing) {
		return
	}
	if l.stopping {
		c.beginClose(ErrServerClosed)
	}
}
