package fuzz

import (
	"bytes"
	"errors"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/conn"
)

// Operations of FuzzConnWriteQueue, decoded from the fuzz input. Each takes
// two bytes: the operation (its low two bits) and its argument. The high
// bits of the operation byte pick the pattern of a write.
const (
	cqWrite    = iota // Write cqSize(arg) bytes
	cqWrite2          // the same, so that writes are half of all operations
	cqFlush           // Flush
	cqPeerRead        // the peer reads up to cqReadSize(arg) bytes
	cqNumOps
)

// cqLimits makes ErrQueueFull reachable within a few writes.
var cqLimits = conn.Limits{HighWater: 32 << 10, LowWater: 8 << 10, MaxQueued: 128 << 10}

// cqMaxOps bounds the work one input can ask for.
const cqMaxOps = 256

// Buffers reused by every input (a fuzz worker runs one input at a time):
// the peer's reads, and a peek at the peer's whole receive queue, which a
// 4 KiB SO_SNDBUF keeps far below 1 MiB.
var (
	cqScratch [64 << 10]byte
	cqPeekBuf [1 << 20]byte
)

// cqSize maps an argument byte to a write size: the sizes around chunk and
// buffer boundaries, then multiples of 523 up to about 118 KiB.
func cqSize(arg byte) int {
	sizes := [...]int{
		0, 1, 2, 7, 100, 1000, 4095, 4096, 4097, 8191, 8192, 16359,
		16360, 16361, 16383, 16384, 16385, 32767, 32768, 32769, 50000,
		65535, 65536, 65537, 100000, 131071, 131072, 131073,
	}
	if int(arg) < len(sizes) {
		return sizes[arg]
	}
	return int(arg) * 523
}

// cqReadSize maps an argument byte to how much the peer reads at most.
func cqReadSize(arg byte) int {
	switch arg % 8 {
	case 0:
		return 1
	case 1:
		return 1 << 20 // everything there is
	}
	return int(arg) * 257
}

// cqPattern returns n bytes to append at offset off of the stream. Most
// kinds make each byte depend on its offset, so that reordered, repeated or
// lost chunks show; one repeats a single byte.
func cqPattern(kind, arg byte, off, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		k := off + i
		switch kind % 4 {
		case 0:
			p[i] = byte(k) ^ byte(k>>8)*7 ^ byte(k>>16)*13
		case 1:
			p[i] = arg
		case 2:
			p[i] = byte(k>>3) ^ arg
		default:
			p[i] = byte(k*31) + byte(k>>12)
		}
	}
	return p
}

// FuzzConnWriteQueue runs a decoded sequence of Write, Flush and peer reads
// over a socketpair whose sending side has a small SO_SNDBUF, so that
// writes queue, flushes are partial and ErrQueueFull happens. The model is
// the concatenation of every byte Write accepted. After every step the
// bytes the peer has read plus those waiting in its receive queue (peeked)
// must be a prefix of the model, and Pending() must be exactly the rest; a
// refused Write must have changed nothing. At the end the test flushes while
// reading everything, and the peer must have received exactly the model.
func FuzzConnWriteQueue(f *testing.F) {
	seq := func(ops ...byte) []byte { return ops }
	// Fill the queue, drain it step by step.
	f.Add(seq(
		cqWrite, 25, cqWrite, 13, cqFlush, 0, cqPeerRead, 1, cqFlush, 0,
		cqPeerRead, 9, cqWrite, 2, cqFlush, 0,
	))
	// Write to the cap and past it, then make room.
	f.Add(seq(
		cqWrite, 26, cqWrite, 1, cqWrite, 27, cqPeerRead, 1, cqFlush, 0,
		cqWrite, 200, cqPeerRead, 0, cqFlush, 0, cqWrite, 3,
	))
	// Exact chunk sizes, several patterns, one-byte reads.
	f.Add(seq(
		cqWrite|4, 12, cqWrite|8, 15, cqWrite|12, 16, cqPeerRead, 0,
		cqFlush, 0, cqPeerRead, 0, cqFlush, 0, cqWrite, 11,
	))
	// Queue, drain completely, queue again.
	f.Add(seq(
		cqWrite, 20, cqPeerRead, 1, cqFlush, 0, cqPeerRead, 1, cqFlush, 0,
		cqPeerRead, 1, cqFlush, 0, cqPeerRead, 1, cqFlush, 0, cqPeerRead, 1,
		cqFlush, 0, cqPeerRead, 1, cqFlush, 0, cqWrite, 20, cqWrite, 5,
		cqPeerRead, 1, cqFlush, 0,
	))
	// Empty writes and flushes of an empty queue.
	f.Add(seq(cqWrite, 0, cqFlush, 0, cqPeerRead, 1, cqWrite, 0))
	// Many small writes behind a full buffer.
	f.Add(seq(
		cqWrite, 24, cqWrite, 3, cqWrite, 3, cqWrite, 3, cqWrite, 4,
		cqPeerRead, 40, cqWrite, 3, cqFlush, 0, cqWrite, 5, cqPeerRead, 1,
	))

	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 2*cqMaxOps {
			ops = ops[:2*cqMaxOps]
		}
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
		if err != nil {
			t.Fatalf("socketpair: %v", err)
		}
		peer := fds[1]
		defer unix.Close(peer)
		if err := unix.SetNonblock(peer, true); err != nil {
			unix.Close(fds[0])
			t.Fatal(err)
		}
		if err := unix.SetsockoptInt(fds[0], unix.SOL_SOCKET, unix.SO_SNDBUF, 4096); err != nil {
			unix.Close(fds[0])
			t.Fatalf("SO_SNDBUF: %v", err)
		}
		lim := cqLimits
		c, err := conn.New(fds[0], &lim)
		if err != nil {
			unix.Close(fds[0])
			t.Fatalf("New: %v", err)
		}
		defer c.Close()

		var model, got []byte
		maxPending, refused := 0, 0 // for the log: did the input queue?
		scratch, peekBuf := cqScratch[:], cqPeekBuf[:]

		// check verifies the invariants after step i.
		check := func(i int, what string) {
			t.Helper()
			inKernel, _, err := unix.Recvfrom(peer, peekBuf, unix.MSG_PEEK)
			if err == unix.EAGAIN {
				inKernel, err = 0, nil
			}
			if err != nil {
				t.Fatalf("step %d: peek: %v", i, err)
			}
			if inKernel == len(peekBuf) {
				t.Fatalf("step %d: peek buffer too small to see the whole receive queue", i)
			}
			delivered := len(got) + inKernel
			if delivered > len(model) {
				t.Fatalf("step %d (%s): %d bytes delivered, more than the %d accepted", i, what, delivered, len(model))
			}
			if !bytes.Equal(peekBuf[:inKernel], model[len(got):delivered]) {
				t.Fatalf("step %d (%s): the bytes in the peer's receive queue differ from the model", i, what)
			}
			if p := c.Pending(); p != len(model)-delivered {
				t.Fatalf("step %d (%s): Pending() = %d, want accepted %d - delivered %d = %d",
					i, what, p, len(model), delivered, len(model)-delivered)
			}
			p := c.Pending()
			if c.AboveHighWater() != (p >= lim.HighWater) || c.BelowLowWater() != (p <= lim.LowWater) {
				t.Fatalf("step %d: Pending()=%d AboveHighWater=%v BelowLowWater=%v", i, p, c.AboveHighWater(), c.BelowLowWater())
			}
			maxPending = max(maxPending, p)
			if p > lim.MaxQueued {
				t.Fatalf("step %d: Pending() = %d, past MaxQueued %d", i, p, lim.MaxQueued)
			}
		}
		readUpTo := func(limit int) {
			for limit > 0 {
				n, err := unix.Read(peer, scratch[:min(limit, len(scratch))])
				if err == unix.EAGAIN || (err == nil && n == 0) {
					return
				}
				if err != nil {
					t.Fatalf("peer read: %v", err)
				}
				if len(got)+n > len(model) || !bytes.Equal(scratch[:n], model[len(got):len(got)+n]) {
					t.Fatalf("the peer read %d bytes at offset %d that differ from the model (%d bytes)", n, len(got), len(model))
				}
				got = append(got, scratch[:n]...)
				limit -= n
			}
		}

		for i := 0; len(ops) >= 2; i++ {
			op, arg := ops[0], ops[1]
			ops = ops[2:]
			switch op % cqNumOps {
			case cqWrite, cqWrite2:
				p := cqPattern(op>>2, arg, len(model), cqSize(arg))
				before := c.Pending()
				n, err := c.Write(p)
				switch {
				case errors.Is(err, conn.ErrQueueFull):
					if n != 0 || before+len(p) <= lim.MaxQueued {
						t.Fatalf("step %d: Write(%d) with Pending()=%d = %d, ErrQueueFull; want ErrQueueFull only past MaxQueued %d, with n=0",
							i, len(p), before, n, lim.MaxQueued)
					}
					refused++
				case err != nil:
					t.Fatalf("step %d: Write(%d): %v", i, len(p), err)
				case n != len(p):
					t.Fatalf("step %d: Write(%d) = %d, nil", i, len(p), n)
				default:
					model = append(model, p...)
				}
				check(i, "write")
			case cqFlush:
				if err := c.Flush(); err != nil {
					t.Fatalf("step %d: Flush: %v", i, err)
				}
				check(i, "flush")
			case cqPeerRead:
				readUpTo(cqReadSize(arg))
				check(i, "peer read")
			}
		}

		// Flush while reading everything. Both ends are non-blocking, and
		// once the peer has read all there is a unix socket has room again,
		// so a Flush that then makes no progress is a bug, not a full buffer.
		for c.Pending() > 0 || len(got) < len(model) {
			readUpTo(1 << 30)
			if c.Pending() == 0 {
				continue
			}
			before := c.Pending()
			if err := c.Flush(); err != nil {
				t.Fatalf("final Flush: %v", err)
			}
			if c.Pending() == before {
				t.Fatalf("final Flush to an emptied socket made no progress: Pending()=%d, received %d of %d",
					before, len(got), len(model))
			}
		}
		if !bytes.Equal(got, model) {
			t.Fatalf("received %d bytes that differ from the %d accepted", len(got), len(model))
		}
		check(-1, "end")
		t.Logf("%d bytes accepted, %d writes refused, at most %d queued", len(model), refused, maxPending)
	})
}
