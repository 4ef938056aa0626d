//go:build linux || freebsd || netbsd || dragonfly

package conn

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxIovecs is how many buffers one writev(2) sends at most: 64 chunks are
// 1 MiB, more than a socket send buffer takes at once, and far below IOV_MAX
// (1024 on linux and the BSDs). The iovec array lives on the caller's stack.
const maxIovecs = 64

// writev issues one writev(2) of the chunks from head on and then of extra,
// at most maxIovecs buffers in all, and returns the bytes written, the
// bytes offered and the raw errno. extra is offered only if every queued
// chunk fits, so bytes leave in order. One buffer in all is one write(2).
//
// It makes the system call itself rather than call unix.Writev, which takes
// a [][]byte and allocates its iovec array on the heap beyond 8 entries (and
// does not exist for freebsd, netbsd and dragonfly in x/sys). The iovec
// array does not escape: the pointer is converted to uintptr in the call
// expression, which keeps the array alive for the duration of the call.
func writev(fd int, head *chunk, extra [][]byte) (n, offered int, err error) {
	var iov [maxIovecs]unix.Iovec
	k := 0
	ch := head
	for ; ch != nil && k < len(iov); ch = ch.next {
		iov[k].Base = &ch.buf[ch.r]
		iov[k].SetLen(ch.w - ch.r)
		offered += ch.w - ch.r
		k++
	}
	if ch == nil && k+len(extra) <= len(iov) {
		for _, b := range extra {
			if len(b) == 0 {
				continue
			}
			iov[k].Base = &b[0]
			iov[k].SetLen(len(b))
			offered += len(b)
			k++
		}
	}
	if k == 0 {
		return 0, 0, nil
	}
	raceReadIovecs(iov[:k])
	var r uintptr
	var errno unix.Errno
	if k == 1 {
		r, _, errno = unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(iov[0].Base)), uintptr(iov[0].Len))
	} else {
		r, _, errno = unix.RawSyscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(k))
	}
	if errno != 0 {
		return 0, offered, errno
	}
	return int(r), offered, nil
}
