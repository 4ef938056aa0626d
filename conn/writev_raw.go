//go:build linux || freebsd || netbsd || dragonfly

package conn

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxIovecs is how many chunks one writev(2) sends at most: 64 chunks are
// 1 MiB, more than a socket send buffer takes at once, and far below IOV_MAX
// (1024 on linux and the BSDs). The iovec array lives on Flush's stack.
const maxIovecs = 64

// writev issues one writev(2) of the chunks from head on, at most maxIovecs
// of them, and returns the bytes written or the raw errno.
//
// It makes the system call itself rather than call unix.Writev, which takes
// a [][]byte and allocates its iovec array on the heap beyond 8 entries (and
// does not exist for freebsd, netbsd and dragonfly in x/sys). The iovec
// array does not escape: the pointer is converted to uintptr in the call
// expression, which keeps the array alive for the duration of the call.
func writev(fd int, head *chunk) (int, error) {
	var iov [maxIovecs]unix.Iovec
	k := 0
	for ch := head; ch != nil && k < len(iov); ch = ch.next {
		iov[k].Base = &ch.buf[ch.r]
		iov[k].SetLen(ch.w - ch.r)
		k++
	}
	n, _, errno := unix.RawSyscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(k))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}
