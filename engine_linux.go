package reactor

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/fdtable"
	"github.com/muxkit/reactor/internal/uring"
)

// The completion engine (Backend Uring). A loop on it waits in an io_uring
// instead of a poller: its connections' reads and writes are operations in
// the ring, and one io_uring_enter per turn hands the kernel the turn's
// sends and re-armed receives and collects what completed.
//
//   - Each reading connection has one receive armed. The kernel fills a
//     buffer of the loop's provided buffer ring (ringBufs buffers of
//     ringBufSize bytes, shared by all its connections: an idle connection
//     holds none) and posts a completion naming it; OnData gets the buffer,
//     which goes back to the kernel when OnData returns (Keep copies what
//     it keeps). The receive is armed again, in the turn's one submission,
//     while the connection reads.
//   - Not multishot: a multishot receive goes on taking whatever the socket
//     holds into the loop's buffers, up to all of them, whether or not the
//     handler keeps up. Tried first, it held 3.9 MB for a client that never
//     reads (the readiness loops hold nothing: TCP holds the sender back)
//     and let that connection's queue pass its high watermark 15 times
//     over (TestBackpressure, TestBackpressureLatency). One buffer per
//     receive is what a readiness loop's one read per ready connection per
//     turn is: bounded and fair.
//   - A connection's queue is sent by one send (one chunk) or sendmsg (an
//     iovec per chunk) at a time, from the queue's chunks where they lie;
//     the completion consumes what the kernel took and sends the rest.
//   - PauseRead, backpressure and a graceful close cancel the receive.
//     Bytes it had already received (one buffer at most) are kept, as if
//     by Keep, and offered when reading resumes, and an end of file met
//     meanwhile waits for them.
//   - A closed connection's operations are cancelled; its fd is closed and
//     its table slot freed only when the last completes, so no completion
//     can name a reused fd, and no chunk goes back to the pool while the
//     kernel may read it. OnClose is not delayed.
//   - The loop's epoll poller stays, for what is readiness by nature:
//     Watch, a Dialer's connect, and Post's wake. A one-shot poll on the
//     epoll fd in the ring reports when it has events; the loop then
//     collects them with a zero-timeout epoll_wait and arms the poll again.
//   - The listener has one accept in flight, armed again in the turn's
//     submission after each completion; a completion also accepts what
//     else waits in the backlog with accept4 until EAGAIN (at most
//     acceptBatch), as a readiness loop does, so a burst of connections
//     costs one turn, not one each. Not multishot: the kernel reads
//     RLIMIT_NOFILE when an accept is prepared, so a multishot accept goes
//     on allocating fds past a limit lowered after it was armed, and the
//     EMFILE back-off never starts (TestAcceptBacksOffWithoutFDs caught
//     it).
//
// Waiting. The ring is set up with deferred task running: the work that
// turns a socket's readiness into a completion runs inside the loop's own
// io_uring_enter, in a batch, rather than interrupting the loop's thread
// for each completion. Without it, at 1000 connections the interrupted
// thread ran each receive while the softirq on the other CPU still held
// the socket's lock, and spent a third of its time spinning on it: 2.4 to
// 2.8 times the C epoll server's CPU per message (docs/io_uring.md).
// Deferred task running needs a single issuer, so the loop's goroutine
// locks itself to its thread (engine.start), and that changes how it can
// wait:
//
//   - After a turn that woke goroutines it parks in Go's netpoller, on an
//     eventfd the ring signals while it is parked, so the P runs them
//     (the readiness loops' rule).
//   - After a turn that served completions it waits for the next one for
//     up to UringConfig.Hold in a raw system call, keeping its P. A
//     locked goroutine cannot yield cheaply (runtime.Gosched hands its P
//     to another thread and back), and a blocking system call of a few
//     tens of microseconds is exactly what the runtime's monitor takes
//     the P from, handing it to another thread that finds nothing to do:
//     two thread switches a wait, 2.1x the C server's CPU per message at
//     one connection, 1.2-1.3x at 100 and 1000. The hold's bound is a
//     kernel timer, and one that expires before the next scheduler tick
//     (4 ms here) makes the kernel reprogram the timer hardware, a trip to
//     the hypervisor on a VM: a 1 ms bound cost 1.23x at one connection,
//     5 ms 1.08x. The hold also waits through the turn's sends that the
//     kernel completes inside the submission (those nothing waits for),
//     so a request-response turn costs one io_uring_enter, not two: 1.07x
//     -> 1.00x at one connection.
//   - Otherwise, and after a hold that ended with nothing, it blocks in
//     io_uring_enter as a readiness loop blocks in epoll_wait.
//   - Wake batching (UringConfig.BatchWait, 100 us by default on linux
//     6.12): a loop whose connections received lately waits for
//     completions from half of them, for at most the bound, then for any
//     one; with fewer than four it waits for one (engine.batch). Counted
//     by connections, not by the last turn's receives: a loop faster than
//     its clients serves one receive a turn, so that count held itself at
//     one and never batched. By connections it cut the CPU per message at
//     100 and 1000 connections by about a third.

// The engine's sizes.
const (
	ringEntries  = 4096 // submission entries; the kernel makes twice as many completion entries
	ringBufs     = 1024 // receive buffers per loop
	ringBufSize  = 4096 // bytes per receive buffer: 4 MiB per loop in all
	ringGroup    = 0    // the buffer group id of the loop's receive buffers
	ringMsgSlots = 64   // sendmsg headers one turn fills before it must submit
	maxSendIovec = 64   // chunks one sendmsg sends at most (1 MiB)
	ringBatchMax = 128  // completions a batched wait waits for at most
)

// User data: a completion for a target carries its fdtable.Handle with the
// operation in bits 59-62 (the generation's top four bits: the 27 below
// them still tell a reused fd's handle from the old one, and an fd is not
// reused while its operations are in flight anyway). The loop's own
// operations have bit 63, the handle's valid bit, clear.
const (
	opShift = 59
	opMask  = 0xf << opShift

	opRecv   = 1
	opSend   = 2
	opAccept = 3

	udEpoll  = 1 // the poll on the epoll fd
	udIgnore = 2 // cancellations: nothing to do on completion
)

// ringTag is the user data of operation op on h's target.
func ringTag(h fdtable.Handle, op uint64) uint64 { return uint64(h)&^opMask | op<<opShift }

// ringMsg is one sendmsg's header and iovecs, kept until the submission is
// made (the kernel copies both then: FeatSubmitStable).
type ringMsg struct {
	hdr unix.Msghdr
	iov [maxSendIovec]unix.Iovec
}

// engine is a loop's io_uring side.
type engine struct {
	r       *uring.Ring
	br      *uring.BufRing
	epfd    int  // the loop's epoll fd, polled through the ring
	evfd    int  // an eventfd the ring signals while the loop parks (runtimePark)
	armed   bool // the poll on epfd is in the ring
	epDue   bool // that poll completed this turn: collect epoll's events
	recycle bool // buffers recycled since the last Publish
	started bool // the loop's thread is locked and owns the ring
	msgs    []ringMsg
	nmsg    int   // msgs filled since the last submission
	err     error // a failed submission: the loop ends with it at the turn's end
	spare   uring.SQE
	closed  bool
	cfg     UringConfig // defaults applied; BatchWait < 0: no batching
	note    string      // what the defaults could not have on this kernel, for the log
	// Connections active recently, for a batched wait's count: those
	// that received in the loop clock's current millisecond (epoch) and
	// in the one before it.
	epoch        int64
	active, prev int
	sends        int // sends to submit whose completions nothing waits for (see ringWait)
}

// ringOps are the operations the engine submits.
var ringOps = []uint8{uring.OpPollAdd, uring.OpAccept, uring.OpCancel, uring.OpSend, uring.OpRecv, uring.OpSendmsg}

// minWaitFeature is the feature bit UringConfig.BatchWait needs (a
// variable so that a test can ask for one no kernel has).
var minWaitFeature uint32 = uring.FeatMinTimeout

// ringSupport is why the engine cannot run here, or nil; probed once.
var ringSupport = sync.OnceValue(probeRing)

// probeRing checks that this kernel has what the engine uses: io_uring
// allowed (not disabled by sysctl or refused by seccomp), a single-issuer
// ring with deferred task running (linux 6.1), the features and opcodes,
// and a receive into a provided buffer ring (linux 5.19), tried on a
// socket pair.
func probeRing() error {
	// The engine's ring belongs to one thread: so does the probe's.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r, err := uring.New(8, uring.SetupClamp|ringSetupFlags)
	if err != nil {
		if errors.Is(err, errors.ErrUnsupported) {
			// Tell an old kernel from one without io_uring at all.
			if r0, err0 := uring.New(8, uring.SetupClamp); err0 == nil {
				r0.Close()
				return fmt.Errorf("reactor: io_uring lacks single-issuer rings with deferred task running (linux 6.1): %w", errors.ErrUnsupported)
			}
		}
		return err
	}
	defer r.Close()
	if err := r.Enable(); err != nil {
		return err
	}
	const need = uring.FeatNodrop | uring.FeatSubmitStable | uring.FeatExtArg
	if r.Features()&need != need {
		return fmt.Errorf("reactor: io_uring lacks features %#x (linux 5.11): %w", need&^r.Features(), errors.ErrUnsupported)
	}
	p, err := r.Probe()
	if err != nil {
		return err
	}
	if err := p.Require(ringOps...); err != nil {
		return err
	}
	br, err := r.NewBufRing(ringGroup, 1, 64)
	if err != nil {
		return err
	}
	defer br.Close()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return os.NewSyscallError("socketpair", err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	if _, err := unix.Write(fds[1], []byte{1}); err != nil {
		return os.NewSyscallError("write", err)
	}
	q := r.Get()
	q.Opcode, q.Fd, q.Flags, q.BufGroup, q.UserData = uring.OpRecv, int32(fds[0]), uring.SqeBufferSelect, ringGroup, 1
	if err := r.Wait(1, time.Second, 0); err != nil {
		return err
	}
	a, _ := r.Ready()
	if len(a) == 0 {
		return fmt.Errorf("reactor: io_uring: no completion for a probing receive")
	}
	if res := a[0].Res; res != 1 {
		if res < 0 && unix.Errno(-res) == unix.EINVAL {
			return fmt.Errorf("reactor: io_uring cannot receive into a provided buffer ring (linux 5.19): %w", errors.ErrUnsupported)
		}
		return fmt.Errorf("reactor: io_uring: a probing receive returned %d", res)
	}
	return nil
}

// newEngine sets up the engine for a loop whose poller has epoll fd epfd,
// tuned by cfg. The ring starts disabled: the loop's goroutine locks its
// thread and enables it on its first turn (start), so that thread is the
// ring's one issuer.
func newEngine(epfd int, cfg UringConfig) (*engine, error) {
	if err := ringSupport(); err != nil {
		return nil, err
	}
	cfg, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	r, err := uring.New(ringEntries, uring.SetupClamp|ringSetupFlags)
	if err != nil {
		return nil, err
	}
	note := ""
	switch minWait := r.Features()&minWaitFeature != 0; {
	case cfg.BatchWait > 0 && !minWait:
		r.Close()
		return nil, fmt.Errorf("reactor: UringConfig.BatchWait needs a minimum wait in io_uring_enter (linux 6.12): %w", errors.ErrUnsupported)
	case cfg.BatchWait == 0 && minWait:
		cfg.BatchWait = DefaultUringBatchWait
	case cfg.BatchWait == 0:
		cfg.BatchWait = -1
		note = "reactor: io_uring: no wake batching: the kernel has no minimum wait in io_uring_enter (linux 6.12); each wait is for one completion"
	}
	br, err := r.NewBufRing(ringGroup, ringBufs, ringBufSize)
	if err != nil {
		r.Close()
		return nil, err
	}
	evfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		br.Close()
		r.Close()
		return nil, os.NewSyscallError("eventfd", err)
	}
	return &engine{r: r, br: br, epfd: epfd, evfd: evfd, msgs: make([]ringMsg, ringMsgSlots), cfg: cfg, note: note}, nil
}

// ringSetupFlags are the engine's setup flags beyond SetupClamp, each
// measured (docs/io_uring.md). Deferred task running is what pays: the
// work that turns a socket's readiness into a completion runs inside the
// loop's own io_uring_enter, batched, instead of interrupting the loop's
// thread for each one, which at 1000 connections made the thread contend
// with the softirq still holding the socket's lock (2.4-2.8x the CPU per
// message). It needs a single issuer, so the loop locks its thread.
const ringSetupFlags = uring.SetupSingleIssuer | uring.SetupDeferTaskrun | uring.SetupRDisabled

// start makes the calling thread the ring's issuer: the loop's goroutine
// locks itself to its thread for the ring's life (closeEngine undoes it).
func (e *engine) start() error {
	if e.started {
		return nil
	}
	runtime.LockOSThread()
	if err := e.r.Enable(); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	e.started = true
	return nil
}

// sqe returns a free submission entry, submitting what is filled if the
// queue is full. If the kernel takes none (which a ring that keeps every
// completion does not do), the entry returned is a spare that goes
// nowhere, and the loop ends with the error at the turn's end.
func (e *engine) sqe() *uring.SQE {
	if q := e.r.Get(); q != nil {
		return q
	}
	e.submit()
	if q := e.r.Get(); q != nil {
		return q
	}
	if e.err == nil {
		e.err = errors.New("reactor: io_uring submission queue full after a submit")
	}
	e.spare = uring.SQE{}
	return &e.spare
}

// submit hands the kernel what is filled; the sendmsg headers are free
// again once it returns. A failure is kept for the turn's end.
func (e *engine) submit() {
	// EBUSY: completions must be reaped first; what is left goes with
	// the next submission.
	// SubmitAndGet rather than Submit: on a ring with deferred task
	// running only an enter with GETEVENTS runs the work that completes
	// operations, and a busy loop that never blocks must still see them.
	if err := e.r.SubmitAndGet(); err != nil && !errors.Is(err, unix.EBUSY) && e.err == nil {
		e.err = err
	}
	e.nmsg, e.sends = 0, 0
}

// msgSQE returns a submission entry and a sendmsg header slot for it. It
// submits, if either is full, before it hands out both, never in between:
// that would give the kernel the entry unfilled, or reuse the slot while
// the entry still points to it.
func (e *engine) msgSQE() (*uring.SQE, *ringMsg) {
	if e.nmsg == len(e.msgs) {
		e.submit()
	}
	q := e.sqe() // a submission here leaves nmsg at 0
	m := &e.msgs[e.nmsg]
	e.nmsg++
	return q, m
}

// cancelAccept cancels a's accept in flight.
func (a *acceptor) cancelAccept() { a.loop.eng.cancel(ringTag(a.handle, opAccept)) }

// cancel submits the cancellation of the operation with user data ud.
func (e *engine) cancel(ud uint64) {
	q := e.sqe()
	q.Opcode, q.Addr, q.UserData = uring.OpCancel, ud, udIgnore
}

// readyNow submits what is filled and reports whether completions wait; it
// is runtimePark's try on a ring.
func (e *engine) readyNow() int {
	e.submit()
	a, b := e.r.Ready()
	return len(a) + len(b)
}

// close ends the engine: operations still in flight are cancelled by the
// ring's release. Its completions are not served any more. The ring
// (with its buffer ring) goes away with its fd: the buffer ring is not
// unregistered first, which a thread other than the issuer may not do.
func (e *engine) close() {
	if e.closed {
		return
	}
	e.closed = true
	e.r.Close()
	e.br.Release()
	unix.Close(e.evfd)
}

// fd is the fd runtimePark parks on: the eventfd the ring signals while
// the loop is parked (see park).
func (e *engine) fd() int { return e.evfd }

// park waits like runtimePark.wait, with the ring signalling the eventfd
// meanwhile: a completion posted, or work queued for the loop's next
// enter, makes it readable. The eventfd is registered only while parked,
// so a loop that does not park is not signalled for every completion.
// A registration the kernel refuses is reported as errors.ErrUnsupported,
// so the loop stops parking and blocks in io_uring_enter instead, as on
// the runtime's own failure.
func (l *Loop) park(timeout time.Duration) error {
	e := l.eng
	if err := e.r.RegisterEventfd(e.evfd); err != nil {
		l.logError("the engine cannot park in the netpoller; it blocks in io_uring_enter instead", err)
		return errors.ErrUnsupported
	}
	_, err := l.rpark.wait(timeout)
	if err2 := e.r.UnregisterEventfd(); err2 != nil {
		l.logError("the engine cannot park in the netpoller; it blocks in io_uring_enter instead", err2)
		if err == nil {
			err = errors.ErrUnsupported
		}
	}
	return err
}

// serveRing is one turn of a loop on the engine: submit and wait up to
// timeout, serve the completions and epoll's events, fire timers, run
// posted work.
func (l *Loop) serveRing(timeout time.Duration) error {
	e := l.eng
	if err := e.start(); err != nil {
		return err
	}
	if !e.armed {
		q := e.sqe()
		q.Opcode, q.Fd, q.OpFlags, q.UserData = uring.OpPollAdd, int32(e.epfd), unix.POLLIN, udEpoll
		e.armed = true
	}
	if e.recycle {
		e.br.Publish()
		e.recycle = false
	}
	if err := l.ringWait(timeout); err != nil {
		return err
	}
	l.now = l.clock()
	l.watched = false
	served := l.complete()
	if e.epDue {
		e.epDue = false
		n, err := l.p.Wait(l.events, 0)
		if err != nil {
			return err
		}
		l.serveEvents(n)
		served += n
	}
	l.endTurn(served > 0)
	return e.err
}

// ringWait submits the turn's operations and waits for a completion, up
// to timeout (see the engine's notes on waiting).
func (l *Loop) ringWait(timeout time.Duration) error {
	e := l.eng
	if timeout == 0 {
		e.submit()
		return e.err
	}
	if a, _ := e.r.Ready(); len(a) > 0 || e.err != nil {
		e.submit()
		return e.err
	}
	// Otherwise the wait submits: one io_uring_enter for both.
	if l.woke && l.rpark != nil {
		err := l.park(timeout)
		if err != errors.ErrUnsupported {
			return err
		}
		l.rpark.close()
		l.rpark = nil
	}
	// A send the kernel completes inside this very submission would end
	// the wait at once, for a completion that only frees queue chunks:
	// wait for those sends and one more completion, so a request-response
	// turn costs one io_uring_enter, not two. The bound covers a send that
	// does not complete at once. With batching, wait for half the
	// connections active recently, for at most BatchWait.
	sends := uint32(min(e.sends, ringBatchMax))
	bound := timeout
	if hold := e.cfg.Hold; l.busy && hold > 0 && (bound < 0 || hold < bound) {
		bound = hold
	}
	n, batch := e.batch(bound)
	var err error
	switch {
	case l.busy && e.cfg.Hold > 0:
		err = e.r.WaitRaw(n+sends, bound, batch)
	case batch > 0:
		// After the minimum wait any completion ends it, sends too.
		err = e.r.Wait(n+sends, bound, batch)
	default:
		err = e.r.Wait(1, timeout, 0)
	}
	e.nmsg, e.sends = 0, 0
	if errors.Is(err, unix.EBUSY) {
		err = nil // completions to reap first
	}
	return err
}

// tick moves the count of active connections to the millisecond of
// loop clock now.
func (e *engine) tick(now int64) {
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
func (e *engine) received(c *Conn) {
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
func (e *engine) batch(bound time.Duration) (n uint32, mw time.Duration) {
	want := max(e.active, e.prev) / 2
	if e.cfg.BatchWait <= 0 || want < 2 || (bound >= 0 && bound <= e.cfg.BatchWait) {
		return 1, 0
	}
	return uint32(min(want, ringBatchMax)), e.cfg.BatchWait
}

// complete serves the completions ready now and returns how many.
func (l *Loop) complete() int {
	e := l.eng
	a, b := e.r.Ready()
	e.tick(l.now)
	for _, cqes := range [2][]uring.CQE{a, b} {
		for i := range cqes {
			cq := cqes[i]
			l.completeOne(cq.UserData, cq.Res, cq.Flags)
			if len(l.dirty) > 0 {
				l.flushDirty()
			}
		}
	}
	n := len(a) + len(b)
	e.r.Seen(n)
	return n
}

// completeOne serves one completion.
func (l *Loop) completeOne(ud uint64, res int32, flags uint32) {
	e := l.eng
	switch ud {
	case udEpoll:
		e.armed, e.epDue = false, true
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
			t.onRecv(res, flags)
		} else {
			t.onSent(res)
		}
	case *acceptor:
		t.onAccepted(res, flags)
	}
}

// recycleBuf queues the buffer a completion's flags name for the kernel.
func (e *engine) recycleBuf(flags uint32) {
	e.br.Recycle(uint16(flags >> 16))
	e.recycle = true
}

// errnoRes turns a completion's negative result into an error naming op.
func errnoRes(op string, res int32) error { return os.NewSyscallError(op, unix.Errno(-res)) }

// armRecv arms c's receive: one buffer's worth, armed again after each
// completion while c reads (see the engine's notes for why not multishot).
func (c *Conn) armRecv() {
	q := c.loop.eng.sqe()
	q.Opcode, q.Fd, q.Flags = uring.OpRecv, int32(c.sock.Fd()), uring.SqeBufferSelect
	if c.is(stAgain) {
		q.Ioprio = uring.RecvSendPollFirst
		c.st &^= stAgain
	}
	q.BufGroup, q.UserData = ringGroup, ringTag(c.handle, opRecv)
	c.st |= stRecv
}

// ringSend sends c's queue if no send is in flight.
func (c *Conn) ringSend() {
	if c.is(stSend) || c.sock.Pending() == 0 {
		return
	}
	e := c.loop.eng
	var q *uring.SQE
	var one [1]unix.Iovec
	if _, n := c.sock.QueuedIovecs(one[:]); n == c.sock.Pending() {
		// One chunk, the common case: a send, no header.
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
	if c.is(stAgain) {
		q.Ioprio = uring.RecvSendPollFirst
		c.st &^= stAgain
	} else if !c.is(stClosing | stPaused | stDrainArmed) {
		// Nothing waits for this send's completion but the queue's
		// chunks: a hold may wait for it and one more (see ringWait).
		e.sends++
	}
	c.st |= stSend
}

// updateRing arms or cancels c's receive as c's state asks (see update),
// and schedules the bytes and end of file received while c did not read.
func (c *Conn) updateRing() {
	l := c.loop
	if c.want != 0 { // a Dialer's connect is done: the ring takes over
		if err := l.p.Remove(c.sock.Fd()); err != nil {
			l.logError("removing a connected connection from the poller", err, "fd", c.sock.Fd())
		}
		c.want = 0
	}
	want := c.reading() || c.is(stDraining)
	switch {
	case want && !c.is(stRecv):
		c.armRecv()
	case !want && c.is(stRecv) && !c.is(stRecvCancel):
		l.eng.cancel(ringTag(c.handle, opRecv))
		c.st |= stRecvCancel
	}
	if c.is(stHeld) && c.canRead() && !c.is(stRedo) {
		c.st |= stRedo
		l.redo = append(l.redo, c)
	}
}

// onRecv serves a completion of c's receive.
func (c *Conn) onRecv(res int32, flags uint32) {
	l := c.loop
	if flags&uring.CqeMore == 0 {
		c.st &^= stRecv | stRecvCancel
	}
	var data []byte
	if flags&uring.CqeBuffer != 0 {
		if res > 0 {
			data = l.eng.br.Buf(uint16(flags>>16), int(res))
		}
		defer l.eng.recycleBuf(flags) // after OnData: data is the buffer
	}
	switch {
	case c.is(stClosed):
		c.finishClose()
		return
	case res > 0 && c.is(stDraining|stClosing):
		// Dropped, as the readiness loop's drain drops them.
	case res > 0 && c.reading():
		l.tin += int64(res)
		c.active = l.now
		if c.in != nil {
			c.in = c.in.add(data)
			data = c.in.b
		}
		c.deliver(data)
	case res > 0:
		// Received before the receive was cancelled (paused): kept, to
		// be offered when reading resumes.
		l.tin += int64(res)
		c.active = l.now
		// At most one buffer: the receive is armed again only while c
		// reads.
		if c.in == nil {
			c.in = newInbound(len(data))
		}
		c.in = c.in.add(data)
		c.st |= stStashed
	case res == 0 && c.is(stDraining):
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
	case res == -int32(unix.ENOBUFS), res == -int32(unix.ECANCELED):
		// Armed again below if c still reads.
	case c.is(stDraining):
		c.closeNow(c.reason())
	default:
		c.closeNow(errnoRes("recv", res))
	}
	c.settleRing()
}

// onSent serves the completion of c's send.
func (c *Conn) onSent(res int32) {
	l := c.loop
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
	c.settleRing()
}

// settleRing ends the serving of a completion for c: a closed c finishes
// closing (once nothing is in flight), an open one settles.
func (c *Conn) settleRing() {
	if c.is(stClosed) {
		c.finishClose()
		return
	}
	c.settle()
}

// errNoProgress is a send that took none of a non-empty queue.
var errNoProgress = errors.New("reactor: send made no progress")

// cancelRing cancels c's operations in flight, for a close; finishClose
// closes the fd once they are done.
func (c *Conn) cancelRing() {
	e := c.loop.eng
	if c.is(stRecv) && !c.is(stRecvCancel) {
		e.cancel(ringTag(c.handle, opRecv))
		c.st |= stRecvCancel
	}
	if c.is(stSend) {
		e.cancel(ringTag(c.handle, opSend))
	}
}

// armAccept arms the listener's accept.
func (a *acceptor) armAccept() {
	q := a.loop.eng.sqe()
	q.Opcode, q.Fd, q.OpFlags = uring.OpAccept, int32(a.fd), unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK
	q.UserData = ringTag(a.handle, opAccept)
	a.armed = true
}

// onAccepted serves a completion of the accept.
func (a *acceptor) onAccepted(res int32, flags uint32) {
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
		a.armAccept()
	}
}

// closeEngine ends the engine as the loop exits: it serves the completions
// of the operations still in flight for connections and listeners that
// closed (a second at most), releases the ring, which cancels anything
// left, and then closes what those held.
func (l *Loop) closeEngine() {
	e := l.eng
	deadline := time.Now().Add(time.Second)
	for l.tab.Len() > 0 && e.err == nil && time.Now().Before(deadline) {
		e.submit()
		if err := e.r.Wait(1, 10*time.Millisecond, 0); err != nil && !errors.Is(err, unix.EBUSY) {
			break
		}
		l.complete()
	}
	e.close()
	var left []target
	l.tab.Range(func(_ fdtable.Handle, t target) bool {
		left = append(left, t)
		return true
	})
	for _, t := range left {
		switch t := t.(type) {
		case *Conn:
			t.st &^= stRecv | stSend
			t.finishClose()
		case *acceptor:
			t.release()
		}
	}
	if e.started {
		e.started = false
		runtime.UnlockOSThread()
	}
}
