package reactor

import (
	"errors"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/internal/uring"
	"github.com/muxkit/reactor/poller"
)

// The completion engine's side of connections and acceptors: the verbs
// that start and stop their operations, and what their completions do.
//
// A reading connection has one receive armed. Where the kernel can limit
// one (multishotRecv, linux 6.17), it is multishot, a completion per
// buffer, and ends after about recvLimit bytes, to be armed again while
// the connection reads; elsewhere it takes one buffer and is armed again
// after each completion. An unlimited multishot receive goes on taking
// whatever the socket holds into the loop's buffers whether or not the
// handler keeps up (docs/io_uring.md: 3.9 MB held for a client that never
// reads). PauseRead, backpressure and a graceful close cancel the receive;
// bytes it had already received (at most recvLimit and a buffer) are
// kept, as if by Keep, and offered when reading resumes, and an end of
// file met meanwhile waits for them. A closed
// connection's operations are cancelled, and its fd closed and table slot
// freed only when the last completes, so no completion can name a reused
// fd and no chunk goes back to the pool while the kernel may read it.

// open arms c's receive, or, for a Dialer's connection still connecting,
// watches the connect on the loop's epoll poller.
func (e *completion) open(c *Conn) error {
	if c.want == poller.Readable {
		c.want = 0
		e.armRecv(c)
		return nil
	}
	return e.l.p.Add(c.sock.Fd(), uint64(c.handle), c.want)
}

// armRecv arms c's receive.
func (e *completion) armRecv(c *Conn) {
	q := e.sqe()
	q.Opcode, q.Fd, q.Flags = uring.OpRecv, int32(c.sock.Fd()), uring.SqeBufferSelect
	if e.multishot {
		q.Ioprio, q.SpliceFdIn = uring.RecvMultishot, recvLimit
	}
	if c.is(stAgain) {
		q.Ioprio |= uring.RecvSendPollFirst
		c.st &^= stAgain
	}
	q.BufGroup, q.UserData = ringGroup, ringTag(c.handle, opRecv)
	c.st |= stRecv
}

// send starts sending c's queue, unless a send is in flight; with now, it
// submits at once rather than with the turn.
func (e *completion) send(c *Conn, now bool) error {
	e.sendQueue(c)
	if now {
		e.submit()
	}
	return nil
}

// writev queues bufs behind c's queue and sends it all now.
func (e *completion) writev(c *Conn, bufs [][]byte) (int, error) {
	n, err := c.sock.Queuev(bufs)
	if n > 0 {
		e.l.tqueued += int64(n)
		e.sendQueue(c)
		e.submit()
	}
	return n, err
}

// sendQueue submits a send of c's queue, from its chunks where they lie,
// if no send is in flight: a send for one chunk, a sendmsg with an iovec
// per chunk for more.
func (e *completion) sendQueue(c *Conn) {
	if c.is(stSend) || c.sock.Pending() == 0 {
		return
	}
	var q *uring.SQE
	var one [1]unix.Iovec
	if _, n := c.sock.QueuedIovecs(one[:]); n == c.sock.Pending() {
		q = e.sqe()
		q.Opcode, q.Addr, q.Len = uring.OpSend, uint64(uintptr(unsafe.Pointer(one[0].Base))), uint32(n)
	} else {
		var m *ringMsg
		q, m = e.msgSQE()
		k, _ := c.sock.QueuedIovecs(m.iov[:])
		m.hdr = unix.Msghdr{Iov: &m.iov[0]}
		m.hdr.SetIovlen(k)
		q.Opcode, q.Addr, q.Len = uring.OpSendmsg, uint64(uintptr(unsafe.Pointer(&m.hdr))), 1
	}
	q.Fd, q.OpFlags, q.UserData = int32(c.sock.Fd()), unix.MSG_NOSIGNAL, ringTag(c.handle, opSend)
	switch {
	case c.is(stAgain):
		q.Ioprio = uring.RecvSendPollFirst
		c.st &^= stAgain
	case !c.is(stShort | stClosing | stPaused | stDrainArmed):
		// Nothing waits for this send's completion but the queue's
		// chunks, and the socket had room for the last one: a wait may
		// wait for it and one more (see wait).
		e.sends++
	}
	c.st |= stSend
}

// interest arms or cancels c's receive as c's state asks, and schedules
// the bytes and end of file received while c did not read. A Dialer's
// connection leaves the epoll poller once connected: the ring takes over.
func (e *completion) interest(c *Conn) {
	if c.is(stConnecting) {
		return // the epoll poller watches the connect
	}
	l := e.l
	if c.want != 0 {
		if err := l.p.Remove(c.sock.Fd()); err != nil {
			l.logError("removing a connected connection from the poller", err, "fd", c.sock.Fd())
		}
		c.want = 0
	}
	want := c.reading() || c.is(stLinger)
	switch {
	case want && !c.is(stRecv):
		e.armRecv(c)
	case !want && c.is(stRecv) && !c.is(stRecvCancel):
		e.cancel(ringTag(c.handle, opRecv))
		c.st |= stRecvCancel
	}
	if c.is(stHeld) && c.canRead() && !c.is(stRedo) {
		c.st |= stRedo
		l.redo = append(l.redo, c)
	}
}

// abort cancels closed c's operations in flight; its fd may close at once
// only if there were none.
func (e *completion) abort(c *Conn) bool {
	if c.want != 0 { // closed while connecting
		if err := e.l.p.Remove(c.sock.Fd()); err != nil {
			e.l.logError("removing a closed connection from the poller", err, "fd", c.sock.Fd())
		}
		c.want = 0
	}
	if !c.is(stRecv | stSend) {
		return true
	}
	if c.is(stRecv) && !c.is(stRecvCancel) {
		e.cancel(ringTag(c.handle, opRecv))
		c.st |= stRecvCancel
	}
	if c.is(stSend) {
		e.cancel(ringTag(c.handle, opSend))
	}
	return false
}

// onRecv serves a completion of c's receive.
func (e *completion) onRecv(c *Conn, res int32, flags uint32) {
	l := e.l
	if flags&uring.CqeMore == 0 {
		c.st &^= stRecv | stRecvCancel
	}
	var data []byte
	if flags&uring.CqeBuffer != 0 {
		if res > 0 {
			data = e.br.Buf(uint16(flags>>16), int(res))
		}
		defer e.recycleBuf(flags) // after OnData: data is the buffer
	}
	switch {
	case c.is(stClosed):
		c.finishClose()
		return
	case res > 0 && c.is(stLinger|stClosing):
		// Dropped, as the readiness loop's drain drops them.
	case res > 0 && c.reading():
		c.arrived(data)
	case res > 0:
		// Received before the receive was cancelled (paused): kept, to
		// be offered when reading resumes. At most one buffer: the
		// receive is armed again only while c reads.
		l.tin += int64(res)
		c.active = l.now
		c.in = c.in.add(data)
		c.st |= stStashed
	case res == 0 && c.is(stLinger):
		c.closeNow(c.reason())
	case res == 0 && c.is(stClosing):
		c.st |= stEOF // endClose closes at once
	case res == 0 && c.reading() && !c.is(stRedo):
		c.peerEOF()
	case res == 0:
		// After the bytes held or kept for redelivery (see redeliver).
		c.st |= stEOFHeld
	case res == -int32(unix.EAGAIN):
		// The socket is non-blocking, and the kernel gave up on it
		// after a wake-up with nothing to read: armed again below,
		// to wait for readiness first.
		c.st |= stAgain
	case res == -int32(unix.ENOBUFS):
		// Every buffer is in use: provide more, if the cap allows;
		// armed again below if c still reads.
		e.br.Grow(2 * e.br.Provided())
	case res == -int32(unix.ECANCELED):
		// Armed again below if c still reads.
	case c.is(stLinger):
		c.closeNow(c.reason())
	default:
		c.closeNow(errnoRes("recv", res))
	}
	e.settle(c)
}

// onSent serves the completion of c's send.
func (e *completion) onSent(c *Conn, res int32) {
	l := e.l
	c.st &^= stSend
	if c.is(stClosed) {
		c.finishClose()
		return
	}
	switch {
	case res > 0:
		c.sock.Consume(int(res))
		l.tout += int64(res)
		l.tqueued -= int64(res)
		c.st &^= stShort
		if c.sock.Pending() > 0 {
			c.st |= stShort
		}
	case res == 0:
		c.closeNow(errNoProgress)
	case res == -int32(unix.EAGAIN):
		// As for a receive (see onRecv): sent again below, after
		// waiting for room.
		c.st |= stAgain
	case res == -int32(unix.ECANCELED):
	default:
		c.closeNow(errnoRes("send", res))
	}
	e.settle(c)
}

// settle ends the serving of a completion for c: a closed c finishes
// closing (once nothing is in flight), an open one settles.
func (e *completion) settle(c *Conn) {
	if c.is(stClosed) {
		c.finishClose()
		return
	}
	c.settle()
}

// errNoProgress is a send that took none of a non-empty queue.
var errNoProgress = errors.New("reactor: send made no progress")

// errnoRes turns a completion's negative result into an error naming op.
func errnoRes(op string, res int32) error { return os.NewSyscallError(op, unix.Errno(-res)) }

// listen arms a's accept (if none is in flight), or cancels it; the
// acceptor may be released at once only if none was in flight.
func (e *completion) listen(a *acceptor, on bool) (bool, error) {
	if on {
		if !a.armed {
			e.armAccept(a)
		}
		return true, nil
	}
	if a.armed && !e.closed {
		e.cancel(ringTag(a.handle, opAccept))
		return false, nil
	}
	return true, nil
}

// armAccept arms the listener's accept.
func (e *completion) armAccept(a *acceptor) {
	q := e.sqe()
	q.Opcode, q.Fd, q.OpFlags = uring.OpAccept, int32(a.fd), unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK
	q.UserData = ringTag(a.handle, opAccept)
	a.armed = true
}

// onAccepted serves a completion of the accept. Not multishot: the kernel
// reads RLIMIT_NOFILE when an accept is prepared, so a multishot accept
// goes on allocating fds past a limit lowered after it was armed, and the
// EMFILE back-off never starts.
func (e *completion) onAccepted(a *acceptor, res int32, flags uint32) {
	if flags&uring.CqeMore == 0 {
		a.armed = false
	}
	switch {
	case res >= 0 && a.stopped:
		unix.Close(int(res))
	case res >= 0:
		a.backoff.Reset()
		a.take(int(res))
		// The rest of a burst: what else waits in the backlog is
		// accepted now, as a readiness loop accepts it, not one
		// connection a turn.
		a.onEvent(0)
	case a.stopped, res == -int32(unix.ECANCELED):
	default:
		a.failed(unix.Errno(-res))
	}
	switch {
	case a.stopped && !a.armed:
		a.release()
	case !a.armed && !a.paused && !a.stopped:
		e.armAccept(a)
	}
}
