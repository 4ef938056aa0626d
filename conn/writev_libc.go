//go:build darwin || openbsd

package conn

import "golang.org/x/sys/unix"

// maxIovecs is how many chunks one writev(2) sends at most: 8 chunks, 128
// KiB. darwin and openbsd must make system calls through libc (openbsd 7.5
// removed syscall(2); darwin deprecates it), so writev goes through
// unix.Writev, which keeps its iovec array on the stack for up to 8 entries
// and allocates beyond that. Flush loops, so a longer queue only costs more
// calls.
const maxIovecs = 8

// writev issues one writev(2) of the chunks from head on, at most maxIovecs
// of them, and returns the bytes written or the raw errno.
func writev(fd int, head *chunk) (int, error) {
	var bufs [maxIovecs][]byte
	k := 0
	for ch := head; ch != nil && k < len(bufs); ch = ch.next {
		bufs[k] = ch.buf[ch.r:ch.w]
		k++
	}
	return unix.Writev(fd, bufs[:k])
}
