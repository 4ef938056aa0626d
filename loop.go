package reactor

import (
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/muxkit/reactor/fdtable"
	"github.com/muxkit/reactor/poller"
)

// ErrLoopClosed is returned by Post, Watch and AfterFunc's relatives once a
// Loop has ended (its Group was closed, its Server shut down, or its poller
// failed), and is the reason OnStop gets for a watch its Group's Close
// ended.
var ErrLoopClosed = errors.New("reactor: loop closed")

// readBufferSize is each loop's read buffer: one read per ready connection
// per wake-up takes at most this much, so a client sending a flood cannot
// hold the loop longer than one such read.
const readBufferSize = 64 << 10

// eventBatch is how many events one Wait returns at most.
const eventBatch = 256

// target is what a loop's fd table holds: something with an fd that
// reacts to poller events (a Conn, an acceptor, a Watch).
type target interface {
	// onEvent serves one poller event.
	onEvent(ev poller.Events)
	// onStop is told that the loop is ending with the target still
	// registered; it must leave the table.
	onStop(reason error)
}

// Loop is one event loop: one goroutine, one engine (a Poller, or the
// io_uring completion engine), its own fd table, timers and read buffer.
// Loops come in a Group (NewGroup), which runs each on its own goroutine; a
// Server runs a Group of its own.
//
// Post is safe from any goroutine. Everything else (Watch, AfterFunc, the
// methods of Watch, Timer and Conn) belongs to the loop goroutine: call it
// from a callback the loop runs (OnReady, a handler, a timer or a posted
// function), or Post a function that calls it.
//
// A loop shares its program with other goroutines, timers and the garbage
// collector, and leaves them their turn as promptly as Go's own net
// package does: it never blocks in a system call while goroutines it made
// runnable wait for its P (it parks in Go's netpoller, or yields first),
// and it yields to the scheduler at least every 100 us while it serves.
// Its goroutine is not locked to an OS thread, on either engine. A loop
// on the completion engine with UringConfig.Dedicated is the exception:
// it owns its thread and keeps its P, and gives up this rule.
type Loop struct {
	p          poller.Poller
	tab        fdtable.Table[target]
	events     []poller.Event
	buf        []byte
	timers     timerHeap
	start      time.Time
	now        int64        // loop clock: nanoseconds since start, updated after every Wait
	busy       bool         // the last turn served something: yield before blocking
	ownsThread bool         // the engine locked the loop to its thread: it never yields
	woke       bool         // it ran a Watcher, a timer or a posted function (see block)
	watched    bool         // this turn ran a Watcher
	yielded    int64        // loop clock when the loop last yielded or waited (see pace)
	paced      int          // events served since pace last read the clock
	eng        engine       // how the loop moves bytes (engine.go)
	ctx        any          // SetContext's value
	log        *slog.Logger // nil: errors are not logged

	dirty  []*Conn       // written to since their last flush (see Conn.dirty)
	pdirty []*PacketConn // likewise, datagram sockets
	redo   []*Conn       // to be offered their kept bytes again (see ResumeRead)
	dgram  *dgramIO      // the datagram sockets' buffers; nil until the first
	pkt    Packet        // the Packet OnPacket gets, reused

	// The OnData running: keeping is its Conn, keepMax its data's length,
	// keep what it asked Keep to keep.
	keeping *Conn
	keepMax int
	keep    int
	need    int // what Need asked for, 0 if not

	onStart, onStop func(*Loop) // GroupConfig.OnLoopStart and OnLoopStop

	// This turn's counts, added to stats at its end: bytes read and
	// written, and the change in bytes queued.
	tin, tout, tqueued int64
	tdin, tdout        int64 // datagrams received and sent
	stats              loopStats

	postMu  sync.Mutex
	posted  []func()
	running []func() // the batch being run, swapped with posted
	exited  bool     // no more Post: the loop has returned

	gid      atomic.Uint64 // the id of the goroutine running the loop (see onLoopOf)
	stopping bool          // stop once the table is empty (drain)
	done     chan struct{} // closed when run returns
	err      error         // why run returned, if not a stop
}

// newLoop returns a loop over p, not yet running: on the readiness
// engine, or with ring on the completion engine tuned by cfg. On failure
// p is left to the caller.
func newLoop(p poller.Poller, ring bool, cfg UringConfig) (*Loop, error) {
	l := &Loop{
		p:      p,
		events: make([]poller.Event, eventBatch),
		buf:    make([]byte, readBufferSize),
		start:  time.Now(),
		done:   make(chan struct{}),
	}
	if !ring {
		l.eng = newReadiness(l)
		return l, nil
	}
	e, err := newCompletion(l, cfg)
	if err != nil {
		return nil, err
	}
	l.eng = e
	return l, nil
}

// Backend reports the backend the loop waits with, Uring for the
// completion engine; safe from any goroutine.
func (l *Loop) Backend() poller.Backend { return l.eng.backend() }

// Done returns a channel closed when the loop has ended; safe from any
// goroutine.
func (l *Loop) Done() <-chan struct{} { return l.done }

// Post runs fn on the loop goroutine soon, after the events being served;
// safe from any goroutine. Functions run in the order posted. It allocates
// only when its queue grows. After the loop has ended it returns
// ErrLoopClosed and fn never runs.
func (l *Loop) Post(fn func()) error {
	l.postMu.Lock()
	if l.exited {
		l.postMu.Unlock()
		return ErrLoopClosed
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

// Context returns the value set by SetContext: per-loop state, such as a
// scratch buffer shared by the loop's connections. Call it on the loop
// goroutine.
func (l *Loop) Context() any { return l.ctx }

// SetContext attaches a value of the caller's own to the loop, for its
// callbacks to share without locks (they all run on its goroutine). Call
// it on the loop goroutine; Post a function that calls it to set it from
// elsewhere.
func (l *Loop) SetContext(v any) {
	l.checkLoop("Loop.SetContext")
	l.ctx = v
}

// logError logs err at level Error with msg, if the loop has a logger.
func (l *Loop) logError(msg string, err error, args ...any) {
	if l.log != nil {
		l.log.Error("reactor: "+msg, append(args, "err", err)...)
	}
}

// AfterFunc runs fn on the loop goroutine once d has passed. Call it on
// the loop goroutine (a handler, a timer function, a Post'ed function); from
// elsewhere, Post a function that calls it. It allocates the Timer.
func (l *Loop) AfterFunc(d time.Duration, fn func()) *Timer {
	l.checkLoop("Loop.AfterFunc")
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
// forever without timers; not at all while kept bytes wait to be offered
// again.
func (l *Loop) timeout() time.Duration {
	if len(l.redo) > 0 {
		return 0
	}
	if len(l.timers) == 0 {
		return -1
	}
	return time.Duration(max(l.timers[0].when-l.clock(), 0))
}

// run is the loop: wait, serve the events, fire timers, run posted work.
// It returns once stopping is set and nothing is registered, or on a
// poller failure (kept in err).
func (l *Loop) run() {
	l.gid.Store(goroutineID())
	defer close(l.done)
	if l.onStart != nil {
		l.onStart(l)
	}
	for !l.stopping || l.tab.Len() > 0 {
		if err := l.serveOnce(l.timeout()); err != nil {
			l.err = err
			l.logError("the poller failed; the loop ends", err)
			break
		}
	}
	l.exit()
}

// serveOnce is one turn of the loop: wait up to timeout and serve what
// is ready (the engine's turn), fire due timers, run posted work.
func (l *Loop) serveOnce(timeout time.Duration) error {
	served, err := l.eng.turn(timeout)
	if err != nil {
		return err
	}
	l.endTurn(served)
	return nil
}

// beginTurn starts serving a turn, after the engine's wait.
func (l *Loop) beginTurn() {
	l.now = l.clock()
	l.watched = false
}

// endTurn ends a turn that served events or completions (served) or not:
// it fires due timers, runs posted work, offers kept bytes again, notes
// what the next wait must know (see wait) and publishes the turn's counts.
func (l *Loop) endTurn(served bool) {
	fired := l.runTimers()
	ran := l.runPosted()
	redone := l.runRedo()
	l.woke = l.watched || fired || ran
	l.busy = served || l.woke || redone
	l.publish()
}

// serveEvents serves the first n of l.events.
func (l *Loop) serveEvents(n int) {
	for i := range n {
		ev := &l.events[i]
		t, ok := l.tab.Get(fdtable.Handle(ev.Token))
		if !ok {
			// The fd was closed (and maybe reused) earlier in this batch.
			l.stats.stale.Add(1)
			continue
		}
		t.onEvent(ev.Events)
		if len(l.dirty)+len(l.pdirty) > 0 {
			l.flushDirty()
		}
		if l.paceDue() {
			l.yield()
		}
	}
}

// flushDirty flushes the connections written to by the callback that just
// returned (see Conn.Write).
func (l *Loop) flushDirty() {
	for i := 0; i < len(l.dirty); i++ { // settle may add more
		c := l.dirty[i]
		l.dirty[i] = nil
		if c.is(stDirty) {
			c.settle()
		}
	}
	l.dirty = l.dirty[:0]
	for i := 0; i < len(l.pdirty); i++ {
		p := l.pdirty[i]
		l.pdirty[i] = nil
		if p.is(pDirty) {
			p.settle()
		}
	}
	l.pdirty = l.pdirty[:0]
}

// runRedo offers connections resumed by ResumeRead their kept bytes, and
// reports whether there were any.
func (l *Loop) runRedo() bool {
	if len(l.redo) == 0 {
		return false
	}
	for i := 0; i < len(l.redo); i++ { // a handler may resume more
		c := l.redo[i]
		l.redo[i] = nil
		c.redeliver()
		if len(l.dirty)+len(l.pdirty) > 0 {
			l.flushDirty()
		}
	}
	l.redo = l.redo[:0]
	return true
}

// runTimers fires the timers that are due and reports whether any did.
func (l *Loop) runTimers() bool {
	fired := false
	for len(l.timers) > 0 && l.timers[0].when <= l.now {
		t := l.timers[0]
		l.timers.remove(t)
		t.fn()
		if len(l.dirty)+len(l.pdirty) > 0 {
			l.flushDirty()
		}
		fired = true
	}
	return fired
}

// postPending reports whether functions are posted and not yet run.
func (l *Loop) postPending() bool {
	l.postMu.Lock()
	defer l.postMu.Unlock()
	return len(l.posted) > 0
}

// runPosted runs the functions posted so far and reports whether there
// were any.
func (l *Loop) runPosted() bool {
	l.postMu.Lock()
	l.posted, l.running = l.running[:0], l.posted
	l.postMu.Unlock()
	for i, fn := range l.running {
		fn()
		l.running[i] = nil
	}
	if len(l.dirty)+len(l.pdirty) > 0 {
		l.flushDirty() // one batch of posted writes, one system call each
	}
	return len(l.running) > 0
}

// stopAll tells everything still registered that the loop ends, with
// reason; each leaves the table.
func (l *Loop) stopAll(reason error) {
	var left []target
	l.tab.Range(func(_ fdtable.Handle, t target) bool {
		left = append(left, t)
		return true
	})
	for _, t := range left {
		t.onStop(reason)
	}
}

// exit stops what is left, runs the last posted functions (they see it
// stopped) and refuses further posts.
func (l *Loop) exit() {
	l.stopAll(ErrLoopClosed)
	l.postMu.Lock()
	l.exited = true
	l.postMu.Unlock()
	l.runPosted()
	if l.onStop != nil {
		l.onStop(l)
	}
	l.eng.close()
	l.p.Close()
	if l.dgram != nil {
		l.dgram.release()
	}
}

// beginStop starts a graceful stop on l: every connection flushes, then
// closes.
func (l *Loop) beginStop() {
	l.stopping = true
	for _, c := range l.liveConns() {
		c.beginClose(ErrServerClosed)
	}
	for _, p := range l.livePackets() {
		if !p.is(pClosing) {
			p.beginClose(ErrServerClosed)
		}
	}
}

// forceStop closes what is left on l now.
func (l *Loop) forceStop(reason error) {
	l.stopping = true
	for _, c := range l.liveConns() {
		c.closeNow(reason)
	}
	for _, p := range l.livePackets() {
		p.closeNow(reason)
	}
}

// livePackets returns l's open datagram sockets, a snapshot safe to close
// while iterating.
func (l *Loop) livePackets() []*PacketConn {
	var ps []*PacketConn
	l.tab.Range(func(_ fdtable.Handle, t target) bool {
		if p, ok := t.(*PacketConn); ok && !p.is(pClosed) {
			ps = append(ps, p)
		}
		return true
	})
	return ps
}

// liveConns returns l's open connections, a snapshot safe to close while
// iterating.
func (l *Loop) liveConns() []*Conn {
	var cs []*Conn
	l.tab.Range(func(_ fdtable.Handle, t target) bool {
		if c, ok := t.(*Conn); ok && !c.is(stClosed) {
			cs = append(cs, c)
		}
		return true
	})
	return cs
}
