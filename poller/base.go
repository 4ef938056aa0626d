package poller

import (
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// slot is one fd's registration.
type slot struct {
	token uint64
	// pos is, for poll and select, the fd's index in their dense list; for
	// epoll and kqueue, 1 + the index of the fd's Event in the batch being
	// collected, 0 outside a Wait (see emit).
	pos  int32
	ev   Events // interest
	used bool
	gone bool // select: the fd was closed while registered
}

// registry maps fd -> registration in a dense slice indexed by fd, so every
// backend shares one answer to "is this fd registered, with which token":
// the same errors for a duplicate Add or an unknown Remove on all four, and
// a token lookup that is one slice index. kqueue needs it because x/sys
// types udata as a pointer on most BSDs and a token there would put a
// non-pointer where the garbage collector looks for pointers; epoll uses it
// so the kernel's 64-bit data can carry the fd and every Event knows both.
type registry struct {
	slots []slot
	n     int
}

// lookup returns fd's registration, or nil.
func (r *registry) lookup(fd int) *slot {
	if fd < 0 || fd >= len(r.slots) || !r.slots[fd].used {
		return nil
	}
	return &r.slots[fd]
}

// add registers fd, growing the slice geometrically when fd is past its end.
func (r *registry) add(fd int, token uint64, ev Events) (*slot, error) {
	if fd >= len(r.slots) {
		size := max(2*len(r.slots), fd+1, 64)
		r.slots = append(r.slots, make([]slot, size-len(r.slots))...)
	}
	s := &r.slots[fd]
	if s.used {
		return nil, ErrRegistered
	}
	*s = slot{token: token, ev: ev, used: true}
	r.n++
	return s, nil
}

// remove forgets fd and returns what its slot held.
func (r *registry) remove(fd int) (slot, error) {
	s := r.lookup(fd)
	if s == nil {
		return slot{}, ErrNotRegistered
	}
	old := *s
	*s = slot{}
	r.n--
	return old, nil
}

// emit adds readiness r of fd to the batch events[:k] and returns the new
// length. A second report of the same fd in one Wait (kqueue has a filter
// per direction; a refill can return an fd again) is merged into its Event,
// so there is one Event per fd. Call endBatch before Wait returns.
func (r *registry) emit(events []Event, k int, fd int, s *slot, ready Events) int {
	if s.pos > 0 {
		events[s.pos-1].Events |= ready
		return k
	}
	events[k] = Event{Fd: fd, Token: s.token, Events: ready}
	s.pos = int32(k + 1)
	return k + 1
}

// endBatch clears the marks emit left on the fds of events.
func (r *registry) endBatch(events []Event) {
	for i := range events {
		r.slots[events[i].Fd].pos = 0
	}
}

// base is what every backend embeds: the registry, the lifecycle state and
// the locks that make Close safe against a blocked Wait and a racing Wake.
//
// mu is held by Add, Modify, Remove and for the whole of Wait, including the
// blocking system call. Those belong to the loop goroutine, so it is never
// contended in normal use; Close takes it to wait until a blocked Wait has
// returned, so no system call ever runs on an fd number Close has released
// (and the kernel may have handed to someone else). fdMu is read-held by
// Wake around its write to the wake fd and write-held by Close while it
// releases the fds, for the same reason.
type base struct {
	mu     sync.Mutex
	fdMu   sync.RWMutex
	closed atomic.Bool
	reg    registry
}

// check validates the arguments of Add and Modify; the caller holds mu.
func (b *base) check(fd int, ev Events) error {
	switch {
	case b.closed.Load():
		return ErrClosed
	case fd < 0 || fd > math.MaxInt32:
		return ErrBadFD
	case ev&^interestMask != 0:
		return ErrInterest
	}
	return nil
}

// beginWait takes mu for a Wait and validates its arguments. On success the
// caller must unlock mu.
func (b *base) beginWait(events []Event) error {
	if len(events) == 0 {
		return ErrNoEvents
	}
	b.mu.Lock()
	if b.closed.Load() {
		b.mu.Unlock()
		return ErrClosed
	}
	return nil
}

// wake runs a Wake: fn writes to the wake fd, under fdMu read-held so Close
// cannot release that fd meanwhile.
func (b *base) wake(fn func() error) error {
	b.fdMu.RLock()
	defer b.fdMu.RUnlock()
	if b.closed.Load() {
		return ErrClosed
	}
	return fn()
}

// forget validates a Remove and drops fd from the registry, returning what
// its slot held; the caller holds mu and then updates the kernel's side.
func (b *base) forget(fd int) (slot, error) {
	switch {
	case b.closed.Load():
		return slot{}, ErrClosed
	case fd < 0 || fd > math.MaxInt32:
		return slot{}, ErrBadFD
	}
	return b.reg.remove(fd)
}

// shutdown runs Close's common part: it marks the poller closed, calls wake
// so a blocked Wait returns, waits for that Wait and for any Wake in flight,
// then calls release to close the kernel fds.
func (b *base) shutdown(wake func(), release func() error) error {
	if !b.closed.CompareAndSwap(false, true) {
		return ErrClosed
	}
	wake()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fdMu.Lock()
	defer b.fdMu.Unlock()
	return release()
}

// checkOpen reports unix.EBADF for an fd that is not open; poll and select
// learn of a closed fd only at the next Wait, so Add asks the kernel first.
func checkOpen(fd int) error {
	_, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	return err
}

// retry makes a backend's wait system call, sys(timeout), until it returns
// something other than EINTR, shrinking a positive timeout to the time
// left; it reports ErrClosed if Close ran meanwhile and names the call in
// any other error. The caller holds mu (beginWait).
func (b *base) retry(name string, timeout time.Duration, sys func(time.Duration) (int, error)) (int, error) {
	end := deadline(timeout)
	for {
		n, err := sys(timeout)
		if b.closed.Load() {
			return 0, ErrClosed
		}
		if err == unix.EINTR {
			timeout = remaining(timeout, end)
			continue
		}
		if err != nil {
			return 0, os.NewSyscallError(name, err)
		}
		return n, nil
	}
}

// deadline is when a positive timeout ends; for other timeouts it is unused.
func deadline(timeout time.Duration) time.Time {
	if timeout <= 0 {
		return time.Time{}
	}
	return time.Now().Add(timeout)
}

// remaining is the timeout to use when retrying after EINTR: a negative or
// zero timeout stays as it was, a positive one shrinks to the time left.
func remaining(timeout time.Duration, end time.Time) time.Duration {
	if timeout <= 0 {
		return timeout
	}
	return max(time.Until(end), 0)
}

// millis converts a timeout to poll(2) and epoll_wait(2) milliseconds:
// -1 blocks, a positive timeout rounds up so Wait never returns early.
func millis(timeout time.Duration) int {
	if timeout < 0 {
		return -1
	}
	ms := (timeout + time.Millisecond - 1) / time.Millisecond
	return int(min(ms, math.MaxInt32))
}

// beginAdd validates an Add and checks that fd is not registered yet; the
// caller holds mu and then registers fd with the kernel and the registry.
// Without edge the backend has no edge-triggered mode (poll, select), and
// asking for one is an error.
func (b *base) beginAdd(fd int, ev Events, edge bool) error {
	if err := b.check(fd, ev); err != nil {
		return err
	}
	if !edge && ev&EdgeTriggered != 0 {
		return errEdge
	}
	if b.reg.lookup(fd) != nil {
		return ErrRegistered
	}
	return nil
}

// beginModify validates a Modify and returns fd's slot; the caller holds
// mu and then updates the kernel and the slot.
func (b *base) beginModify(fd int, ev Events, edge bool) (*slot, error) {
	if err := b.check(fd, ev); err != nil {
		return nil, err
	}
	if !edge && ev&EdgeTriggered != 0 {
		return nil, errEdge
	}
	s := b.reg.lookup(fd)
	if s == nil {
		return nil, ErrNotRegistered
	}
	return s, nil
}

// packAdd appends item, the entry of the fd whose slot is s, to the dense
// list of registered fds that poll and select hand the kernel, and records
// its position in s.
func packAdd[T any](list *[]T, s *slot, item T) {
	s.pos = int32(len(*list))
	*list = append(*list, item)
}

// packRemove takes the entry at pos out of a dense list in O(1), moving the
// last entry into the hole and updating the moved fd's position in reg;
// fdOf tells an entry's fd.
func packRemove[T any](list *[]T, reg *registry, pos int32, fdOf func(T) int32) {
	l := *list
	last := len(l) - 1
	if int(pos) != last {
		l[pos] = l[last]
		reg.slots[fdOf(l[pos])].pos = pos
	}
	*list = l[:last]
}
