package reactor

import (
	"fmt"
	"time"

	"github.com/muxkit/reactor/poller"
)

// An engine moves a loop's bytes. A Loop has one of two:
//
//   - readiness (readiness.go), over any poller.Poller: the loop waits
//     until fds are ready, then reads and writes them with system calls of
//     its own;
//   - completion (completion_*linux.go, Backend Uring), over linux's
//     io_uring: the loop hands the kernel the reads and writes themselves
//     and collects what they did, one io_uring_enter per turn.
//
// The loop, its connections and its acceptors reach an engine only through
// these verbs, as runtime/netpoll.go lists what each platform defines; the
// shared files do not ask which engine they run on:
//
//	turn(timeout)    wait by the loop's rule (Loop.block) for up to timeout,
//	                 then serve what is ready; report whether anything was
//	open(c)          start reading c, a connection just put in the table
//	send(c, now)     send c's queue: now, or by the end of the turn
//	writev(c, bufs)  send c's queue and then bufs, now
//	interest(c)      follow c's state: reading or not, bytes queued or not,
//	                 lingering after a graceful close
//	abort(c)         c is closed: stop its operations; report whether its
//	                 fd may be closed now (else finishClose closes it when
//	                 the last operation ends)
//	listen(a, on)    accept on a's listener, or stop; report whether the
//	                 listener may be released now
//	close()          release the engine as its loop ends
//
// and for a datagram socket (a PacketConn):
//
//	openPacket(p)      start reading p
//	sendPackets(p, now) send p's queue: now, or by the end of the turn
//	interestPacket(p)  follow p's state: reading, waiting for room, closing
//	abortPacket(p)     p is closed: stop its operations; report whether
//	                   its fd may be closed now
//
// Both give the bytes a read brought to Conn.arrived, and each datagram
// to PacketConn.arrived, which serve them the same way on either engine.
type engine interface {
	backend() poller.Backend
	turn(timeout time.Duration) (served bool, err error)
	open(c *Conn) error
	send(c *Conn, now bool) error
	writev(c *Conn, bufs [][]byte) (int, error)
	interest(c *Conn)
	abort(c *Conn) bool
	listen(a *acceptor, on bool) (done bool, err error)
	close()

	openPacket(p *PacketConn) error
	sendPackets(p *PacketConn, now bool)
	interestPacket(p *PacketConn)
	abortPacket(p *PacketConn) bool
}

// Uring names the completion engine: a Server or Group with Backend Uring,
// or $REACTOR_BACKEND=uring, runs its loops on linux's io_uring instead of
// a readiness poller. Handlers cannot tell the difference; the package
// documentation's section on the engine says what changes underneath. It
// needs linux 5.19 or later with io_uring allowed; elsewhere asking for it
// is an error matching errors.ErrUnsupported, never a quiet fallback to
// epoll.
const Uring = poller.Uring

// Backends lists the backends a Server or Group can run on here:
// poller.Available()'s, then Uring if UringSupport reports nil. The slice
// is a fresh copy.
func Backends() []poller.Backend {
	bs := poller.Available()
	if UringSupport() == nil {
		bs = append(bs, Uring)
	}
	return bs
}

// UringSupport returns nil if the completion engine can run on this
// machine, or why not, as an error matching errors.ErrUnsupported: not
// linux, io_uring missing or disabled (kernel.io_uring_disabled, a seccomp
// filter), or a kernel older than the features and operations it uses
// (cooperative task running and receives into provided buffer rings,
// linux 5.19). The kernel is probed once per process; safe from any
// goroutine.
func UringSupport() error { return ringSupport() }

// checkBackend refuses, before any socket exists, a backend the engine
// cannot run.
func checkBackend(b poller.Backend) error {
	if b != Uring {
		return nil
	}
	if err := ringSupport(); err != nil {
		return fmt.Errorf("reactor: backend uring: %w", err)
	}
	return nil
}

// UringConfig tunes a loop on the completion engine (Backend Uring); other
// backends ignore it. The zero value is the default.
type UringConfig struct {
	// BatchWait, if positive, turns wake batching on: a loop that has
	// served receives on many connections lately (those that received in
	// the loop clock's current or previous millisecond) waits for
	// completions from half of them, at most 128, for at most BatchWait,
	// and after that for any one: it enters the kernel once for a batch
	// instead of once a message. It does not save wake-ups: under the
	// engine's cooperative task running each completion's work wakes a
	// waiting loop, so it sleeps as often as without batching (deferred
	// task running, which would wake it once for the batch, needs a
	// thread of its own; docs/io_uring.md). A loop with fewer than four
	// such connections waits for one, so a lone request-response client
	// is never held up. The price is at most BatchWait of added latency for a
	// message that arrives while a batch is waited for, paid at each step
	// of a chain of dependent round trips through one loop, and the rest
	// of the program waits longer for the loop's P: the wait is a system
	// call the runtime may take the P from, and hand back, only on its
	// monitor's tick. Whether batching pays depends on what one sleep and
	// wake costs the machine; docs/io_uring.md has measurements, where it
	// did not.
	//
	// The batched wait needs linux 6.12 (a minimum wait in
	// io_uring_enter): without it a positive BatchWait is an error
	// matching errors.ErrUnsupported, and the Server or Group does not
	// start. Zero or negative means no batching. At most 10 ms; the kernel
	// counts whole microseconds, so less than one is refused.
	BatchWait time.Duration
	// Dedicated is for a program that sets a CPU aside for each loop
	// (GOMAXPROCS above Loops, and nothing else that needs those Ps). It
	// gives up, for the CPU per message of a C io_uring server, the rule
	// every other loop keeps, that the rest of the program runs as
	// promptly beside it as beside Go's own net. Each loop's goroutine
	// locks itself to its OS thread (runtime.LockOSThread) for the loop's
	// life; its ring uses deferred task running, so that a batched wait
	// (BatchWait) sleeps and wakes once for the batch; and it waits in
	// raw system calls that keep its P, so the runtime neither hands the
	// P to another thread nor spends its monitor's time taking it back.
	// So while a loop serves or waits, nothing else runs on its P: the
	// goroutines a handler wakes and the timers due there wait for
	// another P to take them, and with no idle P, until the loop's
	// completion or the runtime's preemption. The runtime preempts it
	// after about 10 ms without a yield (and a stop-the-world's signal
	// ends its wait at once); an idle loop then waits in a system call
	// the runtime can take its P from. It needs deferred task running
	// (linux 6.1): without it a Server or Group asking for it does not
	// start, with an error matching errors.ErrUnsupported.
	Dedicated bool
	// Buffers caps the loop's receive buffers, 4 KiB each, shared by all
	// its connections (an idle connection holds none). The loop starts
	// with 64 and doubles them whenever a receive finds none free, up to
	// Buffers; they are mapped outside the Go heap, and a loop's memory
	// for them is what its busiest moment needed. Zero means
	// DefaultUringBuffers; otherwise a power of two from 64 to 32768.
	Buffers int
}

// DefaultUringBuffers is UringConfig.Buffers' default: at most 4 MiB of
// receive buffers per loop.
const DefaultUringBuffers = 1024

// maxUringWait caps UringConfig.BatchWait.
const maxUringWait = 10 * time.Millisecond

// resolve applies the defaults that do not depend on the kernel and checks
// the bounds.
func (c UringConfig) resolve() (UringConfig, error) {
	if c.BatchWait > maxUringWait {
		return c, fmt.Errorf("reactor: UringConfig.BatchWait %v: at most %v", c.BatchWait, maxUringWait)
	}
	if c.BatchWait > 0 && c.BatchWait < time.Microsecond {
		return c, fmt.Errorf("reactor: UringConfig.BatchWait %v: the kernel counts whole microseconds", c.BatchWait)
	}
	if c.Buffers == 0 {
		c.Buffers = DefaultUringBuffers
	}
	if c.Buffers < ringBufsMin || c.Buffers > 1<<15 || c.Buffers&(c.Buffers-1) != 0 {
		return c, fmt.Errorf("reactor: UringConfig.Buffers %d: want a power of two from %d to 32768", c.Buffers, ringBufsMin)
	}
	return c, nil
}
