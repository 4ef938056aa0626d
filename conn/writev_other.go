//go:build unix && !linux && !freebsd && !netbsd && !dragonfly && !darwin && !openbsd

package conn

import "golang.org/x/sys/unix"

// maxIovecs is 1 where golang.org/x/sys offers no allocation-free writev
// (solaris, illumos, aix): Flush writes one chunk per write(2).
const maxIovecs = 1

// writev writes the first queued chunk, or if none is queued the first
// non-empty buffer of extra, with write(2), and returns the bytes written,
// the bytes offered and the error.
func writev(fd int, head *chunk, extra [][]byte) (n, offered int, err error) {
	p := []byte(nil)
	if head != nil {
		p = head.buf[head.r:head.w]
	} else {
		for _, b := range extra {
			if len(b) > 0 {
				p = b
				break
			}
		}
	}
	if len(p) == 0 {
		return 0, 0, nil
	}
	n, err = unix.Write(fd, p)
	return n, len(p), err
}
