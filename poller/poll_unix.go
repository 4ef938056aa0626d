//go:build unix

package poller

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// pollBackend is the poll(2) backend, on every unix. The pollfd array is
// dense: Add appends, Remove swaps the last entry into the hole, both O(1);
// the registry remembers each fd's index. Wait hands the kernel the whole
// array, so it costs O(watched fds) however few are ready. fds[0] is the
// waker.
type pollBackend struct {
	scanning
	fds   []unix.PollFd
	start int // rotation: where the next scan of the results begins
	ts    unix.Timespec
}

var _ Poller = (*pollBackend)(nil)

func newPoll() (*pollBackend, error) {
	w, err := newWaker()
	if err != nil {
		return nil, err
	}
	p := &pollBackend{scanning: scanning{w: w}}
	p.fds = append(p.fds, unix.PollFd{Fd: int32(w.readFD()), Events: unix.POLLIN})
	return p, nil
}

// setInterest sets pfd's events from an interest. It works on the struct
// field so the untyped constants take each OS's field type.
func setInterest(pfd *unix.PollFd, ev Events) {
	pfd.Events = 0
	if ev&Readable != 0 {
		pfd.Events |= unix.POLLIN | pollRdHup
	}
	if ev&Writable != 0 {
		pfd.Events |= unix.POLLOUT
	}
}

// pollReady translates revents. POLLHUP, POLLERR and POLLNVAL (an fd closed
// while registered) come whatever the interest and imply it, as for epoll.
func pollReady(pfd *unix.PollFd, interest Events) Events {
	re := pfd.Revents
	var r Events
	if re&unix.POLLIN != 0 {
		r |= Readable
	}
	if re&unix.POLLOUT != 0 {
		r |= Writable
	}
	if re&(unix.POLLHUP|pollRdHup) != 0 {
		r |= HangUp | interest&Readable
	}
	if re&unix.POLLHUP != 0 {
		r |= interest & Writable
	}
	if re&(unix.POLLERR|unix.POLLNVAL) != 0 {
		r |= Error | interest&(Readable|Writable)
	}
	return r
}

// Add registers fd; see Poller.
func (p *pollBackend) Add(fd int, token uint64, ev Events) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.beginAdd(fd, ev, false); err != nil {
		return err
	}
	if err := checkOpen(fd); err != nil {
		return os.NewSyscallError("fcntl", err)
	}
	s, err := p.reg.add(fd, token, ev)
	if err != nil {
		return err
	}
	packAdd(&p.fds, s, unix.PollFd{Fd: int32(fd)})
	setInterest(&p.fds[s.pos], ev)
	return nil
}

// Modify changes fd's interest and token; see Poller.
func (p *pollBackend) Modify(fd int, token uint64, ev Events) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, err := p.beginModify(fd, ev, false)
	if err != nil {
		return err
	}
	s.token, s.ev = token, ev
	setInterest(&p.fds[s.pos], ev)
	return nil
}

// Remove forgets fd in O(1); see Poller.
func (p *pollBackend) Remove(fd int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	old, err := p.forget(fd)
	if err != nil {
		return err
	}
	packRemove(&p.fds, &p.reg, old.pos, func(pfd unix.PollFd) int32 { return pfd.Fd })
	return nil
}

// Wait reports ready fds; see Poller.
func (p *pollBackend) Wait(events []Event, timeout time.Duration) (int, error) {
	if err := p.beginWait(events); err != nil {
		return 0, err
	}
	defer p.mu.Unlock()
	if _, err := p.retry("poll", timeout, p.poll); err != nil {
		return 0, err
	}
	if p.fds[0].Revents != 0 {
		p.w.drain()
	}
	var k int
	p.start, k = scan(len(p.fds)-1, p.start, events, p.event)
	return k, nil
}

// event reports the registration at index i+1 of fds (0 is the waker).
func (p *pollBackend) event(i int) (Event, bool) {
	pfd := &p.fds[i+1]
	if pfd.Revents == 0 {
		return Event{}, false
	}
	s := &p.reg.slots[pfd.Fd]
	return Event{Fd: int(pfd.Fd), Token: s.token, Events: pollReady(pfd, s.ev)}, true
}

// Backend returns Poll.
func (p *pollBackend) Backend() Backend { return Poll }

// scan fills events from n candidates, asking event(i) about candidate i,
// starting at start and wrapping around. It returns how many it filled and
// where the next scan should start: just past the last candidate it
// reported when events filled up, so that ready candidates it had no room
// for come first next time and none starves.
func scan(n, start int, events []Event, event func(i int) (Event, bool)) (next, k int) {
	if start >= n {
		start = 0
	}
	for j := range n {
		i := start + j
		if i >= n {
			i -= n
		}
		ev, ok := event(i)
		if !ok {
			continue
		}
		events[k] = ev
		k++
		if k == len(events) {
			return i + 1, k
		}
	}
	return start, k
}

// scanning is what poll and select share: the registry and locks of base,
// a self-pipe (or eventfd) waker among the watched fds, Wake and Close.
type scanning struct {
	base
	w *waker
}

// Wake makes a blocked or the next Wait return; safe from any goroutine.
func (p *scanning) Wake() error {
	return p.base.wake(p.w.wake)
}

// Close releases the wake fds; safe from any goroutine.
func (p *scanning) Close() error {
	return p.shutdown(func() { p.w.wake() }, func() error {
		return os.NewSyscallError("close", p.w.close())
	})
}
