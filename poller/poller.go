// Package poller watches many file descriptors at once and reports the ready
// ones: one Poller interface over the four mechanisms a unix kernel offers,
// select, poll, epoll (linux) and kqueue (the BSDs and darwin).
//
// Every backend meets the same contract, written once here and checked by
// one conformance suite run against each backend in Available:
//
//   - Registration: Add registers an fd with an interest (Readable, Writable,
//     both, or none) and a 64-bit token chosen by the caller; Modify changes
//     both; Remove forgets the fd. A duplicate Add is ErrRegistered, a Modify
//     or Remove of an fd that is not registered is ErrNotRegistered, a
//     negative (or past int32) fd is ErrBadFD and a closed fd is an error matching
//     unix.EBADF. Remove an fd before closing it.
//   - Tokens: every Event carries the token of the registration in force
//     when Wait collected it. An event loop stores a generation handle there
//     (see package fdtable) so that an event for an fd closed and reused
//     within one batch is recognised as stale.
//   - Level-triggered: an fd is reported by every Wait for as long as it is
//     ready, on every backend. EdgeTriggered can be asked for where the
//     kernel has it (epoll, kqueue); elsewhere it is an error matching
//     errors.ErrUnsupported, never a silent downgrade.
//   - One Event per ready fd per Wait, read and write readiness combined.
//     When more fds are ready than the events slice holds, the following
//     Waits report the others before repeating the first: no ready fd
//     starves (epoll and kqueue re-queue at the tail; poll and select rotate
//     the start of their scan).
//   - Wait: a negative timeout blocks until an event or a Wake, zero polls
//     without blocking, a positive timeout is rounded up to the backend's
//     resolution (never returning early because of rounding). EINTR is
//     retried with the time left. Wait does not allocate once its internal
//     buffer has grown to len(events).
//   - Wake makes a blocked Wait return (with zero or more events); a Wake
//     made before Wait is not lost, and Wakes before one Wait coalesce.
//   - Close makes a Wait blocked in another goroutine return ErrClosed;
//     every call after Close returns ErrClosed.
//   - Spurious readiness is possible on every backend (another reader may
//     have drained the fd first): read and write until unix.EAGAIN.
//
// Concurrency: Add, Modify, Remove and Wait belong to one goroutine at a
// time, the event loop's; Wake and Close are safe from any goroutine at any
// time, including while Wait blocks.
package poller

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Events is a set of readiness conditions. Readable and Writable are used
// both as interest (Add, Modify) and as readiness (Event); HangUp and Error
// are readiness only; EdgeTriggered is interest only.
type Events uint8

const (
	// Readable means a read will not block: data, a pending connection on a
	// listener, or end of file.
	Readable Events = 1 << iota
	// Writable means a write of at least one byte will not block.
	Writable
	// HangUp means the peer closed its end: reads return the buffered data
	// and then end of file. select never reports it (a hang-up shows as
	// Readable there); see the Portability table of package reactor.
	HangUp
	// Error means the fd has a pending error (read it with SO_ERROR, or by
	// the next read or write), or the fd was closed while registered.
	Error
	// EdgeTriggered, as interest, reports readiness once per change instead
	// of for as long as it lasts. Only epoll and kqueue have it.
	EdgeTriggered Events = 1 << 7
)

// interestMask is every bit Add and Modify accept.
const interestMask = Readable | Writable | EdgeTriggered

// String lists the set bits, for example "Readable|HangUp"; it allocates.
func (e Events) String() string {
	if e == 0 {
		return "0"
	}
	names := [...]string{"Readable", "Writable", "HangUp", "Error", "", "", "", "EdgeTriggered"}
	var parts []string
	for i, n := range names {
		if e&(1<<i) == 0 {
			continue
		}
		if n == "" {
			n = fmt.Sprintf("0x%x", 1<<i)
		}
		parts = append(parts, n)
	}
	return strings.Join(parts, "|")
}

// Event is one ready fd, as reported by Wait.
type Event struct {
	Fd     int    // the registered fd
	Token  uint64 // the token given at Add or the last Modify
	Events Events // readiness: Readable, Writable, HangUp, Error
}

// Poller watches registered fds and reports the ready ones. The contract
// every implementation meets is in the package documentation.
type Poller interface {
	// Add registers fd with interest ev and token; it does not block.
	Add(fd int, token uint64, ev Events) error
	// Modify replaces the interest and the token of a registered fd.
	Modify(fd int, token uint64, ev Events) error
	// Remove forgets a registered fd; call it before closing the fd.
	Remove(fd int) error
	// Wait blocks up to timeout for ready fds, fills events with them and
	// returns how many it filled. A Wake makes it return early.
	Wait(events []Event, timeout time.Duration) (int, error)
	// Wake makes a blocked or the next Wait return; safe from any goroutine.
	Wake() error
	// Close releases the kernel resources and ends a blocked Wait with
	// ErrClosed; safe from any goroutine.
	Close() error
	// Backend reports which mechanism this Poller uses.
	Backend() Backend
}

// FDPoller is a Poller whose whole state is one kernel object with an fd
// that is itself pollable: epoll and kqueue. The fd reads as ready while a
// Wait would report something at once, so another poller (Go's runtime
// netpoller, say) can wait on it in place of a blocking Wait. The fd stays
// the Poller's: do not close it or wait on it once Close has begun.
type FDPoller interface {
	Poller
	// Fd returns the poller's own fd.
	Fd() int
}

// Errors returned by every backend; test them with errors.Is.
var (
	// ErrClosed is returned by every call on a closed Poller, and by a Wait
	// that was blocked when Close was called.
	ErrClosed = errors.New("poller: closed")
	// ErrBadFD is returned for a negative fd, or one past the int32 range
	// that file descriptors have in the kernel.
	ErrBadFD = errors.New("poller: bad file descriptor (negative or past int32)")
	// ErrRegistered is returned by Add for an fd that is already registered.
	ErrRegistered = errors.New("poller: file descriptor already registered")
	// ErrNotRegistered is returned by Modify and Remove for an fd that is
	// not registered.
	ErrNotRegistered = errors.New("poller: file descriptor not registered")
	// ErrFDTooLarge is returned by the select backend's Add for an fd that
	// an fd_set cannot hold (fd >= FD_SETSIZE).
	ErrFDTooLarge = errors.New("poller: file descriptor too large for select (>= FD_SETSIZE)")
	// ErrInterest is returned by Add and Modify for an interest with bits
	// other than Readable, Writable and EdgeTriggered.
	ErrInterest = errors.New("poller: interest may hold only Readable, Writable and EdgeTriggered")
	// ErrNoEvents is returned by Wait for an empty events slice.
	ErrNoEvents = errors.New("poller: Wait needs a non-empty events slice")

	errEdge = fmt.Errorf("poller: EdgeTriggered needs epoll or kqueue: %w", errors.ErrUnsupported)
)

// Backend names a readiness mechanism.
type Backend uint8

// The backends. Which ones an OS has is reported by Available.
const (
	Epoll Backend = iota + 1
	Kqueue
	Poll
	Select
	// Uring names linux's io_uring completion engine. It is not a
	// readiness mechanism: New refuses it and Available never lists it.
	// It exists so that a reactor Server or Group can be asked for it by
	// the same field and the same $REACTOR_BACKEND (see reactor.Uring).
	Uring
)

var backendNames = [...]string{Epoll: "epoll", Kqueue: "kqueue", Poll: "poll", Select: "select", Uring: "uring"}

// String returns the lower-case name: "epoll", "kqueue", "poll", "select"
// or "uring".
func (b Backend) String() string {
	if int(b) < len(backendNames) && backendNames[b] != "" {
		return backendNames[b]
	}
	return fmt.Sprintf("Backend(%d)", uint8(b))
}

// ParseBackend returns the Backend named s, as String spells it. It does not
// say whether this OS has it; New does.
func ParseBackend(s string) (Backend, error) {
	for b, name := range backendNames {
		if name != "" && name == s {
			return Backend(b), nil
		}
	}
	return 0, fmt.Errorf("poller: unknown backend %q (want epoll, kqueue, poll, select or uring)", s)
}

// Available lists the backends this OS has, its preferred one first.
// The returned slice is a fresh copy.
func Available() []Backend {
	return append([]Backend(nil), available...)
}

// New returns a Poller using backend b. For a backend this OS lacks the
// error wraps errors.ErrUnsupported.
func New(b Backend) (Poller, error) {
	if b == Uring {
		return nil, fmt.Errorf("poller: uring is a completion engine, not a readiness poller; a reactor Server or Group runs it: %w", errors.ErrUnsupported)
	}
	for _, a := range available {
		if a == b {
			return newBackend(b)
		}
	}
	return nil, fmt.Errorf("poller: backend %v is not available on this OS: %w", b, errors.ErrUnsupported)
}

// newBackend dispatches to the constructors this OS has; every b reaching it
// is in available.
func newBackend(b Backend) (Poller, error) {
	switch b {
	case Poll:
		return newPoll()
	case Select:
		return newSelect()
	}
	return newNative(b)
}
