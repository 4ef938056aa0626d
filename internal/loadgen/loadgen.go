// Package loadgen is the load generator cmd/compare (and bench/) drive echo
// servers with: many TCP connections over loopback, each a closed loop of
// one message in flight (send, wait for the whole echo, send again), run by
// one goroutine over the reactor's own poller, allocating nothing per
// message. With Config.Rate the load is an open loop instead: messages are
// due at a fixed rate whatever the server does, each sent on the connection
// that has waited longest for its next message. The caller pins that
// goroutine's thread if it wants to; every method runs on the calling
// goroutine and blocks it.
package loadgen

import (
	"fmt"
	"os"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/internal/sock"
	"github.com/muxkit/reactor/poller"
)

// Config says what load to put on the server at Addr.
type Config struct {
	Addr   string // host:port of a TCP echo server
	Active int    // connections in the closed loop
	Idle   int    // connections that echo one message, then stay idle
	Size   int    // bytes per message; at least 1
	// Rate, if positive, makes the active connections an open loop: a
	// message is due every 1/Rate seconds, and goes out on a connection
	// with no message in flight; while none has, due messages wait, and
	// their latency counts from when they were due, so a server that falls
	// behind is charged for the queue it makes (no coordinated omission).
	// Zero is the closed loop.
	Rate float64
}

// state of one connection.
const (
	connecting = iota
	waiting    // first message sent, no echo yet
	running    // echoed at least once
	idle       // an idle connection that has had its one echo
	gone       // closed or reset by the server
)

type conn struct {
	fd     int
	state  uint8
	active bool
	got    int   // bytes of the current echo received
	sent   int64 // when the current message was sent, ns since start
	dialed int64 // when connect was called, ns since start
}

// Gen is a running load: its connections and their counters.
type Gen struct {
	cfg    Config
	p      poller.Poller
	conns  []conn
	msg    []byte
	buf    []byte
	events []poller.Event
	start  time.Time

	count   int64 // echoes completed by active connections
	record  bool
	hist    Histogram
	setup   []time.Duration // connect to first echo, per active connection served
	pending int             // connections without their first echo
	closed  int             // connections the server closed or reset

	// The open loop (Config.Rate).
	every int64 // ns between due messages
	due   int64 // when the next message is due, ns since start; 0 before the first Run
	free  []int // active connections with no message in flight, oldest first (a ring)
	head  int   // free[head] is the oldest
	nfree int
	late  int64 // messages sent more than a millisecond after they were due
}

// Dial opens the connections (non-blocking connects, all in flight at
// once), sends the first message on each, and waits until every one has
// had its first echo or timeout has passed. Connections still waiting
// then are not an error: a server that serves fewer clients than it has
// connected (iterative, a full pool) leaves them waiting; Waiting reports
// how many. A connect that fails is an error.
func Dial(cfg Config, timeout time.Duration) (*Gen, error) {
	if cfg.Active < 0 || cfg.Idle < 0 || cfg.Active+cfg.Idle == 0 || cfg.Size < 1 {
		return nil, fmt.Errorf("loadgen: %d active, %d idle connections of %d-byte messages", cfg.Active, cfg.Idle, cfg.Size)
	}
	if cfg.Rate < 0 || cfg.Rate > 0 && (cfg.Active == 0 || 1e9/cfg.Rate < 1) {
		return nil, fmt.Errorf("loadgen: a rate of %g messages per second over %d active connections", cfg.Rate, cfg.Active)
	}
	sa, family, err := sock.Resolve("tcp", cfg.Addr)
	if err != nil {
		return nil, err
	}
	p, err := poller.New(poller.Available()[0])
	if err != nil {
		return nil, err
	}
	n := cfg.Active + cfg.Idle
	g := &Gen{
		cfg:     cfg,
		p:       p,
		conns:   make([]conn, 0, n),
		msg:     make([]byte, cfg.Size),
		buf:     make([]byte, max(cfg.Size, 64<<10)),
		events:  make([]poller.Event, 512),
		start:   time.Now(),
		setup:   make([]time.Duration, 0, cfg.Active),
		pending: n,
	}
	if cfg.Rate > 0 {
		g.every = int64(1e9 / cfg.Rate)
		g.free = make([]int, cfg.Active)
	}
	for i := range g.msg {
		g.msg[i] = byte('a' + i%26)
	}
	for i := range n {
		// Idle connections first, so the active ones are the newest: a
		// server that serves only its first clients serves the idle ones.
		if err := g.connect(sa, family, i >= cfg.Idle); err != nil {
			g.Close()
			return nil, fmt.Errorf("loadgen: connection %d of %d: %w", i+1, n, err)
		}
	}
	end := time.Since(g.start) + timeout
	for g.pending > 0 {
		left := end - time.Since(g.start)
		if left <= 0 {
			break
		}
		if err := g.poll(min(left, 100*time.Millisecond)); err != nil {
			g.Close()
			return nil, err
		}
	}
	return g, nil
}

func (g *Gen) connect(sa unix.Sockaddr, family int, active bool) error {
	fd, err := sock.Socket(family)
	if err != nil {
		return err
	}
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	i := len(g.conns)
	g.conns = append(g.conns, conn{fd: fd, active: active, dialed: g.now()})
	err = unix.Connect(fd, sa)
	switch {
	case err == nil:
		if err := g.p.Add(fd, uint64(i), poller.Readable); err != nil {
			return err
		}
		return g.first(i)
	case err == unix.EINPROGRESS:
		return g.p.Add(fd, uint64(i), poller.Writable)
	default:
		return os.NewSyscallError("connect", err)
	}
}

// first sends connection i's first message once it is connected.
func (g *Gen) first(i int) error {
	c := &g.conns[i]
	c.state = waiting
	return g.send(i)
}

func (g *Gen) now() int64 { return int64(time.Since(g.start)) }

// Waiting is the number of connections that have not had their first echo.
func (g *Gen) Waiting() int { return g.pending }

// Setup is the median time from connect to first echo over the active
// connections that have had one, and how many those are.
func (g *Gen) Setup() (median time.Duration, n int) {
	if len(g.setup) == 0 {
		return 0, 0
	}
	s := slices.Clone(g.setup)
	slices.Sort(s)
	return s[len(s)/2], len(s)
}

// Result is what one measured window saw.
type Result struct {
	Msgs          int64         // echoes completed
	Bytes         int64         // bytes echoed (Msgs × Size)
	Wall          time.Duration // the window's length
	P50, P99      time.Duration // round-trip latency quantiles
	P999, Max     time.Duration
	Latency       *Histogram // the window's round trips, a copy (open loop: from when each message was due)
	Late          int64      // open loop: messages sent more than 1 ms after they were due (no connection free, or the generator behind)
	Waiting       int        // connections still without their first echo at the end
	Closed        int        // connections the server closed or reset
	SetupMedian   time.Duration
	SetupMeasured int // active connections the setup median is over
}

// MsgsPerSec is the echo rate over the window.
func (r Result) MsgsPerSec() float64 { return float64(r.Msgs) / r.Wall.Seconds() }

// Run drives the closed loop for d. With measure, the echoes and their
// latencies are counted into the Result; without, it is a warm-up.
func (g *Gen) Run(d time.Duration, measure bool) (Result, error) {
	if measure {
		g.hist.Reset()
		g.count, g.late = 0, 0
	}
	g.record = measure
	t0 := time.Now()
	end := time.Since(g.start) + d
	if g.every > 0 && g.due == 0 {
		g.due = g.now()
	}
	for {
		left := end - time.Since(g.start)
		if left <= 0 {
			break
		}
		wait := min(left, 100*time.Millisecond)
		if g.every > 0 {
			if err := g.sendDue(); err != nil {
				return Result{}, err
			}
			// The poller waits in whole milliseconds: spin through the
			// last one before a message is due (this thread is the load
			// generator's alone).
			wait = min(wait, max(time.Duration(g.due-g.now())-time.Millisecond, 0))
		}
		if err := g.poll(wait); err != nil {
			return Result{}, err
		}
	}
	r := Result{Wall: time.Since(t0), Waiting: g.pending, Closed: g.closed}
	if measure {
		r.Msgs, r.Late = g.count, g.late
		r.Bytes = g.count * int64(g.cfg.Size)
		r.Latency = g.hist.Clone()
		r.P50, r.P99, r.P999 = g.hist.Quantile(0.50), g.hist.Quantile(0.99), g.hist.Quantile(0.999)
		r.Max = g.hist.Max()
	}
	r.SetupMedian, r.SetupMeasured = g.Setup()
	return r, nil
}

func (g *Gen) poll(timeout time.Duration) error {
	n, err := g.p.Wait(g.events, timeout)
	if err != nil {
		return err
	}
	now := g.now()
	for _, ev := range g.events[:n] {
		i := int(ev.Token)
		c := &g.conns[i]
		switch c.state {
		case gone:
			continue
		case connecting:
			if err := g.connected(i); err != nil {
				return err
			}
			continue
		}
		if err := g.receive(i, now); err != nil {
			return err
		}
	}
	return nil
}

// connected finishes connection i's non-blocking connect.
func (g *Gen) connected(i int) error {
	c := &g.conns[i]
	soerr, err := unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err == nil && soerr != 0 {
		err = unix.Errno(soerr)
	}
	if err != nil {
		return fmt.Errorf("loadgen: connection %d: %w", i+1, os.NewSyscallError("connect", err))
	}
	if err := g.p.Modify(c.fd, uint64(i), poller.Readable); err != nil {
		return err
	}
	return g.first(i)
}

// receive reads what has come of connection i's echo; a whole echo is
// counted and, on an active connection, answered with the next message.
func (g *Gen) receive(i int, now int64) error {
	c := &g.conns[i]
	n, err := unix.Read(c.fd, g.buf[:len(g.msg)-c.got])
	switch {
	case err == unix.EAGAIN || err == unix.EINTR:
		return nil
	case err == unix.ECONNRESET || err == nil && n == 0:
		return g.lost(i)
	case err != nil:
		return fmt.Errorf("loadgen: connection %d: %w", i+1, os.NewSyscallError("read", err))
	}
	c.got += n
	if c.got < len(g.msg) {
		return nil
	}
	c.got = 0
	if c.state == waiting {
		g.pending--
		c.state = idle
		if c.active {
			c.state = running
			g.setup = append(g.setup, time.Duration(now-c.dialed))
		}
	}
	if !c.active {
		return nil
	}
	g.count++
	if g.record {
		g.hist.Add(time.Duration(now - c.sent))
	}
	if g.every > 0 {
		g.free[(g.head+g.nfree)%len(g.free)] = i
		g.nfree++
		return nil
	}
	return g.send(i)
}

// sendDue sends, in the open loop, every message due by now that a free
// connection can take; each one's latency counts from when it was due.
// Those no connection can take stay due.
func (g *Gen) sendDue() error {
	now := g.now()
	for g.due <= now && g.nfree > 0 {
		i := g.free[g.head]
		g.head = (g.head + 1) % len(g.free)
		g.nfree--
		if err := g.send(i); err != nil {
			return err
		}
		if now-g.due > int64(time.Millisecond) && g.record {
			g.late++
		}
		g.conns[i].sent = g.due
		g.due += g.every
	}
	return nil
}

// lost records that the server closed or reset connection i: a server may
// refuse clients past a limit, which the result reports rather than fails.
func (g *Gen) lost(i int) error {
	c := &g.conns[i]
	if c.state == waiting {
		g.pending--
	}
	c.state = gone
	g.closed++
	return g.p.Remove(c.fd)
}

// send writes connection i's next message; with one message in flight the
// socket buffer has room for it.
func (g *Gen) send(i int) error {
	c := &g.conns[i]
	n, err := unix.Write(c.fd, g.msg)
	if err == unix.EPIPE || err == unix.ECONNRESET {
		return g.lost(i)
	}
	if err != nil {
		return fmt.Errorf("loadgen: connection %d: %w", i+1, os.NewSyscallError("write", err))
	}
	if n != len(g.msg) {
		return fmt.Errorf("loadgen: connection %d: short write (%d of %d bytes)", i+1, n, len(g.msg))
	}
	c.sent = g.now()
	return nil
}

// Close closes every connection and the poller.
func (g *Gen) Close() {
	for _, c := range g.conns {
		g.p.Remove(c.fd)
		unix.Close(c.fd)
	}
	g.conns = nil
	g.p.Close()
}
