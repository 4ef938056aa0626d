package reactor

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/internal/sock"
	"github.com/muxkit/reactor/poller"
)

// The datagram system calls of a readiness loop: many datagrams per call
// (recvmmsg and sendmmsg on linux), through buffers the loop keeps for all
// its datagram sockets, made when the first one opens.

const (
	// dgramBatch is how many datagrams one system call moves at most.
	dgramBatch = 32
	// dgramBudget is how many datagrams a socket is read for per turn:
	// one flooded socket cannot hold up the others on its loop.
	dgramBudget = 256
)

// dgramIO is a loop's datagram buffers.
type dgramIO struct {
	recv  *sock.Batch
	rmsgs []sock.Msg
	bufs  []byte // dgramBatch slots of size bytes, mapped outside the Go heap
	size  int
	roob  []byte
	send  *sock.Batch
	smsgs []sock.Msg
	soob  []byte
	cover []int // datagrams each send message covers
}

// datagrams returns l's datagram buffers, with receive slots of at least
// size bytes.
func (l *Loop) datagrams(size int) (*dgramIO, error) {
	d := l.dgram
	if d == nil {
		cs := sock.ControlSpace
		d = &dgramIO{
			recv: sock.NewBatch(dgramBatch), rmsgs: make([]sock.Msg, dgramBatch), roob: make([]byte, dgramBatch*cs),
			send: sock.NewBatch(dgramBatch), smsgs: make([]sock.Msg, dgramBatch), soob: make([]byte, dgramBatch*cs),
			cover: make([]int, dgramBatch),
		}
		l.dgram = d
	}
	if d.size < size {
		bufs, err := unix.Mmap(-1, 0, dgramBatch*size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
		if err != nil {
			return nil, os.NewSyscallError("mmap", err)
		}
		if d.bufs != nil {
			unix.Munmap(d.bufs)
		}
		d.bufs, d.size = bufs, size
	}
	return d, nil
}

// release unmaps the receive slots.
func (d *dgramIO) release() {
	if d.bufs != nil {
		unix.Munmap(d.bufs)
		d.bufs = nil
	}
}

// recvSize is how large a receive slot p needs.
func (p *PacketConn) recvSize() int { return p.opt.MaxDatagram }

// receive reads p's datagrams, many per system call, for at most
// dgramBudget, hands each to OnPacket, and returns how many it read.
func (p *PacketConn) receive() int {
	l := p.loop
	d, err := l.datagrams(p.recvSize())
	if err != nil {
		p.closeNow(err)
		return 0
	}
	got := 0
	cs := sock.ControlSpace
	for budget := dgramBudget; budget > 0 && !p.is(pClosed|pClosing); {
		k := min(dgramBatch, budget)
		for i := range k {
			m := &d.rmsgs[i]
			m.Buf = d.bufs[i*d.size : i*d.size+p.recvSize()]
			m.OOB = d.roob[i*cs : (i+1)*cs]
		}
		n, err := d.recv.Recv(p.fd, d.rmsgs[:k])
		switch {
		case err == unix.EAGAIN:
			return got
		case isPeerError(err):
			p.reportError(os.NewSyscallError("recvmsg", err))
			continue
		case err != nil:
			p.closeNow(os.NewSyscallError("recvmmsg", err))
			return got
		}
		got += n
		for i := range n {
			m := &d.rmsgs[i]
			p.arrived(m.Buf, m)
			if p.is(pClosed | pClosing) {
				return got // the rest of the batch is not served, as if never read
			}
		}
		if len(l.dirty)+len(l.pdirty) > 0 {
			l.flushDirty() // replies leave batch by batch
		}
		budget -= n
		if n < k {
			return got // drained
		}
	}
	return got
}

// isPeerError reports an error a datagram socket gets for an earlier
// datagram (an ICMP message): it concerns that datagram, not the socket.
func isPeerError(err error) bool {
	switch err {
	case unix.ECONNREFUSED, unix.EHOSTUNREACH, unix.ENETUNREACH, unix.EHOSTDOWN, unix.ENETDOWN, unix.EMSGSIZE, unix.ECONNRESET:
		return true
	}
	return false
}

// flush sends p's queue with as few system calls as the kernel takes it
// in; what it cannot take yet waits for room (pWait).
func (p *PacketConn) flush() {
	l := p.loop
	d, err := l.datagrams(0)
	if err != nil {
		p.closeNow(err)
		return
	}
	cs := sock.ControlSpace
	p.q.compact()
	for p.q.len() > 0 {
		k := 0
		for i := p.q.head; k < dgramBatch && i < len(p.q.ents); k++ {
			n, err := p.message(&d.smsgs[k], d.soob[k*cs:(k+1)*cs], i)
			if err != nil { // not from WriteTo's checks: drop it
				p.refusedN(1, err)
				return
			}
			d.cover[k] = n
			i += n
		}
		sent, err := d.send.Send(p.fd, d.smsgs[:k])
		switch {
		case err == unix.EAGAIN:
			p.st |= pWait
			return
		case err != nil && d.cover[0] > 1 && sock.IsGSOError(err):
			p.st &^= pGSO // the device cannot segment: one by one
			continue
		case err != nil:
			p.refusedN(d.cover[0], os.NewSyscallError("sendmsg", err))
			continue
		}
		covered := 0
		for _, c := range d.cover[:sent] {
			covered += c
		}
		p.sent(covered)
	}
	p.st &^= pWait
}

// onEvent serves one poller event for p (a readiness loop's).
func (p *PacketConn) onEvent(ev poller.Events) {
	if ev&(poller.Writable|poller.Error|poller.HangUp) != 0 && p.is(pWait) {
		p.st &^= pWait
		p.flush()
		if p.is(pClosed) {
			return
		}
	}
	if ev&(poller.Readable|poller.Error) != 0 {
		p.receive()
		if p.is(pClosed) {
			return
		}
	}
	p.settle()
}

// openPacket watches p for reading.
func (e *readiness) openPacket(p *PacketConn) error {
	if _, err := e.l.datagrams(p.recvSize()); err != nil {
		return err
	}
	p.want = poller.Readable
	return e.l.p.Add(p.fd, uint64(p.handle), poller.Readable)
}

// sendPackets sends p's queue now.
func (e *readiness) sendPackets(p *PacketConn, _ bool) { p.flush() }

// interestPacket watches p for reading (until it closes) and, while its
// queue waits for room, for writing.
func (e *readiness) interestPacket(p *PacketConn) {
	var want poller.Events
	if !p.is(pClosing) {
		want = poller.Readable
	}
	if p.is(pWait) {
		want |= poller.Writable
	}
	if want == p.want {
		return
	}
	l := e.l
	var err error
	switch {
	case p.want == 0:
		err = l.p.Add(p.fd, uint64(p.handle), want)
	case want == 0:
		err = l.p.Remove(p.fd)
	default:
		err = l.p.Modify(p.fd, uint64(p.handle), want)
	}
	if err != nil {
		l.logError("changing a datagram socket's poller interest", err, "fd", p.fd)
		p.closeNow(err)
		return
	}
	p.want = want
}

// abortPacket takes closed p out of the poller.
func (e *readiness) abortPacket(p *PacketConn) bool {
	if p.want != 0 {
		if err := e.l.p.Remove(p.fd); err != nil && !errors.Is(err, poller.ErrClosed) {
			e.l.logError("removing a closed datagram socket from the poller", err, "fd", p.fd)
		}
		p.want = 0
	}
	return true
}
