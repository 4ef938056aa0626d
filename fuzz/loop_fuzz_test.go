package fuzz

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor"
	"github.com/muxkit/reactor/internal/leakcheck"
	"github.com/muxkit/reactor/internal/sock"
	"github.com/muxkit/reactor/poller"
)

// Client actions of FuzzLoop, decoded from the fuzz input. After one header
// byte (bits 0-1 pick the backend from reactor.Backends(): on linux epoll,
// poll, select and, where it runs, the completion engine; bit 2 one or two
// loops, bit 3 a handler that is a HalfCloser, bit 4 client writes that
// send their first lpDribble bytes one byte per system call, so frames
// arrive split at every byte) each action takes two bytes: the action (its
// low three bits) with the client slot (the next three bits), and an
// argument.
const (
	lpConnect   = iota // connect slot to the server, if it is free
	lpWrite            // write lpSize(arg) bytes, as many as the socket takes
	lpRead             // read up to lpSize(arg) bytes, waiting for what is owed
	lpPause            // stop reading in passing for arg%16+1 actions
	lpHalfClose        // shutdown(SHUT_WR); the slot keeps reading
	lpClose            // close the client socket (a reset if data is unread)
	lpAsync            // AsyncWrite lpAsyncSize(arg) bytes from another goroutine
	lpPost             // Loop().Post a Write of lpAsyncSize(arg) bytes, likewise
	lpNumOps
)

// Bounds on the work of one input, so that one input takes a few
// milliseconds.
const (
	lpSlots       = 8
	lpMaxOps      = 48
	lpMaxConnects = 16
	lpMaxSent     = 256 << 10 // client bytes per connection
	lpMaxAsync    = 64 << 10  // AsyncWrite and Post bytes per connection
	lpSndBuf      = 4096      // SO_SNDBUF of both ends; linux doubles it
	// lpWait bounds every wait for the server: a connection's OnOpen, the
	// echo of bytes owed, OnClose after the client left, and Shutdown.
	lpWait = 5 * time.Second
	// lpWriteWait is how long, in milliseconds, a write waits for room.
	lpWriteWait = 1
	// lpDribble is how many bytes of each write go one per system call
	// when the header's bit 4 asks for it.
	lpDribble = 300
	// lpMaxInbound is the server's MaxInbound: the two largest frames are
	// more than half of it, so a kept frame head can take most of it.
	lpMaxInbound = 128 << 10
)

// lpLimits makes the loop stop reading a client after a few KiB queued.
// MaxQueued is far above what one input can queue (HighWater plus one 64 KiB
// read plus lpMaxAsync), so no Write is ever refused.
var lpLimits = reactor.Limits{HighWater: 4 << 10, LowWater: 1 << 10, MaxQueued: 1 << 20}

// lpScratch is the buffer of client reads; a fuzz worker runs one input at a
// time.
var lpScratch [64 << 10]byte

// lpSize maps an argument byte to a write or read size: sizes around the
// watermarks, the socket buffers and the loop's 64 KiB read buffer, then
// multiples of 257.
func lpSize(arg byte) int {
	sizes := [...]int{1, 2, 100, 1023, 1024, 1025, 4095, 4096, 4097, 8192, 9000, 16384, 65535, 65536, 65537}
	if int(arg) < len(sizes) {
		return sizes[arg]
	}
	return int(arg) * 257
}

// lpFrames are the frame sizes of the server's protocol, by connection id
// modulo their number: it echoes whole frames only and keeps the rest with
// Conn.Keep (1 keeps nothing; 70000 and 100000 are more than one read
// brings and more than half of lpMaxInbound). A connection with an odd id
// also says with Conn.Need how long the frame it keeps is.
var lpFrames = [...]int{1, 7, 100, 4096, 70000, 100000}

// lpFrame is connection id's frame size.
func lpFrame(id int) int { return lpFrames[id%len(lpFrames)] }

// lpWhole is n rounded down to whole frames of connection id.
func lpWhole(id, n int) int { return n / lpFrame(id) * lpFrame(id) }

// lpAsyncSize maps an argument byte to the size of an AsyncWrite or Post.
func lpAsyncSize(arg byte) int { return 1 + int(arg)*31 }

// lpMix is splitmix64's finaliser.
func lpMix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// lpEchoByte is byte off of what connection id sends: pseudo-random with the
// top bit clear, so that a byte out of place shows and the client can tell
// echo from the bytes written by AsyncWrite and Post, which have it set.
func lpEchoByte(id, off int) byte { return byte(lpMix(uint64(id)<<40|uint64(off))) & 0x7f }

// lpAsyncByte is byte off of what AsyncWrite and Post send to connection id.
func lpAsyncByte(id, off int) byte {
	return 0x80 | byte(lpMix(uint64(id)<<40|uint64(off)|1<<39))&0x7f
}

// lpOp is one decoded action.
type lpOp struct {
	kind, slot int
	arg        byte
}

func (o lpOp) String() string {
	name := [...]string{"connect", "write", "read", "pause", "halfclose", "close", "async", "post"}[o.kind]
	switch o.kind {
	case lpWrite, lpRead:
		return fmt.Sprintf("%s(%d, %d)", name, o.slot, lpSize(o.arg))
	case lpPause:
		return fmt.Sprintf("%s(%d, %d)", name, o.slot, int(o.arg%16)+1)
	case lpAsync, lpPost:
		return fmt.Sprintf("%s(%d, %d)", name, o.slot, lpAsyncSize(o.arg))
	}
	return fmt.Sprintf("%s(%d)", name, o.slot)
}

// decodeLoopOps turns the fuzz input into a backend, a loop count, whether
// the handler is a HalfCloser, whether writes dribble, and actions.
func decodeLoopOps(data []byte) (poller.Backend, int, bool, bool, []lpOp) {
	backends := reactor.Backends() // the engine last, where it runs
	var hdr byte
	if len(data) > 0 {
		hdr, data = data[0], data[1:]
	}
	b := backends[int(hdr&3)%len(backends)]
	loops := 1 + int(hdr>>2&1)
	half := hdr&8 != 0
	dribble := hdr&16 != 0
	var ops []lpOp
	for len(data) >= 2 && len(ops) < lpMaxOps {
		ops = append(ops, lpOp{kind: int(data[0] % lpNumOps), slot: int(data[0]>>3) % lpSlots, arg: data[1]})
		data = data[2:]
	}
	return b, loops, half, dribble, ops
}

// lpEnc encodes actions for the seed corpus, the inverse of decodeLoopOps.
func lpEnc(hdr byte, ops ...lpOp) []byte {
	b := []byte{hdr}
	for _, o := range ops {
		b = append(b, byte(o.kind|o.slot<<3), o.arg)
	}
	return b
}

// lpSrvConn is the server's record of one connection, kept on its loop
// goroutine and read by the test after Serve has returned.
type lpSrvConn struct {
	id       int
	read     int   // bytes read, each checked against lpEchoByte
	kept     int   // bytes kept with Keep: the start of the next OnData's data
	peerDone bool  // OnPeerClose ran: echo everything, then close
	echoed   int   // bytes the echo Write took
	posted   int   // bytes the Post'ed Writes took
	writeErr error // the first failed echo Write
	postErr  error // the first failed Post'ed Write
	maxQueue int   // the most Pending() after a Write, for the log
	closes   int
	reason   error // OnClose's
}

// lpServer is the server side of one input: the reactor Server and what its
// handler saw.
type lpServer struct {
	srv    *reactor.Server
	path   string
	served chan error // Serve's result
	opened chan *reactor.Conn
	closed chan int // ids, as OnClose runs
	nextID atomic.Int64

	mu   sync.Mutex
	errs []string // violations seen on the loop goroutines
}

func (s *lpServer) errorf(format string, args ...any) {
	s.mu.Lock()
	s.errs = append(s.errs, fmt.Sprintf(format, args...))
	s.mu.Unlock()
}

// lpPlain is a Handler without HalfCloser: the loop closes a connection
// at its peer's end of file, dropping what the handler kept.
type lpPlain struct{ h reactor.HandlerFuncs }

func (p lpPlain) OnOpen(c *reactor.Conn)              { p.h.OnOpen(c) }
func (p lpPlain) OnData(c *reactor.Conn, data []byte) { p.h.OnData(c, data) }
func (p lpPlain) OnClose(c *reactor.Conn, err error)  { p.h.OnClose(c, err) }
func (p lpPlain) OnDrain(c *reactor.Conn)             {}

var _ reactor.Drainer = lpPlain{}

// handler echoes whole frames (see lpFrames), keeping the rest, checking
// every byte it reads and recording what it wrote. With half, it is a
// HalfCloser: at the peer's end of file it has the kept bytes offered
// again (ResumeRead), echoes them, and closes.
func (s *lpServer) handler(half bool) reactor.Handler {
	h := s.funcs()
	if !half {
		return lpPlain{h}
	}
	h.PeerClose = func(c *reactor.Conn) {
		st := c.Context().(*lpSrvConn)
		st.peerDone = true
		if c.Buffered() != st.kept {
			s.errorf("conn %d: Buffered() = %d at the peer's end of file, kept %d", st.id, c.Buffered(), st.kept)
		}
		if st.kept == 0 {
			c.Close()
			return
		}
		c.ResumeRead()
	}
	return h
}

func (s *lpServer) funcs() reactor.HandlerFuncs {
	return reactor.HandlerFuncs{
		Open: func(c *reactor.Conn) {
			st := &lpSrvConn{id: int(s.nextID.Add(1)) - 1}
			c.SetContext(st)
			// A small send buffer makes the write queue, and so backpressure,
			// reachable with a few KiB.
			if err := unix.SetsockoptInt(c.Fd(), unix.SOL_SOCKET, unix.SO_SNDBUF, lpSndBuf); err != nil {
				s.errorf("conn %d: SO_SNDBUF: %v", st.id, err)
			}
			s.opened <- c
		},
		Data: func(c *reactor.Conn, data []byte) {
			st := c.Context().(*lpSrvConn)
			if len(data) < st.kept {
				s.errorf("conn %d: OnData got %d bytes, %d of them kept from before", st.id, len(data), st.kept)
				return
			}
			// data is what was kept, then what was read since.
			for i, b := range data[st.kept:] {
				if want := lpEchoByte(st.id, st.read+i); b != want {
					s.errorf("conn %d: server read %#x at offset %d, want %#x", st.id, b, st.read+i, want)
					break
				}
			}
			st.read += len(data) - st.kept
			n := len(data)
			if !st.peerDone {
				n = lpWhole(st.id, n)
			}
			k, err := c.Write(data[:n])
			st.echoed += k
			st.maxQueue = max(st.maxQueue, c.Pending())
			if err != nil && st.writeErr == nil {
				st.writeErr = err
			}
			if err := c.Keep(len(data) - n); err != nil {
				s.errorf("conn %d: Keep: %v", st.id, err)
			}
			st.kept = len(data) - n
			if st.id%2 == 1 && st.kept > 0 && !st.peerDone {
				// The kept bytes start a frame: wait for all of it.
				if err := c.Need(lpFrame(st.id)); err != nil {
					s.errorf("conn %d: Need(%d): %v", st.id, lpFrame(st.id), err)
				}
			}
			if st.peerDone {
				c.Close()
			}
		},
		Close: func(c *reactor.Conn, err error) {
			st := c.Context().(*lpSrvConn)
			st.closes++
			st.reason = err
			s.closed <- st.id
		},
	}
}

// lpClient is one client slot: the client's socket and what the model knows
// of the stream both ways.
type lpClient struct {
	fd    int // -1: free, or closed by the client
	id    int
	srv   *reactor.Conn
	sent  int // bytes the client's writes took
	async int // AsyncWrite and Post bytes handed to the helper goroutine
	// chunkEnds are the async offsets where AsyncWrite and Post chunks end;
	// a chunk reaches the client in one piece, never split by echo.
	chunkEnds []int
	chunk     int // index in chunkEnds of the chunk being received
	gotEcho   int
	gotAsync  int
	half      bool // the client shut down its sending side
	eof       bool
	pause     int // actions left without reading in passing
}

// lpReq is one AsyncWrite or Post for the helper goroutine.
type lpReq struct {
	c     *reactor.Conn
	chunk []byte
	post  bool
}

// lpRun is the state of one input.
type lpRun struct {
	t       *testing.T
	s       *lpServer
	slots   [lpSlots]*lpClient
	all     []*lpClient // every connection, in the order opened
	reqs    chan lpReq
	helper  chan struct{} // closed when the helper goroutine returns
	closed  map[int]bool  // ids whose OnClose the test has seen
	program []lpOp
	half    bool // the server's handler is a HalfCloser
	dribble bool // writes send their first lpDribble bytes one at a time
}

// fail ends the input with the program and the state of every connection.
func (r *lpRun) fail(format string, args ...any) {
	r.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, format, args...)
	fmt.Fprintf(&b, "\nprogram: %v", r.program)
	for _, c := range r.all {
		fmt.Fprintf(&b, "\nconn %d: fd %d sent %d async %d got echo %d async %d half %v eof %v",
			c.id, c.fd, c.sent, c.async, c.gotEcho, c.gotAsync, c.half, c.eof)
	}
	r.t.Fatal(b.String())
}

// owed is the echo the server owes c: its whole frames, and everything
// once the server has read the end of file of a half-closed client and is
// a HalfCloser.
func (r *lpRun) owed(c *lpClient) int {
	if c.half && r.half {
		return c.sent
	}
	return lpWhole(c.id, c.sent)
}

// consume checks bytes the client received against the model.
func (r *lpRun) consume(c *lpClient, p []byte) {
	r.t.Helper()
	for _, b := range p {
		if b&0x80 == 0 {
			if c.chunk < len(c.chunkEnds) && c.gotAsync > 0 && (c.chunk == 0 || c.gotAsync > c.chunkEnds[c.chunk-1]) {
				r.fail("conn %d: echo byte inside an async chunk (async offset %d, chunk ends at %d)", c.id, c.gotAsync, c.chunkEnds[c.chunk])
			}
			if c.gotEcho >= r.owed(c) {
				r.fail("conn %d: echo byte %d, but the client sent %d, %d in whole frames of %d", c.id, c.gotEcho, c.sent, lpWhole(c.id, c.sent), lpFrame(c.id))
			}
			if want := lpEchoByte(c.id, c.gotEcho); b != want {
				r.fail("conn %d: echo byte %d is %#x, want %#x", c.id, c.gotEcho, b, want)
			}
			c.gotEcho++
			continue
		}
		if c.gotAsync >= c.async {
			r.fail("conn %d: async byte %d, but %d were written", c.id, c.gotAsync, c.async)
		}
		if want := lpAsyncByte(c.id, c.gotAsync); b != want {
			r.fail("conn %d: async byte %d is %#x, want %#x", c.id, c.gotAsync, b, want)
		}
		c.gotAsync++
		if c.gotAsync == c.chunkEnds[c.chunk] {
			c.chunk++
		}
	}
}

// readOnce reads what is there without waiting; it reports whether it read
// anything or reached end of file. With resetOK a reset counts as end of
// file: a server that closes a connection with bytes of the client unread
// (Shutdown stops reading) resets it, on a unix socket once the client has
// read everything before.
func (r *lpRun) readOnce(c *lpClient, limit int, resetOK bool) bool {
	r.t.Helper()
	n, err := unix.Read(c.fd, lpScratch[:min(limit, len(lpScratch))])
	switch {
	case err == unix.EAGAIN || err == unix.EINTR:
		return false
	case err == unix.ECONNRESET && resetOK:
		c.eof = true
		return true
	case err != nil:
		r.fail("conn %d: client read: %v", c.id, err)
	case n == 0:
		c.eof = true
		return true
	}
	r.consume(c, lpScratch[:n])
	return true
}

// readUntil reads until the client has received want bytes in all or end of
// file, waiting with poll(2); the server owes them, so not getting them by
// the deadline fails. End of file fails too unless eofOK; a reset counts as
// end of file only at Shutdown.
func (r *lpRun) readUntil(c *lpClient, want int, eofOK, shutdown bool) {
	r.t.Helper()
	end := time.Now().Add(lpWait)
	for !c.eof && c.gotEcho+c.gotAsync < want {
		if r.readOnce(c, want-c.gotEcho-c.gotAsync, shutdown) {
			continue
		}
		left := time.Until(end)
		if left <= 0 {
			r.fail("conn %d: received %d bytes of %d owed within %v", c.id, c.gotEcho+c.gotAsync, want, lpWait)
		}
		pfd := []unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(pfd, int(left/time.Millisecond)+1); err != nil && err != unix.EINTR {
			r.fail("poll: %v", err)
		}
	}
	if c.eof && !eofOK {
		r.fail("conn %d: end of file, but the client did not shut down", c.id)
	}
}

// drainClosed notes the OnClose calls reported so far.
func (r *lpRun) drainClosed() {
	for {
		select {
		case id := <-r.s.closed:
			r.closed[id] = true
		default:
			return
		}
	}
}

// step runs one action.
func (r *lpRun) step(o lpOp) {
	r.t.Helper()
	c := r.slots[o.slot]
	open := c != nil && c.fd >= 0
	switch o.kind {
	case lpConnect:
		if open || len(r.all) >= lpMaxConnects {
			return
		}
		r.connect(o.slot)
	case lpWrite:
		if !open || c.half || c.sent >= lpMaxSent {
			return
		}
		n := min(lpSize(o.arg), lpMaxSent-c.sent)
		p := make([]byte, n)
		for i := range p {
			p[i] = lpEchoByte(c.id, c.sent+i)
		}
		// Write what the socket takes, waiting up to lpWriteWait each
		// time it is full: long enough for the loop to read, short enough
		// that a server which stopped reading costs little.
		for at := 0; len(p) > 0; {
			chunk := p
			if r.dribble && at < lpDribble {
				chunk = p[:1]
			}
			k, err := unix.Write(c.fd, chunk)
			switch {
			case err == unix.EAGAIN || err == unix.EINTR:
			case err != nil:
				r.fail("conn %d: client write: %v", c.id, err)
			default:
				c.sent += k
				at += k
				p = p[k:]
				continue
			}
			pfd := []unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLOUT}}
			if n, err := unix.Poll(pfd, lpWriteWait); err != nil && err != unix.EINTR {
				r.fail("poll: %v", err)
			} else if n == 0 {
				break
			}
		}
	case lpRead:
		if !open || c.eof {
			return
		}
		c.pause = 0
		r.readUntil(c, min(c.gotEcho+c.gotAsync+lpSize(o.arg), r.owed(c)+c.async), c.half, false)
	case lpPause:
		if open {
			c.pause = int(o.arg%16) + 1
		}
	case lpHalfClose:
		if !open || c.half {
			return
		}
		if err := unix.Shutdown(c.fd, unix.SHUT_WR); err != nil {
			r.fail("conn %d: shutdown: %v", c.id, err)
		}
		c.half = true
	case lpClose:
		if !open {
			return
		}
		unix.Close(c.fd)
		c.fd = -1
	case lpAsync, lpPost:
		// Only while the client sends: after a half-close the server may
		// close at any time and drop the bytes, which the model cannot know.
		if !open || c.half || c.async >= lpMaxAsync {
			return
		}
		n := min(lpAsyncSize(o.arg), lpMaxAsync-c.async)
		p := make([]byte, n)
		for i := range p {
			p[i] = lpAsyncByte(c.id, c.async+i)
		}
		c.async += n
		c.chunkEnds = append(c.chunkEnds, c.async)
		r.reqs <- lpReq{c: c.srv, chunk: p, post: o.kind == lpPost}
	}
}

// connect opens a client in slot and waits for the server's OnOpen.
func (r *lpRun) connect(slot int) {
	r.t.Helper()
	fd, err := sock.Socket(unix.AF_UNIX)
	if err != nil {
		r.fail("socket: %v", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, lpSndBuf); err != nil {
		unix.Close(fd)
		r.fail("SO_SNDBUF: %v", err)
	}
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: r.s.path}); err != nil {
		unix.Close(fd)
		r.fail("connect: %v", err)
	}
	c := &lpClient{fd: fd, id: len(r.all)}
	r.slots[slot] = c
	r.all = append(r.all, c)
	// Connections are made one at a time, so the next OnOpen is this one's.
	select {
	case sc := <-r.s.opened:
		c.srv = sc
	case <-time.After(lpWait):
		r.fail("conn %d: no OnOpen within %v", c.id, lpWait)
	}
}

// lpHelper runs AsyncWrite and Post for the test from a goroutine of its own,
// in the order asked.
func lpHelper(s *lpServer, reqs <-chan lpReq, done chan<- struct{}) {
	defer close(done)
	for q := range reqs {
		var err error
		if q.post {
			c, p := q.c, q.chunk
			err = c.Loop().Post(func() {
				st := c.Context().(*lpSrvConn)
				n, err := c.Write(p)
				st.posted += n
				st.maxQueue = max(st.maxQueue, c.Pending())
				if err != nil && st.postErr == nil {
					st.postErr = err
				}
			})
		} else {
			err = q.c.AsyncWrite(q.chunk)
		}
		if err != nil {
			s.errorf("AsyncWrite or Post: %v", err)
		}
	}
}

// FuzzLoop drives a reactor Server running an echo handler with small
// watermarks and socket buffers, over a unix socket, with a program of
// client actions on up to lpSlots connections: connect, write, read, stop
// reading (backpressure), half-close, close with or without unread data, and
// AsyncWrite and Post from another goroutine. The client bytes have the top
// bit clear and the AsyncWrite and Post bytes set, each a pseudo-random
// function of connection and offset, so every byte received is checked: echo
// in the order sent and no more than sent, async chunks in the order written
// and each in one piece. A read waits for the bytes the server owes, so a
// connection left paused or a lost byte fails by a deadline. At the end the
// test waits for OnClose of every connection the client closed, then shuts
// the server down while reading every connection still open to end of file:
// Shutdown must return nil within lpWait, Serve ErrServerClosed, and each
// client must have received exactly what the server's Writes took (echo the
// server read in order, every async chunk). Every connection is closed once,
// with a reason that fits what the client did, and the input leaves no fd or
// goroutine behind.
func FuzzLoop(f *testing.F) {
	c := func(slot int) lpOp { return lpOp{kind: lpConnect, slot: slot} }
	w := func(slot int, arg byte) lpOp { return lpOp{kind: lpWrite, slot: slot, arg: arg} }
	rd := func(slot int, arg byte) lpOp { return lpOp{kind: lpRead, slot: slot, arg: arg} }
	op := func(kind, slot int, arg byte) lpOp { return lpOp{kind: kind, slot: slot, arg: arg} }
	// Every seed twice: as written, and on backend 3 (the io_uring
	// engine on linux where it runs).
	add := func(in []byte) {
		f.Add(in)
		ring := append([]byte(nil), in...)
		ring[0] |= 3
		f.Add(ring)
	}
	// Echo on two connections, two loops, epoll (or the OS's first backend).
	add(lpEnc(4, c(0), c(1), w(0, 2), w(1, 5), rd(0, 2), rd(1, 5), w(0, 9), rd(0, 12)))
	// Backpressure: a client that stops reading and keeps writing, then reads.
	add(lpEnc(0, c(0), op(lpPause, 0, 15), w(0, 13), w(0, 13), w(0, 11), w(0, 13), rd(0, 13), rd(0, 13), w(0, 9), rd(0, 14)))
	// AsyncWrite and Post interleaved with echo; poll on linux.
	add(lpEnc(1|4, c(0), op(lpAsync, 0, 10), w(0, 6), op(lpPost, 0, 200), w(0, 5), op(lpAsync, 0, 255), rd(0, 12), rd(0, 13)))
	// Half-close after writing, then read the rest; select on linux.
	add(lpEnc(2, c(0), w(0, 4), op(lpHalfClose, 0, 0), rd(0, 10), c(1), w(1, 2), rd(1, 2)))
	// Frames kept across reads (connections 1-4: frames of 7, 100, 4096 and
	// 70000 bytes), half-closed with a partial frame kept: a HalfCloser
	// echoes it, a plain handler drops it.
	for _, hdr := range []byte{4 | 8, 4} {
		add(lpEnc(hdr, c(0), c(1), c(2), c(3), c(4), w(1, 3), w(2, 250), w(3, 13), w(4, 255), w(4, 255),
			rd(2, 12), op(lpHalfClose, 1, 0), op(lpHalfClose, 3, 0), op(lpHalfClose, 4, 0), rd(1, 3), rd(3, 13), rd(4, 13)))
	}
	// Frames split at every byte (conns 1, 2 and 4: 7, 100 and 4096) and
	// frames over half of MaxInbound (conns 4 and 5: 70000 and 100000),
	// waited for with Need on the odd ones.
	for _, hdr := range []byte{16 | 4, 16 | 8} {
		add(lpEnc(hdr, c(0), c(1), c(2), c(3), c(4), c(5), w(1, 102), w(2, 250), w(3, 16), w(3, 16), w(4, 255),
			w(5, 255), w(5, 255), rd(1, 100), rd(2, 200), rd(3, 13), w(4, 255), w(5, 255), rd(4, 255), rd(5, 255),
			op(lpHalfClose, 5, 0), rd(5, 255)))
	}
	// Reset mid-write: close with echo unread and a queue; reuse the slot.
	add(lpEnc(4, c(0), op(lpPause, 0, 15), w(0, 12), w(0, 12), op(lpClose, 0, 0), c(0), w(0, 3), rd(0, 3)))
	// Eight connections left open with bytes owed at Shutdown.
	add(lpEnc(4, c(0), c(1), c(2), c(3), c(4), c(5), c(6), c(7),
		op(lpPause, 0, 15), op(lpPause, 1, 15), w(0, 13), w(1, 11), op(lpPost, 2, 100), w(3, 8), op(lpAsync, 4, 30)))

	dir, err := os.MkdirTemp("", "fuzzloop")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { os.RemoveAll(dir) })
	var inputs atomic.Int64
	// A fuzz worker runs every input in one process: compare with the
	// counts at the start of the first, taken there rather than here
	// because each input runs on a goroutine of its own.
	var baseOnce sync.Once
	var baseFDs, baseGs int

	f.Fuzz(func(t *testing.T, data []byte) {
		baseOnce.Do(func() { baseFDs, baseGs = leakcheck.OpenFDs(), runtime.NumGoroutine() })
		backend, loops, half, dribble, ops := decodeLoopOps(data)
		path := filepath.Join(dir, fmt.Sprintf("s%d", inputs.Add(1)))
		s := &lpServer{
			path:   path,
			served: make(chan error, 1),
			opened: make(chan *reactor.Conn, lpMaxConnects),
			closed: make(chan int, lpMaxConnects),
		}
		s.srv = &reactor.Server{Handler: s.handler(half), Backend: backend, Loops: loops, Limits: lpLimits, MaxInbound: lpMaxInbound}
		if err := s.srv.Listen("unix", path); err != nil {
			t.Fatalf("Listen: %v", err)
		}
		defer os.Remove(path)
		go func() { s.served <- s.srv.Serve() }()
		r := &lpRun{
			t: t, s: s, reqs: make(chan lpReq, lpMaxOps), helper: make(chan struct{}),
			closed: make(map[int]bool), program: ops, half: half, dribble: dribble,
		}
		go lpHelper(s, r.reqs, r.helper)
		shut := false
		defer func() {
			// On a failure, still release what the input holds.
			if !shut {
				close(r.reqs)
				<-r.helper
				ctx, cancel := context.WithTimeout(context.Background(), 0)
				s.srv.Shutdown(ctx)
				cancel()
				<-s.served
			}
			for _, c := range r.all {
				if c.fd >= 0 {
					unix.Close(c.fd)
				}
			}
		}()

		for _, o := range ops {
			r.step(o)
			// Read in passing what is there, as a client does, except
			// where paused.
			for _, c := range r.slots {
				if c == nil || c.fd < 0 || c.eof {
					continue
				}
				if c.pause > 0 {
					c.pause--
					continue
				}
				for r.readOnce(c, len(lpScratch), false) && !c.eof {
				}
				if c.eof && !c.half {
					r.fail("conn %d: end of file, but the client did not shut down", c.id)
				}
			}
			r.drainClosed()
		}
		close(r.reqs)
		<-r.helper

		// The server must notice every client that left.
		deadline := time.After(lpWait)
		for _, c := range r.all {
			for c.fd < 0 && !r.closed[c.id] {
				select {
				case id := <-s.closed:
					r.closed[id] = true
				case <-deadline:
					r.fail("conn %d: closed by the client, no OnClose within %v", c.id, lpWait)
				}
			}
		}

		// Shut down while every client still open reads to end of file.
		shut = true
		start := time.Now()
		shutErr := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), lpWait)
			defer cancel()
			shutErr <- s.srv.Shutdown(ctx)
		}()
		for _, c := range r.all {
			if c.fd >= 0 {
				r.readUntil(c, 1<<62, true, true)
				// Done sending, as a client is once it has read end of
				// file: the server's drain (Conn.endClose) ends at this end
				// of file instead of at its timeout.
				unix.Shutdown(c.fd, unix.SHUT_WR)
			}
		}
		if err := <-shutErr; err != nil {
			r.fail("Shutdown: %v after %v", err, time.Since(start))
		}
		if err := <-s.served; !errors.Is(err, reactor.ErrServerClosed) {
			r.fail("Serve returned %v, want ErrServerClosed", err)
		}

		// Serve has returned: the server's records are final.
		if len(s.errs) > 0 {
			r.fail("server: %s", strings.Join(s.errs, "\n"))
		}
		if n := int(s.nextID.Load()); n != len(r.all) {
			r.fail("server opened %d connections, the client %d", n, len(r.all))
		}
		for _, c := range r.all {
			st := c.srv.Context().(*lpSrvConn)
			if st.closes != 1 {
				r.fail("conn %d: OnClose ran %d times", c.id, st.closes)
			}
			if st.read > c.sent {
				r.fail("conn %d: the server read %d bytes, the client sent %d", c.id, st.read, c.sent)
			}
			if c.fd < 0 {
				// Gone before Shutdown: the reason is the peer's leaving,
				// or the HalfCloser's Close at its end of file.
				if !lpPeerGone(st.reason) && !(half && st.reason == nil) {
					r.fail("conn %d: closed by the client, OnClose reason %v", c.id, st.reason)
				}
				continue
			}
			// Open until Shutdown, or until the server read end of file
			// after everything else, so no echo Write may have failed, nor a
			// Post'ed one before a half-close, which may run after the
			// server closed.
			if st.writeErr != nil || st.postErr != nil && !c.half {
				r.fail("conn %d: echo Write: %v, Post'ed Write: %v", c.id, st.writeErr, st.postErr)
			}
			if st.echoed != lpWhole(st.id, st.read) && !(st.peerDone && st.echoed == st.read) {
				r.fail("conn %d: the server read %d bytes and echoed %d (frames of %d)", c.id, st.read, st.echoed, lpFrame(st.id))
			}
			// A half-closed client gets all of its echo (the server
			// flushes before it closes); AsyncWrite and Post'ed bytes may
			// come after the server closed, and be dropped.
			if c.gotEcho != st.echoed || c.gotAsync > c.async || !c.half && c.gotAsync != c.async {
				r.fail("conn %d: the client received echo %d and async %d bytes; the server echoed %d, async %d were written",
					c.id, c.gotEcho, c.gotAsync, st.echoed, c.async)
			}
			switch {
			case errors.Is(st.reason, reactor.ErrServerClosed):
			case c.half && !half && errors.Is(st.reason, io.EOF):
			case c.half && half && st.reason == nil:
			default:
				r.fail("conn %d: open at Shutdown (half-closed %v), OnClose reason %v", c.id, c.half, st.reason)
			}
		}
		maxQueue, echoed := 0, 0
		for _, c := range r.all {
			maxQueue = max(maxQueue, c.srv.Context().(*lpSrvConn).maxQueue)
			echoed += c.srv.Context().(*lpSrvConn).echoed
			if c.fd >= 0 {
				unix.Close(c.fd)
				c.fd = -1
			}
		}
		lpCheckLeaks(t, baseFDs, baseGs)
		t.Logf("%v, %d loops, HalfCloser %v, dribble %v: %d connections, %d actions, at most %d bytes queued, %d bytes echoed",
			backend, loops, half, dribble, len(r.all), len(ops), maxQueue, echoed)
	})
}

// lpPeerGone reports whether err is a reason for a connection whose client
// closed: end of file, or a reset or broken pipe from a close with data
// unread.
func lpPeerGone(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// lpCheckLeaks waits up to lpWait for the fd and goroutine counts to be back
// to the baseline and fails the input if they are not.
func lpCheckLeaks(t *testing.T, fds, gs int) {
	t.Helper()
	end := time.Now().Add(lpWait)
	for {
		nf, ng := leakcheck.OpenFDs(), runtime.NumGoroutine()
		if nf <= fds && ng <= gs {
			return
		}
		if time.Now().After(end) {
			buf := make([]byte, 1<<20)
			t.Fatalf("leak: fds %d -> %d, goroutines %d -> %d\n%s", fds, nf, gs, ng, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(time.Millisecond) // polling a count, with a deadline
	}
}
