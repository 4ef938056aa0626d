//go:build linux || dragonfly || freebsd

package sock

import (
	"os"

	"golang.org/x/sys/unix"
)

// Socket returns a new non-blocking, close-on-exec stream socket.
func Socket(family int) (int, error) {
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	return fd, nil
}

// Accept takes one pending connection from the listening socket lfd as a
// non-blocking, close-on-exec fd, with accept4 in one system call. With no
// connection pending the error is unix.EAGAIN (wrapped).
func Accept(lfd int) (int, error) {
	fd, _, err := unix.Accept4(lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
	if err != nil {
		return -1, os.NewSyscallError("accept4", err)
	}
	return fd, nil
}
