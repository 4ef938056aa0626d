package reactor

import "io"

// Handler receives a connection's events. Every method runs on the
// connection's loop goroutine and must not block: while it runs, no other
// connection of that loop is served.
//
// A Handler may also implement HalfCloser (to decide itself when to close
// after the peer has finished sending) and Drainer (to hear when a write
// queue has drained); HandlerFuncs implements both.
type Handler interface {
	// OnOpen is called once, when the connection is registered (for a
	// Dialer's connection: once it is connected).
	OnOpen(c *Conn)
	// OnData is called with the bytes read from c, preceded by those an
	// earlier OnData kept with c.Keep. data is valid only during the call:
	// copy what must outlive it, or Keep it (c.Write copies). Once c.Close
	// has been called, OnData is not called again for c.
	OnData(c *Conn, data []byte)
	// OnClose is called once, after c is closed, with why: nil for a local
	// Close, io.EOF when the peer closed, ErrIdleTimeout, ErrServerClosed
	// at shutdown, ErrInboundFull past MaxInbound, a *net.OpError for a
	// Dialer's connection that could not connect (OnOpen was not called
	// then), or the system call error (for example ECONNRESET).
	OnClose(c *Conn, err error)
}

// HalfCloser is implemented by a Handler that decides itself when to close
// a connection whose peer has finished sending.
type HalfCloser interface {
	// OnPeerClose is called once, on c's loop goroutine, when the peer has
	// shut its sending side, after OnData has seen every byte before that.
	// c stays open for writing: send what is still due, then Close it.
	// Reading has ended, but bytes still kept with Keep are offered again,
	// once per call of ResumeRead. Without a HalfCloser, c closes at the
	// peer's end of file (flushing first; reason io.EOF): what was kept
	// unanswered then is dropped, but never while reading is paused, since
	// the end of file is only read while c reads (see PauseRead).
	//
	// A method misspelled is not an error, only ignored: say which faces
	// a handler means to have, and the compiler checks them,
	//
	//	var (
	//		_ reactor.Handler    = (*myHandler)(nil)
	//		_ reactor.HalfCloser = (*myHandler)(nil)
	//	)
	OnPeerClose(c *Conn)
}

// Drainer is implemented by a Handler that wants to hear when a write
// queue has drained: with PauseRead it lets a handler that produces more
// than it reads (replies to pipelined requests) hold its own queue down.
type Drainer interface {
	// OnDrain is called on c's loop goroutine each time c's write queue,
	// having held more than Limits.LowWater bytes when a callback returned,
	// has been flushed down to LowWater or below (at once, if the flush at
	// the callback's end sent enough).
	OnDrain(c *Conn)
}

// HandlerFuncs is a Handler, HalfCloser and Drainer made of functions; a
// nil function does nothing, except PeerClose, whose nil default closes
// the connection as a Handler without HalfCloser does.
type HandlerFuncs struct {
	Open      func(c *Conn)
	Data      func(c *Conn, data []byte)
	Close     func(c *Conn, err error)
	PeerClose func(c *Conn)
	Drain     func(c *Conn)
}

// OnOpen calls h.Open if set.
func (h HandlerFuncs) OnOpen(c *Conn) {
	if h.Open != nil {
		h.Open(c)
	}
}

// OnData calls h.Data if set.
func (h HandlerFuncs) OnData(c *Conn, data []byte) {
	if h.Data != nil {
		h.Data(c, data)
	}
}

// OnClose calls h.Close if set.
func (h HandlerFuncs) OnClose(c *Conn, err error) {
	if h.Close != nil {
		h.Close(c, err)
	}
}

// OnPeerClose calls h.PeerClose if set, and otherwise closes c as a
// Handler without HalfCloser gets it closed (reason io.EOF).
func (h HandlerFuncs) OnPeerClose(c *Conn) {
	if h.PeerClose != nil {
		h.PeerClose(c)
		return
	}
	if !c.is(stClosed | stClosing) {
		c.beginClose(io.EOF)
	}
}

// OnDrain calls h.Drain if set.
func (h HandlerFuncs) OnDrain(c *Conn) {
	if h.Drain != nil {
		h.Drain(c)
	}
}

// Echo is a Handler that writes every byte it reads back to the sender.
var Echo Handler = HandlerFuncs{Data: func(c *Conn, data []byte) { c.Write(data) }}
