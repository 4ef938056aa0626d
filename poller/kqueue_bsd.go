//go:build darwin || dragonfly || freebsd || netbsd || openbsd

package poller

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// available is what the BSDs and darwin have, the preferred backend first.
var available = []Backend{Kqueue, Poll, Select}

// newNative returns the kernel's own scalable mechanism.
func newNative(Backend) (Poller, error) { return newKqueue() }

// kqueue is the BSD and darwin backend: a filter per direction (EVFILT_READ,
// EVFILT_WRITE) in the kernel, so Wait costs O(ready fds). The kernel
// reports each filter separately; Wait merges the two of one fd into one
// Event, using the registry's pos as "index+1 in this batch". The token is
// kept in the registry, not in udata: x/sys types udata as a pointer on
// most BSDs, and an integer there would be a bad pointer to the collector.
type kqueue struct {
	base
	kq      int
	w       *waker // the self-pipe, where there is no EVFILT_USER
	changes [4]unix.Kevent_t
	buf     []unix.Kevent_t
	ts      unix.Timespec
}

var _ FDPoller = (*kqueue)(nil)

func newKqueue() (*kqueue, error) {
	kq, err := kqueueCloexec()
	if err != nil {
		return nil, err
	}
	p := &kqueue{kq: kq}
	if err := p.initWake(); err != nil {
		unix.Close(kq)
		return nil, err
	}
	return p, nil
}

// apply sends changes to the kernel without collecting events.
func (p *kqueue) apply(changes []unix.Kevent_t) error {
	if len(changes) == 0 {
		return nil
	}
	for {
		_, err := unix.Kevent(p.kq, changes, nil, nil)
		if err == unix.EINTR {
			continue
		}
		return err
	}
}

// update moves fd's filters from interest had to interest want. A change of
// EdgeTriggered deletes and re-adds the filter, since EV_ADD on an existing
// filter does not change its EV_CLEAR flag.
func (p *kqueue) update(fd int, had, want Events) error {
	n := 0
	flags := unix.EV_ADD | unix.EV_ENABLE
	if want&EdgeTriggered != 0 {
		flags |= unix.EV_CLEAR
	}
	edgeChanged := (had^want)&EdgeTriggered != 0
	for _, f := range [2]struct {
		ev     Events
		filter int
	}{{Readable, unix.EVFILT_READ}, {Writable, unix.EVFILT_WRITE}} {
		h, w := had&f.ev != 0, want&f.ev != 0
		if h && (!w || edgeChanged) {
			unix.SetKevent(&p.changes[n], fd, f.filter, unix.EV_DELETE)
			n++
		}
		if w && (!h || edgeChanged) {
			unix.SetKevent(&p.changes[n], fd, f.filter, flags)
			n++
		}
	}
	return p.apply(p.changes[:n])
}

// Add registers fd; see Poller.
func (p *kqueue) Add(fd int, token uint64, ev Events) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.beginAdd(fd, ev, true); err != nil {
		return err
	}
	if ev&(Readable|Writable) == 0 {
		if err := checkOpen(fd); err != nil {
			return os.NewSyscallError("fcntl", err)
		}
	} else if err := p.update(fd, 0, ev); err != nil {
		return os.NewSyscallError("kevent", err)
	}
	_, err := p.reg.add(fd, token, ev)
	return err
}

// Modify changes fd's interest and token; see Poller.
func (p *kqueue) Modify(fd int, token uint64, ev Events) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, err := p.beginModify(fd, ev, true)
	if err != nil {
		return err
	}
	if err := p.update(fd, s.ev, ev); err != nil {
		return os.NewSyscallError("kevent", err)
	}
	s.token, s.ev = token, ev
	return nil
}

// Remove forgets fd; see Poller. If fd was closed first, the kernel already
// dropped its filters and Remove only forgets it here.
func (p *kqueue) Remove(fd int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	old, err := p.forget(fd)
	if err != nil {
		return err
	}
	err = p.update(fd, old.ev, 0)
	if err != nil && err != unix.EBADF && err != unix.ENOENT {
		return os.NewSyscallError("kevent", err)
	}
	return nil
}

// Wait reports ready fds; see Poller. The kernel re-queues level-triggered
// filters at the tail of its queue, so fds left out of a full batch come
// first in the next.
func (p *kqueue) Wait(events []Event, timeout time.Duration) (int, error) {
	if err := p.beginWait(events); err != nil {
		return 0, err
	}
	defer p.mu.Unlock()
	if len(p.buf) < len(events) {
		p.buf = make([]unix.Kevent_t, len(events))
	}
	n, err := p.retry("kevent", timeout, func(d time.Duration) (int, error) {
		var ts *unix.Timespec
		if d >= 0 {
			p.ts = unix.NsecToTimespec(int64(d))
			ts = &p.ts
		}
		return unix.Kevent(p.kq, nil, p.buf[:len(events)], ts)
	})
	if err != nil {
		return 0, err
	}
	return p.collect(events, n), nil
}

// collect merges the kernel's per-filter events in buf[:n] into one Event
// per fd. A full kernel batch may hold two entries for one fd, the wake
// event or a stale entry, so one that filled fewer Events than there is
// room for is topped up with non-blocking kevent calls for the room left.
func (p *kqueue) collect(events []Event, n int) int {
	k, asked := 0, len(events)
	for refill := false; ; refill = true {
		before := k
		for i := range n {
			e := &p.buf[i]
			if p.isWake(e) {
				continue
			}
			fd := int(e.Ident)
			s := p.reg.lookup(fd)
			if s == nil {
				continue
			}
			r := kevReadiness(int(e.Filter) == unix.EVFILT_READ, int(e.Filter) == unix.EVFILT_WRITE,
				e.Flags&unix.EV_EOF != 0, e.Flags&unix.EV_ERROR != 0, uint32(e.Fflags))
			k = p.reg.emit(events, k, fd, s, r)
		}
		if n < asked || k == len(events) || (refill && k == before) {
			break
		}
		asked = len(events) - k
		p.ts = unix.Timespec{}
		var err error
		if n, err = unix.Kevent(p.kq, nil, p.buf[:asked], &p.ts); err != nil || n == 0 {
			break
		}
	}
	p.reg.endBatch(events[:k])
	return k
}

// Wake makes a blocked or the next Wait return; safe from any goroutine.
func (p *kqueue) Wake() error {
	return p.base.wake(p.wake)
}

// Close releases the kqueue and wake fds; safe from any goroutine.
func (p *kqueue) Close() error {
	return p.shutdown(func() { p.wake() }, func() error {
		err := os.NewSyscallError("close", unix.Close(p.kq))
		if err2 := p.closeWake(); err == nil {
			err = err2
		}
		return err
	})
}

// Backend returns Kqueue.
func (p *kqueue) Backend() Backend { return Kqueue }

// Fd returns the kqueue fd; see FDPoller.
func (p *kqueue) Fd() int { return p.kq }

// kqueueThenCloexec is kqueue(2) and then FD_CLOEXEC, where no call makes
// a close-on-exec kqueue at once (see kqueueCloexec).
func kqueueThenCloexec() (int, error) {
	kq, err := unix.Kqueue()
	if err != nil {
		return -1, os.NewSyscallError("kqueue", err)
	}
	unix.CloseOnExec(kq)
	return kq, nil
}
