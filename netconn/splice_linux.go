package netconn

import (
	"io"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// maxSplice is the most one splice(2) moves, and the pipe's size.
const maxSplice = 1 << 20

// spliceFrom moves what r holds into c through a pipe when r is a *Conn
// (see ReadFrom); handled is false when it is not, or no pipe could be
// made, and nothing was moved then.
func (c *Conn) spliceFrom(r io.Reader) (written int64, handled bool, err error) {
	src, limit := spliceSource(r)
	switch {
	case src == nil:
		return 0, false, nil
	case limit == 0:
		return 0, true, nil
	}
	var p [2]int
	if unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK) != nil {
		return 0, false, nil
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	// A pipe of maxSplice bytes, as Go's net makes: fewer, larger moves.
	// Past the system's pipe-max-size it stays at its default.
	unix.FcntlInt(uintptr(p[0]), unix.F_SETPIPE_SZ, maxSplice)
	src.rmu.Lock()
	defer src.rmu.Unlock()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	in, out := src.fd, c.fd
	in.r.prepare()
	out.w.prepare()
	defer func() {
		if lr, ok := r.(*io.LimitedReader); ok {
			lr.N -= written
		}
	}()
	for limit != 0 {
		want := maxSplice
		if limit > 0 && limit < int64(want) {
			want = int(limit)
		}
		// Socket to pipe: what the source has, up to what the pipe holds.
		if in.closing.Load() {
			return written, true, src.opErr("read", net.ErrClosed)
		}
		if in.r.expired() {
			return written, true, src.opErr("read", os.ErrDeadlineExceeded)
		}
		n, err := in.syscall(func(fd int) (int, error) {
			k, err := unix.Splice(fd, nil, p[1], nil, want, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
			return int(k), err
		})
		switch {
		case err == unix.EAGAIN:
			if err := in.wait(&in.r); err != nil {
				return written, true, src.opErr("read", err)
			}
			continue
		case err == unix.EINTR:
			continue
		case err != nil:
			if err != net.ErrClosed {
				err = os.NewSyscallError("splice", err)
			}
			return written, true, src.opErr("read", err)
		case n == 0:
			return written, true, nil // the source's end of file
		}
		if limit > 0 {
			limit -= int64(n)
		}
		// Pipe to socket: all of it, parking while the socket is full.
		for n > 0 {
			if out.closing.Load() {
				return written, true, c.opErr("write", net.ErrClosed)
			}
			if out.w.expired() {
				return written, true, c.opErr("write", os.ErrDeadlineExceeded)
			}
			m, err := out.syscall(func(fd int) (int, error) {
				k, err := unix.Splice(p[0], nil, fd, nil, n, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
				return int(k), err
			})
			if m > 0 {
				n -= m
				written += int64(m)
			}
			switch {
			case err == nil || err == unix.EINTR:
			case err == unix.EAGAIN:
				if err := out.wait(&out.w); err != nil {
					return written, true, c.opErr("write", err)
				}
			default:
				if err != net.ErrClosed {
					err = os.NewSyscallError("splice", err)
				}
				return written, true, c.opErr("write", err)
			}
		}
	}
	return written, true, nil
}
