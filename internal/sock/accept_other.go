//go:build unix && !linux && !dragonfly && !freebsd

package sock

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Socket returns a new non-blocking, close-on-exec stream socket. There is
// no SOCK_NONBLOCK in x/sys for every one of these OSes: the flags are set after creation, under
// syscall.ForkLock so no child started meanwhile inherits the fd.
func Socket(family int) (int, error) {
	syscall.ForkLock.RLock()
	fd, err := unix.Socket(family, unix.SOCK_STREAM, 0)
	if err == nil {
		unix.CloseOnExec(fd)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, os.NewSyscallError("fcntl", err)
	}
	return fd, nil
}

// Accept takes one pending connection from the listening socket lfd as a
// non-blocking, close-on-exec fd. There is no accept4 here: accept, then set
// the flags, under syscall.ForkLock.
func Accept(lfd int) (int, error) {
	syscall.ForkLock.RLock()
	fd, _, err := unix.Accept(lfd)
	if err == nil {
		unix.CloseOnExec(fd)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return -1, os.NewSyscallError("accept", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, os.NewSyscallError("fcntl", err)
	}
	return fd, nil
}
