//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd

package poller

import (
	"math"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// fdSetSize is FD_SETSIZE, derived from x/sys's FdSet so it is right for
// each OS's layout (1024 bits on linux and the BSDs, as 16 int64 or 32 int32
// words): select cannot watch an fd at or past it.
const fdSetSize = int(unsafe.Sizeof(unix.FdSet{})) * 8

// selectBackend is the select(2) backend. The interest sets are kept and
// copied into the result sets before every call; the registered fds are
// also kept in a dense list (swap-remove, like poll) for the scan of the
// results. Wait costs O(highest fd) in the kernel and O(watched fds) here.
// select has no hang-up or error condition: a peer's close shows as
// Readable, an error as Readable and Writable.
type selectBackend struct {
	scanning
	fds        []int32 // registered fds, dense
	rset, wset unix.FdSet
	rout, wout unix.FdSet
	maxFD      int // highest registered fd, or -1
	start      int
	tv         unix.Timeval
}

var _ Poller = (*selectBackend)(nil)

func newSelect() (*selectBackend, error) {
	w, err := newWaker()
	if err != nil {
		return nil, err
	}
	if w.readFD() >= fdSetSize {
		w.close()
		return nil, ErrFDTooLarge
	}
	return &selectBackend{scanning: scanning{w: w}, maxFD: -1}, nil
}

// setInterest puts fd in the read and write sets as ev says.
func (p *selectBackend) setInterest(fd int, ev Events) {
	p.rset.Clear(fd)
	p.wset.Clear(fd)
	if ev&Readable != 0 {
		p.rset.Set(fd)
	}
	if ev&Writable != 0 {
		p.wset.Set(fd)
	}
}

// Add registers fd; an fd >= FD_SETSIZE is ErrFDTooLarge. See Poller.
func (p *selectBackend) Add(fd int, token uint64, ev Events) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.check(fd, ev); err != nil {
		return err
	}
	if fd >= fdSetSize {
		return ErrFDTooLarge
	}
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
	packAdd(&p.fds, s, int32(fd))
	p.setInterest(fd, ev)
	p.maxFD = max(p.maxFD, fd)
	return nil
}

// Modify changes fd's interest and token; see Poller.
func (p *selectBackend) Modify(fd int, token uint64, ev Events) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, err := p.beginModify(fd, ev, false)
	if err != nil {
		return err
	}
	s.token, s.ev = token, ev
	p.setInterest(fd, ev)
	return nil
}

// Remove forgets fd; see Poller.
func (p *selectBackend) Remove(fd int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	old, err := p.forget(fd)
	if err != nil {
		return err
	}
	p.setInterest(fd, 0)
	packRemove(&p.fds, &p.reg, old.pos, func(fd int32) int32 { return fd })
	for p.maxFD >= 0 && p.reg.lookup(p.maxFD) == nil {
		p.maxFD--
	}
	return nil
}

// Wait reports ready fds; see Poller. If a registered fd was closed, select
// fails with EBADF for the whole set; Wait then finds the closed fds, takes
// them out of the sets and reports them as Error until they are removed.
func (p *selectBackend) Wait(events []Event, timeout time.Duration) (int, error) {
	if err := p.beginWait(events); err != nil {
		return 0, err
	}
	defer p.mu.Unlock()
	if _, err := p.retry("select", timeout, p.sel); err != nil {
		return 0, err
	}
	if p.rout.IsSet(p.w.readFD()) {
		p.w.drain()
	}
	var k int
	p.start, k = scan(len(p.fds), p.start, events, p.event)
	return k, nil
}

// sel makes one select(2) call into the result sets. If a registered fd
// was closed, select fails with EBADF for the whole set: sel then takes the
// closed fds out (dropClosed) and returns empty sets, so they are reported
// at once.
func (p *selectBackend) sel(timeout time.Duration) (int, error) {
	wfd := p.w.readFD()
	p.rout, p.wout = p.rset, p.wset
	p.rout.Set(wfd)
	var tv *unix.Timeval
	if timeout >= 0 {
		// NsecToTimeval rounds up by adding 999 ns, which overflows for a
		// timeout near math.MaxInt64 ("forever").
		p.tv = unix.NsecToTimeval(int64(min(timeout, math.MaxInt64-time.Microsecond)))
		tv = &p.tv
	}
	n, err := unix.Select(max(p.maxFD, wfd)+1, &p.rout, &p.wout, nil, tv)
	if err == unix.EBADF && p.dropClosed() {
		p.rout, p.wout = unix.FdSet{}, unix.FdSet{}
		return 0, nil
	}
	return n, err
}

// dropClosed takes registered fds that are no longer open out of the sets
// and marks them gone; it reports whether it found any.
func (p *selectBackend) dropClosed() bool {
	found := false
	for _, fd := range p.fds {
		if checkOpen(int(fd)) == unix.EBADF {
			p.setInterest(int(fd), 0)
			p.reg.slots[fd].gone = true
			found = true
		}
	}
	return found
}

// event reports the registered fd at index i of fds.
func (p *selectBackend) event(i int) (Event, bool) {
	fd := int(p.fds[i])
	s := &p.reg.slots[fd]
	var r Events
	switch {
	case s.gone:
		r = Error | s.ev&(Readable|Writable)
	default:
		if p.rout.IsSet(fd) {
			r |= Readable
		}
		if p.wout.IsSet(fd) {
			r |= Writable
		}
	}
	if r == 0 {
		return Event{}, false
	}
	return Event{Fd: fd, Token: s.token, Events: r}, true
}

// Backend returns Select.
func (p *selectBackend) Backend() Backend { return Select }
