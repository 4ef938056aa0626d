// Package conn is one non-blocking connection over one file descriptor, as
// an event loop drives it: Read and Write never block, and what the kernel
// does not take at once is queued, in order, and sent later by Flush.
//
// A Conn owns its fd, which New puts in non-blocking, close-on-exec mode.
// Read is one read(2): no data is ErrWouldBlock (which matches unix.EAGAIN),
// an orderly shutdown by the peer is io.EOF. Write tries write(2) only when
// nothing is queued; whatever the kernel leaves, and every byte written
// while something is queued, is copied into the write queue. Flush sends the
// queue with writev(2), many chunks per call.
//
// # The event loop's side
//
// The loop watches the fd for readability always, and for writability only
// while Pending() > 0: after a Write that returned with Pending() > 0 it adds
// write interest, on writability it calls Flush, and once Pending() is 0 it
// drops write interest again (a level-triggered poller would otherwise report
// the idle, writable socket on every wait).
//
// # Memory per client stays bounded
//
// Limits, shared by pointer among many Conns, bounds what one client can make
// the server hold:
//
//   - HighWater: when AboveHighWater reports true (Pending() >= HighWater) the
//     loop should stop reading this client, so a client that sends requests
//     but does not read the replies stops being served instead of growing
//     its queue (backpressure).
//   - LowWater: when BelowLowWater reports true again (Pending() <= LowWater)
//     the loop resumes reading. The gap between the two marks keeps the loop
//     from toggling read interest on every Flush. The Conn keeps no state for
//     this: the loop remembers whether it paused the client.
//   - MaxQueued: a hard cap. A Write that would queue more returns
//     ErrQueueFull and takes nothing, so a client that never reads cannot
//     grow server memory without bound even if the handler ignores the marks.
//
// The queue is a list of chunks (16 KiB, or 2 KiB for a small write into
// an empty queue) taken from free lists shared by every Conn in the
// process and given back as soon as they are sent, so an idle Conn with an
// empty queue holds no buffer at all, a busy one holds
// MaxQueued bytes in at most two chunks more than they fill (the first one
// partly sent, the last one partly filled), and a steady Write/Flush cycle
// does not allocate once the free list holds enough chunks.
//
// No method blocks. Each method's documentation says what it allocates:
// Read, Write, Flush and the watermark checks allocate nothing in the steady
// state.
//
// # Concurrency
//
// A Conn is not safe for concurrent use: one goroutine, the event loop's,
// calls all of its methods. Conns on different loops are independent (the
// chunk free list is safe for concurrent use).
package conn

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// Defaults for the zero fields of a Limits.
const (
	defaultHighWater = 64 << 10 // four chunks
	defaultLowWater  = 16 << 10 // one chunk
	defaultMaxQueued = 4 << 20
)

// wouldBlockError is the type of ErrWouldBlock.
type wouldBlockError struct{}

func (wouldBlockError) Error() string { return "conn: operation would block" }
func (wouldBlockError) Unwrap() error { return unix.EAGAIN }

// Errors returned by Conn methods; test them with errors.Is.
var (
	// ErrWouldBlock is returned by Read when no data is available yet. It
	// wraps unix.EAGAIN, so errors.Is(err, unix.EAGAIN) is true as well.
	ErrWouldBlock error = wouldBlockError{}
	// ErrQueueFull is returned by Write when queuing p would push Pending()
	// past Limits.MaxQueued. Nothing of p was written or queued.
	ErrQueueFull = errors.New("conn: write queue full (Limits.MaxQueued reached)")

	// errClosed is returned by every call on a closed Conn.
	errClosed = fmt.Errorf("conn: %w", net.ErrClosed)
	// errInUse is returned by Init of a Conn that is not the zero Conn.
	errInUse = errors.New("conn: Init of a Conn already in use")
	// errNoProgress is returned by Flush if writev reports 0 bytes written
	// without an error, which no stream socket or pipe does; it stops Flush
	// from spinning.
	errNoProgress = fmt.Errorf("conn: writev wrote nothing: %w", io.ErrShortWrite)
)

// Limits bounds the write queue of every Conn that shares it. A zero field
// means its default, so the zero Limits behaves as DefaultLimits(). (A
// LowWater of 0 therefore cannot be asked for: 1 resumes reading only once
// all but a byte is sent.) A Limits is read, never written, by the Conns
// using it, from whichever loop goroutines own them: do not change it while
// they exist.
type Limits struct {
	// HighWater is the Pending() at or above which the loop should stop
	// reading the client (backpressure). Default 64 KiB.
	HighWater int
	// LowWater is the Pending() at or below which the loop, having stopped
	// reading the client above HighWater, resumes reading. Default 16 KiB.
	LowWater int
	// MaxQueued is the hard cap on queued bytes: Write returns ErrQueueFull
	// rather than exceed it. Default 4 MiB.
	MaxQueued int
}

// DefaultLimits returns the Limits used for a nil *Limits, with every field
// filled in. It does not allocate.
func DefaultLimits() Limits {
	return Limits{HighWater: defaultHighWater, LowWater: defaultLowWater, MaxQueued: defaultMaxQueued}
}

// defaultLimits is what a Conn created with nil Limits points to.
var defaultLimits = DefaultLimits()

func (l *Limits) highWater() int { return orDefault(l.HighWater, defaultHighWater) }
func (l *Limits) lowWater() int  { return orDefault(l.LowWater, defaultLowWater) }
func (l *Limits) maxQueued() int { return orDefault(l.MaxQueued, defaultMaxQueued) }

// isDefault annotates a Limits field's value in an error message if the
// field was zero.
func isDefault(v int) string {
	if v == 0 {
		return ", the default"
	}
	return ""
}

func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// Validate reports whether l is usable: no field is negative, and after zero
// fields are replaced by their defaults, LowWater <= HighWater <= MaxQueued.
// Setting MaxQueued alone below 64 KiB is therefore an error: set the marks
// too. It allocates only the error it returns.
func (l Limits) Validate() error {
	for _, f := range [...]struct {
		name string
		v    int
	}{{"HighWater", l.HighWater}, {"LowWater", l.LowWater}, {"MaxQueued", l.MaxQueued}} {
		if f.v < 0 {
			return fmt.Errorf("conn: Limits.%s is negative (%d)", f.name, f.v)
		}
	}
	lo, hi, max := l.lowWater(), l.highWater(), l.maxQueued()
	if lo > hi {
		return fmt.Errorf("conn: Limits.LowWater (%d%s) is above HighWater (%d%s)",
			lo, isDefault(l.LowWater), hi, isDefault(l.HighWater))
	}
	if hi > max {
		return fmt.Errorf("conn: Limits.HighWater (%d%s) is above MaxQueued (%d%s)",
			hi, isDefault(l.HighWater), max, isDefault(l.MaxQueued))
	}
	return nil
}

// Conn is one non-blocking connection over one fd, with a bounded write
// queue. Create it with New. It is small (six words on 64-bit systems) and
// holds no buffer while its queue is empty.
//
// A Conn is not safe for concurrent use: one goroutine, the event loop's,
// calls all of its methods. No method blocks. The zero Conn is not open:
// its methods act as after Close (they never touch fd 0).
//
// The fields are in the order Read and Write touch them, so that a Conn held
// by value (see Init) puts them on as few cache lines as possible.
type Conn struct {
	fd      int     // -1 once closed
	lim     *Limits // never nil once New or Init succeeded; shared
	pending int     // queued bytes: the sum of w-r over the chunks
	head    *chunk  // first queued chunk, nil when the queue is empty
	tail    *chunk  // last queued chunk, nil when the queue is empty
	addrs   *addrs  // allocated by the first LocalAddr or RemoteAddr
}

// New returns a Conn that owns fd: it sets O_NONBLOCK and FD_CLOEXEC on fd,
// and Close closes it. lim may be nil for DefaultLimits; otherwise it is kept
// by pointer (many Conns share one Limits) and must pass Validate. A negative
// or closed fd is an error matching unix.EBADF. If New fails, fd is left open
// and still belongs to the caller. New allocates the Conn and nothing else;
// it does not block.
func New(fd int, lim *Limits) (*Conn, error) {
	c := new(Conn)
	if err := c.Init(fd, lim); err != nil {
		return nil, err
	}
	return c, nil
}

// Init makes c, which must be the zero Conn, own fd, exactly as New does:
// for a Conn held by value inside a larger structure, such as an event
// loop's per-connection state, which then takes one allocation instead of
// two and keeps the fields serving one event close together in memory.
// Init of a Conn that New or Init already set up is an error, and so are
// the cases New reports; on failure c stays the zero Conn and fd stays the
// caller's. Init does not block, and allocates only the error it returns.
func (c *Conn) Init(fd int, lim *Limits) error {
	if c.lim != nil {
		return errInUse
	}
	if fd < 0 {
		return fmt.Errorf("conn: negative file descriptor %d: %w", fd, unix.EBADF)
	}
	if lim == nil {
		lim = &defaultLimits
	} else if err := lim.Validate(); err != nil {
		return err
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
		return os.NewSyscallError("fcntl", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		return os.NewSyscallError("fcntl", err)
	}
	c.fd, c.lim = fd, lim
	return nil
}

// open reports whether c was made by New or Init and is not closed. The
// zero Conn is not open: its fd field is 0, which is not its to touch.
func (c *Conn) open() bool { return c.fd >= 0 && c.lim != nil }

// Fd returns the file descriptor, or -1 after Close. The fd stays owned by
// the Conn: do not close it or change its flags. It does not allocate.
func (c *Conn) Fd() int { return c.fd }

// Read reads into p with one read(2). It returns ErrWouldBlock if no data is
// available yet, io.EOF once the peer has shut down its sending side and the
// data before that has been read, and an error matching net.ErrClosed after
// Close. Other failures are *os.SyscallError naming "read", so errors.Is(err,
// unix.ECONNRESET) works. EINTR is retried. A len(p) == 0 Read returns 0,
// nil without a syscall. Read does not block and allocates only on the
// failure paths that build an *os.SyscallError.
func (c *Conn) Read(p []byte) (int, error) {
	if !c.open() {
		return 0, errClosed
	}
	if len(p) == 0 {
		return 0, nil
	}
	for {
		n, err := sysRead(c.fd, p)
		switch {
		case err == nil && n > 0:
			return n, nil
		case err == nil:
			return 0, io.EOF
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return 0, ErrWouldBlock
		}
		return 0, os.NewSyscallError("read", err)
	}
}

// Write sends p or queues it, and never blocks. If the queue is empty it
// tries one write(2) and copies what the kernel does not take into the
// queue; if something is queued already it copies all of p behind it
// without a syscall, so bytes go out in the order they were written. It
// returns len(p), nil when every byte was written or queued.
//
// If Pending()+len(p) would exceed Limits.MaxQueued, Write returns 0,
// ErrQueueFull without writing or queuing anything. The check is made before
// the write(2), with all of p, so a single Write larger than MaxQueued always
// fails even when the kernel might have taken part of it: split it, or raise
// MaxQueued. A failed write(2) (EPIPE, ECONNRESET, ...) is an
// *os.SyscallError naming "write"; after Close the error matches
// net.ErrClosed. Write does not retain p. It allocates only a chunk the free
// list cannot supply (see the package documentation) and the
// *os.SyscallError of a failure.
func (c *Conn) Write(p []byte) (int, error) {
	if !c.open() {
		return 0, errClosed
	}
	if len(p) > c.lim.maxQueued()-c.pending {
		return 0, ErrQueueFull
	}
	if len(p) == 0 {
		return 0, nil
	}
	if c.pending > 0 {
		c.enqueue(p)
		return len(p), nil
	}
	for {
		n, err := sysWrite(c.fd, p)
		switch {
		case err == nil:
			if n < len(p) {
				c.enqueue(p[n:])
			}
			return len(p), nil
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			c.enqueue(p)
			return len(p), nil
		}
		return 0, os.NewSyscallError("write", err)
	}
}

// Flush writes queued bytes with writev(2), up to 64 chunks (1 MiB) per call
// (8 on darwin and openbsd, which must go through libc; a queue of one chunk
// goes out with write(2)), until the queue is empty or the kernel takes no
// more. It returns nil in both cases: check Pending() to see whether bytes
// are left, and flush again when the fd is writable. A failed writev (EPIPE,
// ECONNRESET, ...) is an *os.SyscallError naming "writev" and leaves the
// unsent bytes queued; the connection is broken then, and Writes behind the
// queue still succeed without a syscall, so Close it. After Close the error
// matches net.ErrClosed. EINTR is retried. Flush does not block and does not
// allocate (chunks it empties go back to the free list), except for the
// *os.SyscallError of a failure.
func (c *Conn) Flush() error {
	if !c.open() {
		return errClosed
	}
	for c.head != nil {
		n, offered, err := writev(c.fd, c.head, nil)
		switch {
		case err == nil && n > 0:
			c.consume(n)
			if n < offered {
				return nil // the kernel took what it had room for
			}
			continue
		case err == nil:
			return errNoProgress
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return nil
		}
		return os.NewSyscallError("writev", err)
	}
	return nil
}

// Queue copies p to the end of the write queue without a system call; Flush
// or Writev sends it. It is Write for a caller that gathers several writes
// into one system call. Like Write it returns len(p), nil, or 0,
// ErrQueueFull (taking nothing) if Pending()+len(p) would exceed
// Limits.MaxQueued, or an error matching net.ErrClosed after Close. It does
// not retain p, and allocates only a chunk the free list cannot supply.
func (c *Conn) Queue(p []byte) (int, error) {
	if !c.open() {
		return 0, errClosed
	}
	if len(p) > c.lim.maxQueued()-c.pending {
		return 0, ErrQueueFull
	}
	c.enqueue(p)
	return len(p), nil
}

// Writev sends the queued bytes and then bufs, in order, with one writev(2)
// (more only while the kernel keeps taking everything offered and the queue
// is longer than one call takes), and copies into the queue only what the
// kernel does not take: bufs that fit the socket's send buffer are never
// copied. It returns the bytes of bufs written or queued, which is all of
// them, or 0 and ErrQueueFull (taking nothing) if they would push
// Pending() past Limits.MaxQueued. A failed writev is an *os.SyscallError
// naming "writev", with nothing of bufs taken; after Close the error
// matches net.ErrClosed. EINTR is retried. It does not retain bufs, does
// not block, and allocates only queue chunks and the error.
func (c *Conn) Writev(bufs [][]byte) (int, error) {
	total, err := c.room(bufs)
	if err != nil || total == 0 {
		return 0, err
	}
	var n, offered int
	for {
		n, offered, err = writev(c.fd, c.head, bufs)
		if err != unix.EINTR {
			break
		}
	}
	switch {
	case err == unix.EAGAIN:
		n, err = 0, nil
	case err != nil:
		return 0, os.NewSyscallError("writev", err)
	}
	took := n
	q := min(n, c.pending)
	c.consume(q)
	n -= q
	for _, b := range bufs {
		if n >= len(b) {
			n -= len(b)
			continue
		}
		c.enqueue(b[n:])
		n = 0
	}
	if took == offered && c.pending > 0 {
		// The kernel took all it was offered, but the queue was longer
		// than one call takes: carry on as Flush does.
		return total, c.Flush()
	}
	return total, nil
}

// Pending returns the number of queued bytes, written by Write but not yet
// taken by the kernel. It does not allocate.
func (c *Conn) Pending() int { return c.pending }

// AboveHighWater reports whether Pending() >= Limits.HighWater: the loop
// should stop reading this client until BelowLowWater. It does not allocate.
func (c *Conn) AboveHighWater() bool { return c.pending >= c.lim.highWater() }

// BelowLowWater reports whether Pending() <= Limits.LowWater: a client whose
// reading was paused above HighWater may be read again. It does not
// allocate.
func (c *Conn) BelowLowWater() bool { return c.pending <= c.lim.lowWater() }

// CloseWrite shuts down the sending side (shutdown(2) with SHUT_WR): the peer
// reads end of file after the bytes already sent, and the fd can still be
// read. Call it once Pending() is 0, for a graceful end; bytes still queued
// then can never be sent (a later Flush fails with EPIPE). A failure is an
// *os.SyscallError naming "shutdown"; after Close the error matches
// net.ErrClosed. It does not block or allocate, except for the error.
func (c *Conn) CloseWrite() error {
	if !c.open() {
		return errClosed
	}
	if err := unix.Shutdown(c.fd, unix.SHUT_WR); err != nil {
		return os.NewSyscallError("shutdown", err)
	}
	return nil
}

// Close closes the fd and drops the queue, giving its chunks back to the
// free list; queued bytes are not sent (Flush first, for a graceful end).
// Remove the fd from the poller before calling Close. The fd is closed even
// if close(2) reports an error, which is returned as an *os.SyscallError
// naming "close"; close is never retried. A second Close returns an error
// matching net.ErrClosed and does not touch the fd number again (the kernel
// may have reused it). Close does not block, and allocates only the error.
func (c *Conn) Close() error {
	if !c.open() {
		return errClosed
	}
	fd := c.fd
	c.fd = -1
	c.drop()
	if err := unix.Close(fd); err != nil {
		return os.NewSyscallError("close", err)
	}
	return nil
}
