package conn

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// The methods here let a completion engine (io_uring) send the queue with
// operations of its own rather than Flush's writev: it hands the kernel the
// queued chunks where they are (QueuedIovecs) and, when the send completes,
// removes what the kernel took (Consume). The chunks do not move while they
// are queued: bytes queued meanwhile go after them, and nothing is freed
// until Consume or Close. So the kernel may read them until the send
// completes, provided the Conn is not closed before that.

// Queuev copies bufs, in order, to the end of the queue without a system
// call, all of them or (past Limits.MaxQueued, ErrQueueFull) none. It
// returns the bytes queued. After Close the error matches net.ErrClosed. It
// does not retain bufs, and allocates only chunks the free list cannot
// supply.
func (c *Conn) Queuev(bufs [][]byte) (int, error) {
	total, err := c.room(bufs)
	if err != nil {
		return 0, err
	}
	for _, b := range bufs {
		c.enqueue(b)
	}
	return total, nil
}

// room returns the bytes in bufs, or ErrQueueFull if queueing them would
// pass Limits.MaxQueued; after Close the error matches net.ErrClosed.
func (c *Conn) room(bufs [][]byte) (int, error) {
	if !c.open() {
		return 0, errClosed
	}
	total := 0
	for _, b := range bufs {
		total += len(b)
	}
	if total > c.lim.maxQueued()-c.pending {
		return 0, ErrQueueFull
	}
	return total, nil
}

// QueuedIovecs fills iov with the queued bytes, one entry per chunk from
// the head, as many as iov holds, and returns the entries filled and the
// bytes they cover. The memory stays where it is, unchanged, until Consume
// removes it or Close drops it. It does not allocate or make a system call.
func (c *Conn) QueuedIovecs(iov []unix.Iovec) (k, n int) {
	for ch := c.head; ch != nil && k < len(iov); ch = ch.next {
		iov[k].Base = &ch.buf[ch.r]
		iov[k].SetLen(ch.w - ch.r)
		n += ch.w - ch.r
		k++
	}
	raceReadIovecs(iov[:k])
	return k, n
}

// Consume removes the first n queued bytes, which the kernel has taken by
// an operation of the caller's (see QueuedIovecs), and gives every emptied
// chunk back to the free list. n outside 0..Pending() is an error and
// removes nothing; after Close the error matches net.ErrClosed. It does
// not allocate, except for an error.
func (c *Conn) Consume(n int) error {
	if !c.open() {
		return errClosed
	}
	if n < 0 || n > c.pending {
		return fmt.Errorf("conn: Consume(%d) with %d bytes queued", n, c.pending)
	}
	c.consume(n)
	return nil
}
