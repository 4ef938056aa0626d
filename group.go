package reactor

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/muxkit/reactor/poller"
)

// GroupConfig says how many loops a Group runs and on which poller.
type GroupConfig struct {
	// Loops is the number of event loops; zero means runtime.GOMAXPROCS(0).
	Loops int
	// Backend is the poller backend; zero means $REACTOR_BACKEND if set,
	// else DefaultBackend (see ResolveBackend).
	Backend poller.Backend
	// NewPoller, if set, gives each loop its poller instead of
	// poller.New(Backend), for tests (see poller/pollertest) and custom
	// backends; Backend and $REACTOR_BACKEND are then ignored.
	NewPoller func() (poller.Poller, error)
	// Logger, if set, receives the errors no caller can be handed (a
	// failing poller, close or interest change); nil logs nothing.
	Logger *slog.Logger
	// Uring tunes the loops on the completion engine (Backend
	// Uring); other backends ignore it.
	Uring UringConfig
	// OnLoopStart, if set, is called on each loop's goroutine as the loop
	// starts, before it serves anything: the place to make per-loop state
	// (Loop.SetContext). OnLoopStop, if set, is called on the loop's
	// goroutine as it ends, after everything it served has closed and its
	// last posted functions have run: the place to release that state.
	OnLoopStart, OnLoopStop func(l *Loop)
}

// Group is a set of running event loops, each on a goroutine of its own: the
// building block under a Server, package netconn and anything that watches
// its own fds (Loop.Watch). Its methods are safe from any goroutine except
// where they say otherwise.
type Group struct {
	loops []*Loop
	next  atomic.Uint32
	wg    sync.WaitGroup

	mu     sync.Mutex
	closed bool
	err    error // the first loop failure
}

// NewGroup starts cfg.Loops loops. An unknown $REACTOR_BACKEND, a backend
// this OS lacks (an error matching errors.ErrUnsupported) or a poller that
// cannot be made is an error, and no loop runs then. It allocates the
// loops and their buffers (64 KiB of read buffer each).
func NewGroup(cfg GroupConfig) (*Group, error) {
	g, err := newGroup(cfg)
	if err != nil {
		return nil, err
	}
	g.start(nil)
	return g, nil
}

// newGroup makes the loops without running them.
func newGroup(cfg GroupConfig) (*Group, error) {
	if cfg.Loops < 0 {
		return nil, fmt.Errorf("reactor: negative Loops (%d)", cfg.Loops)
	}
	n := cfg.Loops
	if n == 0 {
		n = runtime.GOMAXPROCS(0)
	}
	newPoller := cfg.NewPoller
	ring := false
	if newPoller == nil {
		b, err := ResolveBackend(cfg.Backend)
		if err != nil {
			return nil, err
		}
		if b == Uring {
			// The engine keeps an epoll poller for what is readiness
			// by nature (Watch, connect, Post's wake).
			if err := ringSupport(); err != nil {
				return nil, fmt.Errorf("reactor: backend uring: %w", err)
			}
			ring, b = true, poller.Epoll
		}
		newPoller = func() (poller.Poller, error) { return poller.New(b) }
	}
	g := &Group{}
	for range n {
		p, err := newPoller()
		if err != nil {
			g.closePollers()
			return nil, err
		}
		l, err := newLoop(p, ring, cfg.Uring)
		if err != nil {
			p.Close()
			g.closePollers()
			return nil, fmt.Errorf("reactor: backend uring: %w", err)
		}
		l.log = cfg.Logger
		l.onStart, l.onStop = cfg.OnLoopStart, cfg.OnLoopStop
		g.loops = append(g.loops, l)
	}
	return g, nil
}

// closePollers releases the engines and pollers of loops that never ran.
func (g *Group) closePollers() {
	for _, l := range g.loops {
		l.eng.close()
		l.p.Close()
	}
}

// start runs every loop on a goroutine of its own; failed, if set, is
// called (on that goroutine) when a loop ends on a poller failure.
func (g *Group) start(failed func(error)) {
	for _, l := range g.loops {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			l.run()
			if l.err != nil && !errors.Is(l.err, poller.ErrClosed) {
				g.mu.Lock()
				if g.err == nil {
					g.err = l.err
				}
				g.mu.Unlock()
				if failed != nil {
					failed(l.err)
				}
			}
		}()
	}
}

// Len returns the number of loops.
func (g *Group) Len() int { return len(g.loops) }

// Loop returns loop i, for 0 <= i < Len().
func (g *Group) Loop(i int) *Loop { return g.loops[i] }

// Next returns the loops in turn, for spreading new fds across them. It
// does not allocate.
func (g *Group) Next() *Loop {
	return g.loops[int(g.next.Add(1)-1)%len(g.loops)]
}

// Close ends every loop now: what is still watched gets OnStop with
// ErrLoopClosed (Server connections are closed with ErrServerClosed), later
// Posts return ErrLoopClosed, and Close returns once every loop goroutine
// has ended, with the first poller failure that ended a loop early, if
// any; a second Close waits the same way and returns the same. Called on
// one of g's own loop goroutines (from a callback), it cannot wait for that
// loop: it starts the same close and returns nil at once.
func (g *Group) Close() error {
	g.mu.Lock()
	first := !g.closed
	g.closed = true
	g.mu.Unlock()
	if first {
		for _, l := range g.loops {
			l.Post(l.close) // an ended loop refuses it, and is ended already
		}
	}
	if onLoopOf(g.loops) {
		return nil
	}
	g.wg.Wait()
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

// close ends l now; on l's goroutine.
func (l *Loop) close() {
	l.stopAll(ErrLoopClosed)
	l.stopping = true
}

// wait blocks until every loop has ended.
func (g *Group) wait() { g.wg.Wait() }
