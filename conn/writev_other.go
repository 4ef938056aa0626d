//go:build unix && !linux && !freebsd && !netbsd && !dragonfly && !darwin && !openbsd

package conn

import "golang.org/x/sys/unix"

// maxIovecs is 1 where golang.org/x/sys offers no allocation-free writev
// (solaris, illumos, aix): Flush writes one chunk per write(2).
const maxIovecs = 1

// writev writes the first queued chunk with write(2) and returns the bytes
// written or the raw errno.
func writev(fd int, head *chunk) (int, error) {
	return unix.Write(fd, head.buf[head.r:head.w])
}
