package reactor

import (
	"net"
	"time"

	"github.com/muxkit/reactor/internal/sock"
)

// Socket options of a Conn, with net.TCPConn's names and meanings. A
// Server's TCP connections start with TCP_NODELAY on and keep-alive probes
// on (Server.KeepAlive), as Go's net starts its own; a Dialer's once they
// connect. Each method is one or a few setsockopt(2) calls on the loop
// goroutine and does not allocate except for its error; after c is closed
// the error matches net.ErrClosed, and an option the socket lacks (a TCP
// option on a unix socket) is the kernel's error.

// option runs a setter on c's fd while c is open.
func (c *Conn) option(method string, set func(fd int) error) error {
	c.loop.checkLoop(method)
	if c.is(stClosed) {
		return net.ErrClosed
	}
	return set(c.sock.Fd())
}

// SetNoDelay turns Nagle's algorithm off (true, the default) or on. With
// writes batched per callback (see Conn), off is what request/response
// protocols want.
func (c *Conn) SetNoDelay(noDelay bool) error {
	return c.option("Conn.SetNoDelay", func(fd int) error { return sock.SetNoDelay(fd, noDelay) })
}

// SetKeepAlive turns keep-alive probes on or off.
func (c *Conn) SetKeepAlive(keepalive bool) error {
	return c.option("Conn.SetKeepAlive", func(fd int) error { return sock.SetKeepAlive(fd, keepalive) })
}

// SetKeepAlivePeriod sets the idle time before the first keep-alive probe,
// rounded up to a second; where the OS has no per-socket setting (openbsd)
// the error matches errors.ErrUnsupported.
func (c *Conn) SetKeepAlivePeriod(d time.Duration) error {
	return c.option("Conn.SetKeepAlivePeriod", func(fd int) error { return sock.SetKeepAliveIdle(fd, d) })
}

// SetLinger sets what closing does with unsent data: sec < 0 lets the
// kernel send it in the background (the default), 0 discards it and
// resets the connection, sec > 0 has close(2) wait up to sec seconds. Note
// that the loop's graceful Close flushes its own queue first either way.
func (c *Conn) SetLinger(sec int) error {
	return c.option("Conn.SetLinger", func(fd int) error { return sock.SetLinger(fd, sec) })
}

// SetReadBuffer sets the size of the kernel's receive buffer (SO_RCVBUF).
func (c *Conn) SetReadBuffer(bytes int) error {
	return c.option("Conn.SetReadBuffer", func(fd int) error { return sock.SetReadBuffer(fd, bytes) })
}

// SetWriteBuffer sets the size of the kernel's send buffer (SO_SNDBUF).
func (c *Conn) SetWriteBuffer(bytes int) error {
	return c.option("Conn.SetWriteBuffer", func(fd int) error { return sock.SetWriteBuffer(fd, bytes) })
}

// Control runs fn with c's fd, for a socket option no method covers, as
// syscall.RawConn's Control: the fd is open while fn runs, and fn must not
// read, write or close it, nor keep it. After c is closed it returns
// net.ErrClosed without calling fn.
func (c *Conn) Control(fn func(fd uintptr)) error {
	return c.option("Conn.Control", func(fd int) error { fn(uintptr(fd)); return nil })
}
