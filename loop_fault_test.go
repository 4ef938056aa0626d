package reactor

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/internal/leakcheck"
	"github.com/muxkit/reactor/internal/sock"
	"github.com/muxkit/reactor/poller"
	"github.com/muxkit/reactor/poller/pollertest"
)

// The loop's error paths, reached with a fake poller (package pollertest):
// the sockets are real (a unix listener and its connections), so accept,
// read and write are the kernel's, but every readiness the loop sees is
// injected by the test, and the poller fails when the test says so.

// faultRecorder is the Handler of these tests: it records what the loop
// calls, and echoes unless data is set.
type faultRecorder struct {
	mu     sync.Mutex
	opened []*Conn
	fds    map[*Conn]int
	got    map[*Conn][]byte
	reason map[*Conn]error
	data   func(c *Conn, b []byte) // on the loop goroutine; nil echoes
}

func (r *faultRecorder) OnOpen(c *Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.opened = append(r.opened, c)
	r.fds[c] = c.Fd()
}

func (r *faultRecorder) OnData(c *Conn, b []byte) {
	r.mu.Lock()
	if len(b) == 0 {
		r.got[c] = append(r.got[c], "<empty OnData>"...)
	}
	r.got[c] = append(r.got[c], b...)
	data := r.data
	r.mu.Unlock()
	if data != nil {
		data(c, b)
		return
	}
	c.Write(b)
}

func (r *faultRecorder) OnClose(c *Conn, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.reason[c]; ok {
		r.got[c] = append(r.got[c], "<second OnClose>"...)
	}
	r.reason[c] = err
}

// closed returns c's OnClose reason and whether OnClose was called.
func (r *faultRecorder) closed(c *Conn) (error, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	err, ok := r.reason[c]
	return err, ok
}

func (r *faultRecorder) received(c *Conn) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return string(r.got[c])
}

func (r *faultRecorder) opens() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.opened)
}

// faultServer is a Server on a unix socket whose loops get fake pollers.
type faultServer struct {
	t      *testing.T
	srv    *Server
	rec    *faultRecorder
	fakes  []*pollertest.Poller // one per loop, in loop order
	fake   *pollertest.Poller   // the first loop's: it runs the acceptor
	loops  []*Loop
	path   string
	lnfd   int
	served chan error // Serve's result
	result error      // Serve's result once taken
	taken  bool

	noShutdown bool // stop does not call Shutdown
}

// faultOptions configure startFault.
type faultOptions struct {
	loops   int                      // 1 if zero
	serveFD bool                     // the test owns the listener: ServeFD instead of Listen
	prepare func(*pollertest.Poller) // runs on each fake before its loop uses it
	handle  func(c *Conn, b []byte)  // the recorder's data function
	log     *logRecorder             // the Server's Logger, if set
}

// startFault starts a faultServer and returns once its loops wait. At the
// end of the test it shuts the server down and, unless the test took
// Serve's result, checks that it is ErrServerClosed.
func startFault(t *testing.T, o faultOptions) *faultServer {
	t.Helper()
	if o.loops == 0 {
		o.loops = 1
	}
	dir, err := os.MkdirTemp("", "rfault") // short: a unix socket path has ~100 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	fs := &faultServer{
		t:      t,
		rec:    &faultRecorder{fds: map[*Conn]int{}, got: map[*Conn][]byte{}, reason: map[*Conn]error{}, data: o.handle},
		path:   filepath.Join(dir, "s"),
		served: make(chan error, 1),
	}
	fakes := make(chan *pollertest.Poller, o.loops)
	fs.srv = &Server{
		Handler: fs.rec,
		Loops:   o.loops,
		Logger:  o.log.loggerOrNil(),
		NewPoller: func() (poller.Poller, error) {
			p := pollertest.New()
			if o.prepare != nil {
				o.prepare(p)
			}
			fakes <- p
			return p, nil
		},
	}
	if o.serveFD {
		fd, _, err := sock.Listen("unix", fs.path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) }) // after Shutdown: the test owns it
		fs.lnfd = fd
		go func() { fs.served <- fs.srv.ServeFD(fd) }()
	} else {
		if err := fs.srv.Listen("unix", fs.path); err != nil {
			t.Fatal(err)
		}
		fs.lnfd = fs.srv.lnfds[0]
		go func() { fs.served <- fs.srv.Serve() }()
	}
	t.Cleanup(fs.stop)
	for range o.loops {
		select {
		case p := <-fakes:
			fs.fakes = append(fs.fakes, p)
		case err := <-fs.served:
			// Serve failed early; the test looks at why. The pollers it
			// made were sent before it returned: both cases were ready,
			// and select took this one.
			fs.served <- err
			for {
				select {
				case p := <-fakes:
					fs.fakes = append(fs.fakes, p)
				default:
					return fs
				}
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the loops' pollers were not created within 10s")
		}
	}
	fs.fake = fs.fakes[0]
	faultWait(t, "serving, or Serve's error", func() bool {
		fs.srv.mu.Lock()
		st, loops := fs.srv.state, fs.srv.loops
		fs.srv.mu.Unlock()
		fs.loops = loops
		return st == stateServing || st == stateDone
	})
	for _, p := range fs.fakes {
		faultWait(t, "loop waiting", func() bool { return p.Waits() > 0 || p.Closed() })
	}
	return fs
}

// stop shuts the server down, unless the test asked not to, and checks
// Serve's result.
func (fs *faultServer) stop() {
	t := fs.t
	if !fs.noShutdown {
		fs.shutdown()
	}
	if fs.taken {
		return
	}
	if err := fs.serveResult(); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve returned %v, want ErrServerClosed", err)
	}
}

// shutdown calls Shutdown with a 10s context and fails the test if it
// hangs past the context or returns an error other than ErrServerClosed
// (which it returns when Serve ended before it).
func (fs *faultServer) shutdown() {
	fs.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- fs.srv.Shutdown(ctx) }()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, ErrServerClosed) {
			fs.t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(15 * time.Second):
		fs.t.Error("Shutdown hung past its context's deadline")
	}
}

// serveResult waits up to 10s for Serve to return and returns its error.
func (fs *faultServer) serveResult() error {
	fs.t.Helper()
	if fs.taken {
		return fs.result
	}
	select {
	case fs.result = <-fs.served:
		fs.taken = true
		return fs.result
	case <-time.After(10 * time.Second):
		fs.t.Fatal("Serve has not returned within 10s")
		return nil
	}
}

// dial connects a client; the server has not accepted it yet.
func (fs *faultServer) dial() net.Conn {
	fs.t.Helper()
	c, err := net.DialTimeout("unix", fs.path, 5*time.Second)
	if err != nil {
		fs.t.Fatal(err)
	}
	fs.t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return c
}

// accept connects a client, makes the listener readable and returns the
// client and the server's Conn for it, once OnOpen has run.
func (fs *faultServer) accept() (net.Conn, *Conn) {
	fs.t.Helper()
	n := fs.rec.opens()
	client := fs.dial()
	fs.inject(fs.lnfd, poller.Readable)
	faultWait(fs.t, "OnOpen", func() bool { return fs.rec.opens() > n })
	fs.rec.mu.Lock()
	defer fs.rec.mu.Unlock()
	return client, fs.rec.opened[n]
}

// fd returns the fd c had at OnOpen.
func (fs *faultServer) fd(c *Conn) int {
	fs.rec.mu.Lock()
	defer fs.rec.mu.Unlock()
	return fs.rec.fds[c]
}

func (fs *faultServer) inject(fd int, ev poller.Events) {
	fs.t.Helper()
	if err := fs.fake.Inject(fd, ev); err != nil {
		fs.t.Fatalf("Inject(%d, %v): %v", fd, ev, err)
	}
}

// roundTrip sends msg from client, makes c readable and reads the echo.
func (fs *faultServer) roundTrip(client net.Conn, c *Conn, msg string) {
	fs.t.Helper()
	if _, err := client.Write([]byte(msg)); err != nil {
		fs.t.Fatalf("client write: %v", err)
	}
	fs.inject(fs.fd(c), poller.Readable)
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(client, got); err != nil {
		fs.t.Fatalf("reading the echo of %q: %v", msg, err)
	}
	if string(got) != msg {
		fs.t.Fatalf("echo %q, want %q", got, msg)
	}
}

// onLoop runs fn on loop l and returns when it has run: every event
// injected before it has then been served.
func (fs *faultServer) onLoop(l *Loop, fn func()) {
	fs.t.Helper()
	done := make(chan struct{})
	if err := l.Post(func() { fn(); close(done) }); err != nil {
		fs.t.Fatalf("Post: %v", err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		fs.t.Fatal("the loop did not run a posted function within 10s")
	}
}

// sync returns once the first loop has served every event injected before.
func (fs *faultServer) sync() { fs.t.Helper(); fs.onLoop(fs.loops[0], func() {}) }

// expectClosed reads from client until end of file, or a reset if the
// server closed with unread data: the server closed its fd.
func expectClosed(t *testing.T, client net.Conn) {
	t.Helper()
	if _, err := io.Copy(io.Discard, client); err != nil && !errors.Is(err, unix.ECONNRESET) {
		t.Fatalf("client: %v, want end of file or a reset", err)
	}
}

// faultWait polls cond until it holds, failing after 10s.
func faultWait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond) // polling a condition, with a deadline
	}
}

// errPoller stands for a persistent poller failure, as a backend wraps it.
var errPoller = os.NewSyscallError("epoll_wait", unix.EBADF)

// TestLoopFaultWaitInterrupted: EINTRs inside Wait, retried there as the
// poller contract demands, do not disturb serving.
func TestLoopFaultWaitInterrupted(t *testing.T) {
	leakcheck.Check(t)
	fs := startFault(t, faultOptions{})
	client, c := fs.accept()
	fs.roundTrip(client, c, "before")
	for range 3 {
		fs.fake.Interrupt()
	}
	faultWait(t, "three retried EINTRs", func() bool { return fs.fake.Retries() == 3 })
	fs.roundTrip(client, c, "after")
	if err, ok := fs.rec.closed(c); ok {
		t.Fatalf("connection closed (%v) by an EINTR", err)
	}
}

// TestLoopFaultWaitEINTR: a Poller that breaks the contract and lets EINTR
// out of Wait (a custom one given by Server.NewPoller) makes the loop wait
// again; serving goes on.
func TestLoopFaultWaitEINTR(t *testing.T) {
	leakcheck.Check(t)
	fs := startFault(t, faultOptions{})
	client, c := fs.accept()
	fs.roundTrip(client, c, "before")
	waits := fs.fake.Waits()
	fs.fake.FailNextWait(unix.EINTR)
	faultWait(t, "the next Wait", func() bool { return fs.fake.Waits() > waits || fs.fake.Closed() })
	fs.roundTrip(client, c, "after")
	if err, ok := fs.rec.closed(c); ok {
		t.Fatalf("connection closed (%v) by an EINTR", err)
	}
}

// TestLoopFaultWaitError: a persistent Wait failure ends the loop, closes
// its connections (OnClose runs, the client reads end of file), closes the
// poller, and Serve returns an error matching it.
func TestLoopFaultWaitError(t *testing.T) {
	leakcheck.Check(t)
	fs := startFault(t, faultOptions{serveFD: true})
	client, c := fs.accept()
	fs.roundTrip(client, c, "hello")
	fs.fake.FailNextWait(errPoller)
	err := fs.serveResult()
	if !errors.Is(err, unix.EBADF) {
		t.Fatalf("Serve returned %v, want an error matching EBADF", err)
	}
	if reason, ok := fs.rec.closed(c); !ok {
		t.Fatal("OnClose not called for the loop's connection")
	} else if reason == nil {
		t.Fatal("OnClose reason nil: it reads as a local Close")
	}
	expectClosed(t, client)
	if !fs.fake.Closed() {
		t.Fatal("the failed loop's poller was not closed")
	}
	if err := fs.loops[0].Post(func() {}); !errors.Is(err, ErrLoopClosed) {
		t.Fatalf("Post on the failed loop: %v, want ErrLoopClosed", err)
	}
}

// TestLoopFaultWaitErrorClosesListener: when the acceptor's loop fails,
// the listening socket the Server opened is closed: new clients are
// refused and no fd is left behind.
func TestLoopFaultWaitErrorClosesListener(t *testing.T) {
	leakcheck.Check(t)
	fs := startFault(t, faultOptions{})
	fs.fake.FailNextWait(errPoller)
	if err := fs.serveResult(); !errors.Is(err, unix.EBADF) {
		t.Fatalf("Serve returned %v, want an error matching EBADF", err)
	}
	faultWait(t, "the listener closed", func() bool {
		c, err := net.Dial("unix", fs.path)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
}

// TestLoopFaultWaitErrorOtherLoop: a loop other than the acceptor's failing
// ends Serve too, with its error, instead of the Server going on with a
// dead loop whose share of new connections is closed at once.
func TestLoopFaultWaitErrorOtherLoop(t *testing.T) {
	leakcheck.Check(t)
	fs := startFault(t, faultOptions{loops: 2})
	fs.fakes[1].FailNextWait(errPoller)
	if err := fs.serveResult(); !errors.Is(err, unix.EBADF) {
		t.Fatalf("Serve returned %v, want an error matching EBADF", err)
	}
}

// TestLoopFaultAddListener: an Add failing for the listener at start makes
// Serve return that error, with the poller and the listener closed.
func TestLoopFaultAddListener(t *testing.T) {
	leakcheck.Check(t)
	fs := startFault(t, faultOptions{prepare: func(p *pollertest.Poller) { p.FailNextAdd(unix.ENOSPC) }})
	fs.noShutdown = true // it hangs: TestLoopFaultShutdownAfterFailedStart
	if err := fs.serveResult(); !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("Serve returned %v, want ENOSPC", err)
	}
	if !fs.fakes[0].Closed() {
		t.Fatal("poller not closed after Serve failed")
	}
	if c, err := net.Dial("unix", fs.path); err == nil {
		c.Close()
		t.Fatal("the listener is still open after Serve failed")
	}
}

// TestLoopFaultShutdownAfterFailedStart: Shutdown after a Serve that
// failed registering its listener returns, as after any other failed
// Serve. (With the select backend a listener fd >= FD_SETSIZE fails so
// without a fake.)
func TestLoopFaultShutdownAfterFailedStart(t *testing.T) {
	leakcheck.Check(t)
	fs := startFault(t, faultOptions{prepare: func(p *pollertest.Poller) { p.FailNextAdd(unix.ENOSPC) }})
	if err := fs.serveResult(); !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("Serve returned %v, want ENOSPC", err)
	}
	fs.shutdown()
}

// TestLoopFaultAddConn: an Add failing for an accepted connection closes
// its fd (the client reads end of file) without OnOpen or OnClose (the
// handler never saw it), frees its MaxConns slot, and the server goes on
// serving the next client.
func TestLoopFaultAddConn(t *testing.T) {
	leakcheck.Check(t)
	fs := startFault(t, faultOptions{})
	fs.fake.FailNextAdd(unix.ENOMEM)
	refused := fs.dial()
	fs.inject(fs.lnfd, poller.Readable)
	expectClosed(t, refused)
	fs.sync()
	if n := fs.rec.opens(); n != 0 {
		t.Fatalf("OnOpen called %d times for a connection that failed to register", n)
	}
	if n := fs.srv.nconns.Load(); n != 0 {
		t.Fatalf("open connection count %d after the failed one, want 0", n)
	}
	if got := fs.fake.Fds(); !slices.Equal(got, []int{fs.lnfd}) {
		t.Fatalf("registered fds %v, want only the listener %d", got, fs.lnfd)
	}

	client, c := fs.accept()
	fs.roundTrip(client, c, "still serving")
	if n := fs.srv.nconns.Load(); n != 1 {
		t.Fatalf("open connection count %d, want 1", n)
	}
	if _, ok := fs.rec.closed(c); ok {
		t.Fatal("the served connection was closed")
	}
}

// TestLoopFaultModify: a Modify failing when backpressure changes the
// interest (a write left bytes queued) closes that connection with the
// error as OnClose's reason, removes it from the poller, and leaves the
// others served.
func TestLoopFaultModify(t *testing.T) {
	leakcheck.Check(t)
	big := make([]byte, 1<<20)
	log := &logRecorder{}
	fs := startFault(t, faultOptions{log: log, handle: func(c *Conn, b []byte) {
		if string(b) == "flood" {
			c.Write(big) // more than the socket buffer: the rest is queued
			return
		}
		c.Write(b)
	}})
	other, oc := fs.accept()
	client, c := fs.accept()
	fd := fs.fd(c)
	// A small send buffer, so the kernel surely leaves most of big queued.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4096); err != nil {
		t.Fatal(err)
	}
	fs.fake.FailNextModify(unix.ENOMEM)
	if _, err := client.Write([]byte("flood")); err != nil {
		t.Fatal(err)
	}
	fs.inject(fd, poller.Readable)
	faultWait(t, "OnClose", func() bool { _, ok := fs.rec.closed(c); return ok })
	if reason, _ := fs.rec.closed(c); !errors.Is(reason, unix.ENOMEM) {
		t.Fatalf("OnClose reason %v, want the Modify error ENOMEM", reason)
	}
	if !log.has("ERROR", "poller interest", "cannot allocate memory") {
		t.Fatalf("Server.Logger got %q, want the Modify error", log.msgs)
	}
	if _, _, ok := fs.fake.Registered(fd); ok {
		t.Fatal("the closed connection's fd is still registered")
	}
	expectClosed(t, client)
	fs.roundTrip(other, oc, "unaffected")
}

// TestLoopFaultSpuriousReadiness: readiness with nothing behind it (a
// connection readable with no data, writable or hung up with nothing
// queued, a listener readable with nobody waiting) neither closes the
// connection nor calls OnData with empty data nor changes its interest.
func TestLoopFaultSpuriousReadiness(t *testing.T) {
	leakcheck.Check(t)
	fs := startFault(t, faultOptions{})
	client, c := fs.accept()
	fd := fs.fd(c)
	token, _, _ := fs.fake.Registered(fd)
	fs.inject(fd, poller.Readable)
	fs.inject(fs.lnfd, poller.Readable)
	fs.fake.InjectEvents(poller.Event{Fd: fd, Token: token, Events: poller.Writable | poller.HangUp | poller.Error})
	fs.sync()
	if got := fs.rec.received(c); got != "" {
		t.Fatalf("OnData got %q from spurious readiness", got)
	}
	if err, ok := fs.rec.closed(c); ok {
		t.Fatalf("spurious readiness closed the connection: %v", err)
	}
	if _, ev, ok := fs.fake.Registered(fd); !ok || ev != poller.Readable {
		t.Fatalf("interest after spurious readiness: %v (registered %v), want Readable", ev, ok)
	}
	if n := fs.rec.opens(); n != 1 {
		t.Fatalf("%d connections opened, want 1", n)
	}
	fs.roundTrip(client, c, "real data")
	if got := fs.rec.received(c); got != "real data" {
		t.Fatalf("OnData got %q, want %q", got, "real data")
	}
	fs.accept() // the acceptor survived its spurious wake-up
}

// TestLoopFaultStaleToken: an event whose token is a closed connection's
// handle is dropped and counted, never served to the fd's new owner: both
// within one batch (an earlier event's handler closed the connection) and
// later (the fd number reused by a new connection).
func TestLoopFaultStaleToken(t *testing.T) {
	leakcheck.Check(t)
	var victim *Conn
	fs := startFault(t, faultOptions{handle: func(c *Conn, b []byte) {
		if string(b) == "close the other" {
			victim.Close()
			return
		}
		c.Write(b)
	}})
	ca, a := fs.accept()
	cb, b := fs.accept()
	fs.onLoop(fs.loops[0], func() { victim = b })
	fa, fb := fs.fd(a), fs.fd(b)
	ta, _, _ := fs.fake.Registered(fa)
	tb, _, _ := fs.fake.Registered(fb)
	for _, w := range []struct {
		c   net.Conn
		msg string
	}{{ca, "close the other"}, {cb, "unread"}} {
		if _, err := w.c.Write([]byte(w.msg)); err != nil {
			t.Fatal(err)
		}
	}
	// b's client has finished sending: b's graceful Close finds its end of
	// file at once and closes there and then (see Conn.endClose), rather
	// than lingering.
	if err := cb.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	// One batch: a's event first, its handler closes b, then b's event.
	fs.fake.InjectEvents(
		poller.Event{Fd: fa, Token: ta, Events: poller.Readable},
		poller.Event{Fd: fb, Token: tb, Events: poller.Readable})
	stale := func() int {
		fs.onLoop(fs.loops[0], func() {}) // after the injected batch
		return int(fs.loops[0].Stats().StaleEvents)
	}
	if n := stale(); n != 1 {
		t.Fatalf("stale events %d, want 1", n)
	}
	if reason, ok := fs.rec.closed(b); !ok || reason != nil {
		t.Fatalf("b: OnClose %v, %v; want called with nil", reason, ok)
	}
	if got := fs.rec.received(b); got != "" {
		t.Fatalf("b's stale event was served: OnData got %q", got)
	}
	expectClosed(t, cb)

	// A new connection likely gets b's fd number; b's old token must not
	// reach it, though it has data.
	cc, c := fs.accept()
	fc := fs.fd(c)
	if _, err := cc.Write([]byte("new owner")); err != nil {
		t.Fatal(err)
	}
	fs.fake.InjectEvents(poller.Event{Fd: fc, Token: tb, Events: poller.Readable})
	if n := stale(); n != 2 {
		t.Fatalf("stale events %d, want 2", n)
	}
	if got := fs.rec.received(c); got != "" {
		t.Fatalf("a stale token was served to fd %d's new owner (b had fd %d): OnData got %q", fc, fb, got)
	}
	fs.inject(fc, poller.Readable)
	got := make([]byte, len("new owner"))
	if _, err := io.ReadFull(cc, got); err != nil || string(got) != "new owner" {
		t.Fatalf("echo on the new connection: %q, %v", got, err)
	}
}
