package conn

import (
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A chunk is exactly chunkSize bytes, a Go size class, so the allocator
// wastes nothing on it.
func TestChunkSize(t *testing.T) {
	if got := unsafe.Sizeof(chunk{}); got != chunkSize {
		t.Errorf("unsafe.Sizeof(chunk{}) = %d, want %d", got, chunkSize)
	}
	if maxIovecs < 1 || maxIovecs > 1024 {
		t.Errorf("maxIovecs = %d, want 1..1024 (IOV_MAX)", maxIovecs)
	}
}

// The queue's chunk list stays consistent through appends and partial
// consumption, and an emptied queue holds no chunk.
func TestQueueBookkeeping(t *testing.T) {
	c := &Conn{fd: -1, lim: &defaultLimits}
	payload := len(chunk{}.buf)
	check := func(pending, chunks int) {
		t.Helper()
		n, sum := 0, 0
		var last *chunk
		for ch := c.head; ch != nil; ch = ch.next {
			if ch.r >= ch.w || ch.w > len(ch.buf) {
				t.Fatalf("chunk %d: r=%d w=%d", n, ch.r, ch.w)
			}
			sum += ch.w - ch.r
			last = ch
			n++
		}
		if last != c.tail || sum != c.pending || c.pending != pending || n != chunks {
			t.Fatalf("pending=%d (sum %d) chunks=%d tail ok=%v; want pending=%d chunks=%d",
				c.pending, sum, n, last == c.tail, pending, chunks)
		}
	}
	c.enqueue(make([]byte, payload-1))
	check(payload-1, 1)
	c.enqueue(make([]byte, 2))
	check(payload+1, 2)
	c.consume(payload - 1)
	check(2, 2)
	c.consume(1) // the first chunk is empty now and given back
	check(1, 1)
	c.enqueue(make([]byte, 2*payload))
	check(2*payload+1, 3)
	c.consume(2*payload + 1)
	check(0, 0)
	c.enqueue([]byte("x"))
	c.drop()
	check(0, 0)
}

// Flush hands the kernel many chunks per writev.
func TestFlushIsVectored(t *testing.T) {
	if maxIovecs == 1 {
		t.Skip("no vectored write on this OS")
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[1])
	c, err := New(fds[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	n := 3 * len(chunk{}.buf)
	c.enqueue(make([]byte, n)) // queued without a write, as behind a full buffer
	k, err := writev(c.fd, c.head)
	if err != nil || k != n {
		t.Fatalf("one writev of 3 chunks = %d, %v; want %d", k, err, n)
	}
}
