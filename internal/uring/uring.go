// Package uring is linux's io_uring, bare: a submission queue and a
// completion queue the process shares with the kernel through mmap, and
// io_uring_enter to hand over submissions and wait for completions. It is
// the ground the reactor's completion engine is built on; it knows nothing
// of connections or loops.
//
// # Memory ordering
//
// Four indices are shared with the kernel, each written by one side only:
//
//   - SQ tail: written here (Submit publishes the entries filled since the
//     last Submit by storing the new tail), read by the kernel. The store
//     is atomic.StoreUint32, sequentially consistent, so every write to
//     the entries before it is visible to the kernel when it sees the tail.
//   - SQ head: written by the kernel as it consumes entries, read here with
//     atomic.LoadUint32 before an entry slot is reused.
//   - CQ tail: written by the kernel after it has filled completions, read
//     here with atomic.LoadUint32 before any completion it covers is read.
//   - CQ head: written here with atomic.StoreUint32 once completions are
//     consumed, read by the kernel before it reuses their slots.
//
// The same holds for a provided buffer ring's tail (BufRing.Publish).
// Go's sync/atomic operations are sequentially consistent, stronger than
// the acquire and release liburing uses, and cost the same on amd64.
//
// A Ring is not safe for concurrent use: one goroutine, the loop's, owns
// it (on any thread, unless the ring was set up with SetupSingleIssuer). New reports a kernel without io_uring, with io_uring disabled
// (kernel.io_uring_disabled) or refused by a seccomp filter, and Require a
// missing opcode, with errors matching errors.ErrUnsupported.
package uring
