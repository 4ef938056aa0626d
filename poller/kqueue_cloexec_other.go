//go:build darwin || dragonfly || openbsd

package poller

// kqueueCloexec makes a kqueue and then marks it close-on-exec: darwin and
// openbsd allow system calls only through libc, which x/sys offers no
// kqueue1 from, and dragonfly has none. The window between the two calls
// matters only to an exec in place (syscall.Exec) from another goroutine:
// a kqueue is never inherited by fork, so fork and exec cannot leak it.
func kqueueCloexec() (int, error) { return kqueueThenCloexec() }
