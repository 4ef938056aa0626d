package reactor

import (
	"fmt"
	"time"

	"github.com/muxkit/reactor/poller"
)

// Uring names the completion engine: a Server or Group with Backend Uring,
// or $REACTOR_BACKEND=uring, runs its loops on linux's io_uring instead of
// a readiness poller. Handlers cannot tell the difference; see the package
// documentation's section on the engine for what changes underneath (who
// waits where, how many system calls a message costs). It needs linux 6.1
// or later with io_uring allowed; elsewhere asking for it is an error
// matching errors.ErrUnsupported, never a quiet fallback to epoll.
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
// (receives into provided buffer rings, 5.19; single-issuer rings with
// deferred task running, 6.1). The kernel is probed once per process;
// safe from any goroutine.
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

// UringConfig tunes how a loop on the completion engine (Backend Uring)
// waits; other backends ignore it. The zero value is the default. The
// package documentation's section on the engine says what each knob
// trades, with measurements.
type UringConfig struct {
	// Hold is how long a loop that has just served completions waits for
	// the next one while keeping its P, in a raw system call. The engine's
	// loop is locked to its thread (its ring has one issuer), and for such
	// a loop a short blocking wait is dear: the runtime hands the idle P
	// to another thread and back, two thread switches a wait. Holding
	// (and waiting through the sends that complete as they are submitted)
	// cut the CPU per message from 2.1x the C epoll server's to 0.96x at
	// one connection, and from 1.2-1.3x to 0.94-0.96x at 100 and 1000.
	//
	// The cost: while a loop holds its P no other goroutine runs on it.
	// Idle Ps take them; when every P is held they wait until the next
	// completion or the end of the hold. The worst case is a peer on the
	// same P, such as an in-process client with GOMAXPROCS=1: every round
	// trip then waits out the hold (5 ms instead of 0.2 ms). Turn it off
	// or shorten it where the loops share their Ps with other work;
	// bounds shorter than the kernel's tick (4 ms at HZ=250) also cost
	// CPU, since each then reprograms the timer hardware.
	//
	// A hold also waits through the sends its turn submitted, so that a
	// send the kernel completes at once does not end it: a send that
	// instead has to wait for room in the socket can keep another
	// completion waiting with it, again for at most the hold.
	//
	// Zero means DefaultUringHold; negative turns it off; at most 10 ms.
	Hold time.Duration
	// BatchWait bounds wake batching. A loop that has served receives
	// on many connections lately (those that received in the loop
	// clock's current or previous millisecond) waits for completions
	// from half of them, at most 128, for at most BatchWait, and after
	// that for any one: it sleeps and wakes once for a batch instead of
	// once a message. A loop with fewer than four such connections waits
	// for one, so a lone request-response client is never held up. At 100
	// and 1000 connections this cut the CPU per message from 0.91-0.92x
	// the C epoll server's to 0.59-0.76x, with p99 about the same under
	// an open loop, and left one connection as it was (docs/io_uring.md).
	// The price is at most BatchWait of added latency for a message that
	// arrives when a batch is being waited for, paid at each step of a
	// chain of dependent round trips through one loop (a proxy's client
	// leg, then its server leg) when few messages are in flight: turn it
	// off, or shorten it, for such a loop if that latency matters more
	// than the CPU.
	//
	// The wait needs linux 6.12 (a minimum wait in io_uring_enter).
	// Zero means DefaultUringBatchWait where the kernel has it and no
	// batching where it does not (said once, at Info, to the Server's or
	// Group's Logger); a positive value requires it, and the Server
	// or Group does not start without it, with an error matching
	// errors.ErrUnsupported; negative turns batching off. At most 10 ms;
	// the kernel counts whole microseconds, so less than one is refused.
	BatchWait time.Duration
}

// DefaultUringBatchWait is UringConfig.BatchWait's default where the
// kernel has the minimum wait.
const DefaultUringBatchWait = 100 * time.Microsecond

// DefaultUringHold is UringConfig.Hold's default.
const DefaultUringHold = 5 * time.Millisecond

// maxUringWait caps UringConfig's durations: the runtime itself preempts a
// goroutine that has run for 10 ms.
const maxUringWait = 10 * time.Millisecond

// resolve applies the defaults and checks the bounds.
func (c UringConfig) resolve() (UringConfig, error) {
	if c.Hold == 0 {
		c.Hold = DefaultUringHold
	}
	if c.Hold > maxUringWait || c.BatchWait > maxUringWait {
		return c, fmt.Errorf("reactor: UringConfig{Hold: %v, BatchWait: %v}: at most %v each", c.Hold, c.BatchWait, maxUringWait)
	}
	if c.BatchWait > 0 && c.BatchWait < time.Microsecond {
		return c, fmt.Errorf("reactor: UringConfig.BatchWait %v: the kernel counts whole microseconds", c.BatchWait)
	}
	return c, nil
}
