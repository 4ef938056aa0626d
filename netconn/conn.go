package netconn

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/internal/sock"
)

// Conn is a connection driven by a reactor loop: the net.Conn that Listen's
// Accept, Dial and DialContext return, with the methods of a
// *net.TCPConn. One Read and one Write may run at once (each is
// serialized with its own kind), and every method is safe from any
// goroutine; Read and Write block the calling goroutine (never a thread or
// the loop), the others do not, except Close, which waits for the loop to
// release the fd.
type Conn struct {
	fd           *fd
	network      string
	laddr, raddr net.Addr
	release      func()     // the Config's group reference, dropped by Close
	rmu, wmu     sync.Mutex // one Read and one Write at a time, as net's
}

var (
	_ net.Conn                        = (*Conn)(nil)
	_ syscall.Conn                    = (*Conn)(nil)
	_ interface{ CloseWrite() error } = (*Conn)(nil)
)

func (c *Conn) opErr(op string, err error) error {
	return &net.OpError{Op: op, Net: c.network, Source: c.laddr, Addr: c.raddr, Err: err}
}

// Read reads into b, parking until data, end of file (io.EOF), an error,
// Close (net.ErrClosed) or the read deadline (os.ErrDeadlineExceeded). It
// does not allocate.
func (c *Conn) Read(b []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	f := c.fd
	f.r.prepare()
	for {
		if f.closing.Load() {
			return 0, c.opErr("read", net.ErrClosed)
		}
		if f.r.expired() {
			return 0, c.opErr("read", os.ErrDeadlineExceeded)
		}
		n, err := f.syscall(func(fd int) (int, error) { return unix.Read(fd, b) })
		switch {
		case n > 0:
			return n, nil
		case err == nil:
			if len(b) == 0 {
				return 0, nil
			}
			return 0, io.EOF
		case err == unix.EAGAIN:
			if err := f.wait(&f.r); err != nil {
				return 0, c.opErr("read", err)
			}
		case err == unix.EINTR:
		case errors.Is(err, net.ErrClosed):
			return 0, c.opErr("read", err)
		default:
			return 0, c.opErr("read", os.NewSyscallError("read", err))
		}
	}
}

// Write writes all of b, parking while the socket buffer is full; it
// returns early only with an error (Close, the write deadline, a reset).
// It does not allocate.
func (c *Conn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	f := c.fd
	f.w.prepare()
	done := 0
	for {
		if f.closing.Load() {
			return done, c.opErr("write", net.ErrClosed)
		}
		if f.w.expired() {
			return done, c.opErr("write", os.ErrDeadlineExceeded)
		}
		n, err := f.syscall(func(fd int) (int, error) { return unix.Write(fd, b[done:]) })
		if n > 0 {
			done += n
		}
		switch {
		case done == len(b):
			return done, nil
		case err == nil || err == unix.EINTR:
		case err == unix.EAGAIN:
			if err := f.wait(&f.w); err != nil {
				return done, c.opErr("write", err)
			}
		case errors.Is(err, net.ErrClosed):
			return done, c.opErr("write", err)
		default:
			return done, c.opErr("write", os.NewSyscallError("write", err))
		}
	}
}

// Close closes the connection; pending Reads and Writes return errors
// matching net.ErrClosed. It blocks until the loop has released the fd; a
// second Close returns an error matching net.ErrClosed.
func (c *Conn) Close() error {
	if err := c.fd.close(); err != nil {
		return c.opErr("close", err)
	}
	c.release()
	return nil
}

// CloseWrite shuts down the sending side: the peer reads end of file after
// what was written. net/http's Server (closing a connection after an
// error response) and httputil.ReverseProxy find it on the connection they
// wrap; crypto/tls's Conn.CloseWrite does not call it (it sends
// close_notify and sets the write deadline instead).
func (c *Conn) CloseWrite() error {
	return c.shutdown(unix.SHUT_WR)
}

// CloseRead shuts down the reading side.
func (c *Conn) CloseRead() error {
	return c.shutdown(unix.SHUT_RD)
}

func (c *Conn) shutdown(how int) error {
	_, err := c.fd.syscall(func(fd int) (int, error) { return 0, unix.Shutdown(fd, how) })
	if err != nil {
		if !errors.Is(err, net.ErrClosed) {
			err = os.NewSyscallError("shutdown", err)
		}
		return c.opErr("close", err)
	}
	return nil
}

// LocalAddr returns the local address.
func (c *Conn) LocalAddr() net.Addr { return c.laddr }

// RemoteAddr returns the peer's address.
func (c *Conn) RemoteAddr() net.Addr { return c.raddr }

// SetDeadline sets the read and write deadlines; the zero time clears them.
func (c *Conn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// SetReadDeadline sets when a pending and any future Read time out. It
// does not allocate, and involves the loop only when a Read is parked and
// the deadline moves earlier.
func (c *Conn) SetReadDeadline(t time.Time) error {
	if c.fd.closing.Load() {
		return c.opErr("set", net.ErrClosed)
	}
	c.fd.setDeadline(&c.fd.r, t)
	return nil
}

// SetWriteDeadline sets when a pending and any future Write time out; see
// SetReadDeadline.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	if c.fd.closing.Load() {
		return c.opErr("set", net.ErrClosed)
	}
	c.fd.setDeadline(&c.fd.w, t)
	return nil
}

// option runs a socket-option setter on the fd, with net's error shape.
func (c *Conn) option(set func(fd int) error) error {
	_, err := c.fd.syscall(func(fd int) (int, error) { return 0, set(fd) })
	if err != nil {
		return c.opErr("set", err)
	}
	return nil
}

// SetNoDelay turns Nagle's algorithm off (true, the default) or on, as
// net.TCPConn.SetNoDelay.
func (c *Conn) SetNoDelay(noDelay bool) error {
	return c.option(func(fd int) error { return sock.SetNoDelay(fd, noDelay) })
}

// SetKeepAlive turns keep-alive probes on (the default) or off.
func (c *Conn) SetKeepAlive(keepalive bool) error {
	return c.option(func(fd int) error { return sock.SetKeepAlive(fd, keepalive) })
}

// SetKeepAlivePeriod sets the idle time before the first keep-alive probe,
// rounded up to a second, as net.TCPConn.SetKeepAlivePeriod; where the OS
// has no per-socket setting (openbsd) the error matches
// errors.ErrUnsupported.
func (c *Conn) SetKeepAlivePeriod(d time.Duration) error {
	return c.option(func(fd int) error { return sock.SetKeepAliveIdle(fd, d) })
}

// SetLinger sets what Close does with unsent data, as
// net.TCPConn.SetLinger: sec < 0 sends it in the background (the default),
// 0 discards it and resets the connection, sec > 0 waits up to sec seconds.
func (c *Conn) SetLinger(sec int) error {
	return c.option(func(fd int) error { return sock.SetLinger(fd, sec) })
}

// SetReadBuffer sets the size of the kernel's receive buffer.
func (c *Conn) SetReadBuffer(bytes int) error {
	return c.option(func(fd int) error { return sock.SetReadBuffer(fd, bytes) })
}

// SetWriteBuffer sets the size of the kernel's send buffer.
func (c *Conn) SetWriteBuffer(bytes int) error {
	return c.option(func(fd int) error { return sock.SetWriteBuffer(fd, bytes) })
}

// SyscallConn returns the raw connection, as net.TCPConn.SyscallConn:
// Control runs a function on the fd, Read and Write call theirs until it
// reports done, parking on the loop in between.
func (c *Conn) SyscallConn() (syscall.RawConn, error) {
	return rawConn{f: c.fd, rmu: &c.rmu, wmu: &c.wmu, opErr: c.opErr}, nil
}

// rawConn is the syscall.RawConn of a Conn or a PacketConn: its fd, the
// locks that serialize its reads and writes, and how its errors read.
type rawConn struct {
	f        *fd
	rmu, wmu *sync.Mutex
	opErr    func(op string, err error) error
}

// Control runs fn on the fd; the fd is not closed while fn runs.
func (r rawConn) Control(fn func(fd uintptr)) error {
	_, err := r.f.syscall(func(fd int) (int, error) { fn(uintptr(fd)); return 0, nil })
	if err != nil {
		return r.opErr("raw-control", err)
	}
	return nil
}

// Read calls fn until it returns true, parking until the fd is readable
// after each false.
func (r rawConn) Read(fn func(fd uintptr) bool) error {
	r.rmu.Lock()
	defer r.rmu.Unlock()
	return r.loop("raw-read", &r.f.r, fn)
}

// Write calls fn until it returns true, parking until the fd is writable
// after each false.
func (r rawConn) Write(fn func(fd uintptr) bool) error {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	return r.loop("raw-write", &r.f.w, fn)
}

func (r rawConn) loop(op string, w *waiter, fn func(fd uintptr) bool) error {
	f := r.f
	w.prepare()
	for {
		if w.expired() {
			return r.opErr(op, os.ErrDeadlineExceeded)
		}
		ok, err := f.syscall(func(fd int) (int, error) {
			if fn(uintptr(fd)) {
				return 1, nil
			}
			return 0, nil
		})
		if err != nil {
			return r.opErr(op, err)
		}
		if ok == 1 {
			return nil
		}
		if err := f.wait(w); err != nil {
			return r.opErr(op, err)
		}
	}
}
