package reactor

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/fdtable"
	"github.com/muxkit/reactor/internal/sock"
	"github.com/muxkit/reactor/poller"
)

// Addr is the address of a datagram peer: an IP address and port (udp),
// or a socket path (unixgram). It is a comparable value; a loop turns a
// sockaddr into one and back without allocating (a unixgram peer's path
// is interned per PacketConn). The zero Addr is no address: the peer of a
// socket that is not connected, or an unnamed unixgram peer, which cannot
// be answered.
type Addr struct {
	ap   netip.AddrPort
	path string
}

// AddrFromAddrPort returns the Addr of an IP address and port.
func AddrFromAddrPort(ap netip.AddrPort) Addr { return Addr{ap: ap} }

// AddrFromPath returns the Addr of a unixgram socket path.
func AddrFromPath(path string) Addr { return Addr{path: path} }

// AddrPort returns a's IP address and port; the zero AddrPort for a path.
func (a Addr) AddrPort() netip.AddrPort { return a.ap }

// Path returns a's socket path; "" for an IP address.
func (a Addr) Path() string { return a.path }

// IsValid reports whether a is an address at all.
func (a Addr) IsValid() bool { return a.ap.IsValid() || a.path != "" }

// String returns "ip:port", the path, or "" for no address.
func (a Addr) String() string {
	if a.path != "" {
		return a.path
	}
	if a.ap.IsValid() {
		return a.ap.String()
	}
	return ""
}

// Packet is one datagram received, as OnPacket gets it. It and its Data
// are valid only during the call: copy what must outlive it (WriteTo
// copies).
type Packet struct {
	// Data is the datagram's payload.
	Data []byte
	// From is the sender.
	From Addr
	// Truncated reports a datagram longer than PacketOptions.MaxDatagram:
	// Data holds its first MaxDatagram bytes, and the rest is lost.
	Truncated bool
	// TOS is the IPv4 TOS byte or IPv6 traffic class the datagram came
	// with, its ECN bits (TOS&3) included, when the socket was opened with
	// PacketOptions.ReceiveTOS; otherwise 0.
	TOS uint8
}

// PacketHandler receives a datagram socket's events. Every method runs on
// the socket's loop goroutine and must not block: while it runs, nothing
// else on that loop is served.
type PacketHandler interface {
	// OnPacket is called once per datagram received on p, never after
	// p's Close or AsyncClose has begun: datagrams read in the same batch
	// and not yet served are discarded, as those still in the socket are.
	OnPacket(p *PacketConn, pkt *Packet)
	// OnError is called with an error that does not close p: an ICMP
	// error for an earlier datagram (ECONNREFUSED: nothing listens at a
	// connected peer's port), or a datagram the kernel refused to send
	// (too long, no route), which is dropped and counted.
	OnError(p *PacketConn, err error)
	// OnClose is called once, after p is closed, with why: nil after
	// Close, ErrServerClosed at a Server's shutdown, ErrLoopClosed when
	// the loop ends, or the system call error that closed it.
	OnClose(p *PacketConn, err error)
}

// PacketHandlerFuncs is a PacketHandler made of functions; a nil function
// does nothing.
type PacketHandlerFuncs struct {
	Packet func(p *PacketConn, pkt *Packet)
	Error  func(p *PacketConn, err error)
	Close  func(p *PacketConn, err error)
}

// OnPacket calls h.Packet if set.
func (h PacketHandlerFuncs) OnPacket(p *PacketConn, pkt *Packet) {
	if h.Packet != nil {
		h.Packet(p, pkt)
	}
}

// OnError calls h.Error if set.
func (h PacketHandlerFuncs) OnError(p *PacketConn, err error) {
	if h.Error != nil {
		h.Error(p, err)
	}
}

// OnClose calls h.Close if set.
func (h PacketHandlerFuncs) OnClose(p *PacketConn, err error) {
	if h.Close != nil {
		h.Close(p, err)
	}
}

// PacketOptions tunes a datagram socket; the zero value is the default.
type PacketOptions struct {
	// MaxDatagram is the longest datagram received whole; a longer one
	// reaches OnPacket truncated (Packet.Truncated). Zero means 65535,
	// which holds every datagram; at most 65535.
	MaxDatagram int
	// MaxQueued and MaxQueuedBytes cap the datagrams waiting to be sent:
	// past either, WriteTo returns ErrQueueFull, takes nothing, and the
	// drop is counted (Stats.Datagrams.Dropped). Zero means 1024
	// datagrams and 1 MiB.
	MaxQueued      int
	MaxQueuedBytes int
	// ReadBuffer and WriteBuffer set the kernel's receive and send
	// buffers (SO_RCVBUF, SO_SNDBUF); zero leaves the kernel's default.
	// A busy UDP server wants more than linux's default 208 KiB: a burst
	// past the receive buffer is dropped by the kernel, silently.
	ReadBuffer, WriteBuffer int
	// ReceiveTOS has each datagram's TOS byte or traffic class, ECN bits
	// included, reported in Packet.TOS.
	ReceiveTOS bool
	// ReusePort (linux, udp) has Group.ListenPacket and
	// Server.ListenPacket bind one socket per loop, all with SO_REUSEPORT
	// on one address, and the kernel spreads peers among them by a hash
	// of their addresses; without it one socket, on one loop, takes every
	// datagram. Elsewhere, and for unixgram, it is an error matching
	// errors.ErrUnsupported.
	ReusePort bool
}

// Defaults of PacketOptions.
const (
	DefaultMaxDatagram    = 65535
	DefaultMaxQueued      = 1024
	DefaultMaxQueuedBytes = 1 << 20
)

// resolve fills the defaults and checks the bounds.
func (o *PacketOptions) resolve() (PacketOptions, error) {
	var r PacketOptions
	if o != nil {
		r = *o
	}
	if r.MaxDatagram < 0 || r.MaxDatagram > DefaultMaxDatagram || r.MaxQueued < 0 || r.MaxQueuedBytes < 0 || r.ReadBuffer < 0 || r.WriteBuffer < 0 {
		return r, fmt.Errorf("reactor: PacketOptions %+v: MaxDatagram is 0 to 65535, and nothing is negative", r)
	}
	if r.MaxDatagram == 0 {
		r.MaxDatagram = DefaultMaxDatagram
	}
	if r.MaxQueued == 0 {
		r.MaxQueued = DefaultMaxQueued
	}
	if r.MaxQueuedBytes == 0 {
		r.MaxQueuedBytes = DefaultMaxQueuedBytes
	}
	return r, nil
}

// Errors of a PacketConn's writes.
var (
	// ErrNoPeer is returned by Write on a PacketConn that is not
	// connected (WriteTo names the peer), and by WriteTo with an address
	// other than a connected PacketConn's peer.
	ErrNoPeer = errors.New("reactor: no such peer: Write needs a connected PacketConn, WriteTo another address than a connected one's")
	// ErrAddrFamily is returned by WriteTo with an address the socket
	// cannot send to: an IPv6 address on an IPv4 socket, an IP address
	// on a unixgram socket, a path on a udp one, no address.
	ErrAddrFamily = fmt.Errorf("reactor: address of the wrong family for the socket: %w", sock.ErrAddrFamily)
	// ErrDatagramTooLong is returned by WriteTo with more bytes than one
	// UDP datagram carries (65,507 over IPv4, 65,527 over IPv6).
	ErrDatagramTooLong = errors.New("reactor: datagram too long for UDP")
)

// pstate is a PacketConn's set of flags.
type pstate uint16

const (
	pClosed     pstate = 1 << iota
	pClosing           // Close was asked for: flush, then close
	pDirty             // written to since its last flush: on the loop's list
	pWait              // the queue waits for room in the socket (EAGAIN)
	pGSO               // send runs of equal datagrams to one peer with UDP_SEGMENT
	pGRO               // the kernel coalesces receives (UDP_GRO)
	pTOS               // receive TOS / traffic class
	pStream            // a unixgram socket (no GSO, paths for addresses)
	pRecv              // the completion engine: a receive is in flight
	pRecvCancel        // its cancellation is asked for
	pSend              // the completion engine: sends are in flight
	pOutPoll           // the completion engine: they wait behind a poll for room
)

// PacketConn is one datagram socket served by a Loop: bound (ListenPacket)
// or connected (DialPacket). Its methods are for the loop goroutine
// (handlers, timer functions, posted functions) unless they say
// otherwise; AsyncWriteTo and AsyncClose are the ones for any goroutine.
//
// # Writing
//
// WriteTo queues a copy of the datagram: the datagrams written during one
// callback leave together when it returns, many per system call (sendmmsg
// on linux), and runs of same-sized datagrams to one peer leave as one
// send the kernel splits (UDP GSO, where the kernel has it). Flush sends
// them earlier. The queue is bounded (PacketOptions.MaxQueued,
// MaxQueuedBytes): past it WriteTo fails with ErrQueueFull and the drop is
// counted, as a datagram the kernel refuses is.
//
// # Reading
//
// OnPacket gets each datagram, many read per system call (recvmmsg on
// linux; where the kernel coalesces a burst from one peer, UDP GRO, it is
// split again before OnPacket). A socket is read for at most 256
// datagrams per turn of its loop, so one flooded socket cannot hold up
// the others on its loop.
type PacketConn struct {
	loop   *Loop
	h      PacketHandler
	fd     int
	handle fdtable.Handle
	st     pstate
	want   poller.Events // the readiness engine's interest; 0: not in the poller
	family int
	opt    PacketOptions
	peer   Addr // a connected socket's peer
	local  Addr
	q      dgramQueue
	ctx    any
	srv    *Server    // nil unless a Server opened it
	timer  *Timer     // a graceful close's bound
	why    error      // the reason a graceful close ends with
	path   string     // the last unixgram peer path seen, interned
	ring   *ringDgram // the completion engine's state; nil on a readiness loop
}

// dgram is one queued datagram: q.data[off:off+n], to its address.
type dgram struct {
	off, n int
	to     Addr
	tos    uint8
}

// dgramQueue holds the datagrams written and not yet sent: their payloads
// back to back in data, in order in ents[head:]. Its memory is reused from
// flush to flush. Storage past 64 KiB (or 1024 entries) is kept while the
// bursts need it and let go once queueLean flushes in a row have not: a
// socket that sends large bursts does not allocate and grow its queue
// again for each, and one that stops does not hold the memory.
type dgramQueue struct {
	data  []byte
	ents  []dgram
	head  int
	bytes int
	lean  int // flushes in a row that used no more than the small storage
}

// Storage a queue keeps however long it goes unused, and how many flushes
// in a row must fit in it before larger storage is let go.
const (
	queueSmallData = 64 << 10
	queueSmallEnts = 1024
	queueLean      = 64
)

func (q *dgramQueue) len() int { return len(q.ents) - q.head }

// push appends a copy of b.
func (q *dgramQueue) push(b []byte, to Addr, tos uint8) {
	off := len(q.data)
	q.data = append(q.data, b...)
	q.ents = append(q.ents, dgram{off: off, n: len(b), to: to, tos: tos})
	q.bytes += len(b)
}

// pop removes the first n datagrams.
func (q *dgramQueue) pop(n int) {
	for _, e := range q.ents[q.head : q.head+n] {
		q.bytes -= e.n
	}
	q.head += n
	if q.head == len(q.ents) {
		q.reset()
	}
}

// compact moves the queued datagrams to the front of the storage once
// the sent ones before them take at least as much room, so that storage
// grows with what is queued, not with what has passed through a queue
// that never empties. The moved bytes are at most those sent: amortized,
// each byte is moved at most once. Only while no send in flight refers to
// the storage.
func (q *dgramQueue) compact() {
	if q.head == 0 {
		return
	}
	first := q.ents[q.head].off
	if first < len(q.data)-first {
		return
	}
	q.data = q.data[:copy(q.data, q.data[first:])]
	n := copy(q.ents, q.ents[q.head:])
	clear(q.ents[n:]) // the Addrs' paths
	q.ents = q.ents[:n]
	for i := range q.ents {
		q.ents[i].off -= first
	}
	q.head = 0
}

// reset empties the queue, keeping its storage unless it is large and
// has not been needed for queueLean flushes.
func (q *dgramQueue) reset() {
	if len(q.data) > queueSmallData || len(q.ents) > queueSmallEnts {
		q.lean = 0
	} else if cap(q.data) > queueSmallData || cap(q.ents) > queueSmallEnts {
		q.lean++
	}
	clear(q.ents) // the Addrs' paths
	q.ents, q.data, q.head, q.bytes = q.ents[:0], q.data[:0], 0, 0
	if q.lean >= queueLean {
		q.lean = 0
		if cap(q.data) > queueSmallData {
			q.data = nil
		}
		if cap(q.ents) > queueSmallEnts {
			q.ents = nil
		}
	}
}

// release lets all of the queue's storage go (its socket has closed).
func (q *dgramQueue) release() {
	clear(q.ents)
	*q = dgramQueue{}
}

// payload returns datagram e's bytes.
func (q *dgramQueue) payload(e *dgram) []byte { return q.data[e.off : e.off+e.n] }

func (p *PacketConn) is(f pstate) bool { return p.st&f != 0 }

// newPacketConn wraps fd, a datagram socket of family it owns from now on
// (closing it on failure), as a PacketConn of l and has the engine start
// reading it; peer is the connected peer, if any. On l's goroutine, or
// before l runs.
func (l *Loop) newPacketConn(fd, family int, peer Addr, h PacketHandler, opt PacketOptions) (*PacketConn, error) {
	p := &PacketConn{loop: l, h: h, fd: fd, family: family, opt: opt, peer: peer}
	if err := p.setup(); err != nil {
		unix.Close(fd)
		return nil, err
	}
	hd, err := l.tab.Put(fd, p)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	p.handle = hd
	if err := l.eng.openPacket(p); err != nil {
		l.tab.Delete(hd)
		unix.Close(fd)
		return nil, err
	}
	l.stats.datagramOpen.Add(1)
	return p, nil
}

// setup applies the options to the socket and learns what the kernel
// offers it.
func (p *PacketConn) setup() error {
	fd := p.fd
	if p.opt.ReadBuffer > 0 {
		if err := sock.SetReadBuffer(fd, p.opt.ReadBuffer); err != nil {
			return err
		}
	}
	if p.opt.WriteBuffer > 0 {
		if err := sock.SetWriteBuffer(fd, p.opt.WriteBuffer); err != nil {
			return err
		}
	}
	if sa, err := unix.Getsockname(fd); err == nil {
		p.local = addrOfSockaddr(sa)
	}
	if p.family == unix.AF_UNIX {
		p.st |= pStream
		return nil
	}
	if p.opt.ReceiveTOS {
		if err := sock.SetReceiveTOS(fd, p.family); err != nil {
			return fmt.Errorf("reactor: PacketOptions.ReceiveTOS: %w", err)
		}
		p.st |= pTOS
	}
	gso, gro := sock.Offload()
	if gso {
		p.st |= pGSO
	}
	// A coalesced receive is up to 64 KiB: only a socket whose datagrams
	// are read whole can take one.
	if gro && p.opt.MaxDatagram == DefaultMaxDatagram && sock.SetGRO(fd) == nil {
		p.st |= pGRO
	}
	return nil
}

// addrOfSockaddr is the Addr of sa (set-up work: it may allocate).
func addrOfSockaddr(sa unix.Sockaddr) Addr {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return AddrFromAddrPort(netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)))
	case *unix.SockaddrInet6:
		return AddrFromAddrPort(netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port)))
	case *unix.SockaddrUnix:
		return AddrFromPath(sa.Name)
	}
	return Addr{}
}

// WriteTo queues a copy of b as one datagram to to; it leaves with the
// others written in the same callback when the callback returns (see
// PacketConn), and never blocks. It returns len(b), or an error with
// nothing queued: ErrQueueFull past the queue's caps (the drop is
// counted), ErrAddrFamily for an address the socket cannot reach,
// ErrDatagramTooLong, ErrNoPeer on a connected socket for another
// address, net.ErrClosed after Close. An error the kernel gives for the
// datagram when it is sent goes to OnError. It allocates only to grow the
// queue.
func (p *PacketConn) WriteTo(b []byte, to Addr) (int, error) {
	p.loop.checkLoop("PacketConn.WriteTo")
	return p.queue(b, to, 0)
}

// WriteToTOS is WriteTo with the datagram's IPv4 TOS byte or IPv6 traffic
// class set to tos (ECN marking: tos&3); it is for udp sockets.
func (p *PacketConn) WriteToTOS(b []byte, to Addr, tos uint8) (int, error) {
	p.loop.checkLoop("PacketConn.WriteToTOS")
	if p.is(pStream) && tos != 0 {
		return 0, fmt.Errorf("reactor: a TOS byte on a unixgram socket: %w", ErrAddrFamily)
	}
	return p.queue(b, to, tos)
}

// Write is WriteTo the connected peer; a PacketConn that is not connected
// returns ErrNoPeer.
func (p *PacketConn) Write(b []byte) (int, error) {
	p.loop.checkLoop("PacketConn.Write")
	if !p.peer.IsValid() {
		return 0, ErrNoPeer
	}
	return p.queue(b, Addr{}, 0)
}

// maxUDPPayload is the longest UDP payload over IPv4 and over IPv6.
const (
	maxUDP4Payload = 65507
	maxUDP6Payload = 65527
)

// queue is WriteTo; to zero means the connected peer.
func (p *PacketConn) queue(b []byte, to Addr, tos uint8) (int, error) {
	if p.is(pClosed | pClosing) {
		return 0, net.ErrClosed
	}
	if p.peer.IsValid() {
		if to.IsValid() && to != p.peer {
			return 0, ErrNoPeer
		}
		to = Addr{} // sent on the connected socket, without a name
	} else if err := p.checkAddr(to); err != nil {
		return 0, err
	}
	switch p.family {
	case unix.AF_INET:
		if len(b) > maxUDP4Payload {
			return 0, ErrDatagramTooLong
		}
	case unix.AF_INET6:
		if len(b) > maxUDP6Payload {
			return 0, ErrDatagramTooLong
		}
	}
	if p.q.len() >= p.opt.MaxQueued || p.q.bytes+len(b) > p.opt.MaxQueuedBytes {
		p.loop.stats.datagramDropped.Add(1)
		return 0, ErrQueueFull
	}
	p.q.push(b, to, tos)
	p.dirty()
	return len(b), nil
}

// checkAddr reports whether to is an address the socket can send to.
func (p *PacketConn) checkAddr(to Addr) error {
	switch {
	case p.is(pStream):
		if to.path == "" {
			return ErrAddrFamily
		}
	case !to.ap.IsValid():
		return ErrAddrFamily
	case p.family == unix.AF_INET && !to.ap.Addr().Unmap().Is4():
		return ErrAddrFamily
	}
	return nil
}

// dirty marks p written to: the loop flushes it when the callback returns.
func (p *PacketConn) dirty() {
	if !p.is(pDirty) {
		p.st |= pDirty
		p.loop.pdirty = append(p.loop.pdirty, p)
	}
}

// Flush sends the queued datagrams now rather than when the callback
// returns (one or a few system calls). What the kernel cannot take yet
// stays queued for the loop to send when the socket has room. It does not
// allocate; after Close the error is net.ErrClosed.
func (p *PacketConn) Flush() error {
	p.loop.checkLoop("PacketConn.Flush")
	if p.is(pClosed) {
		return net.ErrClosed
	}
	if p.q.len() > 0 {
		p.loop.eng.sendPackets(p, true)
	}
	return nil
}

// Queued returns the datagrams written and not yet sent.
func (p *PacketConn) Queued() int { return p.q.len() }

// settle ends a callback's work on p: send what it wrote, finish a close
// whose queue is empty, and set what the engine watches.
func (p *PacketConn) settle() {
	p.st &^= pDirty
	if p.is(pClosed) {
		return
	}
	if p.q.len() > 0 && !p.is(pWait) {
		p.loop.eng.sendPackets(p, false)
		if p.is(pClosed) {
			return
		}
	}
	if p.is(pClosing) && p.q.len() == 0 && !p.is(pSend) {
		p.closeNow(p.why)
		return
	}
	p.loop.eng.interestPacket(p)
}

// sent drops the first n queued datagrams, which the kernel took, and
// counts them.
func (p *PacketConn) sent(n int) {
	bytes := p.q.bytes
	p.q.pop(n)
	p.loop.tout += int64(bytes - p.q.bytes)
	p.loop.tdout += int64(n)
}

// refusedN drops the first n queued datagrams, which the kernel refused to
// send with err, counts them and tells the handler once.
func (p *PacketConn) refusedN(n int, err error) {
	p.q.pop(n)
	p.loop.stats.datagramDropped.Add(int64(n))
	p.reportError(err)
}

// reportError hands an error that does not close p to the handler.
func (p *PacketConn) reportError(err error) {
	p.loop.stats.datagramErrors.Add(1)
	p.h.OnError(p, err)
}

// arrived serves one receive, on either engine: the datagram (or, with a
// GRO segment size, the datagrams) in buf[:n], from the sockaddr in m.
func (p *PacketConn) arrived(buf []byte, m *sock.Msg) {
	l := p.loop
	pkt := &l.pkt
	*pkt = Packet{From: p.addrOf(m)}
	pkt.Truncated = m.Flags&unix.MSG_TRUNC != 0
	seg := 0
	if m.OOBN > 0 {
		ctl := sock.ParseControl(m.OOB[:m.OOBN])
		pkt.TOS, seg = ctl.TOS, ctl.GRO
	}
	n := min(m.N, len(buf))
	if pkt.Truncated {
		l.stats.datagramTruncated.Add(1)
	}
	if seg <= 0 || seg >= n {
		l.tin += int64(n)
		l.tdin++
		pkt.Data = buf[:n]
		p.h.OnPacket(p, pkt)
		return
	}
	for off := 0; off < n && !p.is(pClosed|pClosing); off += seg {
		end := min(off+seg, n)
		l.tin += int64(end - off)
		l.tdin++
		pkt.Data = buf[off:end]
		p.h.OnPacket(p, pkt)
	}
}

// addrOf is the sender in m, without allocating for an IP address or a
// unixgram path seen last time.
func (p *PacketConn) addrOf(m *sock.Msg) Addr {
	if p.peer.IsValid() {
		return p.peer
	}
	if !p.is(pStream) {
		ap, _ := sock.AddrPortOf(&m.Name)
		return Addr{ap: ap}
	}
	path := sock.PathOf(&m.Name, m.NameLen)
	if len(path) == 0 {
		return Addr{}
	}
	if string(path) != p.path { // the comparison does not allocate
		p.path = string(path)
	}
	return Addr{path: p.path}
}

// putName writes e's address into m for a send, unless p is connected.
func (p *PacketConn) putName(m *sock.Msg, to Addr) error {
	m.NameLen = 0
	if !to.IsValid() {
		return nil
	}
	var err error
	if to.path != "" {
		m.NameLen, err = sock.PutPath(&m.Name, to.path)
	} else {
		m.NameLen, err = sock.PutAddrPort(&m.Name, p.family, to.ap)
	}
	return err
}

// gsoMax caps the datagrams of one GSO send (linux took 64 until 5.18).
const gsoMax = 64

// message fills m with the queue's next send from datagram i on: one
// datagram, or with GSO a run of datagrams to one peer of one size (the
// last may be shorter), and returns how many datagrams it covers.
func (p *PacketConn) message(m *sock.Msg, oob []byte, i int) (int, error) {
	ents := p.q.ents
	e := &ents[i]
	k := 1
	if p.is(pGSO) && e.n > 0 { // an empty datagram is no segment: it goes alone
		total := e.n
		for j := i + 1; j < len(ents) && k < gsoMax; j++ {
			f := &ents[j]
			if f.n == 0 || f.to != e.to || f.tos != e.tos || f.n > e.n || total+f.n > maxUDP4Payload || f.off != e.off+total {
				break
			}
			total += f.n
			k++
			if f.n < e.n {
				break // a shorter one ends a run
			}
		}
	}
	last := &ents[i+k-1]
	m.Buf = p.q.data[e.off : last.off+last.n]
	if err := p.putName(m, e.to); err != nil {
		return 1, err
	}
	n := 0
	if k > 1 {
		n = sock.PutSegment(oob, n, e.n)
	}
	if e.tos != 0 {
		n = sock.PutTOS(oob, n, p.family, e.tos)
	}
	m.OOB = oob[:n]
	return k, nil
}

// Close closes p once the datagrams queued are sent (for at most 500 ms
// while the socket has no room; what is left then is dropped and counted);
// OnClose follows with a nil reason. A second Close returns net.ErrClosed.
func (p *PacketConn) Close() error {
	p.loop.checkLoop("PacketConn.Close")
	if p.is(pClosed | pClosing) {
		return net.ErrClosed
	}
	p.beginClose(nil)
	return nil
}

// beginClose starts a graceful close: flush, then close with reason.
func (p *PacketConn) beginClose(reason error) {
	p.st |= pClosing
	p.why = reason
	if p.q.len() == 0 && !p.is(pSend) {
		p.closeNow(reason)
		return
	}
	p.timer = p.loop.AfterFunc(lingerTimeout, func() { p.closeNow(p.why) })
	if !p.is(pDirty) {
		p.settle()
	}
}

// AsyncWriteTo copies b and has p's loop WriteTo it to to; safe from any
// goroutine. It allocates the copy and the hand-off. Datagrams from one
// goroutine are queued in the order made; one for a PacketConn closed by
// the time the loop runs it is dropped; once the loop has ended the error
// is ErrLoopClosed (ErrServerClosed for a Server's socket).
func (p *PacketConn) AsyncWriteTo(b []byte, to Addr) error {
	cp := append([]byte(nil), b...)
	return p.post(func() {
		if !p.is(pClosed | pClosing) {
			if _, err := p.queue(cp, to, 0); err != nil && !errors.Is(err, ErrQueueFull) {
				p.reportError(err)
			}
		}
	})
}

// AsyncClose has p's loop Close it; safe from any goroutine.
func (p *PacketConn) AsyncClose() error {
	return p.post(func() {
		if !p.is(pClosed | pClosing) {
			p.beginClose(nil)
		}
	})
}

// post runs fn on p's loop.
func (p *PacketConn) post(fn func()) error {
	if err := p.loop.Post(fn); err != nil {
		if p.srv != nil && errors.Is(err, ErrLoopClosed) {
			return ErrServerClosed
		}
		return err
	}
	return nil
}

// closeNow closes p now, dropping what is queued, and tells the handler.
func (p *PacketConn) closeNow(reason error) {
	if p.is(pClosed) {
		return
	}
	p.st |= pClosed
	l := p.loop
	if p.timer != nil {
		p.timer.Stop()
	}
	if n := p.q.len(); n > 0 {
		l.stats.datagramDropped.Add(int64(n))
	}
	if l.eng.abortPacket(p) {
		p.finishClose()
	}
	l.stats.datagramOpen.Add(-1)
	p.h.OnClose(p, reason)
}

// finishClose frees p's table slot and closes its fd, once the completion
// engine has nothing in flight for it.
func (p *PacketConn) finishClose() {
	if p.is(pRecv|pSend) || p.fd < 0 {
		return
	}
	p.loop.tab.Delete(p.handle)
	p.q.release()
	if err := unix.Close(p.fd); err != nil {
		p.loop.logError("closing a datagram socket", err, "fd", p.fd)
	}
	p.fd = -1
}

// onStop is p's loop ending while p is open.
func (p *PacketConn) onStop(reason error) {
	if p.srv != nil {
		reason = ErrServerClosed
	}
	p.closeNow(reason)
}

// Context returns the value set by SetContext.
func (p *PacketConn) Context() any { return p.ctx }

// SetContext attaches a value of the handler's own to p.
func (p *PacketConn) SetContext(v any) { p.ctx = v }

// Loop returns the loop that serves p; safe from any goroutine.
func (p *PacketConn) Loop() *Loop { return p.loop }

// LocalAddr returns the address p is bound to.
func (p *PacketConn) LocalAddr() Addr { return p.local }

// RemoteAddr returns a connected PacketConn's peer, else the zero Addr.
func (p *PacketConn) RemoteAddr() Addr { return p.peer }

// Fd returns p's file descriptor, or -1 once p is closed. For socket
// options prefer PacketOptions; never read, write or close the fd.
func (p *PacketConn) Fd() int {
	if p.is(pClosed) {
		return -1
	}
	return p.fd
}

// Offload reports what the kernel does for p: GSO (runs of equal
// datagrams to one peer leave as one send) and GRO (bursts from one peer
// arrive as one receive). Each is probed, never assumed; unixgram has
// neither.
func (p *PacketConn) Offload() (gso, gro bool) { return p.is(pGSO), p.is(pGRO) }

// String describes p for logs.
func (p *PacketConn) String() string {
	return fmt.Sprintf("packetconn(fd=%d, %v)", p.fd, p.local)
}
