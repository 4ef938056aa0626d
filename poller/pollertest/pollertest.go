// Package pollertest is a deterministic fake poller.Poller with fault
// injection, so that code driving a Poller (an event loop, a handler) can
// be tested without kernel readiness and its error paths can be reached on
// purpose.
//
// # What is simulated here, and what is not
//
// The fake replaces readiness only. It makes no system call and never looks
// at the fds it is given: an fd is ready when the test says so (Inject),
// not when the kernel has data for it. Any non-negative int is accepted as
// an fd, so a registration of a closed fd is not the unix.EBADF a real
// backend returns.
//
// Simulated here, in the poller:
//
//   - readiness, including spurious readiness (Inject an fd that has no
//     data: the reader then gets unix.EAGAIN);
//   - events carrying any token, such as a stale one (InjectEvents);
//   - a failing Add, Modify, Remove or Wait (FailNextAdd, FailNextModify,
//     FailNextRemove, FailNextWait), for example with ENOMEM or EBADF, or
//     with unix.EINTR to stand for a Poller that breaks the contract by
//     letting EINTR through;
//   - an EINTR that Wait retries as the contract demands (Interrupt).
//
// Not simulated here: EAGAIN and short writes happen on the socket, not in
// the poller. Test them with real fds whose readiness the fake reports: a
// socketpair or a connected unix socket whose peer does not write gives
// EAGAIN on read (inject Readable for it to test spurious readiness), and
// one whose peer does not read takes only what fits its send buffer, so a
// large write is short and the rest is queued (shrink SO_SNDBUF to make it
// happen sooner).
//
// # Readiness is reported once
//
// Inject makes a condition pending on a registered fd. The next Wait whose
// interest covers it reports it, combined with the fd's other pending
// conditions into one Event carrying the fd's current token, and forgets
// it. HangUp and Error are reported whatever the interest, as by the
// kernel; Readable and Writable outside the interest stay pending until a
// Modify asks for them or Remove drops them. A level-triggered kernel would
// report the fd again for as long as the condition lasts; with the fake,
// Inject again to model that. Pending fds are reported in the order they
// were first injected, so when more are pending than the events slice
// holds, the next Wait reports the rest first: no fd starves, and a run is
// the same every time.
//
// # Contract
//
// Otherwise the fake meets the contract of package poller: ErrClosed after
// Close (and for a Wait blocked in Close), ErrBadFD for a negative fd,
// ErrRegistered and ErrNotRegistered, ErrInterest for bad interest bits,
// ErrNoEvents for an empty events slice, tokens returned in events, one
// Event per fd per Wait (except those given to InjectEvents, which are
// reported as given), Wake ending a blocked Wait or the next one, Wakes
// coalescing, and a Wait with a zero timeout never blocking. EdgeTriggered
// is accepted and changes nothing, since every condition is reported once.
//
// Wait does not sleep when it has something to report: it returns at once
// with pending events, a pending Wake or a scripted failure, and otherwise
// blocks until Inject, InjectEvents, FailNextWait, Wake or Close, or until
// its timeout passes on the real clock. It does not allocate.
//
// Every method is safe for concurrent use, a stronger promise than the
// contract's, except that Waits must not overlap: a test may register,
// Inject, script failures and Wake from its own goroutine while the code
// under test waits.
package pollertest

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/muxkit/reactor/poller"
)

// readiness is every condition Inject accepts.
const readiness = poller.Readable | poller.Writable | poller.HangUp | poller.Error

// interest is every bit Add and Modify accept.
const interest = poller.Readable | poller.Writable | poller.EdgeTriggered

// registration is one registered fd.
type registration struct {
	token    uint64
	interest poller.Events
	pending  poller.Events // injected, not yet reported
}

// Poller is the fake. Create it with New; the zero Poller is not usable.
type Poller struct {
	mu      sync.Mutex
	regs    map[int]*registration
	ready   []int          // fds with pending conditions, in injection order
	raw     []poller.Event // InjectEvents, reported first and as given
	woken   bool
	closed  bool
	waitErr []error
	addErr  []error
	modErr  []error
	remErr  []error
	intr    int // Interrupts not yet suffered by a Wait
	waits   int
	retries int // EINTRs a Wait retried
	kick    chan struct{}
	timer   *time.Timer // Wait's timeout, reused so that Wait does not allocate
}

var _ poller.Poller = (*Poller)(nil)

// New returns an empty fake Poller.
func New() *Poller {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &Poller{
		regs:  make(map[int]*registration),
		kick:  make(chan struct{}, 1),
		timer: t,
	}
}

// signal tells a blocked Wait that something changed; with p.mu held.
func (p *Poller) signal() {
	select {
	case p.kick <- struct{}{}:
	default: // a signal is already pending; Wait rechecks everything
	}
}

// pop removes and returns the first error of q, or nil.
func pop(q *[]error) error {
	if len(*q) == 0 {
		return nil
	}
	err := (*q)[0]
	*q = (*q)[1:]
	return err
}

// check is the validation every registration call shares: ErrClosed, then
// ErrBadFD, then ErrInterest; with p.mu held.
func (p *Poller) check(fd int, ev poller.Events) error {
	switch {
	case p.closed:
		return poller.ErrClosed
	case fd < 0:
		return poller.ErrBadFD
	case ev&^interest != 0:
		return poller.ErrInterest
	}
	return nil
}

// Add registers fd with interest ev and token. After the checks every
// backend makes (ErrClosed, ErrBadFD, ErrInterest) it returns the error
// given to FailNextAdd, if any, registering nothing; then ErrRegistered
// for an fd already registered.
func (p *Poller) Add(fd int, token uint64, ev poller.Events) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.check(fd, ev); err != nil {
		return err
	}
	if err := pop(&p.addErr); err != nil {
		return err
	}
	if p.regs[fd] != nil {
		return poller.ErrRegistered
	}
	p.regs[fd] = &registration{token: token, interest: ev}
	return nil
}

// Modify replaces the interest and the token of a registered fd; its
// pending conditions stay pending and are reported with the new token.
// After the checks it returns the error given to FailNextModify, if any,
// changing nothing; then ErrNotRegistered for an fd not registered.
func (p *Poller) Modify(fd int, token uint64, ev poller.Events) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.check(fd, ev); err != nil {
		return err
	}
	if err := pop(&p.modErr); err != nil {
		return err
	}
	r := p.regs[fd]
	if r == nil {
		return poller.ErrNotRegistered
	}
	r.token, r.interest = token, ev
	if r.pending != 0 {
		p.signal() // interest may now cover what was pending
	}
	return nil
}

// Remove forgets fd and its pending conditions (not the events given to
// InjectEvents). After ErrClosed and ErrBadFD it returns the error given to
// FailNextRemove, if any, changing nothing; then ErrNotRegistered for an fd
// not registered.
func (p *Poller) Remove(fd int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.check(fd, 0); err != nil {
		return err
	}
	if err := pop(&p.remErr); err != nil {
		return err
	}
	if p.regs[fd] == nil {
		return poller.ErrNotRegistered
	}
	delete(p.regs, fd)
	if i := slices.Index(p.ready, fd); i >= 0 {
		p.ready = slices.Delete(p.ready, i, i+1)
	}
	return nil
}

// Wait fills events with what is pending and returns how many it filled:
// first the events given to InjectEvents, as given, then one Event per fd
// with injected conditions its interest covers. It returns at once if it
// has something to report, a Wake is pending, a failure is scripted or
// timeout is zero; otherwise it blocks until one of those or Close happens,
// or until timeout passes (a negative timeout never passes), and returns 0,
// nil on the timeout or a Wake. A failure given to FailNextWait is returned
// instead of events, once. An Interrupt is retried with the time left and
// never returned. Wait does not allocate; call it from one goroutine at a
// time.
func (p *Poller) Wait(events []poller.Event, timeout time.Duration) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0, poller.ErrClosed
	}
	if len(events) == 0 {
		return 0, poller.ErrNoEvents
	}
	p.waits++
	var expired <-chan time.Time // nil: not armed, or no timeout
	for {
		n, err := p.poll(events)
		if n > 0 || err != nil || p.woken || timeout == 0 {
			if expired != nil {
				p.timer.Stop()
			}
			if err == nil {
				p.woken = false
			}
			return n, err
		}
		if timeout > 0 && expired == nil {
			// Armed once: an Interrupt or a signal that reports nothing
			// goes round again with the time left.
			p.timer.Reset(timeout)
			expired = p.timer.C
		}
		p.mu.Unlock()
		select {
		case <-p.kick:
			p.mu.Lock()
		case <-expired:
			p.mu.Lock()
			if p.closed {
				return 0, poller.ErrClosed
			}
			return 0, nil
		}
	}
}

// poll is one look at the state for Wait: ErrClosed, a scripted failure,
// Interrupts (retried, as a backend retries EINTR), then what is
// reportable; with p.mu held.
func (p *Poller) poll(events []poller.Event) (int, error) {
	if p.closed {
		return 0, poller.ErrClosed
	}
	if err := pop(&p.waitErr); err != nil {
		return 0, err
	}
	p.retries += p.intr
	p.intr = 0
	return p.collect(events), nil
}

// collect moves what is reportable into events; with p.mu held.
func (p *Poller) collect(events []poller.Event) int {
	n := copy(events, p.raw)
	p.raw = p.raw[:copy(p.raw, p.raw[n:])]
	keep := p.ready[:0]
	for _, fd := range p.ready {
		r := p.regs[fd]
		if n == len(events) {
			keep = append(keep, fd)
			continue
		}
		mask := r.interest&(poller.Readable|poller.Writable) | poller.HangUp | poller.Error
		if ev := r.pending & mask; ev != 0 {
			events[n] = poller.Event{Fd: fd, Token: r.token, Events: ev}
			n++
			r.pending &^= ev
		}
		if r.pending != 0 {
			keep = append(keep, fd)
		}
	}
	p.ready = keep
	return n
}

// Wake makes a blocked Wait return, or the next one if none is blocked;
// Wakes before one Wait coalesce. It returns ErrClosed after Close.
func (p *Poller) Wake() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return poller.ErrClosed
	}
	p.woken = true
	p.signal()
	return nil
}

// Close makes a blocked Wait return ErrClosed and every later call
// return ErrClosed, a second Close included.
func (p *Poller) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return poller.ErrClosed
	}
	p.closed = true
	p.signal()
	return nil
}

// Backend returns 0, which names no real mechanism (its String is
// "Backend(0)").
func (p *Poller) Backend() poller.Backend { return 0 }

// Inject makes the conditions ev (Readable, Writable, HangUp, Error) ready
// on the registered fd, in addition to those already pending, and wakes a
// blocked Wait if its interest covers them. Nothing needs to be readable
// or writable on the fd itself, which is how spurious readiness is
// simulated. It returns ErrClosed after Close, ErrBadFD for a negative fd,
// ErrNotRegistered for an fd not registered, and an error for ev with
// other bits or none.
func (p *Poller) Inject(fd int, ev poller.Events) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.closed:
		return poller.ErrClosed
	case fd < 0:
		return poller.ErrBadFD
	case ev == 0 || ev&^readiness != 0:
		return fmt.Errorf("pollertest: Inject(%d, %v): want Readable, Writable, HangUp or Error", fd, ev)
	}
	r := p.regs[fd]
	if r == nil {
		return poller.ErrNotRegistered
	}
	if r.pending == 0 {
		p.ready = append(p.ready, fd)
	}
	r.pending |= ev
	p.signal()
	return nil
}

// InjectEvents has the next Waits report evs exactly as given, in order
// and before any other event, whether their fds are registered or not and
// whatever their interest: an event with the token of a registration that
// has ended (a stale token), for an fd never registered, or a second Event
// for one fd in one Wait. A Wait reports as many as its events slice holds
// and leaves the rest to the next. It returns ErrClosed after Close.
func (p *Poller) InjectEvents(evs ...poller.Event) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return poller.ErrClosed
	}
	p.raw = append(p.raw, evs...)
	p.signal()
	return nil
}

// FailNextWait makes a Wait return err instead of events: the one blocked
// now, or the next. Calls queue up, one error per Wait. It panics if err
// is nil.
func (p *Poller) FailNextWait(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.waitErr = append(p.waitErr, must(err))
	p.signal()
}

// FailNextAdd makes the next Add that passes the argument checks return
// err and register nothing. Calls queue up, one error per Add. It panics if
// err is nil.
func (p *Poller) FailNextAdd(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.addErr = append(p.addErr, must(err))
}

// FailNextModify makes the next Modify that passes the argument checks
// return err and change nothing. Calls queue up, one error per Modify. It
// panics if err is nil.
func (p *Poller) FailNextModify(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.modErr = append(p.modErr, must(err))
}

// FailNextRemove makes the next Remove that passes the argument checks
// return err and change nothing. Calls queue up, one error per Remove. It
// panics if err is nil.
func (p *Poller) FailNextRemove(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.remErr = append(p.remErr, must(err))
}

func must(err error) error {
	if err == nil {
		panic("pollertest: a scripted failure needs a non-nil error")
	}
	return err
}

// Interrupt makes a Wait, the one blocked now or the next, suffer an
// EINTR, which it retries with the time left as the poller contract
// demands: the caller sees neither an error nor an early return.
// Retries counts them.
func (p *Poller) Interrupt() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.intr++
	p.signal()
}

// Registered returns the token and the interest of a registered fd, and
// whether fd is registered.
func (p *Poller) Registered(fd int) (token uint64, ev poller.Events, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.regs[fd]
	if r == nil {
		return 0, 0, false
	}
	return r.token, r.interest, true
}

// Fds returns the registered fds in increasing order, a fresh slice.
func (p *Poller) Fds() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	fds := make([]int, 0, len(p.regs))
	for fd := range p.regs {
		fds = append(fds, fd)
	}
	slices.Sort(fds)
	return fds
}

// Pending returns the conditions injected on fd and not yet reported.
func (p *Poller) Pending(fd int) poller.Events {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r := p.regs[fd]; r != nil {
		return r.pending
	}
	return 0
}

// Waits returns how many Waits have been called on the open Poller with a
// non-empty events slice, the one blocked now included. A test that sees
// it grow past a count knows the caller finished what it did between.
func (p *Poller) Waits() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waits
}

// Retries returns how many Interrupts Waits have retried.
func (p *Poller) Retries() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.retries
}

// Closed reports whether Close has been called.
func (p *Poller) Closed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}
