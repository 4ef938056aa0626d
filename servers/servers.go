// Package servers holds what the four reference servers share, so they can
// be compared fairly: a listening socket over a bare fd ([Listener]), a
// blocking connection over a bare fd ([Conn]), the one handler shape the
// three blocking models serve ([Handler]) and the [Server] interface every
// model implements.
//
// The models themselves are the subpackages:
//
//   - iterative: one client at a time, to the end. Simple; makes clients wait.
//   - multiprocess: a process per client (or a pre-forked pool). Isolates
//     clients; costly to create and shares nothing.
//   - threadpool: an OS thread per active client, from a pool or one per
//     client. Cheaper than processes and shares memory, but each blocked
//     client holds a thread.
//   - multiplex: the reactor's event loops. Thousands of clients in one
//     thread, but no handler may ever block.
//
// Everything here is built on golang.org/x/sys/unix, not on package net:
// net multiplexes internally (its blocking Read parks a goroutine on the
// runtime's own epoll), which would hide the model being shown. A [Conn]'s
// Read is a read(2) that blocks the calling OS thread.
package servers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor"
	"github.com/muxkit/reactor/internal/sock"
)

// Server is what every model implements. Serve serves ln until Shutdown and
// then returns [ErrServerClosed]. Shutdown stops accepting (it closes ln:
// closing is what wakes a blocked Accept), ends the clients being served
// and returns when they are gone or ctx is done. Shutdown is safe from any
// goroutine; a Server serves once.
type Server interface {
	Serve(ln *Listener) error
	Shutdown(ctx context.Context) error
}

// Handler serves one client of a blocking model over a blocking connection,
// until the client leaves or the handler is done. It runs on its own
// goroutine (and, in the thread models, its own OS thread); blocking is its
// nature. The server closes c after Handler returns; the error, if any, is
// the reason, and io.EOF or net.ErrClosed are not failures.
type Handler func(c *Conn) error

// Echo is a Handler that writes every byte it reads back to the client
// until the client closes. It allocates one 16 KiB buffer per client.
func Echo(c *Conn) error {
	buf := make([]byte, 16<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}

// Listener is a listening socket over a bare, non-blocking fd. Accept
// blocks the calling goroutine's thread in poll(2) until a client or Close
// arrives. Its methods are safe from any goroutine.
type Listener struct {
	fd     int
	addr   net.Addr
	wr, ww int          // a pipe: Close writes ww, which wakes every poll
	mu     sync.RWMutex // Accept holds it shared; Close exclusively
	closed atomic.Bool
}

// Listen opens a listening socket: network tcp, tcp4, tcp6 or unix; port 0
// picks a free port (see Addr).
func Listen(network, address string) (*Listener, error) {
	fd, addr, err := sock.Listen(network, address)
	if err != nil {
		return nil, err
	}
	ln, err := newListener(fd, addr)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return ln, nil
}

// FileListener makes a Listener of fd, a listening stream socket that the
// Listener then owns (Close closes it). fd is made non-blocking.
func FileListener(fd int) (*Listener, error) {
	if fd < 0 {
		return nil, unix.EBADF
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		return nil, os.NewSyscallError("fcntl", err)
	}
	return newListener(fd, sock.LocalAddr(fd))
}

func newListener(fd int, addr net.Addr) (*Listener, error) {
	r, w, err := sock.Pipe()
	if err != nil {
		return nil, err
	}
	return &Listener{fd: fd, addr: addr, wr: r, ww: w}, nil
}

// Fd is the listening socket's fd; it stays the Listener's.
func (ln *Listener) Fd() int { return ln.fd }

// Addr is the address the Listener is bound to.
func (ln *Listener) Addr() net.Addr { return ln.addr }

// Accept waits for a client and returns it as a blocking Conn. After Close
// (or during it) the error matches net.ErrClosed. A client that resets
// before it is accepted is skipped. When the process is out of fds
// (EMFILE, ENFILE), Accept does not spin: it waits 10 ms, doubling up to
// 1 s, and tries again, the client waiting in the kernel's queue meanwhile.
func (ln *Listener) Accept() (*Conn, error) {
	ln.mu.RLock()
	defer ln.mu.RUnlock()
	pfd := []unix.PollFd{{Fd: int32(ln.fd), Events: unix.POLLIN}, {Fd: int32(ln.wr), Events: unix.POLLIN}}
	var backoff sock.AcceptBackoff
	for {
		if ln.closed.Load() {
			return nil, net.ErrClosed
		}
		fd, err := sock.Accept(ln.fd)
		if err == nil {
			if err := unix.SetNonblock(fd, false); err != nil {
				unix.Close(fd)
				return nil, os.NewSyscallError("fcntl", err)
			}
			return &Conn{fd: fd}, nil
		}
		switch {
		case errors.Is(err, unix.EAGAIN):
		case sock.IsTemporaryAcceptError(err):
			continue
		case sock.IsFDExhausted(err):
			pfd[1].Revents = 0
			if _, err := unix.Poll(pfd[1:], int(backoff.Next()/time.Millisecond)); err != nil && err != unix.EINTR {
				return nil, os.NewSyscallError("poll", err)
			}
			continue
		default:
			return nil, err
		}
		backoff.Reset()
		pfd[0].Revents, pfd[1].Revents = 0, 0
		if _, err := unix.Poll(pfd, -1); err != nil && err != unix.EINTR {
			return nil, os.NewSyscallError("poll", err)
		}
	}
}

// Close stops the Listener: every Accept in progress returns an error
// matching net.ErrClosed, and the fd is closed once they have. Close is
// idempotent; it returns after the fd is closed.
func (ln *Listener) Close() error {
	if ln.closed.Swap(true) {
		return nil
	}
	unix.Write(ln.ww, []byte{1}) // left unread: the pipe stays readable
	ln.mu.Lock()
	defer ln.mu.Unlock()
	unix.Close(ln.wr)
	unix.Close(ln.ww)
	if err := unix.Close(ln.fd); err != nil {
		return os.NewSyscallError("close", err)
	}
	return nil
}

// Conn is a client's connection over a bare, blocking fd: Read and Write
// are read(2) and write(2), blocking the calling OS thread. One goroutine
// serves a Conn; only Shutdown may be called from another goroutine.
type Conn struct {
	fd     int
	mu     sync.Mutex // orders Close against Shutdown from another goroutine
	closed atomic.Bool
}

// NewConn makes a Conn of fd, a connected stream socket that the Conn then
// owns; fd is made blocking.
func NewConn(fd int) (*Conn, error) {
	if fd < 0 {
		return nil, unix.EBADF
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		return nil, os.NewSyscallError("fcntl", err)
	}
	return &Conn{fd: fd}, nil
}

// Fd is the socket's fd; it stays the Conn's.
func (c *Conn) Fd() int { return c.fd }

// Read blocks until some bytes arrive and returns them; the client's
// orderly close is io.EOF. After Close the error matches net.ErrClosed.
func (c *Conn) Read(p []byte) (int, error) {
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	if len(p) == 0 {
		return 0, nil
	}
	for {
		n, err := unix.Read(c.fd, p)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return 0, os.NewSyscallError("read", err)
		case n == 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// Write blocks until all of p is written or an error occurs (EPIPE or
// ECONNRESET when the client is gone, wrapped in an *os.SyscallError).
func (c *Conn) Write(p []byte) (int, error) {
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	n := 0
	for n < len(p) {
		m, err := unix.Write(c.fd, p[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, os.NewSyscallError("write", err)
		}
		n += m
	}
	return n, nil
}

// LocalAddr is the server's end of the connection.
func (c *Conn) LocalAddr() net.Addr { return sock.LocalAddr(c.fd) }

// RemoteAddr is the client's end of the connection.
func (c *Conn) RemoteAddr() net.Addr { return sock.RemoteAddr(c.fd) }

// Shutdown shuts the socket down in direction how (unix.SHUT_RD, SHUT_WR or
// SHUT_RDWR) without closing the fd: a Read blocked in another goroutine
// then returns io.EOF (SHUT_RD), a blocked Write fails (SHUT_WR). Safe from
// any goroutine; after Close it does nothing.
func (c *Conn) Shutdown(how int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Load() {
		return nil
	}
	if err := unix.Shutdown(c.fd, how); err != nil && err != unix.ENOTCONN {
		return os.NewSyscallError("shutdown", err)
	}
	return nil
}

// Close closes the connection. It is idempotent; later calls to Read and
// Write return an error matching net.ErrClosed.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Swap(true) {
		return nil
	}
	if err := unix.Close(c.fd); err != nil {
		return os.NewSyscallError("close", err)
	}
	return nil
}

// Clients is the set of connections a blocking server is serving, so that
// its Shutdown can end them. Its methods are safe from any goroutine.
type Clients struct {
	mu      sync.Mutex
	m       map[*Conn]struct{}
	closing bool
	done    chan struct{} // made by the first Shutdown; closed when m is empty
}

// Add records c as served. After Shutdown has begun it closes c and
// reports false.
func (s *Clients) Add(c *Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		c.Close()
		return false
	}
	if s.m == nil {
		s.m = make(map[*Conn]struct{})
	}
	s.m[c] = struct{}{}
	return true
}

// Done closes c and forgets it.
func (s *Clients) Done(c *Conn) {
	c.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	_, had := s.m[c]
	delete(s.m, c)
	if had && s.closing && len(s.m) == 0 {
		close(s.done)
	}
}

// Len is the number of clients being served.
func (s *Clients) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// Shutdown refuses further clients and ends the ones being served: first
// by shutting their sockets for reading, so a handler blocked in Read sees
// io.EOF and finishes writing what it has; if ctx ends first, by shutting
// them down both ways, so a handler blocked writing to a client that does
// not read fails too. It returns when every client is Done, or ctx.Err()
// once ctx is done and they are all shut down.
func (s *Clients) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closing {
		s.closing = true
		s.done = make(chan struct{})
		if len(s.m) == 0 {
			close(s.done)
		}
	}
	done := s.done // the same channel for every call
	live := s.snapshot()
	s.mu.Unlock()
	for _, c := range live {
		c.Shutdown(unix.SHUT_RD)
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	live = s.snapshot()
	s.mu.Unlock()
	for _, c := range live {
		c.Shutdown(unix.SHUT_RDWR)
	}
	return ctx.Err()
}

func (s *Clients) snapshot() []*Conn {
	live := make([]*Conn, 0, len(s.m))
	for c := range s.m {
		live = append(live, c)
	}
	return live
}

// ErrServerClosed is what Serve returns after Shutdown: the reactor's own.
var ErrServerClosed = reactor.ErrServerClosed

// Base is the Serve and Shutdown machinery the blocking models share: n
// accept loops over one Listener, and the set of clients being served. A
// model embeds it (or holds one) and says what serving an accepted client
// means. Its methods are safe from any goroutine.
type Base struct {
	// Clients are the connections being served.
	Clients Clients

	mu      sync.Mutex
	ln      *Listener
	started bool
	stopped bool
	wg      sync.WaitGroup // the accept loops
	done    chan struct{}  // closed when Serve has returned
}

// Serve runs n accept loops on ln until Shutdown, the calling goroutine
// being one of them, and returns ErrServerClosed after every loop has
// stopped. Each accepted client is recorded in Clients and given to serve
// with the number of the accept loop that took it (0 to n-1),
// which owns it from then on and must call Clients.Done(c) when it is
// finished with it; the loop accepts again when serve returns. With lock,
// every accept loop is locked to an OS thread of its own for its life
// (runtime.LockOSThread), and so is the serve it calls. name prefixes the
// errors. A Base serves once: a second Serve, or a nil ln, is an error.
func (b *Base) Serve(name string, ln *Listener, n int, lock bool, serve func(i int, c *Conn)) error {
	b.mu.Lock()
	switch {
	case ln == nil:
		b.mu.Unlock()
		return fmt.Errorf("%s: Serve with a nil Listener", name)
	case n < 1:
		b.mu.Unlock()
		return fmt.Errorf("%s: %d accept loops, want at least 1", name, n)
	case b.started:
		b.mu.Unlock()
		return fmt.Errorf("%s: Server already served", name)
	case b.stopped:
		b.mu.Unlock()
		return ErrServerClosed
	}
	b.started, b.ln, b.done = true, ln, make(chan struct{})
	b.mu.Unlock()
	defer close(b.done)

	errs := make([]error, n)
	loop := func(i int) {
		defer b.wg.Done()
		if lock {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
		}
		for {
			c, err := ln.Accept()
			if err != nil {
				if !b.Stopping() && !errors.Is(err, net.ErrClosed) {
					errs[i] = fmt.Errorf("%s: accept: %w", name, err)
				}
				return
			}
			if !b.Clients.Add(c) {
				return
			}
			serve(i, c)
		}
	}
	b.wg.Add(n)
	for i := 1; i < n; i++ {
		go loop(i)
	}
	loop(0)
	b.wg.Wait()
	if err := errors.Join(errs...); err != nil && !b.Stopping() {
		return err
	}
	return ErrServerClosed
}

// Stopping reports whether Shutdown has been called.
func (b *Base) Stopping() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stopped
}

// Shutdown closes the Listener, so every accept loop stops, ends the
// clients being served (Clients.Shutdown) and waits for Serve to return or
// ctx to end.
func (b *Base) Shutdown(ctx context.Context) error {
	b.mu.Lock()
	b.stopped = true
	ln, done := b.ln, b.done
	b.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	err := b.Clients.Shutdown(ctx)
	if done != nil {
		select {
		case <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return err
}
