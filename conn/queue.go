package conn

import (
	"sync"
	"unsafe"
)

// chunkSize is the size of one write-queue chunk, header included: 16 KiB.
//
// Why 16 KiB:
//   - Memory: a client that lags by a few bytes pins a whole chunk, so a
//     chunk should be small next to the marks; 16 KiB is the default
//     LowWater and a quarter of the default HighWater. 64 KiB chunks would
//     make each slightly slow client cost 64 KiB.
//   - Syscalls: Flush sends up to 64 chunks per writev, 1 MiB, which is
//     more than a socket send buffer usually has free at once, so one call
//     fills it; 4 KiB chunks would cap a writev at 256 KiB.
//   - Allocator: 16384 is an exact Go size class, and below the 32 KiB
//     large-object threshold, so a chunk wastes nothing and is cheap to
//     allocate when the free list is empty.
const chunkSize = 16 << 10

// chunkHeader is the bookkeeping at the start of a chunk.
type chunkHeader struct {
	next *chunk // the chunk queued after this one, or nil
	r, w int    // buf[r:w] is queued; r < w while the chunk is queued
}

// chunk is one fixed-size piece of a write queue. Its header and data
// together are chunkSize bytes.
type chunk struct {
	chunkHeader
	buf [chunkSize - unsafe.Sizeof(chunkHeader{})]byte
}

// chunkPool is the free list of chunks shared by every Conn in the process.
// A sync.Pool is safe for the many event loops that run in parallel, keeps
// chunks per P so loops rarely contend, and lets the garbage collector
// reclaim chunks that stay unused across collections after a burst.
var chunkPool = sync.Pool{New: func() any { return new(chunk) }}

// getChunk returns an empty chunk, from the free list if it has one.
func getChunk() *chunk { return chunkPool.Get().(*chunk) }

// putChunk resets ch and gives it back to the free list. The data is not
// cleared: it is overwritten before it is read again.
func putChunk(ch *chunk) {
	ch.chunkHeader = chunkHeader{}
	chunkPool.Put(ch)
}

// enqueue copies p to the end of the queue, filling the tail chunk first and
// taking new chunks as needed.
func (c *Conn) enqueue(p []byte) {
	c.pending += len(p)
	for len(p) > 0 {
		t := c.tail
		if t == nil || t.w == len(t.buf) {
			n := getChunk()
			if t == nil {
				c.head = n
			} else {
				t.next = n
			}
			c.tail = n
			t = n
		}
		k := copy(t.buf[t.w:], p)
		t.w += k
		p = p[k:]
	}
}

// consume removes the first n queued bytes, which the kernel has taken, and
// gives every emptied chunk back to the free list. n must not exceed
// c.pending.
func (c *Conn) consume(n int) {
	c.pending -= n
	for n > 0 {
		h := c.head
		k := h.w - h.r
		if n < k {
			h.r += n
			return
		}
		n -= k
		c.head = h.next
		putChunk(h)
	}
	if c.head == nil {
		c.tail = nil
	}
}

// drop empties the queue without sending it.
func (c *Conn) drop() {
	for h := c.head; h != nil; {
		next := h.next
		putChunk(h)
		h = next
	}
	c.head, c.tail, c.pending = nil, nil, 0
}
