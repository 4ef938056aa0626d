package reactor

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/internal/sock"
	"github.com/muxkit/reactor/internal/uring"
)

// The completion engine's side of datagram sockets. Each socket has one
// recvmsg armed at a time, into a receive buffer of its own (mapped
// outside the Go heap, MaxDatagram bytes: only what datagrams touch is
// resident), armed again after each completion while the socket is open.
// One datagram a completion would make a burst cost a completion, and
// about one io_uring_enter, per datagram; so after a completion the loop
// reads what else the socket holds as a readiness loop does, recvmmsg
// until EAGAIN or the readiness loop's budget, before it arms the
// recvmsg again. A socket whose read found nothing skips it for the next
// ringQuietSkip completions: a lone peer's datagrams do not pay an
// empty recvmmsg each. Its
// queue leaves by up to ringDgramSends sendmsgs at a time, each one
// datagram or one GSO run, from the queue's storage, which is not touched
// until they have all completed. They are linked (IOSQE_IO_LINK), so they
// go, and complete, in order, and one that fails cancels those after it,
// which are sent again: the queue advances in order whatever happens.
//
// A send is never retried by the kernel: each goes with MSG_DONTWAIT, so
// a socket without room completes it with EAGAIN, and the chain sent
// again starts with a poll for room (POLLOUT) linked to the sends. The
// kernel's own retry (io_uring polls and sends again) is not safe for a
// datagram: on an AF_UNIX socket whose peer's queue is full, the first
// try has already consumed the message's iovec, and the retry sends an
// empty datagram and completes with 0 (seen on linux 6.18; FuzzPacket
// found it).

// ringDgramSends is how many sendmsgs a datagram socket has in flight at
// most.
const ringDgramSends = 16

// ringQuietSkip is how many completions skip reading more after a read
// that found nothing.
const ringQuietSkip = 8

// ringDgram is a datagram socket's operations in flight: the kernel reads
// and writes these structures until the operations complete, so they are
// allocated once, with the socket, and never move.
type ringDgram struct {
	buf   []byte // the receive buffer, mmap'd
	rm    sock.Msg
	rhdr  unix.Msghdr
	riov  unix.Iovec
	roob  []byte
	sends [ringDgramSends]ringDgramSend
	nsend int // sends in flight
	done  int // of those, completed (they complete in order)
	skip  int // completions left that do not read more (ringQuietSkip)
}

// ringDgramSend is one sendmsg in flight and, once complete, its result.
type ringDgramSend struct {
	m      sock.Msg
	hdr    unix.Msghdr
	iov    unix.Iovec
	oob    []byte
	covers int   // queued datagrams it carries
	res    int32 // its result, once complete
}

// openPacket sets up p's receive buffer and arms its receive.
func (e *completion) openPacket(p *PacketConn) error {
	buf, err := unix.Mmap(-1, 0, p.recvSize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANONYMOUS|unix.MAP_PRIVATE)
	if err != nil {
		return os.NewSyscallError("mmap", err)
	}
	r := &ringDgram{buf: buf, roob: make([]byte, sock.ControlSpace)}
	for i := range r.sends {
		r.sends[i].oob = make([]byte, sock.ControlSpace)
	}
	p.ring = r
	e.armRecvmsg(p)
	return nil
}

// armRecvmsg arms p's receive.
func (e *completion) armRecvmsg(p *PacketConn) {
	r := p.ring
	r.rm = sock.Msg{Buf: r.buf, OOB: r.roob}
	sock.Msghdr(&r.rhdr, &r.riov, &r.rm, true)
	q := e.sqe()
	q.Opcode, q.Fd, q.Addr, q.Len = uring.OpRecvmsg, int32(p.fd), uint64(uintptr(unsafe.Pointer(&r.rhdr))), 1
	q.UserData = ringTag(p.handle, opRecvmsg)
	p.st |= pRecv
}

// sendPackets submits sendmsgs for p's queue, unless some are in flight
// (their completions send the rest); with now, at once.
func (e *completion) sendPackets(p *PacketConn, now bool) {
	r := p.ring
	if p.is(pSend) || p.q.len() == 0 {
		return
	}
	p.q.compact() // nothing in flight refers to it now
	k := 0
	for i := p.q.head; k < ringDgramSends && i < len(p.q.ents); k++ {
		s := &r.sends[k]
		n, err := p.message(&s.m, s.oob, i)
		if err != nil {
			if k == 0 {
				p.refusedN(1, err) // not from WriteTo's checks: drop it
			}
			break
		}
		s.covers, s.res = n, 0
		i += n
	}
	if k == 0 {
		return
	}
	wait := p.is(pWait)
	if wait {
		e.reserve(k + 1) // the chain goes in one submission
		q := e.sqe()
		q.Opcode, q.Fd, q.OpFlags = uring.OpPollAdd, int32(p.fd), unix.POLLOUT
		q.Flags |= uring.SqeIOLink
		q.UserData = ringTag(p.handle, opOutPoll)
	} else {
		e.reserve(k)
	}
	for j := range k {
		s := &r.sends[j]
		sock.Msghdr(&s.hdr, &s.iov, &s.m, false)
		q := e.sqe()
		q.Opcode, q.Fd, q.Addr, q.Len = uring.OpSendmsg, int32(p.fd), uint64(uintptr(unsafe.Pointer(&s.hdr))), 1
		q.OpFlags = unix.MSG_NOSIGNAL | unix.MSG_DONTWAIT
		if j < k-1 {
			q.Flags |= uring.SqeIOLink
		}
		q.UserData = ringTag(p.handle, opSendmsg)
	}
	r.nsend = k
	p.st |= pSend
	p.st &^= pWait
	if wait {
		p.st |= pOutPoll
	}
	if now {
		e.submit()
	}
}

// interestPacket arms p's receive while it is open, and cancels it once
// p is closing.
func (e *completion) interestPacket(p *PacketConn) {
	switch {
	case !p.is(pRecv) && !p.is(pClosing|pClosed):
		e.armRecvmsg(p)
	case p.is(pRecv) && p.is(pClosing) && !p.is(pRecvCancel):
		e.cancel(ringTag(p.handle, opRecvmsg))
		p.st |= pRecvCancel
	}
}

// abortPacket cancels closed p's operations in flight; its fd may close
// at once only if there were none.
func (e *completion) abortPacket(p *PacketConn) bool {
	if !p.is(pRecv | pSend) {
		e.releaseDgram(p)
		return true
	}
	if p.is(pRecv) && !p.is(pRecvCancel) {
		e.cancel(ringTag(p.handle, opRecvmsg))
		p.st |= pRecvCancel
	}
	if p.is(pOutPoll) {
		// Sends waiting for room that may never come: cancelling the poll
		// cancels them.
		e.cancel(ringTag(p.handle, opOutPoll))
	}
	return false
}

// releaseDgram unmaps p's receive buffer once nothing is in flight.
func (e *completion) releaseDgram(p *PacketConn) {
	if r := p.ring; r != nil && r.buf != nil {
		unix.Munmap(r.buf)
		r.buf = nil
	}
}

// onRecvmsg serves a completion of p's receive.
func (e *completion) onRecvmsg(p *PacketConn, res int32) {
	p.st &^= pRecv | pRecvCancel
	r := p.ring
	switch {
	case p.is(pClosed):
	case p.is(pClosing):
		// Dropped: a closing socket reads no more.
	case res >= 0:
		r.rm.N = int(res)
		r.rm.NameLen = r.rhdr.Namelen
		r.rm.OOBN = int(r.rhdr.Controllen)
		r.rm.Flags = int(r.rhdr.Flags)
		p.arrived(r.buf, &r.rm)
		if !p.is(pClosed | pClosing) {
			e.readMore(p)
		}
	case res == -int32(unix.ECANCELED), res == -int32(unix.EAGAIN), res == -int32(unix.EINTR):
	case isPeerError(unix.Errno(-res)):
		p.reportError(errnoRes("recvmsg", res))
	default:
		p.closeNow(errnoRes("recvmsg", res))
	}
	e.settlePacket(p)
}

// readMore reads what else p's socket holds after a completion, unless a
// recent read found nothing.
func (e *completion) readMore(p *PacketConn) {
	r := p.ring
	if r.skip > 0 {
		r.skip--
		return
	}
	if p.receive() == 0 {
		r.skip = ringQuietSkip
	}
}

// onSendmsg serves the completion of p's next send; when the last of them
// is in, the queue is advanced by what they took, in order.
func (e *completion) onSendmsg(p *PacketConn, res int32) {
	r := p.ring
	if r.done < r.nsend {
		r.sends[r.done].res = res
	}
	r.done++
	if r.done < r.nsend {
		return
	}
	n := r.nsend
	r.nsend, r.done = 0, 0
	p.st &^= pSend | pOutPoll
	if p.is(pClosed) {
		e.settlePacket(p)
		return
	}
	resend := false
	for j := range n {
		s := &r.sends[j]
		res := s.res
		switch {
		case resend:
			// Cancelled with the link, or not looked at: still queued.
		case res >= 0:
			p.sent(s.covers)
		case res == -int32(unix.EAGAIN):
			p.st |= pWait // no room: this one again, once there is
			resend = true
		case res == -int32(unix.ECANCELED):
			resend = true
		case s.covers > 1 && sock.IsGSOError(unix.Errno(-res)):
			p.st &^= pGSO // the device cannot segment: one by one
			resend = true
		default:
			p.refusedN(s.covers, errnoRes("sendmsg", res))
			resend = true // the link cancelled the rest
		}
	}
	if resend && p.q.len() > 0 {
		e.sendPackets(p, false)
	}
	e.settlePacket(p)
}

// settlePacket ends the serving of a completion for p: a closed p
// finishes closing once nothing is in flight, an open one settles.
func (e *completion) settlePacket(p *PacketConn) {
	if p.is(pClosed) {
		if !p.is(pRecv | pSend) {
			e.releaseDgram(p)
			p.finishClose()
		}
		return
	}
	p.settle()
}
