package fuzz

import (
	"errors"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/muxkit/reactor/fdtable"
)

// Operations decoded from the fuzz input. Each takes two bytes: the
// operation (modulo numOps) and its argument.
const (
	opPut       = iota // put fd(arg) with a fresh value
	opGet              // get by issued[arg], current or stale
	opGetStale         // get by a handle known to be stale
	opDelete           // delete by issued[arg], current or stale
	opDeleteFD         // delete the current handle of fd(arg), if any
	opLookup           // lookup fd(arg)
	opGetForged        // get and delete by a handle never issued as is
	opRange            // compare the whole table with the model
	numOps
)

// fdArg maps an argument byte to an fd: mostly the small fds 0..63 a busy
// loop reuses, sometimes a larger valid fd (which makes the table grow), a
// negative fd or one above MaxFD.
func fdArg(arg byte) int {
	if arg < 0xf0 {
		return int(arg % 64)
	}
	maxFD := fdtable.MaxFD // run-time addition: wraps negative on 32-bit ints
	return [...]int{
		-1, math.MinInt, maxFD + 1, -64,
		64, 65, 100, 127, 128, 200, 255, 256, 511, 1000, 1023, 4096,
	}[arg-0xf0]
}

// forged returns a handle that Put never issued in this form, built from
// issued handles (or from nothing) the way a corrupted or stale token could
// look.
func forged(arg byte, issued []fdtable.Handle) fdtable.Handle {
	var base fdtable.Handle
	if len(issued) > 0 {
		base = issued[int(arg)%len(issued)]
	}
	switch arg % 6 {
	case 0:
		return 0
	case 1:
		return base &^ (1 << 63) // valid bit cleared
	case 2:
		return base + 1<<32 // next generation
	case 3:
		return base ^ 1<<31 // fd field above MaxFD
	case 4:
		return base + 1 // neighbouring fd, same generation
	default:
		return fdtable.Handle(1<<63 | uint64(arg)<<40 | uint64(arg)) // arbitrary
	}
}

type modelEntry struct {
	val int
	h   fdtable.Handle
}

// FuzzFDTable runs a decoded sequence of operations on a Table and on a
// map-based model and fails on any disagreement: a stale handle accepted, a
// value lost or changed, a handle issued twice, or a wrong Len.
func FuzzFDTable(f *testing.F) {
	seq := func(ops ...byte) []byte { return ops }
	// A loop accepting three clients, serving events and closing them.
	f.Add(seq(
		opPut, 3, opPut, 4, opPut, 5,
		opGet, 0, opGet, 1, opGet, 2,
		opDelete, 1, opGet, 1, opLookup, 4,
		opRange, 0,
	))
	// fd reuse: close fd 3, the kernel hands out 3 again, a late event for
	// the old connection arrives.
	f.Add(seq(
		opPut, 3, opDelete, 0, opPut, 3,
		opGet, 0, opGetStale, 0, opDelete, 0, opGet, 1,
		opDeleteFD, 3, opPut, 3, opGet, 1, opGet, 2, opRange, 0,
	))
	// Double registration and bad fds.
	f.Add(seq(
		opPut, 7, opPut, 7, opPut, 0xf0, opPut, 0xf1, opPut, 0xf2,
		opLookup, 7, opLookup, 0xf0, opRange, 0,
	))
	// Growth past the initial size with old handles kept.
	f.Add(seq(
		opPut, 0, opPut, 1, opPut, 0xf4, opPut, 0xff, opPut, 0xfd,
		opGet, 0, opGet, 1, opGet, 2, opGet, 3, opGet, 4,
		opDeleteFD, 0xf4, opGetStale, 0, opRange, 0,
	))
	// Churn on one fd, then forged tokens.
	f.Add(seq(
		opPut, 9, opDeleteFD, 9, opPut, 9, opDeleteFD, 9, opPut, 9,
		opDeleteFD, 9, opPut, 9, opGetStale, 0, opGetStale, 1, opGetStale, 2,
		opGetForged, 0, opGetForged, 1, opGetForged, 2, opGetForged, 3,
		opGetForged, 4, opGetForged, 5, opRange, 0,
	))
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, data []byte) {
		tab := fdtable.New[int](len(data) % 16)
		model := map[int]modelEntry{}
		var issued, stale []fdtable.Handle
		everIssued := map[fdtable.Handle]bool{}
		nextVal := 1

		// current reports whether the model says h is the live handle.
		current := func(h fdtable.Handle) (modelEntry, bool) {
			e, ok := model[h.FD()]
			return e, ok && e.h == h
		}
		checkGet := func(step int, h fdtable.Handle) {
			v, ok := tab.Get(h)
			e, want := current(h)
			switch {
			case ok && !want:
				t.Fatalf("step %d: Get(%v) accepted a handle that is not current (value %d)", step, h, v)
			case !ok && want:
				t.Fatalf("step %d: Get(%v) lost value %d", step, h, e.val)
			case ok && v != e.val:
				t.Fatalf("step %d: Get(%v) = %d, want %d", step, h, v, e.val)
			case !ok && v != 0:
				t.Fatalf("step %d: rejected Get(%v) returned value %d", step, h, v)
			}
		}
		checkDelete := func(step int, h fdtable.Handle) {
			v, err := tab.Delete(h)
			e, want := current(h)
			if !want {
				if !errors.Is(err, fdtable.ErrStale) || v != 0 {
					t.Fatalf("step %d: Delete(%v) = %d, %v; want 0, ErrStale", step, h, v, err)
				}
				return
			}
			if err != nil || v != e.val {
				t.Fatalf("step %d: Delete(%v) = %d, %v; want %d, nil", step, h, v, err, e.val)
			}
			delete(model, h.FD())
			stale = append(stale, h)
		}

		for step := 0; step+1 < len(data); step += 2 {
			op, arg := data[step]%numOps, data[step+1]
			switch op {
			case opPut:
				fd := fdArg(arg)
				h, err := tab.Put(fd, nextVal)
				_, exists := model[fd]
				switch {
				case fd < 0 || fd > fdtable.MaxFD:
					if !errors.Is(err, fdtable.ErrBadFD) || h != 0 {
						t.Fatalf("step %d: Put(%d) = %v, %v; want 0, ErrBadFD", step, fd, h, err)
					}
				case exists:
					if !errors.Is(err, fdtable.ErrExists) || h != 0 {
						t.Fatalf("step %d: Put(%d) = %v, %v; want 0, ErrExists", step, fd, h, err)
					}
				default:
					if err != nil || !h.Valid() || h.FD() != fd {
						t.Fatalf("step %d: Put(%d) = %v, %v; want a valid handle for fd %d", step, fd, h, err, fd)
					}
					if everIssued[h] {
						t.Fatalf("step %d: Put(%d) reissued handle %v", step, fd, h)
					}
					everIssued[h] = true
					issued = append(issued, h)
					model[fd] = modelEntry{val: nextVal, h: h}
					if tab.Cap() <= fd {
						t.Fatalf("step %d: Cap() = %d after Put(%d)", step, tab.Cap(), fd)
					}
				}
				nextVal++
			case opGet:
				if len(issued) > 0 {
					checkGet(step, issued[int(arg)%len(issued)])
				}
			case opGetStale:
				if len(stale) > 0 {
					h := stale[int(arg)%len(stale)]
					if _, ok := tab.Get(h); ok {
						t.Fatalf("step %d: Get accepted stale handle %v", step, h)
					}
					checkGet(step, h)
				}
			case opDelete:
				if len(issued) > 0 {
					checkDelete(step, issued[int(arg)%len(issued)])
				}
			case opDeleteFD:
				if e, ok := model[fdArg(arg)]; ok {
					checkDelete(step, e.h)
				}
			case opLookup:
				fd := fdArg(arg)
				h, v, ok := tab.Lookup(fd)
				e, want := model[fd]
				if ok != want || h != e.h || v != e.val {
					t.Fatalf("step %d: Lookup(%d) = %v, %d, %v; want %v, %d, %v", step, fd, h, v, ok, e.h, e.val, want)
				}
			case opGetForged:
				h := forged(arg, issued)
				checkGet(step, h)
				checkDelete(step, h)
			case opRange:
				checkRange(t, step, tab, model)
			}
			if tab.Len() != len(model) {
				t.Fatalf("step %d: Len() = %d, model has %d entries", step, tab.Len(), len(model))
			}
		}
		checkRange(t, len(data), tab, model)
		for _, h := range stale {
			if _, ok := tab.Get(h); ok {
				t.Fatalf("end: stale handle %v accepted", h)
			}
		}
	})
}

// rangeEntry is one entry as Range reports it or the model expects it.
type rangeEntry struct {
	FD  int
	H   fdtable.Handle
	Val int
}

// checkRange fails unless Range visits exactly the model's entries, in fd
// order, with their current handles and values.
func checkRange(t *testing.T, step int, tab *fdtable.Table[int], model map[int]modelEntry) {
	t.Helper()
	var got []rangeEntry
	tab.Range(func(h fdtable.Handle, v int) bool {
		got = append(got, rangeEntry{FD: h.FD(), H: h, Val: v})
		return true
	})
	var want []rangeEntry
	for fd := range tab.Cap() {
		if e, ok := model[fd]; ok {
			want = append(want, rangeEntry{FD: fd, H: e.h, Val: e.val})
		}
	}
	if len(want) != len(model) {
		t.Fatalf("step %d: model has fds beyond Cap() = %d", step, tab.Cap())
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("step %d: Range disagrees with the model (-want +got):\n%s", step, diff)
	}
}
