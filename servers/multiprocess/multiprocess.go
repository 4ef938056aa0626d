// Package multiprocess serves each client in a process of its own: the
// running binary, re-executed, with the client's socket handed to it.
//
// Two variants. Process per client (Prefork 0): the parent accepts a
// client and starts a child for it, passing the socket as fd 3; the child
// serves that one client and exits. Pre-forked pool (Prefork N): N worker
// processes are started up front; the parent accepts a client and sends its
// socket to a free worker over a unix socket (SCM_RIGHTS), and client N+1
// waits in the kernel's accept queue until a worker is free.
//
// When it is the right choice: clients that must not be able to harm each
// other (a crash, a leak or a corruption in one child ends only that
// child) or code that is not safe to run twice in one address space. What
// it costs: a process is the most expensive way to serve a client (a fork
// and an exec of the whole binary, its own runtime and memory), and the
// processes share nothing: any state common to clients has to travel over
// pipes, sockets or files. Pre-forking pays the creation once per worker
// rather than once per client, and caps concurrency as a thread pool does.
//
// # The re-exec hook
//
// Go cannot fork without exec, so a child is the same binary started
// again. The binary opts in with one line at the start of main, which in a
// child serves the handed socket and exits, and in the parent returns at
// once:
//
//	func main() {
//		multiprocess.ServeChild(servers.Echo)
//		...
//	}
//
// A test binary calls it first thing in TestMain. The handler a child runs
// is the one given to ServeChild. Children are started with the parent's
// arguments and environment plus REACTOR_MULTIPROCESS_CHILD; a binary that
// has no hook would start its whole main again in every child, so Serve
// refuses to run in a process that did not call ServeChild.
package multiprocess

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/internal/sock"
	"github.com/muxkit/reactor/servers"
)

// EnvChild is the environment variable that tells a re-executed binary it
// is a child and which kind: "client" (serve fd 3, then exit) or "worker"
// (receive clients over the unix socket at fd 3).
const EnvChild = "REACTOR_MULTIPROCESS_CHILD"

// childFD is where a child finds its socket.
const childFD = 3

var hooked atomic.Bool

// ServeChild is the re-exec hook; call it first thing in main. In a child
// started by a Server it serves with h (nil means servers.Echo) and ends
// the process: exit status 0 when the handler returned, 2 when the child
// was started wrongly. Otherwise it returns at once, having recorded that
// the hook is in place. A child ends its client the way the other models
// do on SIGTERM: it shuts the socket for reading, lets the handler finish
// and exits.
func ServeChild(h servers.Handler) {
	hooked.Store(true)
	mode := os.Getenv(EnvChild)
	if mode == "" {
		return
	}
	if h == nil {
		h = servers.Echo
	}
	var err error
	switch mode {
	case "client":
		err = serveClient(h)
	case "worker":
		err = serveWorker(h)
	default:
		err = fmt.Errorf("%s=%q: want client or worker", EnvChild, mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "multiprocess child:", err)
		os.Exit(2)
	}
	os.Exit(0)
}

// onTerm calls f on the first SIGTERM or SIGINT.
func onTerm(f func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, unix.SIGTERM, unix.SIGINT)
	go func() {
		<-ch
		f()
	}()
}

func serveClient(h servers.Handler) error {
	c, err := servers.NewConn(childFD)
	if err != nil {
		return fmt.Errorf("fd %d: %w", childFD, err)
	}
	onTerm(func() { c.Shutdown(unix.SHUT_RD) })
	h(c)
	return c.Close()
}

func serveWorker(h servers.Handler) error {
	var (
		term atomic.Bool
		cur  atomic.Pointer[servers.Conn]
	)
	onTerm(func() {
		term.Store(true)
		if c := cur.Load(); c != nil {
			c.Shutdown(unix.SHUT_RD)
		} else {
			unix.Shutdown(childFD, unix.SHUT_RD) // wakes recvFD
		}
	})
	for !term.Load() {
		fd, err := recvFD(childFD)
		if err != nil {
			if term.Load() {
				return nil
			}
			return err
		}
		if fd < 0 { // the parent is gone or shut us down
			return nil
		}
		c, err := servers.NewConn(fd)
		if err != nil {
			unix.Close(fd)
			return err
		}
		cur.Store(c)
		if term.Load() {
			c.Shutdown(unix.SHUT_RD)
		}
		h(c)
		cur.Store(nil)
		c.Close()
		if _, err := unix.Write(childFD, []byte{1}); err != nil {
			return nil // the parent is gone
		}
	}
	return nil
}

// recvFD blocks until the parent sends a socket over the unix socket u and
// returns it; -1 and no error on end of file.
func recvFD(u int) (int, error) {
	var b [1]byte
	oob := make([]byte, unix.CmsgSpace(4))
	for {
		n, oobn, _, _, err := unix.Recvmsg(u, b[:], oob, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, os.NewSyscallError("recvmsg", err)
		}
		if n == 0 {
			return -1, nil
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(msgs) != 1 {
			return -1, fmt.Errorf("recvmsg: no socket passed (%v)", err)
		}
		fds, err := unix.ParseUnixRights(&msgs[0])
		if err != nil || len(fds) != 1 {
			for _, fd := range fds {
				unix.Close(fd)
			}
			return -1, fmt.Errorf("recvmsg: want one fd, got %d (%v)", len(fds), err)
		}
		unix.CloseOnExec(fds[0])
		return fds[0], nil
	}
}

// sendFD sends fd over the unix socket u.
func sendFD(u, fd int) error {
	for {
		err := unix.Sendmsg(u, []byte{0}, unix.UnixRights(fd), nil, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("sendmsg", err)
		}
		return nil
	}
}

// Server serves each client in a child process. Set the fields, then call
// Serve; call Shutdown from any goroutine. The binary must call ServeChild
// at the start of main (see the package doc).
type Server struct {
	// Prefork is the number of pre-forked worker processes; zero means a
	// new process per client.
	Prefork int
	// ErrorLog receives what cannot be returned: a child that could not be
	// started (its client is closed). Nil means log.Default().
	ErrorLog *log.Logger

	base servers.Base

	mu       sync.Mutex
	children map[int]chan struct{} // live child pids; closed when reaped
	stopping bool
	sigchld  chan os.Signal
	reaped   chan struct{} // closed when the reaper has stopped
	devnull  int           // the children's stdin and stdout
	workers  []int         // prefork: the parent's end of each worker's socket
}

func (s *Server) logf(format string, args ...any) {
	if s.ErrorLog != nil {
		s.ErrorLog.Printf(format, args...)
		return
	}
	log.Printf(format, args...)
}

func (s *Server) isStopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopping
}

// Children is the number of child processes started and not yet reaped.
func (s *Server) Children() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.children)
}

// Serve serves clients from ln until Shutdown, then returns
// servers.ErrServerClosed once every child has been reaped. It is an error
// to Serve in a binary that did not call ServeChild, to Serve twice, or to
// set a negative Prefork.
func (s *Server) Serve(ln *servers.Listener) error {
	if !hooked.Load() {
		return errors.New("multiprocess: the binary did not call multiprocess.ServeChild at the start of main (or TestMain); children would run main again")
	}
	if s.Prefork < 0 {
		return fmt.Errorf("multiprocess: Prefork %d: want >= 0", s.Prefork)
	}
	if err := s.startReaper(); err != nil {
		return err
	}
	defer s.stopReaper()

	var err error
	if s.Prefork == 0 {
		err = s.base.Serve("multiprocess", ln, 1, false, func(_ int, c *servers.Conn) {
			_, serr := s.spawn("client", c.Fd())
			s.base.Clients.Done(c) // the child has its own copy now
			if serr != nil {
				s.logf("%v", serr)
			}
		})
	} else {
		s.workers = make([]int, s.Prefork)
		for i := range s.workers {
			s.workers[i] = -1
		}
		err = s.base.Serve("multiprocess", ln, s.Prefork, false, s.handToWorker)
		for _, u := range s.workers {
			if u >= 0 {
				unix.Close(u)
			}
		}
	}
	s.endChildren(context.Background())
	return err
}

// handToWorker sends c to worker i (starting it if it is not running) and
// waits until the worker reports it has finished with c.
func (s *Server) handToWorker(i int, c *servers.Conn) {
	defer s.base.Clients.Done(c)
	for attempt := 0; ; attempt++ {
		if s.workers[i] < 0 {
			if s.isStopping() {
				return
			}
			u, err := s.startWorker()
			if err != nil {
				s.logf("multiprocess: %v", err)
				return
			}
			s.workers[i] = u
		}
		u := s.workers[i]
		if err := sendFD(u, c.Fd()); err != nil {
			// The worker died while idle: start another and retry once.
			unix.Close(u)
			s.workers[i] = -1
			if attempt == 0 {
				continue
			}
			return
		}
		c.Close()
		var b [1]byte
		for {
			n, err := unix.Read(u, b[:])
			if err == unix.EINTR {
				continue
			}
			if n != 1 { // the worker ended (crashed, or shut down): replace it lazily
				unix.Close(u)
				s.workers[i] = -1
			}
			return
		}
	}
}

// startWorker starts a worker process and returns the parent's end of its
// socket.
func (s *Server) startWorker() (int, error) {
	parent, child, err := sock.Socketpair()
	if err != nil {
		return -1, err
	}
	_, err = s.spawn("worker", child)
	unix.Close(child)
	if err != nil {
		unix.Close(parent)
		return -1, err
	}
	return parent, nil
}

// spawn starts the binary again as a child of kind mode with fd as its
// fd 3, and records its pid for the reaper. During Shutdown the child is
// sent SIGTERM at once.
func (s *Server) spawn(mode string, fd int) (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("multiprocess: %w", err)
	}
	// stdin and stdout are /dev/null, so no child can write to the
	// parent's stdout; stderr is shared, for a crashing child's report.
	null := uintptr(s.devnull)
	attr := &syscall.ProcAttr{
		Env:   append(os.Environ(), EnvChild+"="+mode),
		Files: []uintptr{null, null, 2, uintptr(fd)},
	}
	// The lock is held across the start so the reaper, woken by this
	// child's SIGCHLD however early, scans a table that has its pid.
	s.mu.Lock()
	defer s.mu.Unlock()
	pid, err := syscall.ForkExec(exe, os.Args, attr)
	if err != nil {
		return 0, fmt.Errorf("multiprocess: start child: %w", err)
	}
	s.children[pid] = make(chan struct{})
	if s.stopping {
		unix.Kill(pid, unix.SIGTERM)
	}
	return pid, nil
}

func (s *Server) startReaper() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sigchld != nil {
		return errors.New("multiprocess: Server already served")
	}
	null, err := unix.Open(os.DevNull, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("multiprocess: %w", os.NewSyscallError("open "+os.DevNull, err))
	}
	s.devnull = null
	s.children = make(map[int]chan struct{})
	s.sigchld = make(chan os.Signal, 1)
	s.reaped = make(chan struct{})
	signal.Notify(s.sigchld, unix.SIGCHLD)
	go s.reap(s.sigchld, s.reaped)
	return nil
}

func (s *Server) stopReaper() {
	signal.Stop(s.sigchld)
	close(s.sigchld)
	<-s.reaped
	unix.Close(s.devnull)
}

// reap collects every exited child on each SIGCHLD. Signals coalesce, so
// each one is a reason to look at all children, not a count.
func (s *Server) reap(sigchld chan os.Signal, done chan struct{}) {
	defer close(done)
	for range sigchld {
		s.mu.Lock()
		for pid, gone := range s.children {
			var ws unix.WaitStatus
			wpid, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
			if wpid == pid || err == unix.ECHILD {
				delete(s.children, pid)
				close(gone)
			}
		}
		s.mu.Unlock()
	}
}

// endChildren sends SIGTERM to every child and waits until all have been
// reaped; when ctx ends first, it sends SIGKILL and waits for that.
func (s *Server) endChildren(ctx context.Context) error {
	s.mu.Lock()
	s.stopping = true
	live := s.live()
	s.mu.Unlock()
	for pid := range live {
		unix.Kill(pid, unix.SIGTERM)
	}
	var err error
	for pid, gone := range live {
		select {
		case <-gone:
			continue
		case <-ctx.Done():
			err = ctx.Err()
		}
		unix.Kill(pid, unix.SIGKILL)
		<-gone
	}
	return err
}

func (s *Server) live() map[int]chan struct{} {
	live := make(map[int]chan struct{}, len(s.children))
	for pid, gone := range s.children {
		live[pid] = gone
	}
	return live
}

// Shutdown stops accepting (it closes the Listener Serve was given), sends
// SIGTERM to every child, which then shuts its client's socket for reading,
// lets the handler finish and exits, and waits until Serve has returned
// with every child reaped. If ctx ends first, the children left are sent
// SIGKILL and ctx.Err() is returned once they are reaped.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	serving := s.sigchld != nil
	s.mu.Unlock()
	var err error
	if serving {
		err = s.endChildren(ctx)
	}
	if berr := s.base.Shutdown(ctx); err == nil {
		err = berr
	}
	return err
}
