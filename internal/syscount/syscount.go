// Package syscount counts the system calls a process makes, for
// benchmarks that report system calls per operation: a count that does
// not drift with the machine's load the way time does.
//
// On linux it opens one perf counter of the raw_syscalls:sys_enter
// tracepoint per thread of the process (inherited by threads made later),
// which needs the tracefs id file and perf_event_open permission (root, or
// kernel.perf_event_paranoid <= 1); elsewhere, or without them, Start's
// error matches errors.ErrUnsupported.
package syscount

// Counter counts the system calls of every thread of the process from
// Start on. Its methods are safe from one goroutine at a time.
type Counter struct {
	fds []int
}
