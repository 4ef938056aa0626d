package reactor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/fdtable"
	"github.com/muxkit/reactor/internal/sock"
)

// errClosing is what operations on a closed pollFD wrap; it is net.ErrClosed
// so callers test it as they would with Go's net package.
var errClosing = net.ErrClosed

// Listen announces on the local address like net.Listen (network tcp,
// tcp4, tcp6 or unix) and returns a net.Listener whose connections are
// driven by reactor loops instead of Go's runtime netpoller. Accepted
// connections meet the whole net.Conn contract, deadlines included, so
// net/http, crypto/tls and other Go networking code run over them unchanged.
//
// The loops (GOMAXPROCS of them, backend as ResolveBackend says) are shared
// by every listener and connection of this face; they start with the first
// and end when the last is closed.
func Listen(network, address string) (net.Listener, error) {
	l, err := group.acquire()
	if err != nil {
		return nil, err
	}
	fd, addr, err := sock.Listen(network, address)
	if err != nil {
		group.release()
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	p, err := newPollFD(l, fd)
	if err != nil {
		unix.Close(fd)
		group.release()
		return nil, &net.OpError{Op: "listen", Net: network, Addr: addr, Err: err}
	}
	return &listener{pfd: p, network: network, addr: addr}, nil
}

// Dial connects to address like net.Dial (network tcp, tcp4, tcp6 or unix)
// and returns a connection driven by the reactor loops; see Listen.
func Dial(network, address string) (net.Conn, error) {
	return DialContext(context.Background(), network, address)
}

// DialContext is Dial bounded by ctx: the connect is abandoned when ctx
// ends.
func DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	var raddr net.Addr // the peer, once resolved, for error messages as net's
	opErr := func(err error) error { return &net.OpError{Op: "dial", Net: network, Addr: raddr, Err: err} }
	// An ended context fails the dial before any socket exists, as net's
	// does; a connect to loopback may otherwise complete at once.
	if err := ctx.Err(); err != nil {
		return nil, opErr(err)
	}
	sa, family, err := sock.Resolve(network, address)
	if err != nil {
		return nil, opErr(err)
	}
	raddr = sock.Addr(sa)
	l, err := group.acquire()
	if err != nil {
		return nil, opErr(err)
	}
	fd, err := sock.Socket(family)
	if err != nil {
		group.release()
		return nil, opErr(err)
	}
	p, err := newPollFD(l, fd)
	if err != nil {
		unix.Close(fd)
		group.release()
		return nil, opErr(err)
	}
	c := &netConn{pfd: p, network: network}
	if err := c.connect(ctx, sa); err != nil {
		p.close()
		group.release()
		return nil, opErr(err)
	}
	c.laddr, c.raddr = connAddrs(fd, network)
	return c, nil
}

// connAddrs returns fd's local and peer addresses. net.Conn users (net/http
// among them) call RemoteAddr().String() without a nil check, and
// getpeername fails on a connection reset right after accept, so a missing
// address is an empty one of the network's kind rather than nil.
func connAddrs(fd int, network string) (laddr, raddr net.Addr) {
	laddr, raddr = sock.LocalAddr(fd), sock.RemoteAddr(fd)
	if laddr == nil {
		laddr = zeroAddr(network)
	}
	if raddr == nil {
		raddr = zeroAddr(network)
	}
	return laddr, raddr
}

// zeroAddr is an empty address of network's kind.
func zeroAddr(network string) net.Addr {
	if network == "unix" {
		return &net.UnixAddr{Net: "unix"}
	}
	return &net.TCPAddr{}
}

// connect finishes a non-blocking connect, parking on writability.
func (c *netConn) connect(ctx context.Context, sa unix.Sockaddr) error {
	err := unix.Connect(c.pfd.fd, sa)
	if err == nil {
		return nil
	}
	if err != unix.EINPROGRESS && err != unix.EINTR {
		return os.NewSyscallError("connect", err)
	}
	if d, ok := ctx.Deadline(); ok {
		// The write deadline bounds the wait with a loop timer; clearing
		// it after also takes that timer off the loop's heap.
		c.pfd.setDeadline(&c.pfd.w, d)
		defer c.pfd.setDeadline(&c.pfd.w, time.Time{})
	}
	stop := context.AfterFunc(ctx, func() { c.pfd.w.signal() })
	defer stop()
	for {
		if err := c.pfd.wait(&c.pfd.w); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if c.pfd.w.expired() {
			// The loop timer can fire a moment before ctx's own timer
			// marks ctx done; without this the loop would spin, re-arming
			// an expired deadline, until it does.
			return context.DeadlineExceeded
		}
		soerr, err := unix.GetsockoptInt(c.pfd.fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			return os.NewSyscallError("getsockopt", err)
		}
		switch unix.Errno(soerr) {
		case 0:
			if _, err := unix.Getpeername(c.pfd.fd); err == nil {
				return nil
			}
		case unix.EINPROGRESS, unix.EALREADY, unix.EINTR:
		default:
			return os.NewSyscallError("connect", unix.Errno(soerr))
		}
	}
}

// listener is the net.Listener face.
type listener struct {
	pfd     *pollFD
	network string
	addr    net.Addr
	// amu serializes Accept, as net's listeners do: the read waiter has
	// one channel, and two goroutines parked on it would leave one with no
	// arm pending and no one to wake it.
	amu sync.Mutex
}

// Accept waits for the next connection; a Close from another goroutine
// ends the wait with an error matching net.ErrClosed.
func (ln *listener) Accept() (net.Conn, error) {
	ln.amu.Lock()
	defer ln.amu.Unlock()
	p := ln.pfd
	for {
		fd, err := p.syscall(sock.Accept)
		switch {
		case err == nil:
			l, gerr := group.acquire()
			if gerr != nil {
				unix.Close(fd)
				return nil, ln.opErr(gerr)
			}
			cp, cerr := newPollFD(l, fd)
			if cerr != nil {
				// This connection cannot be driven (select's FD_SETSIZE,
				// say), but the listener is fine: a temporary error lets
				// net/http and the like log it and keep accepting.
				unix.Close(fd)
				group.release()
				return nil, ln.opErr(temporaryError{cerr})
			}
			c := &netConn{pfd: cp, network: ln.network}
			c.laddr, c.raddr = connAddrs(fd, ln.network)
			return c, nil
		case errors.Is(err, unix.EAGAIN):
			if err := p.wait(&p.r); err != nil {
				return nil, ln.opErr(err)
			}
		case sock.IsTemporaryAcceptError(err):
		case sock.IsFDExhausted(err):
			// Out of fds: wait a little rather than spin; Go's net does
			// the same (it sleeps in Accept's caller).
			time.Sleep(10 * time.Millisecond)
		default:
			return nil, ln.opErr(err)
		}
	}
}

// temporaryError marks an Accept failure that concerns one connection, not
// the listener, the way net's Temporary errors do.
type temporaryError struct{ error }

func (e temporaryError) Unwrap() error   { return e.error }
func (e temporaryError) Temporary() bool { return true }
func (e temporaryError) Timeout() bool   { return false }

func (ln *listener) opErr(err error) error {
	return &net.OpError{Op: "accept", Net: ln.network, Addr: ln.addr, Err: err}
}

// Close stops listening; a pending Accept returns an error.
func (ln *listener) Close() error {
	if err := ln.pfd.close(); err != nil {
		return ln.opErr(err)
	}
	if ln.network == "unix" {
		if a, ok := ln.addr.(*net.UnixAddr); ok {
			os.Remove(a.Name)
		}
	}
	group.release()
	return nil
}

// Addr returns the listening address.
func (ln *listener) Addr() net.Addr { return ln.addr }

// netConn is the net.Conn face of a connection driven by the loops.
type netConn struct {
	pfd          *pollFD
	network      string
	laddr, raddr net.Addr
	rmu, wmu     sync.Mutex // one Read and one Write at a time, as net.Conn
}

func (c *netConn) opErr(op string, err error) error {
	return &net.OpError{Op: op, Net: c.network, Source: c.laddr, Addr: c.raddr, Err: err}
}

// Read reads into b, parking until data, end of file, an error, Close or
// the read deadline.
func (c *netConn) Read(b []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	p := c.pfd
	for {
		if p.closed.Load() {
			return 0, c.opErr("read", net.ErrClosed)
		}
		if p.r.expired() {
			return 0, c.opErr("read", os.ErrDeadlineExceeded)
		}
		n, err := p.syscall(func(fd int) (int, error) { return unix.Read(fd, b) })
		switch {
		case n > 0:
			return n, nil
		case err == nil:
			if len(b) == 0 {
				return 0, nil
			}
			return 0, io.EOF
		case err == unix.EAGAIN:
			if err := p.wait(&p.r); err != nil {
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
func (c *netConn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	p := c.pfd
	done := 0
	for {
		if p.closed.Load() {
			return done, c.opErr("write", net.ErrClosed)
		}
		if p.w.expired() {
			return done, c.opErr("write", os.ErrDeadlineExceeded)
		}
		n, err := p.syscall(func(fd int) (int, error) { return unix.Write(fd, b[done:]) })
		if n > 0 {
			done += n
		}
		switch {
		case done == len(b):
			return done, nil
		case err == nil || err == unix.EINTR:
		case err == unix.EAGAIN:
			if err := p.wait(&p.w); err != nil {
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
// matching net.ErrClosed. It blocks until the loop has released the fd.
func (c *netConn) Close() error {
	if err := c.pfd.close(); err != nil {
		return c.opErr("close", err)
	}
	group.release()
	return nil
}

// CloseWrite shuts down the sending side (the peer reads end of file).
func (c *netConn) CloseWrite() error {
	_, err := c.pfd.syscall(func(fd int) (int, error) { return 0, unix.Shutdown(fd, unix.SHUT_WR) })
	if err != nil {
		return c.opErr("close", err)
	}
	return nil
}

// LocalAddr returns the local address.
func (c *netConn) LocalAddr() net.Addr { return c.laddr }

// RemoteAddr returns the peer's address.
func (c *netConn) RemoteAddr() net.Addr { return c.raddr }

// SetDeadline sets the read and write deadlines; the zero time clears them.
func (c *netConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// SetReadDeadline sets when a pending and any future Read times out.
func (c *netConn) SetReadDeadline(t time.Time) error {
	if c.pfd.closed.Load() {
		return c.opErr("set", net.ErrClosed)
	}
	c.pfd.setDeadline(&c.pfd.r, t)
	return nil
}

// SetWriteDeadline sets when a pending and any future Write times out.
func (c *netConn) SetWriteDeadline(t time.Time) error {
	if c.pfd.closed.Load() {
		return c.opErr("set", net.ErrClosed)
	}
	c.pfd.setDeadline(&c.pfd.w, t)
	return nil
}

// loopGroup is the set of loops behind Listen and Dial: started by the
// first listener or connection, stopped when the last one closes.
type loopGroup struct {
	mu    sync.Mutex
	srv   *Server
	loops []*Loop
	refs  int
	next  int
	// ending holds loops told to stop that may not have returned yet, so
	// waitStopped can wait for them; acquire drops the ones that have.
	ending []*Loop
}

var group loopGroup

// acquire takes a reference and returns the loop for a new fd.
func (g *loopGroup) acquire() (*Loop, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.refs == 0 {
		g.ending = slices.DeleteFunc(g.ending, loopEnded)
		b, err := ResolveBackend(0)
		if err != nil {
			return nil, err
		}
		g.srv = &Server{Handler: HandlerFuncs{}}
		g.loops = g.loops[:0]
		for range runtime.GOMAXPROCS(0) {
			l, err := newLoop(g.srv, b)
			if err != nil {
				for _, l := range g.loops {
					l.p.Close()
				}
				g.loops = nil
				return nil, err
			}
			g.loops = append(g.loops, l)
		}
		for _, l := range g.loops {
			go runGroupLoop(l)
		}
	}
	g.refs++
	l := g.loops[g.next%len(g.loops)]
	g.next++
	return l, nil
}

// runGroupLoop runs l. If l ends on a poller failure while fds are still
// on it, their parked goroutines are woken: nothing else would, and each
// then gets the loop's error from its next wait instead of hanging.
func runGroupLoop(l *Loop) {
	l.run()
	// run has returned, so this goroutine owns l's table now.
	l.tab.Range(func(_ fdtable.Handle, t target) bool {
		if p, ok := t.(*pollFD); ok {
			p.wakeAll()
		}
		return true
	})
}

// release drops a reference; the last one stops the loops, which end once
// their tables are empty.
func (g *loopGroup) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.refs--
	if g.refs > 0 {
		return
	}
	for _, l := range g.loops {
		l.Post(func() { l.stopping = true })
	}
	g.ending = append(g.ending, g.loops...)
	g.loops = nil
}

// waitStopped waits until no listener or connection holds the group and
// every loop it started has returned, or ctx ends. Tests use it so that the
// next test starts a fresh group (on the backend it asks for) and counts
// goroutines and fds without the old loops.
func (g *loopGroup) waitStopped(ctx context.Context) error {
	for {
		g.mu.Lock()
		refs, ending := g.refs, append([]*Loop(nil), g.ending...)
		g.mu.Unlock()
		if refs == 0 {
			for _, l := range ending {
				select {
				case <-l.done:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			g.mu.Lock()
			g.ending = slices.DeleteFunc(g.ending, loopEnded)
			g.mu.Unlock()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("reactor: %d listeners and connections still open: %w", refs, ctx.Err())
		case <-time.After(time.Millisecond): // polling the count, bounded by ctx
		}
	}
}

// loopEnded reports whether l's run has returned.
func loopEnded(l *Loop) bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}
