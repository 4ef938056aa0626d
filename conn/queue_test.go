package conn

import (
	"bytes"
	"errors"
	"net"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A chunk and its data are exactly chunkSize or smallChunkSize bytes, Go
// size classes, so the allocator wastes nothing on them; a queue's first
// chunk is a small one only for a write that fits it.
func TestChunkSize(t *testing.T) {
	if got := unsafe.Sizeof(bigChunk{}); got != chunkSize {
		t.Errorf("unsafe.Sizeof(bigChunk{}) = %d, want %d", got, chunkSize)
	}
	if got := unsafe.Sizeof(smallChunk{}); got != smallChunkSize {
		t.Errorf("unsafe.Sizeof(smallChunk{}) = %d, want %d", got, smallChunkSize)
	}
	small := len(smallChunk{}.data)
	for _, tc := range []struct{ first, then, wantFirst int }{
		{64, 0, small},
		{small, 0, small},
		{small + 1, 0, len(bigChunk{}.data)},
		{small - 1, 2, small}, // the second write spills into a big chunk
	} {
		c := &Conn{fd: -1, lim: &defaultLimits}
		c.enqueue(make([]byte, tc.first))
		c.enqueue(make([]byte, tc.then))
		if got := len(c.head.buf); got != tc.wantFirst {
			t.Errorf("first chunk after writes of %d and %d bytes holds %d, want %d", tc.first, tc.then, got, tc.wantFirst)
		}
		if c.head != c.tail && len(c.tail.buf) != len(bigChunk{}.data) {
			t.Errorf("a chunk after the first holds %d, want a big one (%d)", len(c.tail.buf), len(bigChunk{}.data))
		}
		c.drop()
	}
	if maxIovecs < 1 || maxIovecs > 1024 {
		t.Errorf("maxIovecs = %d, want 1..1024 (IOV_MAX)", maxIovecs)
	}
}

// The queue's chunk list stays consistent through appends and partial
// consumption, and an emptied queue holds no chunk.
func TestQueueBookkeeping(t *testing.T) {
	c := &Conn{fd: -1, lim: &defaultLimits}
	payload := len(bigChunk{}.data)
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
	k, _, err := writev(c.fd, c.head, nil)
	if err != nil || k != n {
		t.Fatalf("one writev of 3 chunks = %d, %v; want %d", k, err, n)
	}
}

// Writev sends the queue, then its buffers, in one call, and queues only
// what the kernel leaves; bytes arrive in the order written.
func TestWritevKeepsOrderAndQueuesTheRest(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[1])
	unix.SetsockoptInt(fds[0], unix.SOL_SOCKET, unix.SO_SNDBUF, 64<<10)
	c, err := New(fds[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var want []byte
	add := func(p []byte) []byte { want = append(want, p...); return p }
	if _, err := c.Queue(add([]byte("head:"))); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 1<<20) // more than the socket takes at once
	for i := range big {
		big[i] = byte(i % 251)
	}
	n, err := c.Writev([][]byte{add([]byte("a")), nil, add(big), add([]byte("tail"))})
	if err != nil || n != 1+len(big)+4 {
		t.Fatalf("Writev = %d, %v; want %d, nil", n, err, 1+len(big)+4)
	}
	if c.Pending() == 0 {
		t.Fatal("Pending() = 0 after writing 1 MiB to a 64 KiB socket buffer: nothing was queued")
	}
	got := make([]byte, 0, len(want))
	buf := make([]byte, 64<<10)
	for len(got) < len(want) {
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
		k, err := unix.Read(fds[1], buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:k]...)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("peer read %d bytes differing from the %d written in order", len(got), len(want))
	}
	if c.Pending() != 0 {
		t.Fatalf("Pending() = %d after the peer read everything", c.Pending())
	}
}

// Writev past MaxQueued takes nothing; with nothing queued and room in the
// socket it makes one system call and queues nothing.
func TestWritevLimitsAndDirect(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[1])
	lim := Limits{HighWater: 16, LowWater: 8, MaxQueued: 32}
	c, err := New(fds[0], &lim)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if n, err := c.Writev([][]byte{make([]byte, 20), make([]byte, 20)}); n != 0 || !errors.Is(err, ErrQueueFull) {
		t.Fatalf("Writev of 40 bytes with MaxQueued 32 = %d, %v; want 0, ErrQueueFull", n, err)
	}
	if n, err := c.Writev([][]byte{[]byte("ab"), []byte("cd")}); n != 4 || err != nil || c.Pending() != 0 {
		t.Fatalf("Writev = %d, %v, Pending %d; want 4, nil, 0", n, err, c.Pending())
	}
	buf := make([]byte, 8)
	if k, _ := unix.Read(fds[1], buf); string(buf[:k]) != "abcd" {
		t.Fatalf("peer read %q, want abcd", buf[:k])
	}
	if n, err := c.Writev(nil); n != 0 || err != nil {
		t.Fatalf("Writev(nil) = %d, %v", n, err)
	}
	if allocs := testing.AllocsPerRun(100, func() {
		if raceOn {
			return // -race makes the literals escape
		}
		c.Writev([][]byte{[]byte("ab"), []byte("cd")})
		unix.Read(fds[1], buf)
	}); allocs != 0 {
		t.Errorf("Writev allocates %v times per call", allocs)
	}
	c.Close()
	if _, err := c.Writev([][]byte{[]byte("x")}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Writev after Close = %v, want net.ErrClosed", err)
	}
	if _, err := c.Queue([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Queue after Close = %v, want net.ErrClosed", err)
	}
}
