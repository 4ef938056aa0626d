//go:build darwin || openbsd

package conn

import "golang.org/x/sys/unix"

// maxIovecs is how many buffers one writev(2) sends at most here: x/sys's
// Writev on darwin and openbsd goes through libc and allocates its iovec
// array on the heap beyond 8 entries.
const maxIovecs = 8

// writev issues one writev(2) of the chunks from head on and then of extra,
// at most maxIovecs buffers in all, and returns the bytes written, the
// bytes offered and the error. extra is offered only if every queued chunk
// fits, so bytes leave in order.
func writev(fd int, head *chunk, extra [][]byte) (n, offered int, err error) {
	var bufs [maxIovecs][]byte
	k := 0
	ch := head
	for ; ch != nil && k < len(bufs); ch = ch.next {
		bufs[k] = ch.buf[ch.r:ch.w]
		offered += ch.w - ch.r
		k++
	}
	if ch == nil && k+len(extra) <= len(bufs) {
		for _, b := range extra {
			if len(b) > 0 {
				bufs[k] = b
				offered += len(b)
				k++
			}
		}
	}
	if k == 0 {
		return 0, 0, nil
	}
	n, err = unix.Writev(fd, bufs[:k])
	return n, offered, err
}
