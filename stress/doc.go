// Package stress holds the stress tests of the server models: hostile and
// heavy clients that a conformance test does not send. It has no code of
// its own; everything is in its tests. By default (and with -short) each
// runs its short version, fewer connections and rounds, a few seconds a
// test; the long versions (100,000 connections of churn, every reset case
// twice) run with REACTOR_STRESS=long, as .ci/run does:
//
//	REACTOR_STRESS=long go test -count=1 -timeout 600s ./stress/
//
// What they show:
//
//   - Slowloris: hundreds of clients trickling a byte at a time do not hold
//     up a normal client of the multiplex model, but hold every worker of a
//     small thread pool, so that a normal client waits, unaccepted, until
//     they leave.
//   - Resets: clients that reset their connection while the server is
//     writing to them (ECONNRESET, or EPIPE after they half-closed) or
//     reading from them (ECONNRESET) end only their own connection, in every
//     multiplex backend and in the threadpool and iterative models; the
//     SIGPIPE the kernel sends with EPIPE does not kill the process; nothing
//     leaks.
//   - Churn: 100,000 short connections, a third of them reset, leave the
//     multiplex server with the fds, goroutines and resident memory it had.
//
// Most of them read /proc (accept queues and socket states in
// /proc/net/tcp, VmRSS in /proc/self/status) and skip where it is missing.
package stress
