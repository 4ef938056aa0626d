package reactor

import (
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/muxkit/reactor/conn"
	"github.com/muxkit/reactor/fdtable"
	"github.com/muxkit/reactor/poller"
)

// ErrIdleTimeout is the reason OnClose gets for a connection closed after
// Server.IdleTimeout without reading anything.
var ErrIdleTimeout = errors.New("reactor: idle timeout")

// Conn is one client connection served by a Loop. Its methods are for the
// loop goroutine (handlers, timer functions, Post'ed functions) unless they
// say otherwise; AsyncWrite and AsyncClose are the ones for any goroutine.
//
// Serving one event reads and writes the fields up to and including c's
// queue head; they come first and fill the first 64 bytes, and the whole
// Conn is 128 bytes, so the allocator's 128-byte size class puts
// those fields on one cache line (with a thousand busy connections the
// kernel's socket work evicts them between two events of one connection,
// so every line touched is a cache miss).
type Conn struct {
	loop *Loop
	srv  *Server
	want poller.Events
	// paused: the write queue passed the high watermark, so the loop stopped
	// reading this client until it drains below the low watermark.
	paused bool
	// closing: Close was asked for; no more reading, the queue is flushed
	// and then the connection closes with reason.
	closing bool
	closed  bool
	// draining: the queue is flushed and the sending side shut; what the
	// peer still sends is read and dropped until its end of file (see
	// finish).
	draining bool
	eof      bool      // the peer's end of file has been read
	active   int64     // loop clock of the last read, for the idle timeout
	c        conn.Conn // by value: one allocation, its hot fields next to ours
	handle   fdtable.Handle
	ctx      any
	idle     *Timer // the idle timeout (see onIdle), then the drain's limit; nil without either
	reason   error
}

// Write sends b, queueing what the kernel does not take at once; it never
// blocks. It returns len(b) or an error: conn.ErrQueueFull past the hard
// limit (the connection stays open), net.ErrClosed after Close. It
// allocates only to grow the queue.
func (c *Conn) Write(b []byte) (int, error) {
	if c.closed || c.closing {
		return 0, net.ErrClosed
	}
	n, err := c.c.Write(b)
	if err != nil && !errors.Is(err, conn.ErrQueueFull) {
		c.shut(err)
		return n, err
	}
	c.update()
	return n, err
}

// Close closes c after the bytes already written are flushed and, unless
// the peer has finished sending, after it has read the peer's end of file
// (for 500 ms at most; see the package doc on graceful close); OnClose follows
// with a nil reason. A second Close returns net.ErrClosed.
func (c *Conn) Close() error {
	if c.closed || c.closing {
		return net.ErrClosed
	}
	c.closeWith(nil)
	return nil
}

// closeWith starts a graceful close: flush, then finish with reason.
func (c *Conn) closeWith(reason error) {
	c.closing, c.reason = true, reason
	if c.c.Pending() == 0 {
		c.finish()
		return
	}
	c.update()
}

// drainTimeout bounds how long a closing connection waits for the peer's
// end of file after its own (see finish): net/http's figure. While it
// drains, nothing unread piles up, so closing after it resets only if the
// peer is still sending.
const drainTimeout = 500 * time.Millisecond

// finish ends a graceful close once the queue is flushed. Closing a TCP
// socket that still has unread bytes, or that receives more afterwards,
// makes the kernel send a reset and throw away what it has not yet
// transmitted: the flushed bytes would be lost on their way. So unless the
// peer has finished sending already, or (linux) nothing is unread and every
// byte sent is acknowledged, finish shuts the sending side (the peer reads
// end of file after the last byte) and reads and drops what still comes
// until the peer's end of file, for drainTimeout at most; then the
// connection closes with c.reason. net/http closes the same way.
func (c *Conn) finish() {
	if c.eof || settled(c.c.Fd()) || c.c.CloseWrite() != nil {
		c.shut(c.reason)
		return
	}
	c.draining = true
	if c.drain() {
		return // end of file already: closed
	}
	if c.idle != nil {
		c.idle.Stop()
	}
	c.idle = c.loop.AfterFunc(drainTimeout, func() { c.shut(c.reason) })
	c.update()
}

// drain reads and drops what the peer sends while draining; at its end of
// file, or on an error, c closes. It reports whether c closed.
func (c *Conn) drain() bool {
	for {
		_, err := c.c.Read(c.loop.buf)
		switch {
		case err == nil:
			continue
		case errors.Is(err, conn.ErrWouldBlock):
			return false
		}
		c.shut(c.reason)
		return true
	}
}

// AsyncWrite copies b and has c's loop write it; safe from any goroutine.
// It allocates the copy and the hand-off. Bytes for a connection that is
// closed by the time the loop runs them are dropped (its OnClose tells);
// after the Server has shut down the error is ErrServerClosed.
func (c *Conn) AsyncWrite(b []byte) error {
	cp := append([]byte(nil), b...)
	return c.post(func() {
		if !c.closed && !c.closing {
			c.Write(cp)
		}
	})
}

// post runs fn on c's loop; once the loop has ended, which for a Server's
// connection means the Server has, the error is ErrServerClosed.
func (c *Conn) post(fn func()) error {
	if err := c.loop.Post(fn); err != nil {
		if errors.Is(err, ErrLoopClosed) {
			return ErrServerClosed
		}
		return err
	}
	return nil
}

// AsyncClose has c's loop Close it; safe from any goroutine.
func (c *Conn) AsyncClose() error {
	return c.post(func() {
		if !c.closed && !c.closing {
			c.Close()
		}
	})
}

// Context returns the value set by SetContext.
func (c *Conn) Context() any { return c.ctx }

// SetContext attaches a value of the handler's own to c.
func (c *Conn) SetContext(v any) { c.ctx = v }

// Pending returns the bytes written but not yet taken by the kernel.
func (c *Conn) Pending() int { return c.c.Pending() }

// Loop returns the loop that serves c.
func (c *Conn) Loop() *Loop { return c.loop }

// Fd returns c's file descriptor, for socket options; do not read, write
// or close it directly.
func (c *Conn) Fd() int { return c.c.Fd() }

// LocalAddr returns the local address; it allocates on the first call.
func (c *Conn) LocalAddr() net.Addr { return c.c.LocalAddr() }

// RemoteAddr returns the peer's address; it allocates on the first call.
func (c *Conn) RemoteAddr() net.Addr { return c.c.RemoteAddr() }

// String describes c for logs.
func (c *Conn) String() string {
	return fmt.Sprintf("conn(fd=%d, %v)", c.c.Fd(), c.RemoteAddr())
}

// onEvent serves one poller event for c.
func (c *Conn) onEvent(ev poller.Events) {
	l := c.loop
	if c.draining {
		c.drain()
		return
	}
	if ev&(poller.Writable|poller.Error|poller.HangUp) != 0 && c.c.Pending() > 0 {
		if err := c.c.Flush(); err != nil {
			c.shut(err)
			return
		}
	}
	if ev&poller.Readable != 0 && !c.paused && !c.closing {
		n, err := c.c.Read(l.buf)
		switch {
		case n > 0:
			c.active = l.now
			c.srv.Handler.OnData(c, l.buf[:n])
		case errors.Is(err, conn.ErrWouldBlock):
		case errors.Is(err, io.EOF):
			// The peer has shut its side for writing; it may still read.
			// Flush what is queued for it, then close (reason io.EOF).
			c.eof = true
			c.closeWith(io.EOF)
			return
		case err != nil:
			c.shut(err)
			return
		}
	}
	if c.closed {
		return
	}
	if c.closing && c.c.Pending() == 0 {
		c.finish()
		return
	}
	c.update()
}

// update applies backpressure and sets the poller interest c needs:
// Readable unless paused or closing, Writable while bytes are queued.
func (c *Conn) update() {
	if c.closed {
		return
	}
	if !c.paused && c.c.AboveHighWater() {
		c.paused = true
	} else if c.paused && c.c.BelowLowWater() {
		c.paused = false
	}
	var want poller.Events
	if !c.paused && !c.closing || c.draining {
		want = poller.Readable
	}
	if c.c.Pending() > 0 {
		want |= poller.Writable
	}
	if want != c.want {
		if err := c.loop.p.Modify(c.c.Fd(), uint64(c.handle), want); err != nil {
			c.shut(err)
			return
		}
		c.want = want
	}
}

// onIdle fires the idle timer: close if nothing was read for IdleTimeout,
// else re-arm for the rest of it. Reads only record the time, so the
// event path never touches the timer heap.
func (c *Conn) onIdle() {
	l := c.loop
	left := c.active + int64(c.srv.IdleTimeout) - l.now
	if left > 0 {
		c.idle.Reset(time.Duration(left))
		return
	}
	c.closeWith(ErrIdleTimeout)
}

// onStop is c's loop ending while c is open: it closes now, with
// ErrServerClosed (the loop of a Server ends only when the Server does).
func (c *Conn) onStop(error) { c.shut(ErrServerClosed) }

// shut closes c now, whatever is queued, and tells the handler.
func (c *Conn) shut(reason error) {
	if c.closed {
		return
	}
	c.closed = true
	l := c.loop
	if c.idle != nil {
		c.idle.Stop()
	}
	l.p.Remove(c.c.Fd())
	l.tab.Delete(c.handle)
	c.c.Close()
	l.conns--
	c.srv.nconns.Add(-1)
	c.srv.Handler.OnClose(c, reason)
}
