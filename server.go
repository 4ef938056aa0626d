package reactor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/internal/sock"
	"github.com/muxkit/reactor/poller"
)

// ErrServerClosed is returned by Serve after Shutdown, by calls on a
// Server that was shut down, and is the reason OnClose gets for connections
// closed by Shutdown.
var ErrServerClosed = errors.New("reactor: server closed")

// BackendEnv names the environment variable that overrides DefaultBackend
// without a rebuild (REACTOR_BACKEND=poll). It is read by Server.Listen,
// Server.ListenPacket and Server.ServeFD, by Serve, and by NewGroup, each
// time, wherever the Backend field is zero; an unknown name is an error
// then, never a silent fallback.
const BackendEnv = "REACTOR_BACKEND"

// Server serves a listening socket with event loops. Set the fields, then
// call ListenAndServe, or Listen and Serve, or ServeFD; a Server serves
// once. By default connections are accepted by one acceptor on the first
// loop and handed to the loops round-robin; ReusePort gives each loop a
// listening socket of its own instead (the package documentation and
// docs/measurements.md say why the default is the acceptor).
type Server struct {
	// Handler receives every connection's events; required.
	Handler Handler
	// Backend is the poller backend; zero means $REACTOR_BACKEND if set,
	// else DefaultBackend.
	Backend poller.Backend
	// NewPoller, if set, gives each loop its poller instead of
	// poller.New(Backend), for tests (see poller/pollertest) and custom
	// backends; Backend and $REACTOR_BACKEND are then ignored.
	NewPoller func() (poller.Poller, error)
	// Loops is the number of event loops; zero means runtime.GOMAXPROCS(0).
	Loops int
	// IdleTimeout closes a connection that has read nothing for this long
	// (reason ErrIdleTimeout); zero means never.
	IdleTimeout time.Duration
	// Limits sets each connection's write queue watermarks and hard cap;
	// zero fields take the defaults.
	Limits Limits
	// MaxInbound caps the bytes a handler may keep for one connection with
	// Conn.Keep; past it the connection closes with ErrInboundFull. Zero
	// means DefaultMaxInbound (1 MiB).
	MaxInbound int
	// KeepAlive is the keep-alive probe timing of accepted TCP connections,
	// which also get TCP_NODELAY, as Go's net gives them: zero means 15 s
	// idle, then a probe every 15 s, 9 probes; negative turns probes off.
	// Conn's Set methods change both per connection.
	KeepAlive time.Duration
	// Logger, if set, receives the errors no caller can be handed: a
	// failing accept, poller or close, the acceptor's fd back-off. Nil
	// logs nothing.
	Logger *slog.Logger
	// MaxConns caps open connections; past it new ones are closed at once.
	// Zero means no cap.
	MaxConns int
	// ReusePort (linux only) makes Listen open one SO_REUSEPORT listening
	// socket per loop, all on one address, and each loop accepts from its
	// own: no hand-off between loops, and no loop accepts for the others.
	// The kernel picks the socket, and so the loop, by a hash of the
	// client's address and port, so the spread is even only on average
	// (the default acceptor deals connections out exactly in turn), and the
	// connections waiting in a busy loop's backlog wait for that loop even
	// while others idle. Accepting, the fd back-off, MaxConns and Shutdown
	// behave as without it; Shutdown closes every listener, and a client
	// still in a listener's backlog then is refused, as with one listener.
	// Loops is read by Listen. Elsewhere than linux, for a unix socket and
	// with ServeFD (one socket the caller owns) Listen or Serve returns an
	// error matching errors.ErrUnsupported, never a silent fallback.
	ReusePort bool
	// Uring tunes the loops on the completion engine (Backend
	// Uring), where a bad value is an error from Serve; other backends
	// ignore it.
	Uring UringConfig
	// OnLoopStart and OnLoopStop, if set, are called on each loop's
	// goroutine as it starts, before it serves anything, and as it ends,
	// after every connection it served has closed: the place to make and
	// release per-loop state (Loop.SetContext), as GroupConfig's.
	OnLoopStart, OnLoopStop func(l *Loop)

	mu      sync.Mutex
	state   int   // stateNew, stateServing, stateDone
	lnfds   []int // the listening sockets: one, or one per loop with ReusePort
	ownLn   bool
	reuse   bool // lnfds came from Listen with ReusePort
	addr    net.Addr
	group   *Group
	loops   []*Loop // group.loops
	backend poller.Backend
	accs    []*acceptor  // one per listening socket
	packets []packetSpec // datagram sockets bound by ListenPacket, until Serve
	svc     *service
	tcp     bool // the listener is a TCP socket: accepted ones get TCP options
	nconns  atomic.Int64
	stopped chan struct{} // closed when every loop has returned
	failed  error         // why serving ended early (fail), if it did
}

const (
	stateNew = iota
	stateListening
	stateServing
	stateDone
)

// Listen opens the listening socket (network tcp, tcp4, tcp6 or unix)
// without serving yet, so Addr is known (port 0 picks a free port). An
// unknown $REACTOR_BACKEND is an error here already, as in Serve. With
// ReusePort it opens one socket per loop: the first picks the port, the
// others bind to the address the first got.
func (s *Server) Listen(network, address string) error {
	if err := s.lockIn(stateNew, "Listen on a Server that already listens or serves"); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if s.NewPoller == nil {
		// Before any socket exists: a program that announces it listens
		// must not fail only later, in Serve.
		b, err := ResolveBackend(s.Backend)
		if err != nil {
			return err
		}
		if err := checkBackend(b); err != nil {
			return err
		}
	}
	if s.ReusePort {
		return s.listenReusePort(network, address)
	}
	fd, addr, err := sock.Listen(network, address)
	if err != nil {
		return err
	}
	s.lnfds, s.ownLn, s.addr, s.state = []int{fd}, true, addr, stateListening
	s.tcp = network != "unix"
	return nil
}

// listenReusePort opens the SO_REUSEPORT sockets, one per loop; with s.mu
// held.
func (s *Server) listenReusePort(network, address string) error {
	n := s.Loops
	if n <= 0 {
		n = runtime.GOMAXPROCS(0) // a negative Loops is refused by Serve
	}
	var fds []int
	var first net.Addr
	for range n {
		fd, addr, err := sock.ListenReusePort(network, address)
		if err != nil {
			for _, fd := range fds {
				unix.Close(fd)
			}
			return fmt.Errorf("reactor: Server.ReusePort: %w", err)
		}
		if first == nil {
			first, address = addr, addr.String() // the port the first one got
		}
		fds = append(fds, fd)
	}
	s.lnfds, s.ownLn, s.reuse, s.addr, s.state = fds, true, true, first, stateListening
	s.tcp = network != "unix"
	return nil
}

// Addr returns the listening address, or nil before Listen or ServeFD.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// ListenAndServe is Listen followed by Serve.
func (s *Server) ListenAndServe(network, address string) error {
	if err := s.Listen(network, address); err != nil {
		return err
	}
	return s.Serve()
}

// Serve serves the socket opened by Listen until Shutdown, then returns
// ErrServerClosed; it closes that socket. It blocks the calling goroutine.
func (s *Server) Serve() error {
	if err := s.lockIn(stateListening, "Serve needs Listen first, and serves once"); err != nil {
		return err
	}
	return s.serve()
}

// lockIn locks s.mu if s is in state want. Otherwise it returns, unlocked,
// ErrServerClosed after a Shutdown, or an error saying misuse.
func (s *Server) lockIn(want int, misuse string) error {
	s.mu.Lock()
	if s.state == want {
		return nil
	}
	st := s.state
	s.mu.Unlock()
	if st == stateDone {
		return ErrServerClosed
	}
	return errors.New("reactor: " + misuse)
}

// ServeFD serves the listening socket fd, which the caller keeps owning
// (Shutdown stops watching it but does not close it), until Shutdown; then
// it returns ErrServerClosed. An fd that is not a listening socket is an
// error at once. It blocks the calling goroutine.
func (s *Server) ServeFD(fd int) error {
	if err := s.lockIn(stateNew, "ServeFD on a Server that already listens or serves"); err != nil {
		return err
	}
	if fd < 0 {
		s.mu.Unlock()
		return fmt.Errorf("reactor: ServeFD: negative fd %d", fd)
	}
	if s.ReusePort {
		s.state = stateDone
		s.mu.Unlock()
		return fmt.Errorf("reactor: ServeFD serves one socket the caller owns; Server.ReusePort needs one per loop from Listen: %w", errors.ErrUnsupported)
	}
	if on, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || on == 0 {
		s.mu.Unlock()
		if err != nil {
			return fmt.Errorf("reactor: ServeFD: fd %d: %w", fd, os.NewSyscallError("getsockopt", err))
		}
		return fmt.Errorf("reactor: ServeFD: fd %d is not a listening socket", fd)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		s.mu.Unlock()
		return os.NewSyscallError("fcntl", err)
	}
	s.lnfds, s.ownLn, s.addr = []int{fd}, false, sock.LocalAddr(fd)
	_, s.tcp = s.addr.(*net.TCPAddr)
	return s.serve()
}

// config checks the fields and resolves the backend and loop count.
func (s *Server) config() error {
	if s.Handler == nil && len(s.lnfds) > 0 {
		return errors.New("reactor: Server.Handler is nil")
	}
	if s.Loops < 0 || s.MaxConns < 0 || s.IdleTimeout < 0 || s.MaxInbound < 0 {
		return fmt.Errorf("reactor: negative Loops (%d), MaxConns (%d), IdleTimeout (%v) or MaxInbound (%d)", s.Loops, s.MaxConns, s.IdleTimeout, s.MaxInbound)
	}
	if err := s.Limits.Validate(); err != nil {
		return err
	}
	s.svc = newService(s.Handler, s.Limits, s.IdleTimeout, s.MaxInbound, s.KeepAlive)
	s.svc.srv = s
	if s.ReusePort != s.reuse {
		return errors.New("reactor: Server.ReusePort changed between Listen and Serve")
	}
	if s.NewPoller != nil {
		return nil // Backend and $REACTOR_BACKEND do not apply
	}
	b, err := ResolveBackend(s.Backend)
	if err != nil {
		return err
	}
	s.backend = b
	return nil
}

// ResolveBackend returns b if it is set, else the backend named by
// $REACTOR_BACKEND if that is set, else DefaultBackend. An unknown name in
// the environment is an error.
func ResolveBackend(b poller.Backend) (poller.Backend, error) {
	if b != 0 {
		return b, nil
	}
	if name, ok := os.LookupEnv(BackendEnv); ok && name != "" {
		b, err := poller.ParseBackend(name)
		if err != nil {
			return 0, fmt.Errorf("reactor: %s: %w", BackendEnv, err)
		}
		return b, nil
	}
	return DefaultBackend, nil
}

// serve starts the loops; called with s.mu held, which it releases.
func (s *Server) serve() error {
	err := s.config()
	if err == nil {
		err = s.start()
	}
	if err != nil {
		s.state = stateDone
		s.closeListeners()
		s.mu.Unlock()
		return err
	}
	s.state = stateServing
	loops := s.loops
	s.mu.Unlock()

	s.group.start(s.fail)
	s.group.wait()
	// Every loop has returned, so their acceptors are ours: stop those a
	// failed loop left registered, closing the listeners the Server opened.
	for _, a := range s.accs {
		a.stop()
	}
	close(s.stopped)
	for _, l := range loops {
		if l.err != nil && !errors.Is(l.err, poller.ErrClosed) {
			return l.err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed != nil {
		return s.failed
	}
	return ErrServerClosed
}

// fail ends serving after a loop or an acceptor failed with err: the loops
// stop accepting, close their connections now (reason err) and return, and
// Serve returns err.
func (s *Server) fail(err error) {
	s.mu.Lock()
	if s.failed == nil {
		s.failed = err
	}
	s.state = stateDone
	loops, accs := s.loops, s.accs
	s.mu.Unlock()
	for _, a := range accs {
		a.loop.Post(a.stop) // ErrServerClosed on the failed loop: serve stops it
	}
	for _, l := range loops {
		l.Post(func() { l.forceStop(err) })
	}
}

// closeListeners closes the listening sockets the Server opened, and the
// datagram sockets it bound; with s.mu held, before serving.
func (s *Server) closeListeners() {
	s.closePackets()
	if s.ownLn {
		for _, fd := range s.lnfds {
			unix.Close(fd)
		}
	}
}

// start creates the loops and registers the acceptors; with s.mu held.
func (s *Server) start() error {
	n := s.Loops
	if s.reuse {
		n = len(s.lnfds) // one loop per socket, as Listen counted them
	}
	g, err := newGroup(GroupConfig{Loops: n, Backend: s.backend, NewPoller: s.NewPoller, Logger: s.Logger, Uring: s.Uring,
		OnLoopStart: s.OnLoopStart, OnLoopStop: s.OnLoopStop})
	if err != nil {
		return err
	}
	for i, fd := range s.lnfds {
		// Without ReusePort: one acceptor on the first loop, dealing out.
		a := &acceptor{srv: s, loop: g.loops[i], fd: fd, spread: !s.reuse}
		h, err := a.loop.tab.Put(fd, a)
		if err == nil {
			a.handle = h
			_, err = a.loop.eng.listen(a, true)
		}
		if err != nil {
			g.closePollers()
			s.accs = nil
			return err
		}
		s.accs = append(s.accs, a)
	}
	if err := s.startPackets(g); err != nil {
		g.closePollers()
		s.accs = nil
		return err
	}
	s.group, s.loops = g, g.loops
	s.stopped = make(chan struct{})
	return nil
}

// Stats returns the counts of the Server's loops (see Stats; connections
// dialed on its loops included); safe from any goroutine. Before Serve it
// returns the zero Stats. It does not allocate.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	g := s.group
	s.mu.Unlock()
	if g == nil {
		return Stats{}
	}
	return g.Stats()
}

// Shutdown stops accepting, lets every connection flush what it has
// queued, closes them gracefully (reason ErrServerClosed; see the package
// doc on graceful close) and returns when all loops have ended; Serve then
// returns ErrServerClosed. If ctx ends first, the connections still open
// are closed at once, queued bytes dropped, and ctx's error is returned
// after the loops end.
//
// Safe from any goroutine. Called on one of the Server's own loop
// goroutines (from a handler, a timer or a posted function), it cannot wait
// for that loop to end: it starts the same shutdown, bounded by ctx the
// same way, and returns nil at once; Serve returns when it is done.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	switch s.state {
	case stateNew, stateListening:
		if s.state == stateListening {
			s.closeListeners()
		}
		s.state = stateDone
		s.mu.Unlock()
		return nil
	case stateDone:
		stopped, loops := s.stopped, s.loops
		s.mu.Unlock()
		if stopped == nil {
			return ErrServerClosed
		}
		if !onLoopOf(loops) {
			<-stopped
		}
		return nil
	}
	s.state = stateDone
	loops, accs, stopped := s.loops, s.accs, s.stopped
	s.mu.Unlock()

	for _, a := range accs { // each before its loop's beginStop
		a.loop.Post(a.stop)
	}
	for _, l := range loops {
		l.Post(l.beginStop)
	}
	if onLoopOf(loops) {
		go awaitStop(ctx, loops, stopped)
		return nil
	}
	return awaitStop(ctx, loops, stopped)
}

// awaitStop waits for a graceful stop to end, or for ctx, after which it
// closes what is left at once and waits for the loops.
func awaitStop(ctx context.Context, loops []*Loop, stopped chan struct{}) error {
	select {
	case <-stopped:
		return nil
	case <-ctx.Done():
	}
	for _, l := range loops {
		l.Post(func() { l.forceStop(ctx.Err()) })
	}
	<-stopped
	return ctx.Err()
}

// onLoopOf reports whether the calling goroutine runs one of loops.
func onLoopOf(loops []*Loop) bool {
	id := goroutineID()
	for _, l := range loops {
		if id != 0 && l.gid.Load() == id {
			return true
		}
	}
	return false
}
