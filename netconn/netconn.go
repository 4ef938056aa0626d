// Package netconn is the net.Conn face of the reactor: a net.Listener and
// net.Conns whose sockets are driven by reactor loops instead of Go's
// runtime netpoller, so net/http, crypto/tls, gRPC and any other Go code
// that takes a net.Listener or a net.Conn runs over the loops unchanged.
//
// It is built only on the reactor package's exported API: each socket is
// watched on one loop of a reactor.Group with Loop.Watch, and a goroutine
// that would block parks on a per-connection waiter the loop signals
// (docs/netconn.md says how, docs/measurements.md what it costs beside
// package net).
//
// Connections keep the whole net.Conn contract: one Read and one Write may
// run at once, Close unblocks both, deadlines (on the monotonic clock) make
// pending and future calls fail with an error matching
// os.ErrDeadlineExceeded. TCP connections get what Go's net gives its own:
// TCP_NODELAY and keep-alive probes every 15 s, and the methods a user calls
// on a *net.TCPConn (SetNoDelay, SetKeepAlive, SetLinger, CloseWrite, ...)
// are on *Conn, as is SyscallConn.
//
// # Which loops
//
// Listen, Dial and DialContext use a shared group of loops (one per four Ps,
// at least one) on the default backend (reactor.ResolveBackend: $REACTOR_BACKEND, else epoll on
// linux and kqueue on the BSDs and darwin), started by the first listener or
// connection and ended when the last one closes. A Config with a Group of
// one's own chooses the count and the backend, and the same loops can watch
// one's own fds too (reactor.Loop.Watch).
package netconn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor"
	"github.com/muxkit/reactor/internal/sock"
)

// errMissingAddress is Dial's error for an empty address, as net's.
var errMissingAddress = errors.New("missing address")

// Config says which loops carry the listeners and connections it makes,
// and how TCP connections are set up. The zero Config is what Listen, Dial
// and DialContext use.
type Config struct {
	// Group carries the sockets, spread over its loops in turn; nil means
	// the package's shared group (see the package documentation). The
	// caller owns a Group it sets here: closing it while connections are
	// open makes their pending and later calls fail.
	Group *reactor.Group
	// KeepAlive is the idle time before a TCP connection's first
	// keep-alive probe, as net.Dialer.KeepAlive and
	// net.ListenConfig.KeepAlive: 0 means 15 s, negative turns the probes
	// off.
	KeepAlive time.Duration
}

// Listen announces on the local address like net.Listen (network tcp,
// tcp4, tcp6 or unix) on the shared loops; see Config.Listen.
func Listen(network, address string) (net.Listener, error) {
	return Config{}.Listen(network, address)
}

// Dial connects to address like net.Dial (network tcp, tcp4, tcp6 or unix)
// on the shared loops; see Config.DialContext.
func Dial(network, address string) (net.Conn, error) {
	return Config{}.DialContext(context.Background(), network, address)
}

// DialContext is Dial bounded by ctx; see Config.DialContext.
func DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return Config{}.DialContext(ctx, network, address)
}

// Listen announces on the local address like net.Listen (network tcp,
// tcp4, tcp6 or unix; port 0 picks a free one) and returns a listener whose
// socket, and whose accepted connections (each a *Conn), are driven by
// cfg's loops. Accept may be called from any goroutine; it blocks, and
// Close from another goroutine ends it.
func (cfg Config) Listen(network, address string) (net.Listener, error) {
	g, release, err := cfg.group()
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	sysfd, addr, err := sock.Listen(network, address)
	if err != nil {
		release()
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	f, err := newFD(g.Next(), sysfd)
	if err != nil {
		unix.Close(sysfd)
		release()
		return nil, &net.OpError{Op: "listen", Net: network, Addr: addr, Err: err}
	}
	return &listener{fd: f, cfg: cfg, group: g, release: release, network: network, addr: addr, closed: make(chan struct{})}, nil
}

// Dial connects like net.Dial; see DialContext.
func (cfg Config) Dial(network, address string) (net.Conn, error) {
	return cfg.DialContext(context.Background(), network, address)
}

// DialContext connects to address like net.Dialer.DialContext (network
// tcp, tcp4, tcp6 or unix) and returns a *Conn driven by one of cfg's loops.
// The connect is abandoned, and the error wraps ctx's, when ctx ends
// first; it blocks the calling goroutine until then.
func (cfg Config) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	var raddr net.Addr // the peer, once resolved, for error messages as net's
	opErr := func(err error) error { return &net.OpError{Op: "dial", Net: network, Addr: raddr, Err: err} }
	// An ended context fails the dial before any socket exists, as net's
	// does; a connect to loopback may otherwise complete at once.
	if err := ctx.Err(); err != nil {
		return nil, opErr(err)
	}
	if address == "" {
		return nil, opErr(errMissingAddress)
	}
	switch network {
	case "udp", "udp4", "udp6", "unixgram":
		return cfg.dialPacket(network, address)
	}
	sa, family, err := sock.Resolve(network, address)
	if err != nil {
		return nil, opErr(err)
	}
	raddr = sock.Addr(sa)
	g, release, err := cfg.group()
	if err != nil {
		return nil, opErr(err)
	}
	sysfd, err := sock.Socket(family)
	if err != nil {
		release()
		return nil, opErr(err)
	}
	f, err := newFD(g.Next(), sysfd)
	if err != nil {
		unix.Close(sysfd)
		release()
		return nil, opErr(err)
	}
	c := &Conn{fd: f, network: network, release: release}
	if err := c.connect(ctx, sa); err != nil {
		f.close()
		release()
		return nil, opErr(err)
	}
	if err := cfg.setup(sysfd, network); err != nil {
		c.Close()
		return nil, opErr(err)
	}
	c.laddr, c.raddr = connAddrs(sysfd, network)
	return c, nil
}

// setup gives a new TCP connection Go's net defaults (see Config).
func (cfg Config) setup(sysfd int, network string) error {
	if network == "unix" {
		return nil
	}
	return sock.SetTCPDefaults(sysfd, cfg.KeepAlive)
}

// group returns the loops to use and what to call when the listener or
// connection made on them closes.
func (cfg Config) group() (*reactor.Group, func(), error) {
	if cfg.Group != nil {
		return cfg.Group, func() {}, nil
	}
	g, err := shared.acquire()
	if err != nil {
		return nil, nil, err
	}
	return g, shared.release, nil
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
func (c *Conn) connect(ctx context.Context, sa unix.Sockaddr) error {
	f := c.fd
	err := unix.Connect(f.sysfd, sa)
	if err == nil {
		return nil
	}
	if err != unix.EINPROGRESS && err != unix.EINTR {
		return os.NewSyscallError("connect", err)
	}
	if d, ok := ctx.Deadline(); ok {
		f.setDeadline(&f.w, d)
		defer f.setDeadline(&f.w, time.Time{})
	}
	stop := context.AfterFunc(ctx, f.w.signal)
	defer stop()
	for {
		if err := f.wait(&f.w); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if f.w.expired() {
			// The loop timer can fire a moment before ctx's own timer
			// marks ctx done; without this the loop would spin, re-arming
			// an expired deadline, until it does.
			return context.DeadlineExceeded
		}
		soerr, err := unix.GetsockoptInt(f.sysfd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			return os.NewSyscallError("getsockopt", err)
		}
		switch unix.Errno(soerr) {
		case 0:
			if _, err := unix.Getpeername(f.sysfd); err == nil {
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
	fd      *fd
	cfg     Config
	group   *reactor.Group
	release func()
	network string
	addr    net.Addr
	// amu serializes Accept, as net's listeners do: the read waiter has
	// one channel, and two goroutines parked on it would leave one with no
	// arm pending and no one to wake it.
	amu sync.Mutex
	// closed is closed by Close: it ends Accept's wait for fds.
	closed chan struct{}
}

// Accept waits for the next connection and returns it as a *Conn; a Close
// from another goroutine ends the wait with an error matching
// net.ErrClosed.
func (ln *listener) Accept() (net.Conn, error) {
	ln.amu.Lock()
	defer ln.amu.Unlock()
	f := ln.fd
	f.r.prepare()
	var backoff sock.AcceptBackoff
	for {
		sysfd, err := f.syscall(sock.Accept)
		switch {
		case err == nil:
			return ln.newConn(sysfd)
		case errors.Is(err, unix.EAGAIN):
			if err := f.wait(&f.r); err != nil {
				return nil, ln.opErr(err)
			}
		case sock.IsTemporaryAcceptError(err):
		case sock.IsFDExhausted(err):
			// Out of fds: wait rather than spin, as the reactor's own
			// acceptor does; Close ends the wait.
			t := time.NewTimer(backoff.Next())
			select {
			case <-t.C:
			case <-ln.closed:
				t.Stop()
			}
			continue
		default:
			return nil, ln.opErr(err)
		}
	}
}

// newConn drives an accepted socket on the next loop.
func (ln *listener) newConn(sysfd int) (net.Conn, error) {
	release := func() {}
	if ln.cfg.Group == nil {
		// The listener holds the shared group, so this is the same one.
		if _, err := shared.acquire(); err != nil {
			unix.Close(sysfd)
			return nil, ln.opErr(err)
		}
		release = shared.release
	}
	if err := ln.cfg.setup(sysfd, ln.network); err != nil {
		unix.Close(sysfd)
		release()
		return nil, ln.opErr(temporaryError{err})
	}
	f, err := newFD(ln.group.Next(), sysfd)
	if err != nil {
		// This connection cannot be driven (select's FD_SETSIZE, say), but
		// the listener is fine: a temporary error lets net/http and the
		// like log it and keep accepting.
		unix.Close(sysfd)
		release()
		return nil, ln.opErr(temporaryError{err})
	}
	c := &Conn{fd: f, network: ln.network, release: release}
	c.laddr, c.raddr = connAddrs(sysfd, ln.network)
	return c, nil
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

// Close stops listening; a pending Accept returns an error matching
// net.ErrClosed. A unix socket's file is removed.
func (ln *listener) Close() error {
	if err := ln.fd.close(); err != nil {
		return ln.opErr(err)
	}
	close(ln.closed)
	if ln.network == "unix" {
		if a, ok := ln.addr.(*net.UnixAddr); ok {
			os.Remove(a.Name)
		}
	}
	ln.release()
	return nil
}

// Addr returns the listening address.
func (ln *listener) Addr() net.Addr { return ln.addr }

// sharedLoops is the shared group's size: one loop per four Ps, at least
// one. A netconn loop only turns readiness into wake-ups; the work runs in
// the goroutines it wakes, so one loop serves several Ps, and fewer loops
// batch more events per wait (docs/measurements.md has net/http over one
// loop and over two).
func sharedLoops() int { return max(1, runtime.GOMAXPROCS(0)/4) }

// sharedGroup is the group behind the zero Config: started by the first
// listener or connection, closed when the last one closes.
type sharedGroup struct {
	mu    sync.Mutex
	g     *reactor.Group
	refs  int
	ended []*reactor.Group // closed by release, maybe still ending
}

var shared sharedGroup

// acquire takes a reference and returns the group, starting it if needed.
func (s *sharedGroup) acquire() (*reactor.Group, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refs == 0 {
		g, err := reactor.NewGroup(reactor.GroupConfig{Loops: sharedLoops()})
		if err != nil {
			return nil, err
		}
		s.g = g
	}
	s.refs++
	return s.g, nil
}

// release drops a reference; the last one closes the group. The loops end
// in the background: Close of the last connection does not wait for them.
func (s *sharedGroup) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refs--
	if s.refs > 0 {
		return
	}
	g := s.g
	s.g = nil
	s.ended = append(s.ended, g)
	go g.Close()
}

// waitStopped waits until no listener or connection holds the shared group
// and every group it started has ended, or ctx ends. Tests use it so that
// the next test starts a fresh group and counts goroutines and fds without
// the old loops.
func (s *sharedGroup) waitStopped(ctx context.Context) error {
	for {
		s.mu.Lock()
		refs, ended := s.refs, s.ended
		s.ended = nil
		s.mu.Unlock()
		for _, g := range ended {
			done := make(chan struct{})
			go func() { g.Close(); close(done) }()
			select {
			case <-done:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if refs == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("netconn: %d listeners and connections still open: %w", refs, ctx.Err())
		case <-time.After(time.Millisecond): // polling the count, bounded by ctx
		}
	}
}
