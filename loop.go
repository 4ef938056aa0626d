package reactor

import (
	"errors"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/fdtable"
	"github.com/muxkit/reactor/poller"
)

// readBufferSize is each loop's read buffer: one read per ready connection
// per wake-up takes at most this much, so a client sending a flood cannot
// hold the loop longer than one such read.
const readBufferSize = 64 << 10

// eventBatch is how many events one Wait returns at most.
const eventBatch = 256

// target is what the loop's fd table holds: something with an fd that
// reacts to poller events (a Conn, the acceptor).
type target interface {
	onEvent(ev poller.Events)
}

// Loop is one event loop: one goroutine, one Poller, its own fd table,
// timers and read buffer. A Server runs Loops of them and spreads
// connections across them. Post is safe from any goroutine; AfterFunc and
// everything a handler does run on the loop goroutine.
type Loop struct {
	srv    *Server
	p      poller.Poller
	tab    fdtable.Table[target]
	events []poller.Event
	buf    []byte
	timers timerHeap
	start  time.Time
	now    int64 // loop clock: nanoseconds since start, updated after every Wait
	conns  int   // connections registered on this loop and open
	opened int   // connections ever registered on this loop (tests, benchmarks)

	postMu  sync.Mutex
	posted  []func()
	running []func() // the batch being run, swapped with posted
	exited  bool     // no more Post: the loop has returned

	stopping bool          // Shutdown began: close connections as they drain
	done     chan struct{} // closed when run returns
	err      error         // why run returned, if not Shutdown

	staleEvents int // events dropped because their handle was stale (tests read it)
}

func newLoop(srv *Server, backend poller.Backend) (*Loop, error) {
	var p poller.Poller
	var err error
	if srv.NewPoller != nil {
		p, err = srv.NewPoller()
	} else {
		p, err = poller.New(backend)
	}
	if err != nil {
		return nil, err
	}
	return &Loop{
		srv:    srv,
		p:      p,
		events: make([]poller.Event, eventBatch),
		buf:    make([]byte, readBufferSize),
		start:  time.Now(),
		done:   make(chan struct{}),
	}, nil
}

// Post runs fn on the loop goroutine soon, after the events being served;
// safe from any goroutine. Functions run in the order posted. It allocates
// only when its queue grows. After the loop has ended it returns
// ErrServerClosed and fn never runs.
func (l *Loop) Post(fn func()) error {
	l.postMu.Lock()
	if l.exited {
		l.postMu.Unlock()
		return ErrServerClosed
	}
	first := len(l.posted) == 0
	l.posted = append(l.posted, fn)
	l.postMu.Unlock()
	if first {
		// One Wake per batch of posts: the loop takes the whole queue
		// after every Wait, so later posts ride on this wake.
		return l.p.Wake()
	}
	return nil
}

// AfterFunc runs fn on the loop goroutine once d has passed. Call it on
// the loop goroutine (a handler, a timer function, a Post'ed function); from
// elsewhere, Post a function that calls it. It allocates the Timer.
func (l *Loop) AfterFunc(d time.Duration, fn func()) *Timer {
	t := &Timer{loop: l, fn: fn, index: -1}
	l.schedule(t, d)
	return t
}

// schedule (re)arms t to fire d from the loop's current clock.
func (l *Loop) schedule(t *Timer, d time.Duration) {
	t.when = l.clock() + int64(max(d, 0))
	if t.index >= 0 {
		l.timers.fix(t.index)
		return
	}
	l.timers.push(t)
}

// clock is the loop's monotonic clock in nanoseconds.
func (l *Loop) clock() int64 { return int64(time.Since(l.start)) }

// timeout is how long the next Wait may block: until the first timer, or
// forever without timers.
func (l *Loop) timeout() time.Duration {
	if len(l.timers) == 0 {
		return -1
	}
	return time.Duration(max(l.timers[0].when-l.clock(), 0))
}

// run is the loop: wait, serve the events, fire timers, run posted work.
// It returns when Shutdown has closed every connection, or on a poller
// failure (kept in err).
func (l *Loop) run() {
	defer close(l.done)
	for !l.stopping || l.tab.Len() > 0 {
		if err := l.serveOnce(l.timeout()); err != nil {
			l.err = err
			break
		}
	}
	l.exit()
}

// serveOnce is one turn of the loop: wait up to timeout, serve the events,
// fire due timers, run posted work.
func (l *Loop) serveOnce(timeout time.Duration) error {
	n, err := l.p.Wait(l.events, timeout)
	if err != nil {
		if !errors.Is(err, unix.EINTR) {
			return err
		}
		// The contract has Wait retry EINTR, but a Poller from
		// Server.NewPoller may not: serve timers and posts, wait again.
		n = 0
	}
	l.now = l.clock()
	for i := range n {
		ev := &l.events[i]
		t, ok := l.tab.Get(fdtable.Handle(ev.Token))
		if !ok {
			// The fd was closed (and maybe reused) earlier in this batch.
			l.staleEvents++
			continue
		}
		t.onEvent(ev.Events)
	}
	l.runTimers()
	l.runPosted()
	return nil
}

// runTimers fires the timers that are due.
func (l *Loop) runTimers() {
	for len(l.timers) > 0 && l.timers[0].when <= l.now {
		t := l.timers[0]
		l.timers.remove(t)
		t.fn()
	}
}

// runPosted runs the functions posted so far.
func (l *Loop) runPosted() {
	l.postMu.Lock()
	l.posted, l.running = l.running[:0], l.posted
	l.postMu.Unlock()
	for i, fn := range l.running {
		fn()
		l.running[i] = nil
	}
}

// exit closes what is left, runs the last posted functions (they see closed
// connections) and refuses further posts.
func (l *Loop) exit() {
	var left []*Conn
	l.tab.Range(func(h fdtable.Handle, t target) bool {
		if c, ok := t.(*Conn); ok {
			left = append(left, c)
		}
		return true
	})
	for _, c := range left {
		c.shut(ErrServerClosed)
	}
	l.postMu.Lock()
	l.exited = true
	l.postMu.Unlock()
	l.runPosted()
	l.p.Close()
}

// register adds a freshly accepted fd as a Conn of this loop; on the loop
// goroutine.
func (l *Loop) register(fd int) {
	c, err := l.srv.newConn(l, fd)
	if err != nil {
		l.srv.nconns.Add(-1)
		return
	}
	l.conns++
	l.opened++
	l.srv.Handler.OnOpen(c)
	if c.closed || c.closing {
		return
	}
	if l.stopping {
		c.closeWith(ErrServerClosed)
	}
}
