// Package fdtable is the registered-fd management table of an event loop: it
// maps each open file descriptor to the loop's state for it, and hands out a
// Handle that names one registration of that fd.
//
// An event loop puts the Handle into the poller's 64-bit token. When an event
// comes back, Get(token) fails if the fd was closed and reused in the
// meantime, because Delete bumped the fd's generation: a stale event is never
// delivered to the new connection that happens to have the same fd number.
//
// The table is a dense slice indexed directly by fd. The kernel hands out the
// lowest free fd, so the slice stays dense and its length follows the number
// of open fds. Put, Get, Lookup and Delete are O(1) (Put amortised); Range is
// O(Cap). Besides New, only Put allocates, and only when it grows the slice; memory is
// proportional to the largest fd ever put, which RLIMIT_NOFILE bounds.
//
// A generation is 31 bits wide and is bumped by every Delete of the fd. A
// stale handle is therefore falsely accepted only if its fd was deleted
// exactly 2^31 times (or a multiple of that) between the handle being issued
// and being checked.
//
// A Table is not safe for concurrent use: one goroutine, the event loop, owns
// it.
package fdtable

import (
	"errors"
	"strconv"
)

// MaxFD is the largest fd a Table accepts: the largest value the 32-bit fd
// field of a Handle holds that is also a non-negative int32, as fds are.
const MaxFD = 1<<31 - 1

// Sentinel errors returned by Table methods; test for them with errors.Is.
var (
	// ErrBadFD means the fd is negative or greater than MaxFD.
	ErrBadFD = errors.New("fdtable: bad file descriptor")
	// ErrExists means Put was called for an fd that is already in the table.
	ErrExists = errors.New("fdtable: fd already present")
	// ErrStale means the handle is zero or invalid, its fd is not in the
	// table, or the fd has been deleted (and possibly reused) since the
	// handle was issued.
	ErrStale = errors.New("fdtable: stale handle")
)

// Handle names one registration of an fd in a Table: the fd together with
// the generation its slot had when Put issued the handle. It fits a poller's
// 64-bit token as is. The zero Handle is never issued and is never valid.
//
// Bit layout, from the least significant bit:
//
//	bits  0-31  the fd, as a uint32 (Put refuses fds above MaxFD, so bit 31
//	            is clear on every issued handle).
//	bits 32-62  the 31-bit generation of the fd's slot when the handle was
//	            issued. Delete bumps the slot's generation, wrapping from
//	            2^31-1 to 0, which makes every handle issued before stale.
//	bit     63  the valid bit: always set on an issued handle, so the zero
//	            Handle (and any token left at 0) is rejected.
type Handle uint64

const (
	fdBits   = 32
	genBits  = 31
	fdMask   = 1<<fdBits - 1
	genMask  = 1<<genBits - 1
	genShift = fdBits
	validBit = 1 << 63
)

// makeHandle packs fd and gen into a valid Handle; gen is taken modulo 2^31.
func makeHandle(fd int, gen uint32) Handle {
	return Handle(validBit | uint64(gen&genMask)<<genShift | uint64(uint32(fd)))
}

// FD returns the fd field of h (bits 0-31). It does not allocate.
func (h Handle) FD() int { return int(uint64(h) & fdMask) }

// Gen returns the 31-bit generation field of h (bits 32-62). It does not
// allocate.
func (h Handle) Gen() uint32 { return uint32(uint64(h)>>genShift) & genMask }

// Valid reports whether h has the valid bit (bit 63) set, as every handle
// issued by Put does. A valid handle may still be stale. It does not allocate.
func (h Handle) Valid() bool { return uint64(h)&validBit != 0 }

// String returns h as "fd=5/gen=3", or "invalid(0x...)" if the valid bit is
// clear. It allocates the returned string.
func (h Handle) String() string {
	var buf [48]byte
	var b []byte
	if !h.Valid() {
		b = append(buf[:0], "invalid(0x"...)
		b = strconv.AppendUint(b, uint64(h), 16)
		b = append(b, ')')
		return string(b)
	}
	b = append(buf[:0], "fd="...)
	b = strconv.AppendUint(b, uint64(h)&fdMask, 10)
	b = append(b, "/gen="...)
	b = strconv.AppendUint(b, uint64(h.Gen()), 10)
	return string(b)
}

// minGrow is the smallest length a Table grows to, so that the first few
// Puts on a zero Table do not each reallocate.
const minGrow = 16

// slot is one fd's entry: its value, the generation handles for it must
// carry, and whether the fd is present.
type slot[T any] struct {
	val  T
	gen  uint32
	used bool
}

// Table maps fds to values of type T and issues a generation-checked Handle
// for each entry. Its storage is a dense slice indexed by fd, grown
// geometrically (at least doubling, and at least to fd+1) only when Put is
// given an fd beyond its end; nothing else allocates. The zero Table is empty
// and ready to use.
//
// A Table is not safe for concurrent use: one goroutine, the event loop,
// owns it.
type Table[T any] struct {
	slots []slot[T]
	n     int
}

// maxInitialCap bounds New's pre-sizing: capacity is a hint, and a huge one
// must not allocate gigabytes up front. Put still grows the table to MaxFD.
const maxInitialCap = 1 << 20

// New returns an empty Table pre-sized for fds below capacity, so that Put
// does not allocate for them. A negative capacity is treated as 0, and one
// above 1<<20 as 1<<20 (Put grows past it). New allocates the Table and its
// slots.
func New[T any](capacity int) *Table[T] {
	t := new(Table[T])
	if capacity > 0 {
		t.slots = make([]slot[T], min(uint(capacity), maxInitialCap))
	}
	return t
}

// Put adds fd with value v and returns the handle for this registration.
// It returns ErrBadFD if fd is negative or above MaxFD, and ErrExists if fd
// is already present. Put is O(1) amortised; it allocates only when fd is at
// or beyond Cap, growing the table to at least twice its size and at least
// to fd+1.
func (t *Table[T]) Put(fd int, v T) (Handle, error) {
	if fd < 0 || fd > MaxFD {
		return 0, ErrBadFD
	}
	if fd >= len(t.slots) {
		t.grow(fd)
	}
	s := &t.slots[fd]
	if s.used {
		return 0, ErrExists
	}
	s.val = v
	s.used = true
	t.n++
	return makeHandle(fd, s.gen), nil
}

// grow reallocates the slots so that fd, which must be in [0, MaxFD], fits.
// It computes sizes in uint so that fd+1 cannot overflow where int is 32 bits.
func (t *Table[T]) grow(fd int) {
	n := max(2*uint(len(t.slots)), uint(fd)+1, minGrow)
	n = min(n, uint(MaxFD)+1)
	slots := make([]slot[T], n)
	copy(slots, t.slots)
	t.slots = slots
}

// lookup returns the slot h names if h is current, else nil.
func (t *Table[T]) lookup(h Handle) *slot[T] {
	if !h.Valid() {
		return nil
	}
	fd := uint64(h) & fdMask
	if fd >= uint64(len(t.slots)) {
		return nil
	}
	s := &t.slots[fd]
	if !s.used || s.gen != h.Gen() {
		return nil
	}
	return s
}

// Get returns the value stored for h and true, or the zero T and false if h
// is zero, invalid, out of range or stale. It is O(1) and never allocates.
func (t *Table[T]) Get(h Handle) (T, bool) {
	s := t.lookup(h)
	if s == nil {
		var zero T
		return zero, false
	}
	return s.val, true
}

// Lookup returns the current handle and value for fd and true, or the zero
// Handle, the zero T and false if fd is not present. It is O(1) and never
// allocates.
func (t *Table[T]) Lookup(fd int) (Handle, T, bool) {
	if fd < 0 || fd >= len(t.slots) || !t.slots[fd].used {
		var zero T
		return 0, zero, false
	}
	s := &t.slots[fd]
	return makeHandle(fd, s.gen), s.val, true
}

// Delete removes the entry h names and returns its value. It bumps the
// slot's generation (wrapping within 31 bits), so every handle issued for
// the fd so far becomes stale, and zeroes the stored value so the garbage
// collector can reclaim what it referenced. It returns ErrStale if h is not
// current. Delete is O(1) and never allocates.
func (t *Table[T]) Delete(h Handle) (T, error) {
	s := t.lookup(h)
	if s == nil {
		var zero T
		return zero, ErrStale
	}
	v := s.val
	var zero T
	s.val = zero
	s.used = false
	s.gen = (s.gen + 1) & genMask
	t.n--
	return v, nil
}

// Len returns the number of entries in the table. It never allocates.
func (t *Table[T]) Len() int { return t.n }

// Cap returns the number of fds the table covers without growing: Put of
// any fd below Cap does not allocate. It never allocates.
func (t *Table[T]) Cap() int { return len(t.slots) }

// Range calls fn with the handle and value of each entry, in increasing fd
// order, and stops early if fn returns false. fn must not call Put or Delete
// on t. Range is O(Cap) and does not allocate itself.
func (t *Table[T]) Range(fn func(h Handle, v T) bool) {
	for fd := range t.slots {
		s := &t.slots[fd]
		if !s.used {
			continue
		}
		if !fn(makeHandle(fd, s.gen), s.val) {
			return
		}
	}
}
