//go:build linux || freebsd || netbsd || dragonfly

package conn

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The fd is non-blocking, so read(2), write(2) and writev(2) return at once
// and can be raw system calls: no entry into the scheduler's syscall state.
// An ordinary syscall that happens to take a scheduler tick (a large
// loopback write does) makes the runtime hand the loop's processor to
// another thread and back, a cost bench/cmd/cpumsg showed at 1000
// connections (docs/measurements.md). The cost of raw calls: a
// garbage collection waits for the one in flight, microseconds at most.
// darwin and openbsd must go through libc and keep the ordinary calls.

// errnoErr returns nil for 0 and the Errno otherwise; boxing a small Errno
// does not allocate.
func errnoErr(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

func sysRead(fd int, p []byte) (int, error) {
	n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e == 0 {
		raceWritten(p, int(n))
	}
	return int(n), errnoErr(e)
}

func sysWrite(fd int, p []byte) (int, error) {
	raceRead(p)
	n, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(n), errnoErr(e)
}
