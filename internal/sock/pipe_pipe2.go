//go:build linux || dragonfly || freebsd || netbsd || openbsd || solaris

package sock

import (
	"os"

	"golang.org/x/sys/unix"
)

// Pipe returns a non-blocking, close-on-exec pipe.
func Pipe() (r, w int, err error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return -1, -1, os.NewSyscallError("pipe2", err)
	}
	return p[0], p[1], nil
}

// Socketpair returns a connected pair of blocking, close-on-exec unix
// stream sockets.
func Socketpair() (a, b int, err error) {
	p, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, -1, os.NewSyscallError("socketpair", err)
	}
	return p[0], p[1], nil
}
