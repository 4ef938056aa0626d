//go:build unix && !linux && !dragonfly && !freebsd && !netbsd && !openbsd && !solaris

package sock

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Pipe returns a non-blocking, close-on-exec pipe. darwin has no pipe2, so
// the flags are set after creation, under syscall.ForkLock so that no child
// started meanwhile inherits the fds.
func Pipe() (r, w int, err error) {
	var p [2]int
	syscall.ForkLock.RLock()
	err = unix.Pipe(p[:])
	if err == nil {
		unix.CloseOnExec(p[0])
		unix.CloseOnExec(p[1])
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return -1, -1, os.NewSyscallError("pipe", err)
	}
	for _, fd := range p {
		if err := unix.SetNonblock(fd, true); err != nil {
			unix.Close(p[0])
			unix.Close(p[1])
			return -1, -1, os.NewSyscallError("fcntl", err)
		}
	}
	return p[0], p[1], nil
}

// Socketpair returns a connected pair of blocking, close-on-exec unix
// stream sockets; close-on-exec is set under syscall.ForkLock, as in Pipe.
func Socketpair() (a, b int, err error) {
	syscall.ForkLock.RLock()
	p, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err == nil {
		unix.CloseOnExec(p[0])
		unix.CloseOnExec(p[1])
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return -1, -1, os.NewSyscallError("socketpair", err)
	}
	return p[0], p[1], nil
}
