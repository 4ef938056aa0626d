package reactor

import (
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/conn"
	"github.com/muxkit/reactor/fdtable"
	"github.com/muxkit/reactor/poller"
)

// ErrIdleTimeout is the reason OnClose gets for a connection closed after
// its IdleTimeout without reading anything.
var ErrIdleTimeout = errors.New("reactor: idle timeout")

// ErrInboundFull is the reason OnClose gets for a connection whose handler
// kept more than MaxInbound bytes with Keep (a frame longer than the
// protocol allows, or a parser that never consumes): what was queued is
// flushed, the kept bytes are dropped.
var ErrInboundFull = errors.New("reactor: inbound buffer over MaxInbound")

// ErrQueueFull is returned by Write, Writev and AsyncWrite's write when
// queueing would pass Limits.MaxQueued; the connection stays open. It is
// conn.ErrQueueFull.
var ErrQueueFull = conn.ErrQueueFull

// Limits bounds a connection's write queue (watermarks for backpressure and
// a hard cap); the zero Limits means the defaults (64 KiB, 16 KiB, 4 MiB).
// It is conn.Limits.
type Limits = conn.Limits

// DefaultMaxInbound is the MaxInbound a zero field means: 1 MiB.
const DefaultMaxInbound = 1 << 20

// service is what a connection needs from whoever made it, a Server or a
// Dialer: its handler with the optional faces, limits and timeouts. It is
// read-only once a connection uses it.
type service struct {
	h         Handler
	half      HalfCloser // nil: close at the peer's end of file
	drain     Drainer    // nil: nobody to tell
	limits    conn.Limits
	idle      time.Duration
	maxIn     int
	keepAlive time.Duration
	srv       *Server // nil for a Dialer's connections
}

// newService fills a service from a handler and its settings.
func newService(h Handler, lim conn.Limits, idle time.Duration, maxIn int, keepAlive time.Duration) *service {
	svc := &service{h: h, limits: lim, idle: idle, maxIn: maxIn, keepAlive: keepAlive}
	svc.half, _ = h.(HalfCloser)
	svc.drain, _ = h.(Drainer)
	if svc.maxIn == 0 {
		svc.maxIn = DefaultMaxInbound
	}
	return svc
}

// connState is a Conn's set of flags.
type connState uint32

const (
	// stPaused: the write queue passed the high watermark, so the loop
	// stopped reading until it drains to the low watermark.
	stPaused connState = 1 << iota
	// stUserPaused: the handler called PauseRead.
	stUserPaused
	// stClosing: Close was asked for; no more reading, the queue is
	// flushed and then the connection closes with its reason.
	stClosing
	stClosed
	// stLinger: the queue is flushed and the sending side shut; what the
	// peer still sends is read and dropped until its end of file (see
	// endClose).
	stLinger
	// stEOF: the peer's end of file has been read.
	stEOF
	// stDirty: written to since the last flush; on the loop's dirty list.
	stDirty
	// stDrainArmed: the queue held more than the low watermark at the end
	// of a callback; OnDrain is due when it falls to it.
	stDrainArmed
	// stConnecting: a Dialer's connect is in progress.
	stConnecting
	// stRedo: on the loop's list to have its kept bytes offered again.
	stRedo
	// stRedoLater: a ResumeRead's offer found c paused by backpressure;
	// it is made when the queue drains to the low watermark.
	stRedoLater

	// The completion engine's flags (see engine_linux.go).

	// stRecv: a receive is in flight.
	stRecv
	// stRecvCancel: its cancellation is asked for.
	stRecvCancel
	// stSend: a send is in flight.
	stSend
	// stStashed: bytes received while c did not read wait in c.in to be
	// offered.
	stStashed
	// stEOFHeld: the peer's end of file arrived while c did not read; it
	// is acted on once the stashed bytes are offered.
	stEOFHeld
	// stAgain: the last receive or send failed with EAGAIN; the next one
	// waits for readiness first.
	stAgain
	// stShort: the last send left bytes queued (the socket may be full):
	// a wait does not count on the next one completing at once.
	stShort

	stHeld = stStashed | stEOFHeld
)

// Close reasons kept as a byte (see Conn.why).
var closeReasons = [...]error{nil, io.EOF, ErrIdleTimeout, ErrServerClosed, ErrInboundFull}

// Conn is one connection served by a Loop, accepted by a Server or made by
// a Dialer. Its methods are for the loop goroutine (handlers, timer
// functions, Post'ed functions) unless they say otherwise; AsyncWrite and
// AsyncClose are the ones for any goroutine.
//
// # Writing
//
// Write queues: the bytes written during one callback (OnOpen, OnData, a
// timer function, one batch of posted functions) leave in one write(2) or
// writev(2) when it returns, so a handler answering 16 pipelined requests
// makes one system call, not 16. Flush sends them earlier; Writev sends the
// queue and several buffers at once without copying them.
//
// # Reading
//
// OnData gets the loop's read buffer. Bytes a handler does not consume (the
// start of a frame whose end has not arrived) it keeps with Keep; they are
// offered again, followed by the next bytes read, in the next OnData. Only
// the kept tail is copied, into a pooled buffer released when nothing is
// kept. PauseRead and ResumeRead stop and restart reading c; with a Drainer
// a handler learns when its write queue has drained.
//
// Keep rather than gnet's Peek, Next and Discard, or an OnData that returns
// how much it consumed: the default, nothing kept, is what every handler
// written before meant, so none changes and none pays for buffering it
// does not use; a parser works on one contiguous slice, never on two
// pieces joined on demand; and one call at the end of OnData says all
// there is to say.
//
// Serving one event reads and writes the fields up to and including c's
// queue head; they come first and fill the first 64 bytes, and the whole
// Conn fits the allocator's 128-byte size class, so those fields share one
// cache line (with a thousand busy connections the kernel's socket work
// evicts them between two events of one connection, so every line touched
// is a cache miss).
type Conn struct {
	loop   *Loop
	svc    *service
	want   poller.Events // the interest in the poller (a readiness loop's, or a connect's); 0: not in it
	why    uint8         // index in closeReasons of the reason a graceful close ends with
	st     connState
	active int64     // loop clock of the last read, for the idle timeout
	sock   conn.Conn // the socket and its write queue, by value: one allocation, its hot fields next to ours
	handle fdtable.Handle
	ctx    any
	idle   *Timer   // the connect timeout, then the idle timeout, then the linger's limit; nil without any
	in     *inbound // the bytes kept by Keep; nil when none
	dial   *dialing // a Dialer's connect in progress; nil once connected
}

func (c *Conn) is(f connState) bool { return c.st&f != 0 }

// Write queues b to be sent when the current callback returns (see Conn);
// it never blocks. It returns len(b), or an error: ErrQueueFull past
// Limits.MaxQueued (nothing taken; the connection stays open), net.ErrClosed
// after Close. A Write of 64 KiB or more goes out at once, with what is
// queued before it, as Writev: if that send fails (the peer reset), Write
// returns the system call's error and c is closed with it (OnClose gets
// the same error); on the completion engine the send is submitted, and its
// failure closes c when it completes. It copies b and allocates only to
// grow the queue. Before a Dialer's connection is connected, the bytes
// wait for it.
func (c *Conn) Write(b []byte) (int, error) {
	c.loop.checkLoop("Conn.Write")
	if c.is(stClosed | stClosing) {
		return 0, net.ErrClosed
	}
	if len(b) >= writeNowSize && !c.is(stConnecting) {
		return c.writev([][]byte{b})
	}
	n, err := c.sock.Queue(b)
	if n > 0 {
		c.loop.tqueued += int64(n)
		c.dirty()
	}
	return n, err
}

// writeNowSize is the Write size sent at once rather than copied into the
// queue: past it a copy costs more than the system call saved.
const writeNowSize = 64 << 10

// Writev sends the queued bytes and then bufs, in order, with one writev(2)
// now, and copies into the queue only what the kernel does not take. It
// returns the bytes of bufs written or queued (all of them) or an error as
// Write. It does not retain bufs; it allocates only to grow the queue.
func (c *Conn) Writev(bufs ...[]byte) (int, error) {
	c.loop.checkLoop("Conn.Writev")
	if c.is(stClosed | stClosing) {
		return 0, net.ErrClosed
	}
	if c.is(stConnecting) {
		// Not connected: queue in order, to leave once it is.
		total := 0
		for _, b := range bufs {
			n, err := c.Write(b)
			total += n
			if err != nil {
				return total, err
			}
		}
		return total, nil
	}
	return c.writev(bufs)
}

// writev is Writev on a connected c, through the engine (see engine.go).
func (c *Conn) writev(bufs [][]byte) (int, error) {
	n, err := c.loop.eng.writev(c, bufs)
	if n > 0 {
		c.dirty() // for the interest and the drain check, at the callback's end
	}
	return n, err
}

// Flush sends the queued bytes now rather than when the callback returns,
// for a handler that needs bytes out before it goes on (one system call).
// What the kernel does not take stays queued, for the loop to send when
// the socket is writable. A write error closes c and is returned; after
// Close the error is net.ErrClosed. It does not allocate.
func (c *Conn) Flush() error {
	c.loop.checkLoop("Conn.Flush")
	if c.is(stClosed) {
		return net.ErrClosed
	}
	if c.is(stConnecting) || c.sock.Pending() == 0 {
		return nil
	}
	return c.loop.eng.send(c, true)
}

// dirty marks c written to: the loop flushes it when the callback returns.
func (c *Conn) dirty() {
	if !c.is(stDirty) {
		c.st |= stDirty
		c.loop.dirty = append(c.loop.dirty, c)
	}
}

// Keep keeps the last n bytes of the data the current OnData got (the
// unconsumed start of a frame) buffered for c: the next OnData gets them
// first, followed by the bytes read since. A later Keep in the same OnData
// replaces an earlier one; without Keep nothing is kept. More than
// MaxInbound bytes kept closes c, after flushing what it queued, with
// ErrInboundFull. Call it only from c's OnData, with 0 <= n <= len(data);
// anything else is an error and keeps nothing. It allocates the kept
// buffer, from a pool, only when bytes are kept that were not already.
func (c *Conn) Keep(n int) error {
	l := c.loop
	l.checkLoop("Conn.Keep")
	if l.keeping != c {
		return errors.New("reactor: Conn.Keep called outside the connection's OnData")
	}
	if n < 0 || n > l.keepMax {
		return fmt.Errorf("reactor: Conn.Keep(%d) of %d bytes of data", n, l.keepMax)
	}
	l.keep = n
	return nil
}

// Need says that the frame whose start the current OnData keeps (with
// Keep) is total bytes long in all: the kept buffer is sized for it once,
// and OnData is not called again until total bytes are buffered, so a
// frame of many reads costs its parser one look, not one a read. The
// peer's end of file ends the wait (OnData then gets what came), and so
// does a close; the idle timeout applies as ever. Call it from c's OnData,
// after or with Keep; total at most MaxInbound, else an error and nothing
// changes. A total not above the bytes kept asks for nothing. It does not
// allocate; the buffer it sizes is allocated when OnData returns.
func (c *Conn) Need(total int) error {
	l := c.loop
	l.checkLoop("Conn.Need")
	if l.keeping != c {
		return errors.New("reactor: Conn.Need called outside the connection's OnData")
	}
	if total > c.svc.maxIn {
		return fmt.Errorf("reactor: Conn.Need(%d) past MaxInbound (%d)", total, c.svc.maxIn)
	}
	l.need = max(total, 0)
	return nil
}

// Buffered returns the number of bytes kept with Keep, offered again at the
// next OnData. It does not allocate.
func (c *Conn) Buffered() int {
	if c.in == nil {
		return 0
	}
	return len(c.in.b)
}

// PauseRead stops reading c until ResumeRead: nothing more is read from
// the socket, so a client that floods c with requests is held back by TCP
// while the handler catches up (with Drainer, it resumes when its replies
// have drained). Writing goes on. The peer's end of file is not read
// either while reading is paused: it cannot overtake the bytes kept, which
// ResumeRead offers first, so every request that came before it is seen.
// It makes at most one system call (the poller's) and does not allocate.
func (c *Conn) PauseRead() {
	c.loop.checkLoop("Conn.PauseRead")
	if c.is(stClosed | stUserPaused) {
		return
	}
	c.st |= stUserPaused
	c.update()
}

// ResumeRead ends PauseRead, if it is in effect, and has the bytes kept
// with Keep offered again in an OnData of their own at the end of the
// loop's turn, even if nothing new arrives, so a handler that stopped
// parsing can go on; then reading goes on. Each call offers the bytes
// still kept once more, whether or not reading was paused, and after the
// peer's end of file too; while backpressure holds reading (the write
// queue passed the high watermark), the offer waits until the queue drains
// to the low watermark. Called in OnData, it applies to what that OnData
// keeps. It makes at most one system call and does not allocate (the
// loop's list of such connections grows once).
func (c *Conn) ResumeRead() {
	l := c.loop
	l.checkLoop("Conn.ResumeRead")
	if c.is(stClosed) {
		return
	}
	c.st &^= stUserPaused
	if (c.in != nil || l.keeping == c) && !c.is(stRedo) {
		c.st |= stRedo
		l.redo = append(l.redo, c)
	}
	c.update()
}

// ReadPaused reports whether PauseRead is in effect.
func (c *Conn) ReadPaused() bool { return c.is(stUserPaused) }

// reading reports whether the loop reads c.
func (c *Conn) reading() bool {
	return c.canRead() && !c.is(stEOF|stEOFHeld)
}

// canRead reports whether nothing but the peer's end of file stops c from
// reading.
func (c *Conn) canRead() bool {
	return !c.is(stPaused | stUserPaused | stClosing | stClosed | stConnecting)
}

// Close closes c after the bytes already written are flushed and, unless
// the peer has finished sending, after it has read the peer's end of file
// (for 500 ms at most; see the package doc on graceful close); OnClose
// follows with a nil reason. A Dialer's connection not yet connected is
// abandoned at once, its queue dropped. A second Close returns
// net.ErrClosed.
func (c *Conn) Close() error {
	c.loop.checkLoop("Conn.Close")
	if c.is(stClosed | stClosing) {
		return net.ErrClosed
	}
	if c.is(stConnecting) {
		c.closeNow(nil)
		return nil
	}
	c.beginClose(nil)
	return nil
}

// A connection closes in one of two ways, each named for what it does:
// gracefully, beginClose (flush the queue) then endClose (shut the sending
// side, drain the peer's last bytes, then close), and at once, closeNow
// (drop the queue, close, tell the handler), which a graceful close also
// ends with.

// beginClose starts a graceful close: flush, then endClose with reason,
// which must be one of closeReasons.
func (c *Conn) beginClose(reason error) {
	c.st |= stClosing
	for i, r := range closeReasons {
		if r == reason {
			c.why = uint8(i)
		}
	}
	c.release()
	if c.sock.Pending() == 0 {
		c.endClose()
		return
	}
	if !c.is(stDirty) {
		c.update() // a callback's end flushes a dirty c and finishes it then
	}
}

// reason is why a graceful close ends.
func (c *Conn) reason() error { return closeReasons[c.why] }

// lingerTimeout bounds a close's linger: how long a closing connection
// waits for the peer's end of file after its own (see endClose), and a
// closing PacketConn for room to send what it queued; net/http's figure.
// While a connection lingers nothing unread piles up, so closing after it
// resets only if the peer is still sending.
const lingerTimeout = 500 * time.Millisecond

// endClose ends a graceful close once the queue is flushed. Closing a TCP
// socket that still has unread bytes, or that receives more afterwards,
// makes the kernel send a reset and throw away what it has not yet
// transmitted: the flushed bytes would be lost on their way. So unless the
// peer has finished sending already, or (linux) nothing is unread and every
// byte sent is acknowledged, endClose shuts the sending side (the peer reads
// end of file after the last byte) and reads and drops what still comes
// until the peer's end of file, for lingerTimeout at most (it lingers);
// then the connection closes with its reason. net/http closes the same
// way. (This is not a Drainer's drain, which is about the write queue.)
func (c *Conn) endClose() {
	if c.is(stEOF) || quiet(c.sock.Fd()) || c.sock.CloseWrite() != nil {
		c.closeNow(c.reason())
		return
	}
	c.st |= stLinger
	c.update()
	if c.is(stClosed) {
		return // the peer's end of file was there already
	}
	if c.idle != nil {
		c.idle.Stop()
	}
	c.idle = c.loop.AfterFunc(lingerTimeout, func() { c.closeNow(c.reason()) })
}

// linger reads and drops what the peer sends while c lingers; at its end
// of file, or on an error, c closes. It reports whether c closed.
func (c *Conn) linger() bool {
	for {
		_, err := c.sock.Read(c.loop.buf)
		switch {
		case err == nil:
			continue
		case errors.Is(err, conn.ErrWouldBlock):
			return false
		}
		c.closeNow(c.reason())
		return true
	}
}

// AsyncWrite copies b and has c's loop write it; safe from any goroutine.
// It allocates the copy and the hand-off. Writes from one goroutine reach
// the peer in the order made, after what the loop wrote before running
// them; each batch of posted functions leaves in one system call. Bytes for
// a connection that is closed by the time the loop runs them are dropped
// (its OnClose tells); once the loop has ended (for a Server's connection:
// the Server has shut down) the error is ErrServerClosed.
func (c *Conn) AsyncWrite(b []byte) error {
	cp := append([]byte(nil), b...)
	return c.post(func() {
		if !c.is(stClosed | stClosing) {
			c.Write(cp)
		}
	})
}

// post runs fn on c's loop; once the loop has ended the error is
// ErrServerClosed.
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
		if !c.is(stClosed | stClosing) {
			c.Close()
		}
	})
}

// Context returns the value set by SetContext.
func (c *Conn) Context() any { return c.ctx }

// SetContext attaches a value of the handler's own to c.
func (c *Conn) SetContext(v any) { c.ctx = v }

// Pending returns the bytes written but not yet taken by the kernel,
// including those the current callback wrote: they stay queued until it
// returns (or Flush), so a handler can hold its own queue down by
// checking Pending as it writes.
func (c *Conn) Pending() int { return c.sock.Pending() }

// Loop returns the loop that serves c; safe from any goroutine.
func (c *Conn) Loop() *Loop { return c.loop }

// Fd returns c's file descriptor, or -1 once c is closed. For socket
// options prefer the Set methods or Control; never read, write or close
// the fd directly.
func (c *Conn) Fd() int {
	if c.is(stClosed) {
		return -1
	}
	return c.sock.Fd()
}

// LocalAddr returns the local address; it allocates on the first call.
func (c *Conn) LocalAddr() net.Addr { return c.sock.LocalAddr() }

// RemoteAddr returns the peer's address; it allocates on the first call.
func (c *Conn) RemoteAddr() net.Addr { return c.sock.RemoteAddr() }

// String describes c for logs.
func (c *Conn) String() string {
	return fmt.Sprintf("conn(fd=%d, %v)", c.sock.Fd(), c.RemoteAddr())
}

// onEvent serves one poller event for c.
func (c *Conn) onEvent(ev poller.Events) {
	switch {
	case c.is(stConnecting):
		c.onConnect()
		return
	case c.is(stLinger):
		c.linger()
		return
	}
	if ev&(poller.Writable|poller.Error|poller.HangUp) != 0 && c.sock.Pending() > 0 {
		if c.loop.eng.send(c, false) != nil {
			return
		}
	}
	if ev&poller.Readable != 0 && c.reading() {
		c.read()
		if c.is(stClosed) {
			return
		}
	}
	c.settle()
}

// read makes one read(2) and hands what it got to the handler.
func (c *Conn) read() {
	l := c.loop
	n, err := c.sock.Read(l.buf)
	switch {
	case n > 0:
		c.arrived(l.buf[:n])
	case errors.Is(err, conn.ErrWouldBlock):
	case errors.Is(err, io.EOF):
		c.peerEOF()
	default:
		c.closeNow(err)
	}
}

// arrived serves bytes a read brought, on either engine: it counts them,
// marks c active and offers them to OnData after the bytes kept before.
func (c *Conn) arrived(data []byte) {
	l := c.loop
	l.tin += int64(len(data))
	c.active = l.now
	if c.in != nil {
		c.in = c.in.add(data)
		if len(c.in.b) < c.in.need {
			return // the frame Need named is not all here yet
		}
		data = c.in.b
	}
	c.deliver(data)
}

// peerEOF acts on the peer's end of file: it has shut its side for
// writing, and may still read.
func (c *Conn) peerEOF() {
	if c.in != nil && c.in.need > 0 {
		// The peer will send no more: what came of the frame Need
		// waited for is offered as it is, before the end of file.
		c.in.need = 0
		c.deliver(c.in.b)
		if c.is(stClosed | stClosing) {
			return
		}
	}
	c.st |= stEOF
	if c.svc.half != nil {
		c.svc.half.OnPeerClose(c)
		return
	}
	// Flush what is queued for it, then close (reason io.EOF).
	c.beginClose(io.EOF)
}

// deliver calls OnData with data and keeps what the handler asked to.
func (c *Conn) deliver(data []byte) {
	l := c.loop
	l.keeping, l.keepMax, l.keep, l.need = c, len(data), 0, 0
	c.st &^= stStashed
	c.svc.h.OnData(c, data)
	l.keeping = nil
	if c.is(stClosed | stClosing) {
		c.release() // not before: data may be the kept buffer
		return
	}
	k := l.keep
	switch {
	case k == 0:
		c.release()
		return
	case k > c.svc.maxIn:
		c.beginClose(ErrInboundFull) // releases
		return
	case c.in == nil:
		c.in = newInbound(max(k, l.need))
		c.in.b = append(c.in.b, data[len(data)-k:]...)
	default:
		c.in = c.in.keepTail(k)
		if cap(c.in.b) < l.need {
			c.in = c.in.grow(l.need) // sized once for the frame
		}
	}
	c.in.need = l.need
}

// release gives the kept bytes' buffer back, unless OnData is running
// with it as its data (deliver releases it then).
func (c *Conn) release() {
	if c.in != nil && c.loop.keeping != c {
		c.in.free()
		c.in = nil
	}
}

// redeliver offers the kept bytes again after ResumeRead (see
// Loop.runRedo), and on the completion engine the bytes and the end of
// file received while c did not read.
func (c *Conn) redeliver() {
	c.st &^= stRedo
	if !c.canRead() {
		if c.is(stPaused) && !c.is(stUserPaused|stClosing|stClosed) {
			c.st |= stRedoLater // see update
		}
		return
	}
	if c.in != nil {
		c.deliver(c.in.b)
		if c.is(stClosed) {
			return
		}
	}
	if c.is(stEOFHeld) && c.canRead() {
		c.st &^= stEOFHeld
		c.peerEOF()
		if c.is(stClosed) {
			return
		}
	}
	c.settle()
}

// settle ends a callback's work on c: flush what it wrote, tell a Drainer,
// end a close whose queue is empty, and set the poller interest.
func (c *Conn) settle() {
	c.st &^= stDirty
	if c.is(stClosed | stConnecting) {
		return
	}
	if c.svc.drain != nil && !c.sock.BelowLowWater() {
		c.st |= stDrainArmed
	}
	if c.sock.Pending() > 0 && c.loop.eng.send(c, false) != nil {
		return
	}
	if c.is(stDrainArmed) && c.sock.BelowLowWater() {
		c.st &^= stDrainArmed
		if !c.is(stClosing) {
			c.svc.drain.OnDrain(c)
			if c.is(stClosed) {
				return
			}
		}
	}
	if c.is(stClosing) && !c.is(stLinger) && c.sock.Pending() == 0 {
		c.endClose()
		return
	}
	c.update()
}

// update applies backpressure (stop reading above the high watermark,
// resume at the low one, and make the offer of kept bytes a ResumeRead
// asked for meanwhile) and has the engine follow c's state.
func (c *Conn) update() {
	if c.is(stClosed) {
		return
	}
	if !c.is(stPaused) && c.sock.AboveHighWater() {
		c.st |= stPaused
	} else if c.is(stPaused) && c.sock.BelowLowWater() {
		c.st &^= stPaused
		if c.is(stRedoLater) && !c.is(stRedo) && c.canRead() {
			c.st |= stRedo
			c.loop.redo = append(c.loop.redo, c)
		}
		c.st &^= stRedoLater
	}
	c.loop.eng.interest(c)
}

// onIdle fires the idle timer: close if nothing was read for the idle
// timeout, else re-arm for the rest of it. Reads only record the time, so
// the event path never touches the timer heap.
func (c *Conn) onIdle() {
	l := c.loop
	left := c.active + int64(c.svc.idle) - l.now
	if left > 0 {
		c.idle.Reset(time.Duration(left))
		return
	}
	c.beginClose(ErrIdleTimeout)
}

// armIdle starts the idle timeout, if there is one.
func (c *Conn) armIdle() {
	if c.svc.idle <= 0 {
		return
	}
	c.active = c.loop.now
	// The timer and its closure only when they are used.
	c.idle = &Timer{loop: c.loop, index: -1}
	c.idle.fn = c.onIdle
	c.loop.schedule(c.idle, c.svc.idle)
}

// onStop is c's loop ending while c is open: it closes now, with
// ErrServerClosed for a Server's connection (its loop ends only when the
// Server does), else with reason.
func (c *Conn) onStop(reason error) {
	if c.svc.srv != nil {
		reason = ErrServerClosed
	}
	c.closeNow(reason)
}

// closeNow closes c now, whatever is queued, and tells the handler.
func (c *Conn) closeNow(reason error) {
	if c.is(stClosed) {
		return
	}
	c.st |= stClosed
	l := c.loop
	if c.idle != nil {
		c.idle.Stop()
	}
	c.release()
	l.tqueued -= int64(c.sock.Pending())
	if l.eng.abort(c) {
		c.finishClose() // else once the engine's operations are done
	}
	l.stats.closed(reason)
	if c.svc.srv != nil {
		c.svc.srv.nconns.Add(-1)
	}
	c.svc.h.OnClose(c, reason)
}

// finishClose frees a closed c's table slot and closes its fd, once no
// operation of the completion engine is in flight for it.
func (c *Conn) finishClose() {
	if c.is(stRecv|stSend) || c.sock.Fd() < 0 {
		return
	}
	l := c.loop
	fd := c.sock.Fd()
	l.tab.Delete(c.handle)
	if err := c.sock.Close(); err != nil {
		l.logError("closing a connection", err, "fd", fd)
	}
}

// newConn wraps fd, which it owns from now on (closing it on failure), as a
// Conn of l for svc, and has the engine start on it: reading (want
// Readable), or watching a Dialer's connect (want Writable); on l's
// goroutine.
func (l *Loop) newConn(fd int, svc *service, want poller.Events) (*Conn, error) {
	c := &Conn{loop: l, svc: svc, want: want}
	if err := c.sock.Init(fd, &svc.limits); err != nil {
		unix.Close(fd)
		return nil, err
	}
	h, err := l.tab.Put(fd, c)
	if err != nil {
		c.sock.Close()
		return nil, err
	}
	c.handle = h
	if err := l.eng.open(c); err != nil {
		l.tab.Delete(h)
		c.sock.Close()
		return nil, err
	}
	l.stats.open.Add(1)
	return c, nil
}
