package conn_test

import (
	"fmt"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkWrite measures a Write the kernel takes whole (one write(2), no
// queuing). The peer's reads, one per 32 writes or 32 KiB, are included.
func BenchmarkWrite(b *testing.B) {
	for _, size := range []int{64, 1024, 16 << 10} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			c, peer := pair(b, nil)
			out, in := make([]byte, size), make([]byte, 64<<10)
			every := min(max(1, (32<<10)/size), 32) // few skbs per unix socket buffer
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, err := c.Write(out); err != nil {
					b.Fatal(err)
				}
				if i%every == every-1 {
					if c.Pending() != 0 {
						b.Fatalf("Pending() = %d: the Write queued", c.Pending())
					}
					discard(peer, in)
				}
			}
		})
	}
}

// BenchmarkQueueFlush measures the queued path: a 256 KiB Write to a socket
// with a 16 KiB send buffer (most of it is queued in chunks), then Flush
// after each drain by the peer until the queue is empty. flushes/op is how
// many Flush calls that took.
func BenchmarkQueueFlush(b *testing.B) {
	a, peer := socketpair(b)
	setSndBuf(b, a, 16<<10)
	c := newConn(b, a, nil)
	out, in := pattern(0, 256<<10), make([]byte, 256<<10)
	flushes := 0
	b.SetBytes(int64(len(out)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Write(out); err != nil {
			b.Fatal(err)
		}
		for c.Pending() > 0 {
			discard(peer, in)
			flushOnce(b, c)
			flushes++
		}
		discard(peer, in)
	}
	b.ReportMetric(float64(flushes)/float64(b.N), "flushes/op")
}

// BenchmarkRead measures a Read of 64 bytes that are there, including the
// peer's write(2) that puts them there.
func BenchmarkRead(b *testing.B) {
	c, peer := pair(b, nil)
	out, in := make([]byte, 64), make([]byte, 4096)
	b.SetBytes(int64(len(out)))
	b.ReportAllocs()
	for b.Loop() {
		unix.Write(peer, out)
		if _, err := c.Read(in); err != nil {
			b.Fatal(err)
		}
	}
}
