package reactor

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/fdtable"
	"github.com/muxkit/reactor/internal/uring"
	"github.com/muxkit/reactor/poller"
)

// The completion engine (Backend Uring): its ring, set up and probed. The
// loop's turn and wait are in completion_wait_linux.go, the connections'
// and acceptors' operations in completion_conn_linux.go, and
// docs/io_uring.md tells how it came to be this way, with measurements.
//
// In short: each reading connection has one receive armed into the loop's
// provided buffer ring; its queue is sent by send or sendmsg from the
// queue's own chunks; the listener has one accept in flight. The ring runs
// the work that turns a socket's readiness into a completion cooperatively
// (IORING_SETUP_COOP_TASKRUN): on the submitting thread, at its next entry
// to the kernel, never by interrupting it, and it wakes that thread if it
// sleeps. So the loop's goroutine is not locked to a thread, and it waits,
// yields and parks as a readiness loop does (Loop.block). Watch, a
// Dialer's connect and Post's wake stay on an epoll instance polled
// through the ring.

// The engine's sizes.
const (
	ringEntries  = 4096 // submission entries; the kernel makes twice as many completion entries
	ringBufSize  = 4096 // bytes per receive buffer
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

	opRecv    = 1
	opSend    = 2
	opAccept  = 3
	opRecvmsg = 4
	opSendmsg = 5
	opOutPoll = 6 // a datagram socket's wait for room before its sends

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

// completion is a loop's engine over an io_uring.
type completion struct {
	l         *Loop
	r         *uring.Ring
	br        *uring.BufRing
	park      *runtimePark // parks on the ring's fd (readable while completions wait)
	epfd      int          // the loop's epoll fd, polled through the ring
	epArmed   bool         // the poll on the loop's epoll fd is in the ring
	epDue     bool         // that poll completed this turn: collect epoll's events
	recycle   bool         // buffers recycled since the last Publish
	multishot bool         // receives are multishot, up to recvLimit (multishotRecv)
	dedicated bool         // UringConfig.Dedicated: a locked thread, deferred task running, held waits
	msgs      []ringMsg
	nmsg      int   // msgs filled since the last submission
	sends     int   // sends to submit that nothing waits for (see wait)
	err       error // a failed submission: the loop ends with it at the turn's end
	spare     uring.SQE
	started   bool // a turn has submitted: operations may be in flight
	closed    bool
	cfg       UringConfig // defaults applied; BatchWait < 0: no batching
	// Connections active recently, for a batched wait's count: those
	// that received in the loop clock's current millisecond (epoch) and
	// in the one before it.
	epoch        int64
	active, prev int
}

// ringFlags are the engine's setup flags: cooperative task running, so
// that the work completing an operation never interrupts the loop's thread
// (interrupting it made it spin on socket locks the other CPU's softirq
// held; docs/io_uring.md has the measurement), and the flag
// that says such work waits.
const ringFlags = uring.SetupClamp | uring.SetupCoopTaskrun | uring.SetupTaskrunFlag

// dedicatedFlags are a dedicated loop's (UringConfig.Dedicated): one
// issuer, the loop's locked thread, which enables the ring at its first
// turn, and deferred task running, which wakes a waiting loop once for
// the completions it waits for rather than once for each.
const dedicatedFlags = uring.SetupClamp | uring.SetupSingleIssuer | uring.SetupDeferTaskrun | uring.SetupRDisabled

// ringOps are the operations the engine submits.
var ringOps = []uint8{uring.OpPollAdd, uring.OpAccept, uring.OpCancel, uring.OpSend, uring.OpRecv, uring.OpSendmsg, uring.OpRecvmsg}

// minWaitFeature is the feature bit UringConfig.BatchWait needs (a
// variable so that a test can ask for one no kernel has).
var minWaitFeature uint32 = uring.FeatMinTimeout

// ringSupport is why the engine cannot run here, or nil; probed once.
var ringSupport = sync.OnceValue(probeRing)

// probeRing checks that this kernel has what the engine uses: io_uring
// allowed (not disabled by sysctl or refused by seccomp), cooperative task
// running (linux 5.19), the features and opcodes, and a receive into a
// provided buffer ring (linux 5.19), tried on a socket pair.
func probeRing() error {
	r, err := uring.New(8, ringFlags)
	if err != nil {
		if errors.Is(err, errors.ErrUnsupported) {
			// Tell an old kernel from one without io_uring at all.
			if r0, err0 := uring.New(8, uring.SetupClamp); err0 == nil {
				r0.Close()
				return fmt.Errorf("reactor: io_uring lacks cooperative task running (linux 5.19): %w", errors.ErrUnsupported)
			}
		}
		return err
	}
	defer r.Close()
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
	cq, err := probeRecv(r, 0, 0, 1)
	if err != nil {
		return err
	}
	if res := cq.Res; res != 1 {
		if res < 0 && unix.Errno(-res) == unix.EINVAL {
			return fmt.Errorf("reactor: io_uring cannot receive into a provided buffer ring (linux 5.19): %w", errors.ErrUnsupported)
		}
		return fmt.Errorf("reactor: io_uring: a probing receive returned %d", res)
	}
	return nil
}

// probeRecv tries a receive with ioprio and optlen on a socket pair of
// which the other end has sent n bytes, into a provided buffer ring of
// r's, and returns its first completion.
func probeRecv(r *uring.Ring, ioprio uint16, optlen int32, n int) (uring.CQE, error) {
	br, err := r.NewBufRing(ringGroup, 4, 64, 4)
	if err != nil {
		return uring.CQE{}, err
	}
	defer br.Close()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return uring.CQE{}, os.NewSyscallError("socketpair", err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	if _, err := unix.Write(fds[1], make([]byte, n)); err != nil {
		return uring.CQE{}, os.NewSyscallError("write", err)
	}
	q := r.Get()
	q.Opcode, q.Fd, q.Flags, q.Ioprio = uring.OpRecv, int32(fds[0]), uring.SqeBufferSelect, ioprio
	q.BufGroup, q.SpliceFdIn, q.UserData = ringGroup, optlen, 1
	if err := r.Wait(1, time.Second, 0); err != nil {
		return uring.CQE{}, err
	}
	a, _ := r.Ready()
	if len(a) == 0 {
		return uring.CQE{}, fmt.Errorf("reactor: io_uring: no completion for a probing receive")
	}
	return a[0], nil
}

// recvLimit is about the most a connection's multishot receive takes
// before it ends and the loop arms it again (if the connection still
// reads): one read's worth (64 KiB), as a readiness loop reads at most
// that much a turn, less one buffer, because the kernel stops once it has
// taken the limit and its last buffer may take it past by up to a buffer.
// Without a limit, a connection the loop has paused (backpressure,
// PauseRead) would go on filling the loop's buffers until the cancel
// lands.
const recvLimit = 64<<10 - ringBufSize

// multishotRecv reports whether this kernel takes a multishot receive
// with a byte limit (sqe->optlen, linux 6.17); probed once. Without it
// each receive is armed once per completion: a multishot receive without
// a limit held megabytes for a client the loop had paused.
// (A variable so that a test can turn it off.)
var multishotRecv = sync.OnceValue(func() bool {
	r, err := uring.New(8, ringFlags)
	if err != nil {
		return false
	}
	defer r.Close()
	// A kernel before 6.17 reads optlen as file_index and refuses the
	// entry (EINVAL); 6.17 ends the receive once it has taken the limit
	// (here one byte; the buffer it reads into may take more), without
	// CqeMore, where an unlimited one goes on.
	cq, err := probeRecv(r, uring.RecvMultishot, 1, 2)
	return err == nil && cq.Res > 0 && cq.Flags&uring.CqeMore == 0
})

// forceDedicated makes every engine loop dedicated, whatever its
// UringConfig: a test's switch, to run Server tests on such loops.
var forceDedicated bool

// newCompletion sets up the completion engine of l, whose poller is epoll,
// tuned by cfg.
func newCompletion(l *Loop, cfg UringConfig) (*completion, error) {
	if err := ringSupport(); err != nil {
		return nil, err
	}
	ep, ok := l.p.(poller.FDPoller)
	if !ok || l.p.Backend() != poller.Epoll {
		return nil, errors.New("reactor: the completion engine needs an epoll poller beside it")
	}
	cfg, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	if forceDedicated {
		cfg.Dedicated = true
	}
	flags := uint32(ringFlags)
	if cfg.Dedicated {
		flags = dedicatedFlags
	}
	r, err := uring.New(ringEntries, flags)
	if err != nil {
		if cfg.Dedicated && errors.Is(err, errors.ErrUnsupported) {
			return nil, fmt.Errorf("reactor: UringConfig.Dedicated needs deferred task running (linux 6.1): %w", err)
		}
		return nil, err
	}
	if cfg.BatchWait > 0 && r.Features()&minWaitFeature == 0 {
		r.Close()
		return nil, fmt.Errorf("reactor: UringConfig.BatchWait needs a minimum wait in io_uring_enter (linux 6.12): %w", errors.ErrUnsupported)
	}
	br, err := r.NewBufRing(ringGroup, cfg.Buffers, ringBufSize, ringBufsMin)
	if err != nil {
		r.Close()
		return nil, err
	}
	e := &completion{l: l, r: r, br: br, epfd: ep.Fd(), msgs: make([]ringMsg, ringMsgSlots), cfg: cfg, multishot: multishotRecv(), dedicated: cfg.Dedicated}
	if !e.dedicated {
		e.park = newRuntimePark(l, r.Fd(), e.ready)
	}
	l.ownsThread = e.dedicated
	return e, nil
}

func (e *completion) backend() poller.Backend { return Uring }

// sqe returns a free submission entry, submitting what is filled if the
// queue is full. If the kernel takes none (which a ring that keeps every
// completion does not do), the entry returned is a spare that goes
// nowhere, and the loop ends with the error at the turn's end.
func (e *completion) sqe() *uring.SQE {
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

// submit hands the kernel what is filled, and runs the work that completes
// operations this thread submitted (an enter with GETEVENTS, not waiting);
// the sendmsg headers are free again once it returns. A failure is kept
// for the turn's end.
func (e *completion) submit() {
	// EBUSY: completions must be reaped first; what is left goes with
	// the next submission.
	if err := e.r.SubmitAndGet(); err != nil && !errors.Is(err, unix.EBUSY) && e.err == nil {
		e.err = err
	}
	e.nmsg, e.sends = 0, 0
}

// reserve submits what is filled unless n more entries fit, so that the
// next n go to the kernel in one submission (a linked chain).
func (e *completion) reserve(n int) {
	if e.r.Space() < n {
		e.submit()
	}
}

// msgSQE returns a submission entry and a sendmsg header slot for it. It
// submits, if either is full, before it hands out both, never in between:
// that would give the kernel the entry unfilled, or reuse the slot while
// the entry still points to it.
func (e *completion) msgSQE() (*uring.SQE, *ringMsg) {
	if e.nmsg == len(e.msgs) {
		e.submit()
	}
	q := e.sqe() // a submission here leaves nmsg at 0
	m := &e.msgs[e.nmsg]
	e.nmsg++
	return q, m
}

// cancel submits the cancellation of the operation with user data ud.
func (e *completion) cancel(ud uint64) {
	q := e.sqe()
	q.Opcode, q.Addr, q.UserData = uring.OpCancel, ud, udIgnore
}

// recycleBuf queues the buffer a completion's flags name for the kernel.
func (e *completion) recycleBuf(flags uint32) {
	e.br.Recycle(uint16(flags >> 16))
	e.recycle = true
}

// close ends the engine as the loop exits: it serves the completions of
// the operations still in flight for connections and listeners that
// closed (a second at most), releases the ring, which cancels anything
// left, and then closes what those held. On a loop that never turned
// nothing was submitted, and it only releases the ring.
func (e *completion) close() {
	if e.closed {
		return
	}
	if !e.started {
		e.release()
		return
	}
	l := e.l
	deadline := time.Now().Add(time.Second)
	for l.tab.Len() > 0 && e.err == nil && time.Now().Before(deadline) {
		e.submit()
		if err := e.r.Wait(1, 10*time.Millisecond, 0); err != nil && !errors.Is(err, unix.EBUSY) {
			break
		}
		e.complete()
	}
	e.release()
	if e.dedicated {
		runtime.UnlockOSThread()
	}
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
		case *PacketConn:
			t.st &^= pRecv | pSend
			e.releaseDgram(t)
			t.finishClose()
		}
	}
}

// release closes the ring (the kernel cancels what is in flight) and
// frees the buffers and the park's fd.
func (e *completion) release() {
	if e.closed {
		return
	}
	e.closed = true
	e.r.Close()
	e.br.Release()
	if e.park != nil {
		e.park.close()
		e.park = nil
	}
}

// ringBufsMin is how many receive buffers a loop starts with (see
// UringConfig.Buffers).
const ringBufsMin = 64
