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
//
// A queue's first chunk is a small one (smallChunkSize) when what is
// written into the empty queue fits it: a reply of a few hundred bytes
// that waits for its send (a completion engine keeps the queue until the
// kernel has sent it, for every connection a turn served) then holds 2 KiB,
// not 16.
const (
	chunkSize      = 16 << 10
	smallChunkSize = 2 << 10
)

// chunk is one piece of a write queue: buf[r:w] is queued, r < w while the
// chunk is queued. buf is the array of the bigChunk or smallChunk the
// chunk heads, so a chunk and its data are one allocation of exactly a Go
// size class.
type chunk struct {
	next *chunk // the chunk queued after this one, or nil
	r, w int
	buf  []byte
}

// bigChunk and smallChunk are the two sizes of chunk.
type (
	bigChunk struct {
		chunk
		data [chunkSize - unsafe.Sizeof(chunk{})]byte
	}
	smallChunk struct {
		chunk
		data [smallChunkSize - unsafe.Sizeof(chunk{})]byte
	}
)

// chunkPool and smallPool are the free lists of chunks shared by every
// Conn in the process. A sync.Pool is safe for the many event loops that
// run in parallel, keeps chunks per P so loops rarely contend, and lets the
// garbage collector reclaim chunks that stay unused across collections
// after a burst.
var (
	chunkPool = sync.Pool{New: func() any {
		b := new(bigChunk)
		b.buf = b.data[:]
		return &b.chunk
	}}
	smallPool = sync.Pool{New: func() any {
		s := new(smallChunk)
		s.buf = s.data[:]
		return &s.chunk
	}}
)

// getChunk returns an empty chunk, from the free list if it has one: a
// small one if want fits it, else a big one.
func getChunk(want int) *chunk {
	if want <= smallChunkSize-int(unsafe.Sizeof(chunk{})) {
		return smallPool.Get().(*chunk)
	}
	return chunkPool.Get().(*chunk)
}

// putChunk resets ch and gives it back to its free list. The data is not
// cleared: it is overwritten before it is read again.
func putChunk(ch *chunk) {
	ch.next, ch.r, ch.w = nil, 0, 0
	if len(ch.buf) < chunkSize-int(unsafe.Sizeof(chunk{})) {
		smallPool.Put(ch)
		return
	}
	chunkPool.Put(ch)
}

// enqueue copies p to the end of the queue, filling the tail chunk first and
// taking new chunks as needed.
func (c *Conn) enqueue(p []byte) {
	c.pending += len(p)
	for len(p) > 0 {
		t := c.tail
		if t == nil || t.w == len(t.buf) {
			want := chunkSize // only an empty queue's first chunk may be small
			if t == nil {
				want = len(p)
			}
			n := getChunk(want)
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
