package poller

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// available is what linux has, its preferred backend first.
var available = []Backend{Epoll, Poll, Select}

// newNative returns the kernel's own scalable mechanism.
func newNative(Backend) (Poller, error) { return newEpoll() }

// epoll is the linux backend. The kernel keeps the interest list and a ready
// list, so Wait costs O(ready fds), not O(watched fds). The event's 64-bit
// data carries the fd; the token comes from the registry.
type epoll struct {
	base
	epfd int
	w    *waker
	buf  []unix.EpollEvent // Wait's kernel buffer, grown to len(events) once
}

var _ FDPoller = (*epoll)(nil)

func newEpoll() (*epoll, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	w, err := newWaker()
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(w.readFD())}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, w.readFD(), &ev); err != nil {
		unix.Close(epfd)
		w.close()
		return nil, os.NewSyscallError("epoll_ctl", err)
	}
	return &epoll{epfd: epfd, w: w}, nil
}

// epollInterest translates an interest. EPOLLRDHUP makes a peer's shutdown
// visible as HangUp even while unread data is still queued.
func epollInterest(ev Events) uint32 {
	var e uint32
	if ev&Readable != 0 {
		e |= unix.EPOLLIN | unix.EPOLLRDHUP
	}
	if ev&Writable != 0 {
		e |= unix.EPOLLOUT
	}
	if ev&EdgeTriggered != 0 {
		e |= unix.EPOLLET
	}
	return e
}

// epollReady translates readiness. EPOLLHUP and EPOLLERR come whatever the
// interest; a hang-up or an error also makes a read (and, for EPOLLHUP and
// EPOLLERR, a write) return at once, so they imply the readiness the fd is
// watched for: a pipe whose writer closed reports EPOLLHUP without EPOLLIN.
func epollReady(e uint32, interest Events) Events {
	var r Events
	if e&unix.EPOLLIN != 0 {
		r |= Readable
	}
	if e&unix.EPOLLOUT != 0 {
		r |= Writable
	}
	if e&(unix.EPOLLHUP|unix.EPOLLRDHUP) != 0 {
		r |= HangUp | interest&Readable
	}
	if e&unix.EPOLLHUP != 0 {
		r |= interest & Writable
	}
	if e&unix.EPOLLERR != 0 {
		r |= Error | interest&(Readable|Writable)
	}
	return r
}

// Add registers fd; see Poller.
func (p *epoll) Add(fd int, token uint64, ev Events) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.beginAdd(fd, ev, true); err != nil {
		return err
	}
	e := unix.EpollEvent{Events: epollInterest(ev), Fd: int32(fd)}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &e); err != nil {
		return os.NewSyscallError("epoll_ctl", err)
	}
	_, err := p.reg.add(fd, token, ev)
	return err
}

// Modify changes fd's interest and token; see Poller.
func (p *epoll) Modify(fd int, token uint64, ev Events) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, err := p.beginModify(fd, ev, true)
	if err != nil {
		return err
	}
	e := unix.EpollEvent{Events: epollInterest(ev), Fd: int32(fd)}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, fd, &e); err != nil {
		return os.NewSyscallError("epoll_ctl", err)
	}
	s.token, s.ev = token, ev
	return nil
}

// Remove forgets fd; see Poller. If fd was closed first, the kernel already
// dropped it (unless a duplicate of the fd lives on, which epoll cannot see
// past: remove before closing) and Remove only forgets it here.
func (p *epoll) Remove(fd int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := p.forget(fd); err != nil {
		return err
	}
	err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, fd, nil)
	if err != nil && err != unix.EBADF && err != unix.ENOENT {
		return os.NewSyscallError("epoll_ctl", err)
	}
	return nil
}

// Wait reports ready fds; see Poller. The kernel rotates its ready list, so
// fds left out of a full batch come first in the next.
func (p *epoll) Wait(events []Event, timeout time.Duration) (int, error) {
	if err := p.beginWait(events); err != nil {
		return 0, err
	}
	defer p.mu.Unlock()
	if len(p.buf) < len(events) {
		p.buf = make([]unix.EpollEvent, len(events))
	}
	n, err := p.retry("epoll_wait", timeout, func(d time.Duration) (int, error) {
		return unix.EpollWait(p.epfd, p.buf[:len(events)], millis(d))
	})
	if err != nil {
		return 0, err
	}
	return p.collect(events, n), nil
}

// collect turns the n kernel events in buf into events. The wake fd or a
// stale entry may have taken a slot of a full kernel batch while more fds
// are ready, so a full batch that filled fewer Events than there is room for
// is topped up with non-blocking waits for the room left: a short batch
// always means fewer fds were ready.
func (p *epoll) collect(events []Event, n int) int {
	k, asked := 0, len(events)
	for refill := false; ; refill = true {
		before := k
		for i := range n {
			e := &p.buf[i]
			fd := int(e.Fd)
			if fd == p.w.readFD() {
				p.w.drain()
				continue
			}
			if s := p.reg.lookup(fd); s != nil {
				k = p.reg.emit(events, k, fd, s, epollReady(e.Events, s.ev))
			}
		}
		if n < asked || k == len(events) || (refill && k == before) {
			break
		}
		asked = len(events) - k
		var err error
		if n, err = unix.EpollWait(p.epfd, p.buf[:asked], 0); err != nil || n == 0 {
			break
		}
	}
	p.reg.endBatch(events[:k])
	return k
}

// Wake makes a blocked or the next Wait return; safe from any goroutine.
func (p *epoll) Wake() error {
	return p.base.wake(p.w.wake)
}

// Close releases the epoll and wake fds; safe from any goroutine.
func (p *epoll) Close() error {
	return p.shutdown(func() { p.w.wake() }, func() error {
		err := os.NewSyscallError("close", unix.Close(p.epfd))
		if err2 := p.w.close(); err == nil && err2 != nil {
			err = os.NewSyscallError("close", err2)
		}
		return err
	})
}

// Backend returns Epoll.
func (p *epoll) Backend() Backend { return Epoll }

// Fd returns the epoll fd; see FDPoller.
func (p *epoll) Fd() int { return p.epfd }
