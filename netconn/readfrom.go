package netconn

import (
	"io"
)

// ReadFrom implements io.ReaderFrom, which io.Copy uses: from another
// *Conn, or an *io.LimitedReader over one, on linux, it moves the bytes
// with splice(2) through a pipe, in the kernel, as *net.TCPConn does
// between two of its own; from anything else it copies through a buffer,
// as io.Copy would. It holds c's write lock and the source's read lock
// while it runs, and honours both deadlines.
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	if n, handled, err := c.spliceFrom(r); handled {
		return n, err
	}
	return io.Copy(writerOnly{c}, r)
}

// writerOnly hides ReadFrom, so io.Copy does not call it back.
type writerOnly struct{ io.Writer }

// spliceSource returns the *Conn under r and how much of it to take (-1:
// all; 0 for a LimitedReader that is used up), or nil.
func spliceSource(r io.Reader) (*Conn, int64) {
	switch r := r.(type) {
	case *Conn:
		return r, -1
	case *io.LimitedReader:
		if src, ok := r.R.(*Conn); ok {
			return src, max(r.N, 0)
		}
	}
	return nil, 0
}
