package reactor

import (
	"errors"
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/internal/uring"
)

// sendWaitBound bounds a wait that also waits for the turn's sends (see
// wait): a send that does not complete as it is submitted can keep another
// completion waiting with it for this long. At least a scheduler tick
// (4 ms at HZ=250), so that arming it never reprograms the timer hardware,
// which on a VM is a trip to the hypervisor.
const sendWaitBound = 5 * time.Millisecond

// turn submits the turn's operations, waits by the loop's rule for up to
// timeout, and serves the completions and epoll's events.
func (e *completion) turn(timeout time.Duration) (bool, error) {
	l := e.l
	if !e.started && e.dedicated {
		// The ring belongs to the thread that enables it, before
		// anything is submitted.
		runtime.LockOSThread()
		if err := e.r.Enable(); err != nil {
			runtime.UnlockOSThread()
			return false, err
		}
	}
	if !e.epArmed {
		q := e.sqe()
		q.Opcode, q.Fd, q.OpFlags, q.UserData = uring.OpPollAdd, int32(e.epfd), unix.POLLIN, udEpoll
		e.epArmed = true
	}
	if e.recycle {
		e.br.Publish()
		e.recycle = false
	}
	e.started = true
	var err error
	if timeout == 0 {
		e.submit()
	} else {
		err = l.block(timeout, &e.park, e.wait)
	}
	if err == nil {
		err = e.err
	}
	if err != nil {
		return false, err
	}
	l.beginTurn()
	served := e.complete()
	if e.epDue {
		e.epDue = false
		n, err := l.p.Wait(l.events, 0)
		if err != nil {
			return served > 0, err
		}
		l.serveEvents(n)
		served += n
	}
	return served > 0, e.err
}

// wait is the blocking wait of Loop.block: one io_uring_enter submits the
// turn's operations and waits for completions, unless some are ready
// already.
//
// A send the kernel completes inside this very submission would end a
// wait for one completion at once, for a completion that only frees queue
// chunks: so the wait also waits for the turn's sends that nothing else
// waits for, and a request-response turn costs one io_uring_enter, not
// two. A send that cannot complete at once (the peer's window is full)
// could then keep another connection's completion waiting with it, for at
// most sendWaitBound; sends on connections whose last send left bytes
// queued are not counted, so that happens at most once per such stall.
//
// With batching (see batch), it waits for half the connections active
// recently, for at most BatchWait, and after that for any one.
func (e *completion) wait(timeout time.Duration) error {
	if a, _ := e.r.Ready(); len(a) > 0 || e.err != nil {
		e.submit()
		return nil
	}
	sends := uint32(min(e.sends, ringBatchMax))
	n, batch := e.batch(timeout)
	if e.dedicated {
		return e.waitHeld(timeout, n+sends, batch)
	}
	var err error
	switch {
	case batch > 0:
		err = e.r.Wait(n+sends, timeout, batch)
	case sends > 0:
		bound := sendWaitBound
		if timeout >= 0 && timeout < bound {
			bound = timeout
		}
		err = e.r.Wait(1+sends, bound, 0)
	default:
		err = e.r.Wait(1, timeout, 0)
	}
	e.nmsg, e.sends = 0, 0
	if errors.Is(err, unix.EBUSY) {
		err = nil // completions to reap first
	}
	return err
}

// waitHeld is a dedicated loop's wait (UringConfig.Dedicated): a raw
// system call that keeps the P, for n completions for at most batch (if
// positive) and then for one, for up to timeout (< 0: none). It ends early
// at a signal: the runtime's preemption, after about 10 ms without a
// yield, or a stop-the-world's. If it ended with nothing to serve, the
// rest of timeout is waited as a Syscall, so that an idle loop gives its
// P up.
func (e *completion) waitHeld(timeout time.Duration, n uint32, batch time.Duration) error {
	e.nmsg, e.sends = 0, 0
	if batch <= 0 {
		n = 1
	}
	start := e.l.clock()
	if err := e.r.WaitHeld(n, timeout, batch); err != nil {
		return err
	}
	if a, _ := e.r.Ready(); len(a) > 0 {
		return nil
	}
	if timeout >= 0 {
		timeout -= time.Duration(e.l.clock() - start)
		if timeout <= 0 {
			return nil
		}
	}
	err := e.r.Wait(1, timeout, 0)
	if errors.Is(err, unix.EBUSY) {
		err = nil
	}
	return err
}

// ready is the park's look: it submits what is filled and reports whether
// completions wait.
func (e *completion) ready() (bool, error) {
	e.submit()
	a, _ := e.r.Ready()
	return len(a) > 0, e.err
}

// tick moves the count of active connections to the millisecond of
// loop clock now.
func (e *completion) tick(now int64) {
	ep := now / int64(time.Millisecond)
	if ep == e.epoch {
		return
	}
	e.prev = 0
	if ep == e.epoch+1 {
		e.prev = e.active
	}
	e.epoch, e.active = ep, 0
}

// received counts c as active this millisecond; call it before c's
// receive is served (which moves c.active on).
func (e *completion) received(c *Conn) {
	if c.active < e.epoch*int64(time.Millisecond) {
		e.active++ // c's first receive this millisecond
	}
}

// batch is what a wait bounded by bound (< 0: none) waits for, besides
// the turn's sends: n completions for at most the minimum wait mw, then
// any one; or, with mw 0, one. It batches when four or more connections
// received in this millisecond or in the last, waiting for half of them
// (at most ringBatchMax), and only when the bound leaves room for the
// minimum wait.
func (e *completion) batch(bound time.Duration) (n uint32, mw time.Duration) {
	want := max(e.active, e.prev) / 2
	if e.cfg.BatchWait <= 0 || want < 2 || (bound >= 0 && bound <= e.cfg.BatchWait) {
		return 1, 0
	}
	return uint32(min(want, ringBatchMax)), e.cfg.BatchWait
}

// complete serves the completions ready now and returns how many.
func (e *completion) complete() int {
	l := e.l
	a, b := e.r.Ready()
	e.tick(l.now)
	for _, cqes := range [2][]uring.CQE{a, b} {
		for i := range cqes {
			cq := cqes[i]
			e.completeOne(cq.UserData, cq.Res, cq.Flags)
			if len(l.dirty)+len(l.pdirty) > 0 {
				l.flushDirty()
			}
			if l.paceDue() && !e.dedicated {
				e.submit() // the kernel's share of the work so far, before the yield
				l.yield()
			}
		}
	}
	n := len(a) + len(b)
	e.r.Seen(n)
	return n
}

// completeOne serves one completion.
func (e *completion) completeOne(ud uint64, res int32, flags uint32) {
	l := e.l
	switch ud {
	case udEpoll:
		e.epArmed, e.epDue = false, true
		return
	case udIgnore:
		return
	}
	fd := int(uint32(ud))
	h, t, ok := l.tab.Lookup(fd)
	if !ok || (uint64(h)^ud)&^opMask != 0 {
		// Not expected: a target leaves the table only once its
		// operations are done. Give the buffer back all the same.
		l.stats.stale.Add(1)
		if flags&uring.CqeBuffer != 0 {
			e.recycleBuf(flags)
		}
		return
	}
	switch t := t.(type) {
	case *Conn:
		if ud>>opShift&0xf == opRecv {
			if res > 0 {
				e.received(t)
			}
			e.onRecv(t, res, flags)
		} else {
			e.onSent(t, res)
		}
	case *acceptor:
		e.onAccepted(t, res, flags)
	case *PacketConn:
		switch ud >> opShift & 0xf {
		case opRecvmsg:
			e.onRecvmsg(t, res)
		case opSendmsg:
			e.onSendmsg(t, res)
		}
		// opOutPoll: nothing to do; a failed poll cancels the sends
		// linked to it, and their completions resend.
	}
}
