package fuzz

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor"
	"github.com/muxkit/reactor/internal/leakcheck"
	"github.com/muxkit/reactor/internal/sock"
	"github.com/muxkit/reactor/poller"
)

// The input of FuzzPacket: two header bytes, then three bytes per action.
//
// Header byte 0: bits 0-1 pick the backend from reactor.Backends() (on
// linux epoll, poll, select and, where it runs, the completion engine); bit
// 2 a Server (set) or a Group; bit 3 unixgram (set) or udp4; bits 4-5 the
// sockets' MaxDatagram (ppMaxDatagram); bits 6-7 their MaxQueued
// (ppMaxQueued). Header byte 1: bit 0 two loops, not one; bit 1 a
// MaxQueuedBytes of ppSmallBytes, not the default.
//
// An action's first byte: bits 0-1 the action, bit 2 the server socket
// (ppSlots of them), bit 3 the client socket (two), bits 4-6 a count n-1
// (1 to 8). The second byte picks a datagram size (ppSize), the third the
// handler's reply (the modes and flags below).
const (
	ppSend       = iota // client sends n datagrams to the socket; the handler replies to each
	ppAsync             // AsyncWriteTo n datagrams to the client, from the test goroutine
	ppAsyncClose        // AsyncClose the socket from the test goroutine
	ppReopen            // Group: open a new socket in the place of a closed one
	ppNumOps
)

// The handler's reply to each datagram of a ppSend (third byte, bits 0-1).
const (
	ppEcho  = iota // WriteTo the datagram back
	ppMulti        // WriteTo k replies of halving sizes (k from bits 2-3, 1 to 4)
	ppFlush        // WriteTo the echo, Flush, WriteTo one more
	ppClose        // WriteTo the echo; at datagram (bits 2-3) % n, Close mid-batch
)

// Flags of a ppSend's third byte.
const (
	ppBad   = 1 << 4 // first, the writes that must fail: wrong family, no address, too long, Write unconnected
	ppAsRep = 1 << 5 // also AsyncWriteTo one reply from the handler (it leaves after the callback); not with ppClose
	ppCross = 1 << 6 // reply to the other client, not the sender
	ppGSO   = 1 << 7 // the client sends the n datagrams, of one size, as one UDP_SEGMENT send (udp)
)

// Bounds on one input, so that it takes a few milliseconds.
const (
	ppSlots  = 2
	ppMaxOps = 12
	// ppBudget bounds the bytes of one action, each datagram counted with
	// 1 KiB of kernel overhead: what the client sends at once and what the
	// server sends back to one client. Both ends have the kernel's default
	// receive buffers (208 KiB) at least, so loopback drops nothing.
	ppBudget     = 160 << 10
	ppSmallBytes = 70000 // a byte cap that holds one 65,507-byte datagram, not two
	ppWait       = 5 * time.Second
	ppBuffer     = 4 << 20 // the socket buffers asked for, at both ends
)

var (
	ppMaxDatagram = [...]int{0, 100, 1472, 9000} // 0: the default, 65535
	ppMaxQueued   = [...]int{0, 1, 2, 5}         // 0: the default, 1024
)

// ppSize maps a byte to a datagram size: around MaxDatagram's choices and
// UDP's limit, then multiples of 257 up to 65,507.
func ppSize(arg byte) int {
	sizes := [...]int{0, 1, 2, 63, 99, 100, 101, 1471, 1472, 1473, 8999, 9000, 9001, 32768, 65506, 65507}
	if int(arg) < len(sizes) {
		return sizes[arg]
	}
	return min(int(arg)*257, 65507)
}

// ppTable is the pseudo-random bytes every payload is cut from (top bit
// clear; an AsyncWriteTo payload has it set), so a byte out of place shows.
var ppTable = func() []byte {
	b := make([]byte, 1<<17)
	for i := range b {
		b[i] = byte(lpMix(uint64(i))) & 0x7f
	}
	return b
}()

// ppPayload returns n bytes of the table chosen by key, with async ones
// marked and never empty.
func ppPayload(key uint64, n int, async bool) []byte {
	off := int(lpMix(key) % uint64(len(ppTable)-65536))
	p := bytes.Clone(ppTable[off : off+n])
	if async {
		if n == 0 {
			p = []byte{0}
		}
		for i := range p {
			p[i] |= 0x80
		}
	}
	return p
}

// ppOp is one decoded action.
type ppOp struct {
	kind, slot, client, n int
	size, mode            byte
}

func (o ppOp) String() string {
	name := [...]string{"send", "async", "asyncclose", "reopen"}[o.kind]
	switch o.kind {
	case ppSend:
		return fmt.Sprintf("%s(s%d c%d n=%d size=%d mode=%#x)", name, o.slot, o.client, o.n, ppSize(o.size), o.mode)
	case ppAsync:
		return fmt.Sprintf("%s(s%d c%d n=%d size=%d bad=%v)", name, o.slot, o.client, o.n, ppSize(o.size), o.mode&ppBad != 0)
	}
	return fmt.Sprintf("%s(s%d)", name, o.slot)
}

// ppConfig is the header's choice.
type ppConfig struct {
	backend  poller.Backend
	server   bool
	unixgram bool
	loops    int
	opt      reactor.PacketOptions
}

func (c ppConfig) String() string {
	kind, network := "Group", "udp4"
	if c.server {
		kind = "Server"
	}
	if c.unixgram {
		network = "unixgram"
	}
	return fmt.Sprintf("%v %s of %d loops on %s, MaxDatagram %d MaxQueued %d MaxQueuedBytes %d",
		c.backend, kind, c.loops, network, c.opt.MaxDatagram, c.opt.MaxQueued, c.opt.MaxQueuedBytes)
}

// decodePacketOps turns the fuzz input into a configuration and actions.
func decodePacketOps(data []byte) (ppConfig, []ppOp) {
	var h [2]byte
	data = data[copy(h[:], data):]
	backends := reactor.Backends()
	c := ppConfig{
		backend:  backends[int(h[0]&3)%len(backends)],
		server:   h[0]&4 != 0,
		unixgram: h[0]&8 != 0,
		loops:    1 + int(h[1]&1),
		opt: reactor.PacketOptions{
			MaxDatagram: ppMaxDatagram[h[0]>>4&3],
			MaxQueued:   ppMaxQueued[h[0]>>6],
			ReadBuffer:  ppBuffer,
			WriteBuffer: ppBuffer,
		},
	}
	if h[1]&2 != 0 {
		c.opt.MaxQueuedBytes = ppSmallBytes
	}
	var ops []ppOp
	for len(data) >= 3 && len(ops) < ppMaxOps {
		ops = append(ops, ppOp{
			kind: int(data[0]&3) % ppNumOps, slot: int(data[0]>>2&1) % ppSlots, client: int(data[0] >> 3 & 1),
			n: 1 + int(data[0]>>4&7), size: data[1], mode: data[2],
		})
		data = data[3:]
	}
	return c, ops
}

// ppEnc encodes a header and actions for the seed corpus, the inverse of
// decodePacketOps.
func ppEnc(h0, h1 byte, ops ...ppOp) []byte {
	b := []byte{h0, h1}
	for _, o := range ops {
		b = append(b, byte(o.kind|o.slot<<2|o.client<<3|(o.n-1)<<4), o.size, o.mode)
	}
	return b
}

// ppSock is the record of one PacketConn, kept under ppRun.mu.
type ppSock struct {
	p      *reactor.PacketConn
	slot   int
	closes int
	reason error
	closed chan struct{} // closed by OnClose
	// closing: Close or AsyncClose was called; no OnPacket may follow.
	closing bool
}

// ppSlot is one server address the clients send to.
type ppSlot struct {
	addr  reactor.Addr
	sa    unix.Sockaddr
	sock  *ppSock // the PacketConn serving it now; nil before Server's hello
	instr *ppInstr
	gen   int // sockets opened in this place, for unixgram paths
}

// ppInstr is what the handler is to do with the datagrams of one ppSend,
// and what it did.
type ppInstr struct {
	op       ppOp
	idx      int      // the action's index, for payload keys
	sent     [][]byte // the datagrams, in the order sent
	seen     int      // datagrams served so far
	done     chan struct{}
	doneOnce bool
	to       int // the client the replies go to
	// What the handler's writes queued, for the model: the WriteTo'd
	// datagrams in order (sure) and the AsyncWriteTo'd ones (maybe: a
	// full queue drops them, counted).
	sure, maybe [][]byte
	queueFull   int // WriteTo calls refused with ErrQueueFull
}

func (in *ppInstr) finish() {
	if !in.doneOnce {
		in.doneOnce = true
		close(in.done)
	}
}

// ppClient is one client socket and what it received.
type ppClient struct {
	fd        int
	addr      reactor.Addr
	path      string
	got, gotB int // datagrams and bytes received
}

// ppRun is the state of one input.
type ppRun struct {
	t       *testing.T
	cfg     ppConfig
	program []ppOp
	srv     *reactor.Server
	served  chan error
	g       *reactor.Group
	dir     string
	input   int64
	clients [2]*ppClient
	h       reactor.PacketHandler
	buf     []byte // client reads

	mu      sync.Mutex // guards what follows: the handler runs on the loops
	slots   [ppSlots]*ppSlot
	socks   map[*reactor.PacketConn]*ppSock
	all     []*ppSock
	errs    []string
	in      int // OnPacket calls
	inBytes int
	trunc   int
	onErrs  int // OnError calls, each with ErrAddrFamily
	// The model's expectations of the Stats.
	dropped   int64
	wantErrs  int
	helloSeen chan *reactor.PacketConn
}

func (r *ppRun) errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// fail ends the input with the configuration and the program.
func (r *ppRun) fail(format string, args ...any) {
	r.t.Helper()
	r.mu.Lock()
	errs := strings.Join(r.errs, "\n\t")
	r.mu.Unlock()
	r.t.Fatalf("%s\nconfig: %v\nprogram: %v\nhandler: %s", fmt.Sprintf(format, args...), r.cfg, r.program, errs)
}

// handler returns the PacketHandler of the input's sockets.
func (r *ppRun) handler() reactor.PacketHandler {
	return reactor.PacketHandlerFuncs{
		Packet: r.onPacket,
		Error: func(p *reactor.PacketConn, err error) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.onErrs++
			if !errors.Is(err, reactor.ErrAddrFamily) {
				r.errorf("OnError(%v): only AsyncWriteTo to a wrong address can fail here", err)
			}
		},
		Close: func(p *reactor.PacketConn, err error) {
			r.mu.Lock()
			defer r.mu.Unlock()
			s := r.socks[p]
			if s == nil {
				r.errorf("OnClose of a socket never seen")
				return
			}
			s.closes++
			s.reason = err
			if s.closes == 1 {
				close(s.closed)
			}
			if p.Fd() != -1 {
				r.errorf("slot %d: Fd() = %d in OnClose, want -1", s.slot, p.Fd())
			}
		},
	}
}

// sockOf returns the record of p, making it in Server mode, where p is
// first seen with its hello datagram.
func (r *ppRun) sockOf(p *reactor.PacketConn) *ppSock {
	if s := r.socks[p]; s != nil {
		return s
	}
	for i, sl := range r.slots {
		if sl.sock == nil && sl.addr == p.LocalAddr() {
			s := &ppSock{p: p, slot: i, closed: make(chan struct{})}
			sl.sock = s
			r.socks[p] = s
			r.all = append(r.all, s)
			return s
		}
	}
	return nil
}

var (
	ppV6   = reactor.AddrFromAddrPort(netip.MustParseAddrPort("[::1]:9"))
	ppV4   = reactor.AddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:9"))
	ppPath = reactor.AddrFromPath("/nonexistent/fuzzpacket")
	ppLong = make([]byte, 65508)
)

func (r *ppRun) onPacket(p *reactor.PacketConn, pkt *reactor.Packet) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.in++
	r.inBytes += len(pkt.Data)
	if pkt.Truncated {
		r.trunc++
	}
	s := r.sockOf(p)
	if s == nil {
		r.errorf("OnPacket on a socket of no slot (%v)", p.LocalAddr())
		return
	}
	sl := r.slots[s.slot]
	if s.closing {
		r.errorf("slot %d: OnPacket after Close", s.slot)
		if _, err := p.WriteTo([]byte("late"), pkt.From); !errors.Is(err, net.ErrClosed) {
			r.errorf("slot %d: WriteTo after Close: %v, want net.ErrClosed", s.slot, err)
		}
		return
	}
	in := sl.instr
	if in == nil {
		if string(pkt.Data) == "hello" && r.helloSeen != nil {
			r.helloSeen <- p
			return
		}
		r.errorf("slot %d: a datagram of %d bytes nobody sent", s.slot, len(pkt.Data))
		return
	}
	i := in.seen
	in.seen++
	if i >= len(in.sent) {
		r.errorf("slot %d: datagram %d of a burst of %d", s.slot, i, len(in.sent))
		return
	}
	from := r.clients[in.op.client]
	if pkt.From != from.addr {
		r.errorf("slot %d: datagram from %q, want %q", s.slot, pkt.From, from.addr)
	}
	sent := in.sent[i]
	maxd := r.cfg.opt.MaxDatagram
	if maxd == 0 {
		maxd = reactor.DefaultMaxDatagram
	}
	if want := min(len(sent), maxd); len(pkt.Data) != want || pkt.Truncated != (len(sent) > maxd) || !bytes.Equal(pkt.Data, sent[:want]) {
		r.errorf("slot %d: datagram %d of %d bytes: got %d bytes, truncated %v; want %d, %v (MaxDatagram %d), equal %v",
			s.slot, i, len(sent), len(pkt.Data), pkt.Truncated, want, len(sent) > maxd, maxd, bytes.Equal(pkt.Data, sent[:min(want, len(pkt.Data))]))
	}
	if in.op.mode&ppBad != 0 {
		r.badWrites(p, s.slot)
	}
	dst := r.clients[in.to].addr
	write := func(b []byte) {
		q := p.Queued()
		n, err := p.WriteTo(b, dst)
		// Full at MaxQueued; below it, with the small MaxQueuedBytes, a
		// queue of one datagram or more may be full by its bytes.
		atCap := q >= r.queueCap()
		byBytes := r.cfg.opt.MaxQueuedBytes != 0 && q > 0
		switch {
		case err == nil && n == len(b) && p.Queued() == q+1 && !atCap:
			in.sure = append(in.sure, bytes.Clone(b))
		case errors.Is(err, reactor.ErrQueueFull) && n == 0 && p.Queued() == q && (atCap || byBytes):
			in.queueFull++
		default:
			r.errorf("slot %d: WriteTo(%d bytes) with %d queued of %d: %d, %v, %d queued after", s.slot, len(b), q, r.queueCap(), n, err, p.Queued())
		}
	}
	key := uint64(in.idx)<<16 | uint64(i)<<8
	switch in.op.mode & 3 {
	case ppEcho:
		write(pkt.Data)
	case ppMulti:
		for j := range 1 + int(in.op.mode>>2&3) {
			write(ppPayload(key|uint64(j), len(pkt.Data)>>j, false))
		}
	case ppFlush:
		write(pkt.Data)
		if err := p.Flush(); err != nil {
			r.errorf("slot %d: Flush: %v", s.slot, err)
		}
		write(ppPayload(key|7, len(pkt.Data)/2, false))
	case ppClose:
		write(pkt.Data)
		if i == int(in.op.mode>>2&3)%len(in.sent) {
			if err := p.Close(); err != nil {
				r.errorf("slot %d: Close: %v", s.slot, err)
			}
			s.closing = true
			if err := p.Close(); !errors.Is(err, net.ErrClosed) {
				r.errorf("slot %d: second Close: %v, want net.ErrClosed", s.slot, err)
			}
			if _, err := p.WriteTo(pkt.Data, dst); !errors.Is(err, net.ErrClosed) {
				r.errorf("slot %d: WriteTo after Close: %v, want net.ErrClosed", s.slot, err)
			}
			in.finish()
			return
		}
	}
	// Not with ppClose: a Close later in the batch would have the loop
	// skip the write, uncounted, and the model could not tell.
	if in.op.mode&ppAsRep != 0 && in.op.mode&3 != ppClose {
		b := ppPayload(key|9, len(pkt.Data), true)
		if err := p.AsyncWriteTo(b, dst); err != nil {
			r.errorf("slot %d: AsyncWriteTo from the handler: %v", s.slot, err)
		}
		in.maybe = append(in.maybe, b)
	}
	if in.seen == len(in.sent) {
		in.finish()
	}
}

// queueCap is the sockets' MaxQueued.
func (r *ppRun) queueCap() int {
	if r.cfg.opt.MaxQueued == 0 {
		return reactor.DefaultMaxQueued
	}
	return r.cfg.opt.MaxQueued
}

// badWrites makes the writes p must refuse, taking nothing: an address of
// the wrong family, no address, a datagram too long for UDP, and Write on
// a socket that is not connected.
func (r *ppRun) badWrites(p *reactor.PacketConn, slot int) {
	q := p.Queued()
	x := []byte("x")
	type bad struct {
		name string
		err  error
		want error
	}
	rows := []bad{
		{"WriteTo(no address)", second(p.WriteTo(x, reactor.Addr{})), reactor.ErrAddrFamily},
		{"Write (not connected)", second(p.Write(x)), reactor.ErrNoPeer},
	}
	if r.cfg.unixgram {
		rows = append(rows,
			bad{"WriteTo(an IP address)", second(p.WriteTo(x, ppV4)), reactor.ErrAddrFamily},
			bad{"WriteToTOS on unixgram", second(p.WriteToTOS(x, r.clients[0].addr, 1)), reactor.ErrAddrFamily})
	} else {
		rows = append(rows,
			bad{"WriteTo(IPv6 on udp4)", second(p.WriteTo(x, ppV6)), reactor.ErrAddrFamily},
			bad{"WriteTo(a path on udp)", second(p.WriteTo(x, ppPath)), reactor.ErrAddrFamily},
			bad{"WriteTo(65,508 bytes)", second(p.WriteTo(ppLong, r.clients[0].addr)), reactor.ErrDatagramTooLong})
	}
	for _, b := range rows {
		if !errors.Is(b.err, b.want) {
			r.errorf("slot %d: %s: %v, want %v", slot, b.name, b.err, b.want)
		}
	}
	if p.Queued() != q {
		r.errorf("slot %d: refused writes changed Queued() from %d to %d", slot, q, p.Queued())
	}
}

func second(_ int, err error) error { return err }

// stats returns the Server's or the Group's counts.
func (r *ppRun) stats() reactor.Stats {
	if r.srv != nil {
		return r.srv.Stats()
	}
	return r.g.Stats()
}

// budget returns how many of the n datagrams of o fit in ppBudget, at
// least one: the bytes the client sends at once, and those the handler
// sends back to one client.
func (r *ppRun) budget(o ppOp, sizes []int) int {
	maxd := r.cfg.opt.MaxDatagram
	if maxd == 0 {
		maxd = reactor.DefaultMaxDatagram
	}
	in, out := 0, 0
	for i, n := range sizes {
		in += n + 1024
		e := min(n, maxd)
		switch o.mode & 3 {
		case ppEcho, ppClose:
			out += e + 1024
		case ppMulti:
			for j := range 1 + int(o.mode>>2&3) {
				out += e>>j + 1024
			}
		case ppFlush:
			out += e + e/2 + 2048
		}
		if o.mode&ppAsRep != 0 && o.mode&3 != ppClose {
			out += e + 1024
		}
		if i > 0 && (in > ppBudget || out > ppBudget) {
			return i
		}
	}
	return len(sizes)
}

// marker waits until every function posted to l before it has run.
func (r *ppRun) marker(l *reactor.Loop) {
	r.t.Helper()
	ran := make(chan struct{})
	if err := l.Post(func() { close(ran) }); err != nil {
		r.fail("Post: %v", err)
	}
	select {
	case <-ran:
	case <-time.After(ppWait):
		r.fail("a posted function did not run within %v", ppWait)
	}
}

// send sends b from client c to the address sa; a full socket buffer is
// waited for, within ppWait. It returns ECONNREFUSED, the answer of a
// unixgram socket that has closed, and fails the input on other errors.
func (r *ppRun) send(c *ppClient, sa unix.Sockaddr, b, oob []byte) error {
	r.t.Helper()
	end := time.Now().Add(ppWait)
	for {
		_, err := unix.SendmsgN(c.fd, b, oob, sa, 0)
		if err == nil || err == unix.ECONNREFUSED && r.cfg.unixgram {
			return err
		}
		if err != unix.EAGAIN && err != unix.EINTR && err != unix.ENOBUFS {
			r.fail("client send of %d bytes: %v", len(b), err)
		}
		if time.Now().After(end) {
			r.fail("client send of %d bytes: no room within %v", len(b), ppWait)
		}
		pfd := []unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLOUT}}
		unix.Poll(pfd, 1) // the socket has room, or 1 ms passed: try again
	}
}

// recv returns the next datagram client c receives, waiting up to ppWait.
func (r *ppRun) recv(c *ppClient, what string) []byte {
	r.t.Helper()
	end := time.Now().Add(ppWait)
	for {
		n, _, err := unix.Recvfrom(c.fd, r.buf, 0)
		if err == nil {
			c.got++
			c.gotB += n
			return r.buf[:n]
		}
		if err != unix.EAGAIN && err != unix.EINTR {
			r.fail("client read: %v", err)
		}
		left := time.Until(end)
		if left <= 0 {
			r.fail("client %v: no datagram within %v; waiting for %s", c.addr, ppWait, what)
		}
		pfd := []unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(pfd, int(left/time.Millisecond)+1); err != nil && err != unix.EINTR {
			r.fail("poll: %v", err)
		}
	}
}

// expect reads what the model says client c receives: every datagram in
// sure, in order, and those of maybe, in order, less drops of them;
// the two interleave (AsyncWriteTo's leave after the callback).
func (r *ppRun) expect(c *ppClient, sure, maybe [][]byte, drops int) {
	r.t.Helper()
	want := len(sure) + len(maybe) - drops
	skipped := 0
	for k := range want {
		what := fmt.Sprintf("datagram %d of %d (%d sure, %d async, %d of them dropped)", k, want, len(sure), len(maybe), drops)
		got := r.recv(c, what)
		if len(sure) > 0 && bytes.Equal(got, sure[0]) {
			sure = sure[1:]
			continue
		}
		j := 0
		for j < len(maybe) && !bytes.Equal(got, maybe[j]) {
			j++
		}
		if j == len(maybe) {
			next := -1
			if len(sure) > 0 {
				next = len(sure[0])
			}
			r.fail("client %v: %s: %d bytes that are neither the next reply (%d bytes) nor an AsyncWriteTo'd one",
				c.addr, what, len(got), next)
		}
		skipped += j
		maybe = maybe[j+1:]
	}
	if len(sure) > 0 || skipped+len(maybe) != drops {
		r.fail("client %v: %d replies never came; %d AsyncWriteTo'd ones missing, %d dropped by the Stats", c.addr, len(sure), skipped+len(maybe), drops)
	}
}

// step runs one action.
func (r *ppRun) step(idx int, o ppOp) {
	r.t.Helper()
	r.mu.Lock()
	sl := r.slots[o.slot]
	s := sl.sock
	open := s != nil && !s.closing
	r.mu.Unlock()
	switch o.kind {
	case ppSend:
		if open {
			r.burst(idx, o, sl, s)
		}
	case ppAsync:
		if s != nil {
			r.async(idx, o, s)
		}
	case ppAsyncClose:
		if s == nil {
			return
		}
		r.mu.Lock()
		s.closing = true
		r.mu.Unlock()
		if err := s.p.AsyncClose(); err != nil {
			r.fail("AsyncClose: %v", err)
		}
		select {
		case <-s.closed:
		case <-time.After(ppWait):
			r.fail("slot %d: no OnClose within %v of AsyncClose", o.slot, ppWait)
		}
	case ppReopen:
		if r.g == nil || open {
			return
		}
		if s != nil {
			select {
			case <-s.closed:
			case <-time.After(ppWait):
				r.fail("slot %d: no OnClose within %v of Close", o.slot, ppWait)
			}
		}
		r.open(o.slot)
	}
}

// burst is a ppSend: the client sends, the handler replies, the client
// reads what the model says it must.
func (r *ppRun) burst(idx int, o ppOp, sl *ppSlot, s *ppSock) {
	r.t.Helper()
	sizes := make([]int, o.n)
	gso := o.mode&ppGSO != 0 && !r.cfg.unixgram && o.n > 1
	for i := range sizes {
		if gso {
			sizes[i] = max(1, ppSize(o.size)) // a segment is one byte at least
		} else {
			sizes[i] = ppSize(o.size + byte(i*37))
		}
	}
	if gso {
		sizes = sizes[:max(1, min(len(sizes), 65507/sizes[0]))]
		gso = len(sizes) > 1
	}
	sizes = sizes[:r.budget(o, sizes)]
	gso = gso && len(sizes) > 1
	in := &ppInstr{op: o, idx: idx, done: make(chan struct{}), to: o.client}
	if o.mode&ppCross != 0 {
		in.to = 1 - o.client
	}
	for i, n := range sizes {
		in.sent = append(in.sent, ppPayload(uint64(idx)<<16|uint64(i)<<8|0xff, n, false))
	}
	r.mu.Lock()
	sl.instr = in
	r.mu.Unlock()
	before := r.stats().Datagrams.Dropped
	c := r.clients[o.client]
	var err error
	if gso {
		oob := make([]byte, sock.ControlSpace)
		err = r.send(c, sl.sa, bytes.Join(in.sent, nil), oob[:sock.PutSegment(oob, 0, sizes[0])])
	} else {
		for _, b := range in.sent {
			if err = r.send(c, sl.sa, b, nil); err != nil {
				break
			}
		}
	}
	if err != nil {
		// Refused: the handler has closed the socket mid-burst.
		r.mu.Lock()
		closing := s.closing
		r.mu.Unlock()
		if o.mode&3 != ppClose || !closing {
			r.fail("slot %d: client send: %v, and the handler did not close the socket", o.slot, err)
		}
	}
	select {
	case <-in.done:
	case <-time.After(ppWait):
		r.mu.Lock()
		seen := in.seen
		r.mu.Unlock()
		r.fail("slot %d: the handler saw %d of %d datagrams within %v", o.slot, seen, len(sizes), ppWait)
	}
	r.marker(s.p.Loop()) // the handler's AsyncWriteTo's have run
	r.mu.Lock()
	sl.instr = nil
	drops := int(r.stats().Datagrams.Dropped-before) - in.queueFull
	r.dropped += int64(in.queueFull + drops)
	r.mu.Unlock()
	if drops < 0 || drops > len(in.maybe) {
		r.fail("Stats.Datagrams.Dropped went up by %d, %d of them ErrQueueFull, with %d datagrams AsyncWriteTo'd",
			drops+in.queueFull, in.queueFull, len(in.maybe))
	}
	r.expect(r.clients[in.to], in.sure, in.maybe, drops)
}

// async is a ppAsync: AsyncWriteTo from the test goroutine, and with
// ppBad one to an address of the wrong family, which OnError reports.
func (r *ppRun) async(idx int, o ppOp, s *ppSock) {
	r.t.Helper()
	c := r.clients[o.client]
	r.mu.Lock()
	closing := s.closing
	r.mu.Unlock()
	before := r.stats()
	var maybe [][]byte
	for j := range o.n {
		b := ppPayload(uint64(idx)<<16|uint64(j)<<8|0xaa, ppSize(o.size+byte(j*53)), true)
		if err := s.p.AsyncWriteTo(b, c.addr); err != nil {
			r.fail("AsyncWriteTo: %v", err)
		}
		maybe = append(maybe, b)
		if o.mode&ppBad != 0 && j == 0 {
			bad := ppV6
			if r.cfg.unixgram {
				bad = ppV4
			}
			if err := s.p.AsyncWriteTo([]byte("x"), bad); err != nil {
				r.fail("AsyncWriteTo(wrong family): %v", err)
			}
		}
		var sz int
		for _, m := range maybe {
			sz += len(m) + 1024
		}
		if sz > ppBudget {
			break
		}
	}
	r.marker(s.p.Loop())
	after := r.stats()
	drops := int(after.Datagrams.Dropped - before.Datagrams.Dropped)
	errs := int(after.Datagrams.Errors - before.Datagrams.Errors)
	r.mu.Lock()
	r.dropped += int64(drops)
	r.mu.Unlock()
	if closing {
		// AsyncWriteTo to a socket closed by the time its loop runs
		// the write: dropped, and not counted.
		if drops != 0 || errs != 0 {
			r.fail("AsyncWriteTo to a closed socket: Dropped +%d, Errors +%d; want nothing", drops, errs)
		}
		return
	}
	if o.mode&ppBad != 0 {
		r.mu.Lock()
		r.wantErrs++
		r.mu.Unlock()
		if errs != 1 {
			r.fail("AsyncWriteTo to a wrong-family address: Stats.Datagrams.Errors +%d, want 1", errs)
		}
	}
	r.expect(c, nil, maybe, drops)
}

// open opens a socket in slot (a Group's), on a fresh address.
func (r *ppRun) open(slot int) {
	r.t.Helper()
	network, address := r.network(slot)
	ps, err := r.g.ListenPacket(network, address, r.h, &r.cfg.opt)
	if err != nil {
		r.fail("Group.ListenPacket(%s, %s): %v", network, address, err)
	}
	if len(ps) != 1 {
		r.fail("Group.ListenPacket without ReusePort: %d sockets", len(ps))
	}
	p := ps[0]
	r.mu.Lock()
	defer r.mu.Unlock()
	s := &ppSock{p: p, slot: slot, closed: make(chan struct{})}
	r.socks[p] = s
	r.all = append(r.all, s)
	sl := r.slots[slot]
	sl.sock, sl.addr, sl.sa = s, p.LocalAddr(), ppSockaddr(p.LocalAddr())
	sl.gen++
}

// network is the network and address slot binds to next.
func (r *ppRun) network(slot int) (string, string) {
	if r.cfg.unixgram {
		return "unixgram", filepath.Join(r.dir, fmt.Sprintf("s%d-%d-%d", r.input, slot, r.slots[slot].gen))
	}
	return "udp4", "127.0.0.1:0"
}

// ppSockaddr is a's sockaddr, for the client's sends.
func ppSockaddr(a reactor.Addr) unix.Sockaddr {
	if a.Path() != "" {
		return &unix.SockaddrUnix{Name: a.Path()}
	}
	return &unix.SockaddrInet4{Port: int(a.AddrPort().Port()), Addr: a.AddrPort().Addr().As4()}
}

// ppAddrOf is the Addr of a net.Addr a Server's ListenPacket returned.
func ppAddrOf(a net.Addr) reactor.Addr {
	switch a := a.(type) {
	case *net.UDPAddr:
		return reactor.AddrFromAddrPort(a.AddrPort())
	case *net.UnixAddr:
		return reactor.AddrFromPath(a.Name)
	}
	return reactor.Addr{}
}

// client opens client k's socket: udp4 on loopback, or unixgram on a path
// of its own (an unnamed one could not be answered).
func (r *ppRun) client(k int) *ppClient {
	r.t.Helper()
	network, address := "udp4", "127.0.0.1:0"
	c := &ppClient{fd: -1}
	if r.cfg.unixgram {
		network = "unixgram"
		c.path = filepath.Join(r.dir, fmt.Sprintf("c%d-%d", r.input, k))
		address = c.path
	}
	fd, _, err := sock.DatagramSocket(network, address, true, false)
	if err != nil {
		r.fail("client socket: %v", err)
	}
	c.fd = fd
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, ppBuffer) // the kernel caps it
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, ppBuffer)
	if c.path != "" {
		c.addr = reactor.AddrFromPath(c.path)
	} else {
		sa, err := unix.Getsockname(fd)
		if err != nil {
			r.fail("getsockname: %v", err)
		}
		in := sa.(*unix.SockaddrInet4)
		c.addr = reactor.AddrFromAddrPort(netip.AddrPortFrom(netip.AddrFrom4(in.Addr), uint16(in.Port)))
	}
	return c
}

// start opens the input's sockets: a Server's (ListenPacket twice, Serve,
// and one hello datagram each, for the handler to learn its
// PacketConn), or a Group's.
func (r *ppRun) start() {
	r.t.Helper()
	if !r.cfg.server {
		g, err := reactor.NewGroup(reactor.GroupConfig{Loops: r.cfg.loops, Backend: r.cfg.backend})
		if err != nil {
			r.fail("NewGroup: %v", err)
		}
		r.g = g
		for i := range ppSlots {
			r.open(i)
		}
		return
	}
	r.srv = &reactor.Server{Backend: r.cfg.backend, Loops: r.cfg.loops}
	for i := range ppSlots {
		network, address := r.network(i)
		a, err := r.srv.ListenPacket(network, address, r.h, &r.cfg.opt)
		if err != nil {
			r.fail("Server.ListenPacket(%s, %s): %v", network, address, err)
		}
		r.mu.Lock()
		sl := r.slots[i]
		sl.addr = ppAddrOf(a)
		sl.sa = ppSockaddr(sl.addr)
		sl.gen++
		r.mu.Unlock()
	}
	r.served = make(chan error, 1)
	go func() { r.served <- r.srv.Serve() }()
	r.mu.Lock()
	r.helloSeen = make(chan *reactor.PacketConn, ppSlots)
	r.mu.Unlock()
	for i := range ppSlots {
		if err := r.send(r.clients[0], r.slots[i].sa, []byte("hello"), nil); err != nil {
			r.fail("slot %d: hello: %v", i, err)
		}
		select {
		case <-r.helloSeen:
		case <-time.After(ppWait):
			r.fail("slot %d: the hello datagram did not reach the handler within %v", i, ppWait)
		}
	}
}

// stop shuts the Server down or closes the Group, as the input ends.
func (r *ppRun) stop() {
	r.t.Helper()
	if r.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), ppWait)
		defer cancel()
		if err := r.srv.Shutdown(ctx); err != nil {
			r.fail("Shutdown: %v", err)
		}
		if err := <-r.served; !errors.Is(err, reactor.ErrServerClosed) {
			r.fail("Serve returned %v, want ErrServerClosed", err)
		}
		r.served = nil
		return
	}
	// Every loop's turn after the last completions, then close.
	for i := range r.g.Len() {
		r.marker(r.g.Loop(i))
	}
	if err := r.g.Close(); err != nil {
		r.fail("Group.Close: %v", err)
	}
}

// FuzzPacket drives the datagram path on every backend: a Server or a
// Group serving two sockets (udp4 on loopback, or unixgram) with a
// PacketHandler the input programs, and two client sockets. An action
// sends a burst of datagrams of fuzz-chosen sizes (0 bytes to 65,507,
// larger than the sockets' MaxDatagram too, as separate sends or one
// UDP_SEGMENT send), to which the handler replies per datagram, mid-batch:
// WriteTo the echo, several replies, WriteTo, Flush, WriteTo, Close, an
// AsyncWriteTo of its own, to the sender or the other client, after
// trying the writes that must fail (wrong address family, no address,
// 65,508 bytes, Write unconnected). Other actions AsyncWriteTo from the
// test goroutine (to the wrong family too), AsyncClose, and (Group) open
// a new socket in a closed one's place. The sockets' small MaxQueued and
// MaxQueuedBytes make the queue fill.
//
// The handler checks every datagram: from the right client, byte-exact,
// cut to MaxDatagram and marked Truncated exactly when longer; every
// WriteTo takes the datagram, or is refused with ErrQueueFull exactly
// when the queue is full, taking nothing. Each client must receive what
// the handler's writes took, byte-exact and in order, and of the
// AsyncWriteTo'd datagrams all but those a full queue dropped, as
// Stats.Datagrams.Dropped counts them; a datagram that should not come
// fails the input when read, or at the end, when nothing may be left.
// An action sends its next burst only once the replies of the last are
// read, and bounds its bytes (ppBudget), so loopback drops nothing and
// the check is exact. No OnPacket follows a Close; every socket is closed
// once, with the reason its end gives (nil after Close and AsyncClose,
// ErrServerClosed at a Server's Shutdown, ErrLoopClosed at a Group's
// Close); Shutdown returns nil, Serve ErrServerClosed; the Stats add up
// (datagrams and bytes in and out, truncated, dropped, errors, none
// open), and the input leaves no fd or goroutine behind. Every wait has a
// deadline.
//
// It found three library bugs, each fixed and kept by a seed: OnPacket
// called for the rest of a batch after Close, an empty datagram counted
// as sent inside a GSO run, and (io_uring, unixgram to a full peer) the
// kernel's retry of a send sending it empty.
func FuzzPacket(f *testing.F) {
	send := func(slot, client, n int, size, mode byte) ppOp {
		return ppOp{kind: ppSend, slot: slot, client: client, n: n, size: size, mode: mode}
	}
	async := func(slot, client, n int, size, mode byte) ppOp {
		return ppOp{kind: ppAsync, slot: slot, client: client, n: n, size: size, mode: mode}
	}
	aclose := func(slot int) ppOp { return ppOp{kind: ppAsyncClose, slot: slot, n: 1} }
	reopen := func(slot int) ppOp { return ppOp{kind: ppReopen, slot: slot, n: 1} }
	// Every seed on each backend (bits 0-1 of the first byte).
	add := func(in []byte) {
		for b := range byte(4) {
			c := bytes.Clone(in)
			c[0] = c[0]&^3 | b
			f.Add(c)
		}
	}
	// Echo of every size class, from both clients, on a Group.
	add(ppEnc(0, 0, send(0, 0, 1, 0, ppEcho), send(0, 1, 1, 1, ppEcho), send(1, 0, 4, 8, ppEcho),
		send(1, 1, 1, 15, ppEcho), send(0, 0, 2, 14, ppEcho), send(0, 1, 3, 200, ppEcho)))
	// Empty datagrams: echoed, and several empty replies, then a longer
	// one with an empty one after it, in one callback.
	add(ppEnc(0, 0, send(0, 0, 2, 0, ppEcho), send(0, 1, 1, 0, ppMulti|2<<2), send(1, 0, 2, 16, ppFlush|ppCross)))
	// Truncation: MaxDatagram 100 and 1472 (header bits 4-5), sizes around them.
	add(ppEnc(1<<4|4, 1, send(0, 0, 4, 4, ppEcho), send(1, 1, 3, 15, ppEcho|ppBad)))
	add(ppEnc(2<<4, 0, send(0, 0, 3, 7, ppEcho), send(0, 1, 2, 15, ppMulti|3<<2)))
	// A queue of 1 (header bits 6-7) filled by several replies per
	// datagram and bursts; a byte cap of 70,000 (header 1 bit 1).
	add(ppEnc(1<<6, 0, send(0, 0, 8, 3, ppMulti|3<<2), send(1, 1, 4, 15, ppMulti|1<<2)))
	add(ppEnc(3<<6|4, 2|1, send(0, 0, 4, 15, ppFlush), send(1, 1, 2, 14, ppMulti|2<<2|ppAsRep)))
	// Flush mid-batch, and AsyncWriteTo replies from the handler.
	add(ppEnc(2<<6, 1, send(0, 0, 6, 3, ppFlush|ppAsRep), send(1, 0, 3, 13, ppFlush)))
	// Close mid-batch, then a reopened socket (Group) in its place; the
	// same on a Server, where the place stays closed.
	for _, h0 := range []byte{0, 4, 1 << 6} {
		add(ppEnc(h0, 1, send(0, 0, 5, 3, ppClose|2<<2), reopen(0), send(0, 1, 2, 3, ppEcho),
			send(1, 0, 4, 6, ppClose|3<<2|ppAsRep), async(1, 0, 2, 3, 0), reopen(1), send(1, 1, 1, 2, ppEcho)))
	}
	// Replies to the other client; wrong-family writes; a UDP_SEGMENT burst.
	add(ppEnc(0, 0, send(0, 0, 3, 5, ppEcho|ppCross|ppBad), send(1, 1, 8, 3, ppEcho|ppGSO),
		send(0, 1, 8, 9, ppMulti|1<<2|ppGSO|ppCross), send(1, 0, 6, 5, ppClose|1<<2|ppGSO)))
	// AsyncWriteTo from the test goroutine (one to the wrong family), on a
	// queue of 2; AsyncClose; AsyncWriteTo to the closed socket.
	add(ppEnc(2<<6|4, 0, async(0, 0, 4, 3, ppBad), async(1, 1, 8, 4, 0), aclose(0), async(0, 1, 2, 3, 0),
		send(1, 0, 2, 15, ppEcho)))
	// unixgram (header bit 3): the same actions on paths.
	add(ppEnc(8, 1, send(0, 0, 3, 15, ppEcho|ppBad), send(1, 1, 8, 4, ppMulti|3<<2), async(0, 1, 3, 3, ppBad),
		send(0, 0, 4, 3, ppClose|1<<2), reopen(0), send(0, 1, 2, 3, ppFlush|ppCross)))
	add(ppEnc(8|4|1<<4|1<<6, 0, send(0, 0, 4, 4, ppFlush), send(1, 1, 2, 14, ppEcho|ppAsRep), aclose(1)))

	dir, err := os.MkdirTemp("", "fuzzpacket")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { os.RemoveAll(dir) })
	var inputs atomic.Int64
	var baseOnce sync.Once
	var baseFDs, baseGs int
	buf := make([]byte, 65536)

	f.Fuzz(func(t *testing.T, data []byte) {
		baseOnce.Do(func() { baseFDs, baseGs = leakcheck.OpenFDs(), runtime.NumGoroutine() })
		cfg, ops := decodePacketOps(data)
		r := &ppRun{t: t, cfg: cfg, program: ops, dir: dir, input: inputs.Add(1), buf: buf,
			socks: map[*reactor.PacketConn]*ppSock{}}
		for i := range r.slots {
			r.slots[i] = &ppSlot{}
		}
		r.h = r.handler()
		stopped := false
		defer func() {
			// On a failure, still release what the input holds.
			if !stopped {
				if r.srv != nil {
					ctx, cancel := context.WithTimeout(context.Background(), 0)
					r.srv.Shutdown(ctx)
					cancel()
					if r.served != nil {
						<-r.served
					}
				}
				if r.g != nil {
					r.g.Close()
				}
			}
			for _, c := range r.clients {
				if c != nil && c.fd >= 0 {
					unix.Close(c.fd)
				}
			}
			if cfg.unixgram {
				ents, _ := filepath.Glob(filepath.Join(dir, fmt.Sprintf("[sc]%d-*", r.input)))
				for _, e := range ents {
					os.Remove(e)
				}
			}
		}()
		for k := range r.clients {
			r.clients[k] = r.client(k)
		}
		r.start()
		for i, o := range ops {
			r.step(i, o)
		}
		// Every socket closed by the handler or AsyncClose has its OnClose.
		r.mu.Lock()
		var closing []*ppSock
		for _, s := range r.all {
			if s.closing {
				closing = append(closing, s)
			}
		}
		r.mu.Unlock()
		for _, s := range closing {
			select {
			case <-s.closed:
			case <-time.After(ppWait):
				r.fail("slot %d: closed, no OnClose within %v", s.slot, ppWait)
			}
		}
		stopped = true
		r.stop()
		r.check()
		for _, c := range r.clients {
			unix.Close(c.fd)
			c.fd = -1
		}
		lpCheckLeaks(t, baseFDs, baseGs)
	})
}

// check is the end of an input, once the loops have ended: every socket
// closed once with the reason its end gives, nothing left for the
// clients, and the Stats as the model counted.
func (r *ppRun) check() {
	r.t.Helper()
	r.mu.Lock()
	errs, all := len(r.errs), append([]*ppSock(nil), r.all...)
	in, inBytes, trunc, dropped, onErrs, wantErrs := r.in, r.inBytes, r.trunc, r.dropped, r.onErrs, r.wantErrs
	type closed struct {
		slot, closes int
		reason       error
		closing      bool
	}
	var cs []closed
	for _, s := range all {
		cs = append(cs, closed{s.slot, s.closes, s.reason, s.closing})
	}
	r.mu.Unlock()
	if errs > 0 {
		r.fail("the handler saw %d violations", errs)
	}
	for _, c := range cs {
		want := reactor.ErrServerClosed
		if r.g != nil {
			want = reactor.ErrLoopClosed
		}
		if c.closing {
			want = nil
		}
		if c.closes != 1 || c.reason != want && !errors.Is(c.reason, want) {
			r.fail("slot %d: OnClose ran %d times, reason %v; want once, %v", c.slot, c.closes, c.reason, want)
		}
	}
	for _, c := range r.clients {
		if n, _, err := unix.Recvfrom(c.fd, r.buf, 0); err != unix.EAGAIN {
			r.fail("client %v: a datagram of %d bytes (%v) nobody sent, at the end", c.addr, n, err)
		}
	}
	st := r.stats()
	d := st.Datagrams
	gotN, gotB := r.clients[0].got+r.clients[1].got, r.clients[0].gotB+r.clients[1].gotB
	if d.Open != 0 || d.In != int64(in) || d.Truncated != int64(trunc) || d.Out != int64(gotN) ||
		d.Dropped != dropped || d.Errors != int64(onErrs) || onErrs != wantErrs ||
		st.BytesIn != int64(inBytes) || st.BytesOut != int64(gotB) {
		r.fail("Stats.Datagrams %+v, bytes in %d out %d; the model: open 0, in %d (%d bytes), truncated %d, out %d (%d bytes), dropped %d, errors %d (OnError %d)",
			d, st.BytesIn, st.BytesOut, in, inBytes, trunc, gotN, gotB, dropped, wantErrs, onErrs)
	}
	r.t.Logf("%v: %d actions, %d sockets, %d datagrams in, %d out, %d dropped",
		r.cfg, len(r.program), len(all), in, gotN, dropped)
}
