package stress

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor"
	"github.com/muxkit/reactor/conn"
	"github.com/muxkit/reactor/internal/leakcheck"
	"github.com/muxkit/reactor/poller"
)

// soakFor is how long TestSoak runs; zero skips it.
var soakFor = flag.Duration("soak", 0, "run TestSoak for this long (go test ./stress -run TestSoak -soak 10m); 0 skips it")

// soakLimits pauses a client after 32 KiB queued. MaxQueued (the 4 MiB
// default) is never reached: echo queues at most HighWater plus one 64 KiB
// read, and the pushers stop at soakPushHigh.
var soakLimits = conn.Limits{HighWater: 32 << 10, LowWater: 8 << 10}

// The first byte a client sends says what it is; the server does not echo
// it.
const (
	soakEcho  = 'E' // echo everything after it
	soakPush  = 'A' // the server pushes frames with AsyncWrite and Post
	soakTimer = 'T' // each byte d after it comes back d ms later, by a timer
)

// Bounds of the load.
const (
	soakIOTimeout = 30 * time.Second // every client read and write
	soakMaxMsg    = 256 << 10        // echo message sizes
	soakPushHigh  = 512 << 10        // a pusher waits while this much is queued
	soakMaxFrame  = 8 << 10          // pushed frame payload
	soakDecoy     = 50 * time.Millisecond
	soakSndBuf    = 32 << 10 // the server's SO_SNDBUF; linux doubles it
	soakRcvBuf    = 16 << 10 // a slow reader's SO_RCVBUF
)

// soakStats are the figures the test logs and checks; safe from any
// goroutine.
type soakStats struct {
	opened, closed atomic.Int64 // server side, OnOpen and OnClose
	sessions       atomic.Int64 // client sessions that ended as planned
	bytes          atomic.Int64 // bytes the clients received and verified
	frames         atomic.Int64 // pushed frames verified
	timers         atomic.Int64 // timer replies verified
	resets         atomic.Int64 // clients that reset mid-write
	churned        atomic.Int64 // churn connections
	maxQueued      atomic.Int64 // the most Pending() seen after an echo Write

	failCh       chan struct{} // closed at the first error
	mu           sync.Mutex
	errs         []string
	closeReasons map[string]int
}

func (s *soakStats) errorf(format string, args ...any) {
	s.mu.Lock()
	if len(s.errs) == 0 {
		close(s.failCh)
	}
	if len(s.errs) < 50 {
		s.errs = append(s.errs, fmt.Sprintf(format, args...))
	}
	s.mu.Unlock()
}

func (s *soakStats) failed() bool {
	select {
	case <-s.failCh:
		return true
	default:
		return false
	}
}

// soakSrvConn is the server's state of one connection; the loop goroutine
// owns it but for closed and pending, which the pusher reads.
type soakSrvConn struct {
	kind    byte
	closed  atomic.Bool
	pending atomic.Int64 // Pending() as the last Post'ed push saw it
}

// soakHandler serves the three kinds of client.
func soakHandler(st *soakStats, pushers *sync.WaitGroup) reactor.Handler {
	return reactor.HandlerFuncs{
		Open: func(c *reactor.Conn) {
			st.opened.Add(1)
			c.SetContext(&soakSrvConn{})
			// A small send buffer: on loopback the kernel would otherwise
			// absorb megabytes and the write queue would hardly fill.
			if err := unix.SetsockoptInt(c.Fd(), unix.SOL_SOCKET, unix.SO_SNDBUF, soakSndBuf); err != nil {
				st.errorf("server: SO_SNDBUF: %v", err)
			}
		},
		Data: func(c *reactor.Conn, data []byte) {
			sc := c.Context().(*soakSrvConn)
			if sc.kind == 0 {
				sc.kind, data = data[0], data[1:]
				if sc.kind == soakPush {
					pushers.Add(1)
					go func() {
						defer pushers.Done()
						soakPusher(st, c, sc)
					}()
				}
			}
			switch sc.kind {
			case soakEcho:
				if _, err := c.Write(data); err != nil && !errors.Is(err, net.ErrClosed) && !soakPeerGone(err) {
					st.errorf("server: echo Write of %d bytes: %v", len(data), err)
				}
				q := int64(c.Pending())
				for m := st.maxQueued.Load(); q > m && !st.maxQueued.CompareAndSwap(m, q); m = st.maxQueued.Load() {
				}
			case soakTimer:
				for _, d := range data {
					soakArm(st, c, d)
				}
			case soakPush:
				if len(data) > 0 {
					st.errorf("server: a push client sent %d bytes", len(data))
				}
			default:
				st.errorf("server: unknown client kind %q", sc.kind)
				c.Close()
			}
		},
		Close: func(c *reactor.Conn, err error) {
			c.Context().(*soakSrvConn).closed.Store(true)
			st.closed.Add(1)
			st.mu.Lock()
			st.closeReasons[soakReason(err)]++
			st.mu.Unlock()
		},
	}
}

// soakArm answers byte d of a timer client d ms from now, with a timer;
// a decoy timer due soakDecoy later must be stopped by the first one and
// never fire.
func soakArm(st *soakStats, c *reactor.Conn, d byte) {
	l := c.Loop()
	decoy := l.AfterFunc(time.Duration(d)*time.Millisecond+soakDecoy, func() {
		st.errorf("server: a stopped timer fired")
	})
	l.AfterFunc(time.Duration(d)*time.Millisecond, func() {
		if !decoy.Stop() {
			st.errorf("server: Stop of a pending timer returned false")
		}
		c.Write([]byte{d}) // net.ErrClosed if the client left: it does not care
	})
}

// soakPusher pushes numbered frames to c until the client leaves (which it
// does after a few hundred at most) or the loop ends, alternating AsyncWrite and a Post'ed Write, paced by a ticker
// and holding back while soakPushHigh bytes are queued. Both go through
// the loop's posted queue from this one goroutine, so frames arrive in
// order.
func soakPusher(st *soakStats, c *reactor.Conn, sc *soakSrvConn) {
	tick := time.NewTicker(2 * time.Millisecond) // the push rate: the load, not synchronisation
	defer tick.Stop()
	r := rand.New(rand.NewPCG(rand.Uint64(), 2))
	for seq := uint32(0); ; {
		<-tick.C
		if sc.closed.Load() {
			return
		}
		if sc.pending.Load() > soakPushHigh {
			// Hold back, and have the loop look at the queue again.
			if c.Loop().Post(func() { sc.pending.Store(int64(c.Pending())) }) != nil {
				return
			}
			continue
		}
		frame := soakFrame(seq, 1+r.IntN(soakMaxFrame))
		var err error
		if seq%2 == 0 {
			err = c.AsyncWrite(frame)
		} else {
			err = c.Loop().Post(func() {
				if _, err := c.Write(frame); err != nil && !errors.Is(err, net.ErrClosed) && !soakPeerGone(err) {
					st.errorf("server: Post'ed Write of %d bytes: %v", len(frame), err)
				}
				sc.pending.Store(int64(c.Pending()))
			})
		}
		if err != nil { // the loop has ended
			return
		}
		seq++
	}
}

// soakFrame is frame seq: its number, its payload length, and a payload
// that depends on both.
func soakFrame(seq uint32, n int) []byte {
	b := make([]byte, 8+n)
	binary.BigEndian.PutUint32(b, seq)
	binary.BigEndian.PutUint32(b[4:], uint32(n))
	for i := range n {
		b[8+i] = byte(seq*31) ^ byte(i) ^ byte(i>>8)
	}
	return b
}

// soakReason names an OnClose reason for the log.
func soakReason(err error) string {
	switch {
	case err == nil:
		return "nil"
	case errors.Is(err, io.EOF):
		return "EOF"
	case errors.Is(err, reactor.ErrServerClosed):
		return "ServerClosed"
	}
	var en unix.Errno
	if errors.As(err, &en) {
		return unix.ErrnoName(en)
	}
	return err.Error()
}

// soakPeerGone reports whether err says the client left: a reset, or a
// broken pipe after it closed.
func soakPeerGone(err error) bool {
	return errors.Is(err, unix.ECONNRESET) || errors.Is(err, unix.EPIPE)
}

// soakRSS is VmRSS in bytes, or -1 without /proc/self/status.
func soakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return -1
			}
			return kb << 10
		}
	}
	return -1
}

// soakDial connects a client of kind (0: send nothing) to addr.
func soakDial(addr string, kind byte) (*net.TCPConn, error) {
	c, err := net.DialTimeout("tcp", addr, soakIOTimeout)
	if err != nil {
		return nil, err
	}
	tc := c.(*net.TCPConn)
	tc.SetDeadline(time.Now().Add(soakIOTimeout))
	if kind != 0 {
		if _, err := tc.Write([]byte{kind}); err != nil {
			tc.Close()
			return nil, err
		}
	}
	return tc, nil
}

// soakReset closes c with SO_LINGER 0, so the server sees a reset.
func soakReset(c *net.TCPConn) {
	c.SetLinger(0)
	c.Close()
}

// soakEchoClient sends 1 to 20 messages of up to soakMaxMsg random bytes,
// writing while it reads, and checks every echo.
func soakEchoClient(st *soakStats, addr string, r *rand.Rand) error {
	c, err := soakDial(addr, soakEcho)
	if err != nil {
		return err
	}
	defer c.Close()
	for range 1 + r.IntN(20) {
		msg := make([]byte, 1+r.IntN(soakMaxMsg))
		for i := range msg {
			msg[i] = byte(r.Uint32())
		}
		c.SetDeadline(time.Now().Add(soakIOTimeout))
		werr := make(chan error, 1)
		go func() { _, err := c.Write(msg); werr <- err }()
		got := make([]byte, len(msg))
		_, err := io.ReadFull(c, got)
		if err := errors.Join(err, <-werr); err != nil {
			return fmt.Errorf("echo of %d bytes: %w", len(msg), err)
		}
		if !bytes.Equal(got, msg) {
			return fmt.Errorf("echo of %d bytes differs from what was sent", len(msg))
		}
		st.bytes.Add(int64(len(msg)))
	}
	return nil
}

// soakSlowReader sends 256 KiB to 1 MiB at once and reads the echo 4 KiB
// at a time, a millisecond apart: the server's queue passes the high
// watermark and it stops reading this client until it catches up.
func soakSlowReader(st *soakStats, addr string, r *rand.Rand) error {
	c, err := soakDial(addr, soakEcho)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetReadBuffer(soakRcvBuf); err != nil {
		return err
	}
	msg := make([]byte, 256<<10+r.IntN(768<<10))
	for i := range msg {
		msg[i] = byte(r.Uint32())
	}
	werr := make(chan error, 1)
	go func() { _, err := c.Write(msg); werr <- err }()
	got := make([]byte, len(msg))
	for off := 0; off < len(got); {
		n, err := io.ReadFull(c, got[off:min(off+4<<10, len(got))])
		off += n
		if err != nil {
			return fmt.Errorf("slow read at %d of %d: %w", off, len(msg), err)
		}
		time.Sleep(time.Millisecond) // reading slowly is the behaviour under test
	}
	if err := <-werr; err != nil {
		return err
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("slow echo of %d bytes differs", len(msg))
	}
	st.bytes.Add(int64(len(msg)))
	return nil
}

// soakTrickler is a slowloris: one byte every 50 to 200 ms, 10 to 40
// times, each echo checked.
func soakTrickler(st *soakStats, addr string, r *rand.Rand, stop <-chan struct{}) error {
	c, err := soakDial(addr, soakEcho)
	if err != nil {
		return err
	}
	defer c.Close()
	var b [1]byte
	for range 10 + r.IntN(31) {
		select {
		case <-stop:
			return nil
		case <-time.After(time.Duration(50+r.IntN(151)) * time.Millisecond): // trickling is the behaviour under test
		}
		want := byte(r.Uint32())
		c.SetDeadline(time.Now().Add(soakIOTimeout))
		if _, err := c.Write([]byte{want}); err != nil {
			return err
		}
		if _, err := io.ReadFull(c, b[:]); err != nil {
			return fmt.Errorf("trickle echo: %w", err)
		}
		if b[0] != want {
			return fmt.Errorf("trickle echo %#x, want %#x", b[0], want)
		}
		st.bytes.Add(1)
	}
	return nil
}

// soakResetter writes up to 2 MiB without reading and resets the
// connection 1 to 30 ms later, mid-write.
func soakResetter(st *soakStats, addr string, r *rand.Rand) error {
	c, err := soakDial(addr, soakEcho)
	if err != nil {
		return err
	}
	msg := make([]byte, 2<<20)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Write(msg) // fails when the connection is reset under it
	}()
	time.Sleep(time.Duration(1+r.IntN(30)) * time.Millisecond) // when to reset is the behaviour under test
	soakReset(c)
	<-done
	st.resets.Add(1)
	return nil
}

// soakPushClient reads 20 to 200 pushed frames, checking their numbers and
// payloads, then closes or resets.
func soakPushClient(st *soakStats, addr string, r *rand.Rand) error {
	c, err := soakDial(addr, soakPush)
	if err != nil {
		return err
	}
	var hdr [8]byte
	for seq := range uint32(20 + r.IntN(181)) {
		c.SetDeadline(time.Now().Add(soakIOTimeout))
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			c.Close()
			return fmt.Errorf("push frame %d header: %w", seq, err)
		}
		n := int(binary.BigEndian.Uint32(hdr[4:]))
		if got := binary.BigEndian.Uint32(hdr[:]); got != seq || n < 1 || n > soakMaxFrame {
			c.Close()
			return fmt.Errorf("push frame %d: header says frame %d of %d bytes", seq, got, n)
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(c, payload); err != nil {
			c.Close()
			return fmt.Errorf("push frame %d payload: %w", seq, err)
		}
		if !bytes.Equal(payload, soakFrame(seq, n)[8:]) {
			c.Close()
			return fmt.Errorf("push frame %d: payload differs", seq)
		}
		st.frames.Add(1)
		st.bytes.Add(int64(8 + n))
	}
	if r.IntN(2) == 0 {
		soakReset(c)
	} else {
		c.Close()
	}
	return nil
}

// soakTimerClient asks for 5 to 20 timer replies of 1 to 50 ms and checks
// each comes back, not before its time.
func soakTimerClient(st *soakStats, addr string, r *rand.Rand) error {
	c, err := soakDial(addr, soakTimer)
	if err != nil {
		return err
	}
	defer c.Close()
	var b [1]byte
	for range 5 + r.IntN(16) {
		d := byte(1 + r.IntN(50))
		c.SetDeadline(time.Now().Add(soakIOTimeout))
		start := time.Now()
		if _, err := c.Write([]byte{d}); err != nil {
			return err
		}
		if _, err := io.ReadFull(c, b[:]); err != nil {
			return fmt.Errorf("timer reply: %w", err)
		}
		if el := time.Since(start); b[0] != d || el < time.Duration(d)*time.Millisecond {
			return fmt.Errorf("timer reply %d after %v, want %d after %d ms", b[0], el, d, d)
		}
		st.timers.Add(1)
	}
	return nil
}

// soakChurner connects and closes, resets, or does one echo and closes.
func soakChurner(st *soakStats, addr string, r *rand.Rand) error {
	var kind byte
	if r.IntN(3) == 2 {
		kind = soakEcho
	}
	c, err := soakDial(addr, kind)
	if err != nil {
		return err
	}
	st.churned.Add(1)
	switch r.IntN(3) {
	case 0:
		soakReset(c)
		return nil
	case 1:
		if kind == 0 {
			return c.Close()
		}
	}
	if kind == 0 {
		c.Write([]byte{soakEcho})
	}
	defer c.Close()
	msg := []byte("churn")
	if _, err := c.Write(msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
		return fmt.Errorf("churn echo %q, %v", got, err)
	}
	st.bytes.Add(int64(len(msg)))
	return nil
}

// TestSoak runs mixed load against the multiplex server (a reactor
// Server with two loops) for -soak, in phases rotating the backends this
// OS has, each phase a fresh Server ending with a Shutdown that must
// succeed. The clients: echo clients with random messages up to 256 KiB,
// slow readers that make the server stop reading them (backpressure),
// slowloris tricklers, clients that reset mid-write, connect and
// disconnect churn, clients pushed numbered frames by AsyncWrite and Post
// from other goroutines, and clients served by loop timers (AfterFunc)
// with a decoy timer that each reply Stops. Every byte a client receives
// is checked. Every 10 s it logs connections, bytes verified, RSS,
// goroutines and fds; it fails on any mismatch or error, on a Serve error
// other than ErrServerClosed, on RSS at the end more than 64 MiB or half
// above RSS at the first minute, and on an fd or goroutine left behind.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("a soak test; not with -short")
	}
	if *soakFor <= 0 {
		t.Skip("run with -soak DURATION, e.g. -soak 10m")
	}
	leakcheck.Check(t)
	st := &soakStats{closeReasons: make(map[string]int), failCh: make(chan struct{})}
	backends := reactor.Backends()
	phases := 2 * len(backends)
	phase := max(*soakFor/time.Duration(phases), 10*time.Second)
	start := time.Now()
	end := start.Add(*soakFor)

	// The reporter logs every 10 s and takes the RSS at the first minute
	// (or halfway through a shorter run).
	mark := min(time.Minute, *soakFor/2)
	var rssMark atomic.Int64
	rssMark.Store(-1)
	repDone, repStop := make(chan struct{}), make(chan struct{})
	report := func() {
		t.Logf("%6.0fs: conns %d (open %d), sessions %d, bytes verified %d, frames %d, timers %d, resets %d, churn %d, max queued %d, RSS %.1f MiB, goroutines %d, fds %d",
			time.Since(start).Seconds(), st.opened.Load(), st.opened.Load()-st.closed.Load(), st.sessions.Load(), st.bytes.Load(),
			st.frames.Load(), st.timers.Load(), st.resets.Load(), st.churned.Load(), st.maxQueued.Load(),
			float64(soakRSS())/(1<<20), runtime.NumGoroutine(), leakcheck.OpenFDs())
	}
	go func() {
		defer close(repDone)
		tick := time.NewTicker(10 * time.Second)
		defer tick.Stop()
		markT := time.After(mark)
		for {
			select {
			case <-repStop:
				return
			case <-markT:
				rssMark.Store(soakRSS())
				t.Logf("RSS at %v: %.1f MiB", mark, float64(rssMark.Load())/(1<<20))
			case <-tick.C:
				report()
			}
		}
	}()

	var rssEnd int64
	for i := 0; time.Now().Before(end) && !st.failed(); i++ {
		b := backends[i%len(backends)]
		until := time.Now().Add(phase)
		if end.Sub(until) < phase/2 {
			until = end // no stub of a phase at the end
		}
		t.Logf("phase %d: %v, 2 loops, until %v", i, b, until.Sub(start).Round(time.Second))
		soakPhase(t, st, b, until)
		if !time.Now().Before(end) {
			rssEnd = soakRSS()
		}
	}
	close(repStop)
	<-repDone
	report()

	st.mu.Lock()
	errs, reasons := st.errs, st.closeReasons
	st.mu.Unlock()
	for _, e := range errs {
		t.Error(e)
	}
	if o, c := st.opened.Load(), st.closed.Load(); o != c {
		t.Errorf("server opened %d connections and closed %d", o, c)
	}
	t.Logf("held: %d connections, %d sessions, %d bytes verified, %d frames pushed, %d timer replies, %d resets mid-write, %d churned; server close reasons %v",
		st.opened.Load(), st.sessions.Load(), st.bytes.Load(), st.frames.Load(), st.timers.Load(), st.resets.Load(), st.churned.Load(), reasons)
	if rm := rssMark.Load(); rm > 0 && rssEnd > 0 {
		t.Logf("RSS: %.1f MiB at %v, %.1f MiB at the end", float64(rm)/(1<<20), mark, float64(rssEnd)/(1<<20))
		if rssEnd > rm+max(rm/2, 64<<20) {
			t.Errorf("RSS grew from %.1f MiB at %v to %.1f MiB at the end", float64(rm)/(1<<20), mark, float64(rssEnd)/(1<<20))
		}
	}
	if st.maxQueued.Load() < int64(soakLimits.HighWater) {
		t.Errorf("no echo queue reached the high watermark (%d): the load did not exercise backpressure", soakLimits.HighWater)
	}
}

// soakPhase serves one Server of backend b until until, under the whole
// mix of clients, then stops the clients and shuts the Server down.
func soakPhase(t *testing.T, st *soakStats, b poller.Backend, until time.Time) {
	stop := make(chan struct{})
	var pushers sync.WaitGroup
	srv := &reactor.Server{Handler: soakHandler(st, &pushers), Backend: b, Loops: 2, Limits: soakLimits}
	if err := srv.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	addr := srv.Addr().String()
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()

	var wg sync.WaitGroup
	run := func(kind string, n int, pace time.Duration, fn func(r *rand.Rand) error) {
		for w := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(w)))
				for {
					select {
					case <-stop:
						return
					default:
					}
					if err := fn(r); err != nil {
						st.errorf("%s client: %v", kind, err)
						return
					}
					st.sessions.Add(1)
					if pace > 0 {
						select {
						case <-stop:
							return
						case <-time.After(pace): // the churn rate: load, not synchronisation
						}
					}
				}
			}()
		}
	}
	run("echo", 12, 0, func(r *rand.Rand) error { return soakEchoClient(st, addr, r) })
	run("slow reader", 4, 0, func(r *rand.Rand) error { return soakSlowReader(st, addr, r) })
	run("trickler", 16, 0, func(r *rand.Rand) error { return soakTrickler(st, addr, r, stop) })
	run("resetter", 2, 20*time.Millisecond, func(r *rand.Rand) error { return soakResetter(st, addr, r) })
	run("push", 4, 0, func(r *rand.Rand) error { return soakPushClient(st, addr, r) })
	run("timer", 4, 0, func(r *rand.Rand) error { return soakTimerClient(st, addr, r) })
	run("churn", 2, 10*time.Millisecond, func(r *rand.Rand) error { return soakChurner(st, addr, r) })

	// Stop at until, or at the first error.
	select {
	case <-time.After(time.Until(until)):
	case <-st.failCh:
	}
	close(stop)
	wg.Wait()
	pushers.Wait()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Errorf("%v: Shutdown: %v", b, err)
	}
	if err := <-served; !errors.Is(err, reactor.ErrServerClosed) {
		t.Errorf("%v: Serve returned %v, want ErrServerClosed", b, err)
	}
}
