package reactor

// Handler receives a connection's events. Every method runs on the
// connection's loop goroutine and must not block: while it runs, no other
// connection of that loop is served.
type Handler interface {
	// OnOpen is called once, when the connection is registered.
	OnOpen(c *Conn)
	// OnData is called with bytes read from c. data is the loop's read
	// buffer: valid only during the call, so copy what must outlive it
	// (c.Write copies what it cannot send at once).
	OnData(c *Conn, data []byte)
	// OnClose is called once, after c is closed, with why: nil for a local
	// Close, io.EOF when the peer closed, ErrIdleTimeout, ErrServerClosed
	// at shutdown, or the system call error (for example ECONNRESET).
	OnClose(c *Conn, err error)
}

// HandlerFuncs is a Handler made of functions; a nil function does nothing.
type HandlerFuncs struct {
	Open  func(c *Conn)
	Data  func(c *Conn, data []byte)
	Close func(c *Conn, err error)
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

// Echo is a Handler that writes every byte it reads back to the sender.
var Echo Handler = HandlerFuncs{Data: func(c *Conn, data []byte) { c.Write(data) }}
