package uring

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Setup flags (io_uring_setup's params.flags) the engine may ask for.
const (
	SetupClamp        = 1 << 4  // IORING_SETUP_CLAMP: clamp entries to the kernel's maximum
	SetupRDisabled    = 1 << 6  // IORING_SETUP_R_DISABLED: the ring starts disabled (see Enable)
	SetupSubmitAll    = 1 << 7  // IORING_SETUP_SUBMIT_ALL: go on submitting after a failed entry
	SetupCoopTaskrun  = 1 << 8  // IORING_SETUP_COOP_TASKRUN: no interrupting IPI for task work
	SetupTaskrunFlag  = 1 << 9  // IORING_SETUP_TASKRUN_FLAG: IORING_SQ_TASKRUN says task work is pending
	SetupSingleIssuer = 1 << 12 // IORING_SETUP_SINGLE_ISSUER: one task submits
	SetupDeferTaskrun = 1 << 13 // IORING_SETUP_DEFER_TASKRUN: task work runs only in io_uring_enter(GETEVENTS)
)

// Features (params.features) this package relies on or reports.
const (
	FeatSingleMmap   = 1 << 0  // IORING_FEAT_SINGLE_MMAP: SQ and CQ rings in one mapping
	FeatNodrop       = 1 << 1  // IORING_FEAT_NODROP: completions past a full CQ are kept, not dropped
	FeatSubmitStable = 1 << 2  // IORING_FEAT_SUBMIT_STABLE: what a submission points to (a msghdr, iovecs) is copied by the time io_uring_enter returns
	FeatExtArg       = 1 << 8  // IORING_FEAT_EXT_ARG: io_uring_enter takes a timeout
	FeatMinTimeout   = 1 << 15 // IORING_FEAT_MIN_TIMEOUT: wait for N completions for at most a while, then for one
)

// Opcodes this package's users submit.
const (
	OpNop      = 0
	OpPollAdd  = 6
	OpTimeout  = 11
	OpAccept   = 13
	OpCancel   = 14 // IORING_OP_ASYNC_CANCEL
	OpClose    = 19
	OpSend     = 26
	OpRecv     = 27
	OpShutdown = 34
	OpSendmsg  = 9
	OpRecvmsg  = 10
)

// SQE flags (SQE.Flags).
const (
	SqeIOLink       = 1 << 2 // IOSQE_IO_LINK: the next entry starts when this one completes; a failure cancels it
	SqeBufferSelect = 1 << 5 // IOSQE_BUFFER_SELECT: take the buffer from a provided buffer ring
)

// Per-opcode flags carried in SQE.Ioprio.
const (
	AcceptMultishot   = 1 << 0 // IORING_ACCEPT_MULTISHOT
	RecvSendPollFirst = 1 << 0 // IORING_RECVSEND_POLL_FIRST: wait for readiness before trying
	RecvMultishot     = 1 << 1 // IORING_RECV_MULTISHOT
)

// CQE flags (CQE.Flags).
const (
	CqeBuffer = 1 << 0 // IORING_CQE_F_BUFFER: a provided buffer was used; its id is Flags >> 16
	CqeMore   = 1 << 1 // IORING_CQE_F_MORE: the multishot request goes on
)

// Offsets of the mappings (io_uring_setup's man page).
const (
	offSQRing = 0
	offCQRing = 0x8000000
	offSQEs   = 0x10000000
)

// io_uring_enter flags.
const (
	enterGetEvents = 1 << 0
	enterExtArg    = 1 << 3
)

// io_uring_register opcodes.
const (
	registerProbe      = 8
	registerEnable     = 12 // IORING_REGISTER_ENABLE_RINGS
	registerPbufRing   = 22
	unregisterPbufRing = 23
	probeOpSupported   = 1 << 0 // IO_URING_OP_SUPPORTED
	probeOps           = 256
	kernelSigsetBytes  = 8 // _NSIG / 8 on linux
)

// sqringOffsets is struct io_sqring_offsets.
type sqringOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

// cqringOffsets is struct io_cqring_offsets.
type cqringOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

// params is struct io_uring_params.
type params struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFd uint32
	resv                                                                   [3]uint32
	sqOff                                                                  sqringOffsets
	cqOff                                                                  cqringOffsets
}

// SQE is one submission queue entry, struct io_uring_sqe (64 bytes). The
// fields are named for their common use; the kernel reads some under other
// names per opcode (OpFlags is rw_flags, msg_flags, accept_flags...).
type SQE struct {
	Opcode      uint8
	Flags       uint8
	Ioprio      uint16
	Fd          int32
	Off         uint64
	Addr        uint64
	Len         uint32
	OpFlags     uint32
	UserData    uint64
	BufGroup    uint16 // buf_index or buf_group
	Personality uint16
	SpliceFdIn  int32
	Addr3       uint64
	_           uint64
}

// CQE is one completion queue entry, struct io_uring_cqe (16 bytes): the
// submission's UserData, its result (a byte count, an fd, or -errno) and
// flags.
type CQE struct {
	UserData uint64
	Res      int32
	Flags    uint32
}

// Ring is one io_uring instance. See the package documentation for which
// goroutine may use it and how its shared indices are ordered.
type Ring struct {
	fd       int
	features uint32
	flags    uint32

	sqMem, cqMem, sqeMem []byte // the mappings (cqMem aliases sqMem with FeatSingleMmap)

	sqHead, sqTail *uint32
	sqMask         uint32
	sqEntries      uint32
	sqArray        []uint32
	sqes           []SQE
	sqeTail        uint32 // entries handed out by Get, published by Submit

	cqHead, cqTail *uint32
	cqMask         uint32
	cqes           []CQE

	// A wait's timeout and argument live here, in the heap, not on a
	// goroutine stack: the argument holds the timeout's address as a
	// plain integer, which a stack move would leave pointing nowhere.
	waitTs  unix.Timespec
	waitArg getEventsArg
}

// New sets up a ring with room for entries submissions (rounded up to a
// power of two by the kernel) and the setup flags given. With
// SetupSingleIssuer the ring belongs to the OS thread that made it:
// io_uring_enter and io_uring_register from another thread fail with
// EEXIST, so the goroutine that owns such a ring locks itself to its
// thread (runtime.LockOSThread) for the ring's life. No kernel support
// (ENOSYS), io_uring disabled by sysctl or a seccomp filter (EPERM), and a
// setup flag this kernel does not have (EINVAL) are errors matching
// errors.ErrUnsupported.
func New(entries uint32, flags uint32) (*Ring, error) {
	var p params
	p.flags = flags
	fd, _, errno := unix.RawSyscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	switch errno {
	case 0:
	case unix.ENOSYS:
		return nil, fmt.Errorf("uring: this kernel has no io_uring: %w", errors.ErrUnsupported)
	case unix.EPERM:
		return nil, fmt.Errorf("uring: io_uring_setup not permitted (kernel.io_uring_disabled, or a seccomp filter): %w", errors.ErrUnsupported)
	case unix.EINVAL:
		if flags != 0 {
			return nil, fmt.Errorf("uring: io_uring_setup refused flags %#x (older kernel?): %w", flags, errors.ErrUnsupported)
		}
		return nil, os.NewSyscallError("io_uring_setup", errno)
	default:
		return nil, os.NewSyscallError("io_uring_setup", errno)
	}
	r := &Ring{fd: int(fd), features: p.features, flags: flags}
	if err := r.mapRings(&p); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// mapRings maps the rings and the entries and points the fields at them.
func (r *Ring) mapRings(p *params) error {
	if p.features&FeatSingleMmap == 0 {
		return fmt.Errorf("uring: the kernel lacks IORING_FEAT_SINGLE_MMAP (5.4+): %w", errors.ErrUnsupported)
	}
	sqSize := int(p.sqOff.array) + int(p.sqEntries)*4
	cqSize := int(p.cqOff.cqes) + int(p.cqEntries)*int(unsafe.Sizeof(CQE{}))
	size := max(sqSize, cqSize)
	var err error
	r.sqMem, err = unix.Mmap(r.fd, offSQRing, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return os.NewSyscallError("mmap", err)
	}
	r.cqMem = r.sqMem
	r.sqeMem, err = unix.Mmap(r.fd, offSQEs, int(p.sqEntries)*int(unsafe.Sizeof(SQE{})), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return os.NewSyscallError("mmap", err)
	}
	sq := unsafe.Pointer(&r.sqMem[0])
	r.sqHead = (*uint32)(unsafe.Add(sq, p.sqOff.head))
	r.sqTail = (*uint32)(unsafe.Add(sq, p.sqOff.tail))
	r.sqMask = *(*uint32)(unsafe.Add(sq, p.sqOff.ringMask))
	r.sqEntries = *(*uint32)(unsafe.Add(sq, p.sqOff.ringEntries))
	r.sqArray = unsafe.Slice((*uint32)(unsafe.Add(sq, p.sqOff.array)), r.sqEntries)
	r.sqes = unsafe.Slice((*SQE)(unsafe.Pointer(&r.sqeMem[0])), r.sqEntries)
	r.sqeTail = atomic.LoadUint32(r.sqTail)

	cq := unsafe.Pointer(&r.cqMem[0])
	r.cqHead = (*uint32)(unsafe.Add(cq, p.cqOff.head))
	r.cqTail = (*uint32)(unsafe.Add(cq, p.cqOff.tail))
	r.cqMask = *(*uint32)(unsafe.Add(cq, p.cqOff.ringMask))
	r.cqes = unsafe.Slice((*CQE)(unsafe.Add(cq, p.cqOff.cqes)), *(*uint32)(unsafe.Add(cq, p.cqOff.ringEntries)))
	return nil
}

// Features returns the kernel's feature bits (FeatExtArg, FeatMinTimeout...).
func (r *Ring) Features() uint32 { return r.features }

// Fd returns the ring's fd.
func (r *Ring) Fd() int { return r.fd }

// Close unmaps the rings and closes the ring's fd; the kernel cancels what
// is in flight. A second Close does nothing.
func (r *Ring) Close() error {
	if r.fd < 0 {
		return nil
	}
	if r.sqeMem != nil {
		unix.Munmap(r.sqeMem)
		r.sqeMem = nil
	}
	if r.sqMem != nil {
		unix.Munmap(r.sqMem)
		r.sqMem, r.cqMem = nil, nil
	}
	err := unix.Close(r.fd)
	r.fd = -1
	return os.NewSyscallError("close", err)
}

// Get returns a zeroed submission entry to fill, or nil if the submission
// queue is full (Submit, and wait for the kernel to consume). The entry
// goes to the kernel at the next Submit. It does not allocate.
func (r *Ring) Get() *SQE {
	head := atomic.LoadUint32(r.sqHead)
	if r.sqeTail-head >= r.sqEntries {
		return nil
	}
	i := r.sqeTail & r.sqMask
	r.sqArray[i] = i
	e := &r.sqes[i]
	*e = SQE{}
	r.sqeTail++
	return e
}

// Space returns how many entries Get can hand out before a Submit.
func (r *Ring) Space() int {
	return int(r.sqEntries - (r.sqeTail - atomic.LoadUint32(r.sqHead)))
}

// flush publishes the entries handed out since the last flush and returns
// how many the kernel has yet to take.
func (r *Ring) flush() uint32 {
	atomic.StoreUint32(r.sqTail, r.sqeTail)
	return r.sqeTail - atomic.LoadUint32(r.sqHead)
}

// SubmitAndGet hands the kernel the entries filled since the last Submit
// and runs the work queued for this thread's completions (on a
// SetupDeferTaskrun ring that work otherwise waits for a Wait), without
// waiting. It is one io_uring_enter, a Syscall (see enter), and does not
// allocate.
func (r *Ring) SubmitAndGet() error {
	_, err := r.enter(r.flush(), 0, enterGetEvents, nil)
	return err
}

// Submit hands the kernel the entries filled since the last Submit, with
// one io_uring_enter, without waiting, and returns how many it took. It
// does not allocate.
func (r *Ring) Submit() (int, error) {
	n := r.flush()
	if n == 0 {
		return 0, nil
	}
	return r.enter(n, 0, 0, nil)
}

// getEventsArg is struct io_uring_getevents_arg.
type getEventsArg struct {
	sigmask   uint64
	sigmaskSz uint32
	minWaitUs uint32 // min_wait_usec (6.12+; was pad)
	ts        uint64
}

// Wait submits what is filled and waits until at least n completions are
// ready, or timeout has passed (no limit if timeout < 0). With minWait > 0
// and a kernel with FeatMinTimeout, it waits for n for at most minWait and
// after that returns at the first completion: a busy loop sleeps and wakes
// once for many completions, a quiet one is not held up. A timeout is not
// an error: the caller looks at what is ready. The call blocks the thread
// as a Syscall, so the runtime can hand the goroutine's P to others while
// it waits; a signal that interrupts it is retried. It does not allocate.
func (r *Ring) Wait(n uint32, timeout, minWait time.Duration) error {
	toSubmit := r.flush()
	if timeout < 0 && minWait <= 0 {
		_, err := r.enter(toSubmit, n, enterGetEvents, nil)
		return err
	}
	arg := &r.waitArg
	*arg = getEventsArg{sigmaskSz: kernelSigsetBytes}
	if timeout >= 0 {
		r.waitTs = unix.NsecToTimespec(int64(timeout))
		arg.ts = uint64(uintptr(unsafe.Pointer(&r.waitTs)))
	}
	if minWait > 0 {
		if r.features&FeatMinTimeout == 0 {
			return fmt.Errorf("uring: a minimum wait needs IORING_FEAT_MIN_TIMEOUT (linux 6.12): %w", errors.ErrUnsupported)
		}
		arg.minWaitUs = uint32(minWait / time.Microsecond)
	}
	_, err := r.enter(toSubmit, n, enterGetEvents|enterExtArg, arg)
	if err == unix.ETIME {
		err = nil
	}
	return err
}

// Enable enables a ring set up with SetupRDisabled. With
// SetupSingleIssuer the ring then belongs to the calling thread, so the
// goroutine calls it locked to its thread (runtime.LockOSThread).
func (r *Ring) Enable() error {
	_, _, errno := unix.RawSyscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), registerEnable, 0, 0, 0, 0)
	if errno != 0 {
		return os.NewSyscallError("io_uring_register", errno)
	}
	return nil
}

// WaitHeld submits what is filled and waits until n completions are
// ready, for at most d, in a raw system call: the goroutine keeps its P
// meanwhile, so the runtime neither hands the P to another thread nor
// wakes its monitor to look. A signal ends it (the runtime's preemption
// request among them, so a stop-the-world waits no longer than the
// kernel's submission work). Running out of time is not an error. With
// d < 0 it waits without a time limit (and without a timer); with
// minWait > 0 and FeatMinTimeout it waits for n for at most minWait and
// then for one. A d or minWait needs FeatExtArg. It does not allocate.
func (r *Ring) WaitHeld(n uint32, d, minWait time.Duration) error {
	if d < 0 && minWait <= 0 {
		_, _, errno := unix.RawSyscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(r.flush()), uintptr(n), enterGetEvents, 0, 0)
		switch errno {
		case 0, unix.EINTR, unix.EBUSY:
			return nil
		}
		return os.NewSyscallError("io_uring_enter", errno)
	}
	if d < 0 {
		d = time.Second
	}
	arg := &r.waitArg
	*arg = getEventsArg{sigmaskSz: kernelSigsetBytes}
	if minWait > 0 && r.features&FeatMinTimeout != 0 {
		arg.minWaitUs = uint32(minWait / time.Microsecond)
	}
	r.waitTs = unix.NsecToTimespec(int64(d))
	arg.ts = uint64(uintptr(unsafe.Pointer(&r.waitTs)))
	toSubmit := r.flush()
	_, _, errno := unix.RawSyscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(toSubmit), uintptr(n), enterGetEvents|enterExtArg, uintptr(unsafe.Pointer(arg)), unsafe.Sizeof(*arg))
	switch errno {
	case 0, unix.ETIME, unix.EINTR, unix.EBUSY:
		return nil
	}
	return os.NewSyscallError("io_uring_enter", errno)
}

// enter is io_uring_enter. With GETEVENTS it is a Syscall, which lets the
// runtime hand the goroutine's P to others while it blocks, and, when it
// does not block, while the kernel does the submitted work and the work
// that completes operations (a loop's sends for a whole turn can take
// hundreds of microseconds, which a raw call would keep the garbage
// collector's stop-the-world waiting for); a bare submission is a
// RawSyscall. EINTR is retried.
func (r *Ring) enter(toSubmit, minComplete, flags uint32, arg *getEventsArg) (int, error) {
	for {
		var n uintptr
		var errno unix.Errno
		var argsz uintptr
		if arg != nil {
			argsz = unsafe.Sizeof(*arg)
		}
		if flags&enterGetEvents == 0 {
			n, _, errno = unix.RawSyscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(toSubmit), uintptr(minComplete), uintptr(flags), uintptr(unsafe.Pointer(arg)), argsz)
		} else {
			n, _, errno = unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(toSubmit), uintptr(minComplete), uintptr(flags), uintptr(unsafe.Pointer(arg)), argsz)
		}
		switch errno {
		case 0:
			return int(n), nil
		case unix.EINTR:
			toSubmit = r.sqeTail - atomic.LoadUint32(r.sqHead)
			continue
		case unix.ETIME:
			return int(n), unix.ETIME
		}
		return int(n), os.NewSyscallError("io_uring_enter", errno)
	}
}

// Ready returns the completions ready now, in order, without a system
// call: two slices because the ring wraps (the second is empty unless it
// did). They stay valid until Seen. It does not allocate.
func (r *Ring) Ready() (first, second []CQE) {
	head := *r.cqHead // written only here
	tail := atomic.LoadUint32(r.cqTail)
	if head == tail {
		return nil, nil
	}
	h, n := int(head&r.cqMask), int(tail-head)
	if h+n <= len(r.cqes) {
		return r.cqes[h : h+n], nil
	}
	return r.cqes[h:], r.cqes[:h+n-len(r.cqes)]
}

// Seen hands n consumed completions' slots back to the kernel.
func (r *Ring) Seen(n int) {
	atomic.StoreUint32(r.cqHead, *r.cqHead+uint32(n))
}

// Probe reports which opcodes the kernel supports.
type Probe struct{ ok [probeOps]bool }

// Supports reports whether op is supported.
func (p *Probe) Supports(op uint8) bool { return p.ok[op] }

// Require returns an error matching errors.ErrUnsupported naming the first
// of ops the kernel lacks, or nil.
func (p *Probe) Require(ops ...uint8) error {
	for _, op := range ops {
		if !p.ok[op] {
			return fmt.Errorf("uring: the kernel lacks io_uring opcode %d: %w", op, errors.ErrUnsupported)
		}
	}
	return nil
}

// probeBuf is struct io_uring_probe with room for every opcode.
type probeBuf struct {
	lastOp, opsLen uint8
	resv           uint16
	resv2          [3]uint32
	ops            [probeOps]struct {
		op, resv uint8
		flags    uint16
		resv2    uint32
	}
}

// Probe asks the kernel which opcodes it supports (IORING_REGISTER_PROBE,
// 5.6+).
func (r *Ring) Probe() (*Probe, error) {
	var b probeBuf
	_, _, errno := unix.RawSyscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), registerProbe, uintptr(unsafe.Pointer(&b)), probeOps, 0, 0)
	if errno != 0 {
		if errno == unix.EINVAL {
			return nil, fmt.Errorf("uring: no opcode probe (linux 5.6): %w", errors.ErrUnsupported)
		}
		return nil, os.NewSyscallError("io_uring_register", errno)
	}
	p := &Probe{}
	for i := 0; i < int(b.opsLen) && i < probeOps; i++ {
		if b.ops[i].flags&probeOpSupported != 0 {
			p.ok[b.ops[i].op] = true
		}
	}
	return p, nil
}

// bufEntry is struct io_uring_buf, one entry of a provided buffer ring.
type bufEntry struct {
	addr uint64
	len  uint32
	bid  uint16
	resv uint16 // entry 0's is the ring's tail
}

// bufReg is struct io_uring_buf_reg.
type bufReg struct {
	ringAddr    uint64
	ringEntries uint32
	bgid        uint16
	flags       uint16
	resv        [3]uint64
}

// BufRing is a provided buffer ring (linux 5.19+): a group of equal
// buffers the kernel picks from for a receive with SqeBufferSelect, so a
// thousand idle connections with a receive armed hold no buffer each. The
// completion names the buffer (CQE.Flags >> 16); the kernel does not reuse
// it until Recycle and Publish hand it back.
//
// The buffers are mapped outside the Go heap (they add nothing to what
// the garbage collector scans or paces itself by), and only those given
// to the kernel so far (Provided, Grow) are ever touched: the kernel takes
// buffers in the order they were handed over, so every buffer provided is
// touched in turn, and the memory resident is Provided() x Size().
type BufRing struct {
	r        *Ring
	mem      []byte // the mmap'd ring of entries
	entries  []bufEntry
	mask     uint16
	tail     uint16 // local: entries added since the last Publish are not seen yet
	bgid     uint16
	data     []byte // the buffers, size bytes each, mmap'd
	size     int
	provided int // buffers 0..provided-1 are the kernel's or in use
}

// NewBufRing registers a ring with room for n buffers (a power of two, at
// most 32768) of size bytes each as buffer group bgid, and gives the
// kernel the first provide of them (1 <= provide <= n); Grow gives more. A
// kernel without provided buffer rings is an error matching
// errors.ErrUnsupported.
func (r *Ring) NewBufRing(bgid uint16, n, size, provide int) (*BufRing, error) {
	if n <= 0 || n > 1<<15 || n&(n-1) != 0 || size <= 0 || provide < 1 || provide > n {
		return nil, fmt.Errorf("uring: NewBufRing(%d buffers of %d bytes, %d provided): want a power of two up to 32768, a positive size, and 1 to that many provided", n, size, provide)
	}
	mem, err := unix.Mmap(-1, 0, max(n*int(unsafe.Sizeof(bufEntry{})), os.Getpagesize()), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANONYMOUS|unix.MAP_PRIVATE)
	if err != nil {
		return nil, os.NewSyscallError("mmap", err)
	}
	data, err := unix.Mmap(-1, 0, n*size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANONYMOUS|unix.MAP_PRIVATE)
	if err != nil {
		unix.Munmap(mem)
		return nil, os.NewSyscallError("mmap", err)
	}
	b := &BufRing{r: r, mem: mem, mask: uint16(n - 1), bgid: bgid, data: data, size: size}
	b.entries = unsafe.Slice((*bufEntry)(unsafe.Pointer(&mem[0])), n)
	reg := bufReg{ringAddr: uint64(uintptr(unsafe.Pointer(&mem[0]))), ringEntries: uint32(n), bgid: bgid}
	_, _, errno := unix.RawSyscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), registerPbufRing, uintptr(unsafe.Pointer(&reg)), 1, 0, 0)
	if errno != 0 {
		unix.Munmap(mem)
		unix.Munmap(data)
		if errno == unix.EINVAL {
			return nil, fmt.Errorf("uring: no provided buffer rings (linux 5.19): %w", errors.ErrUnsupported)
		}
		return nil, os.NewSyscallError("io_uring_register", errno)
	}
	b.Grow(provide)
	return b, nil
}

// Grow gives the kernel buffers until n have been provided in all (at most
// the ring's room), and publishes them; it reports whether it added any.
func (b *BufRing) Grow(n int) bool {
	n = min(n, len(b.entries))
	if n <= b.provided {
		return false
	}
	for i := b.provided; i < n; i++ {
		b.Recycle(uint16(i))
	}
	b.provided = n
	b.Publish()
	return true
}

// Provided returns the buffers given to the kernel so far.
func (b *BufRing) Provided() int { return b.provided }

// Cap returns the most buffers the ring holds.
func (b *BufRing) Cap() int { return len(b.entries) }

// Buf returns the first n bytes of buffer bid, as a completion reported
// them; valid until the buffer is recycled.
func (b *BufRing) Buf(bid uint16, n int) []byte {
	off := int(bid) * b.size
	return b.data[off : off+n : off+b.size]
}

// Size returns the size of each buffer.
func (b *BufRing) Size() int { return b.size }

// Recycle queues buffer bid to go back to the kernel at the next Publish.
func (b *BufRing) Recycle(bid uint16) {
	e := &b.entries[b.tail&b.mask]
	off := int(bid) * b.size
	e.addr = uint64(uintptr(unsafe.Pointer(&b.data[off])))
	e.len = uint32(b.size)
	e.bid = bid
	b.tail++
}

// Publish hands the recycled buffers to the kernel: it stores the ring's
// tail, a 16-bit field in the upper half (on little-endian machines) of
// the 32-bit word it shares with entry 0's buffer id, with one atomic
// 32-bit store that rewrites that id unchanged.
func (b *BufRing) Publish() {
	word := (*uint32)(unsafe.Pointer(&b.entries[0].bid))
	id := uint32(b.entries[0].bid)
	if littleEndian {
		atomic.StoreUint32(word, id|uint32(b.tail)<<16)
	} else {
		atomic.StoreUint32(word, id<<16|uint32(b.tail))
	}
}

// Close unregisters the ring and releases its memory; after Close no
// receive may select from its group.
func (b *BufRing) Close() error {
	reg := bufReg{bgid: b.bgid}
	_, _, errno := unix.RawSyscall6(unix.SYS_IO_URING_REGISTER, uintptr(b.r.fd), unregisterPbufRing, uintptr(unsafe.Pointer(&reg)), 1, 0, 0)
	b.Release()
	if errno != 0 {
		return os.NewSyscallError("io_uring_register", errno)
	}
	return nil
}

// Release frees the ring's memory without unregistering it, for a ring
// whose Ring is closed already (closing the ring's fd unregisters it, and
// the kernel keeps the pages it pinned until then).
func (b *BufRing) Release() {
	if b.mem != nil {
		unix.Munmap(b.mem)
	}
	if b.data != nil {
		unix.Munmap(b.data)
	}
	b.mem, b.entries, b.data = nil, nil, nil
}

// littleEndian reports the machine's byte order (BufRing.Publish).
var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()
