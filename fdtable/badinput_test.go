package fdtable_test

import (
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/muxkit/reactor/fdtable"
	"github.com/muxkit/reactor/internal/badinput"
	"github.com/muxkit/reactor/internal/leakcheck"
)

// TestBadInput feeds the Table the inputs a caller gets wrong: negative
// and huge fds, an fd put twice, zero, stale and forged handles, negative
// and huge sizes. Each must give a clear error (the documented sentinel
// where there is one), never a panic or a hang; where the documented answer
// is success (not found, an empty table), that is asserted instead.
func TestBadInput(t *testing.T) {
	leakcheck.Check(t)
	badinput.Run(t, fdtableRows())
}

func fdtableRows() []badinput.Row {
	type tab = fdtable.Table[int]
	withOne := func(fn func(tb *tab, h fdtable.Handle) error) func(*testing.T) func() error {
		return func(t *testing.T) func() error {
			tb := fdtable.New[int](8)
			h, err := tb.Put(3, 30)
			if err != nil {
				t.Fatal(err)
			}
			return func() error { return fn(tb, h) }
		}
	}
	notFound := func(ok bool) error {
		if ok {
			return errors.New("found")
		}
		return nil
	}
	return []badinput.Row{
		{Name: "fdtable/Put(-1)", Want: fdtable.ErrBadFD, Setup: badinput.Call(func() error {
			_, err := fdtable.New[int](0).Put(-1, 1)
			return err
		})},
		{Name: "fdtable/Put(math.MinInt)", Want: fdtable.ErrBadFD, Setup: badinput.Call(func() error {
			_, err := new(tab).Put(math.MinInt, 1)
			return err
		})},
		{Name: "fdtable/Put(MaxFD+1)", Want: fdtable.ErrBadFD, Setup: badinput.Call(func() error {
			_, err := new(tab).Put(fdtable.MaxFD+1, 1)
			return err
		})},
		{Name: "fdtable/Put(math.MaxInt)", Want: fdtable.ErrBadFD, Setup: badinput.Call(func() error {
			_, err := new(tab).Put(math.MaxInt, 1)
			return err
		})},
		{Name: "fdtable/Put twice", Want: fdtable.ErrExists, Setup: withOne(func(tb *tab, _ fdtable.Handle) error {
			_, err := tb.Put(3, 31)
			return err
		})},
		{Name: "fdtable/Delete(zero Handle)", Want: fdtable.ErrStale, Setup: withOne(func(tb *tab, _ fdtable.Handle) error {
			_, err := tb.Delete(0)
			return err
		})},
		{Name: "fdtable/Delete twice (stale handle)", Want: fdtable.ErrStale, Setup: withOne(func(tb *tab, h fdtable.Handle) error {
			if _, err := tb.Delete(h); err != nil {
				return fmt.Errorf("first Delete: %v", err)
			}
			_, err := tb.Delete(h)
			return err
		})},
		{Name: "fdtable/Delete(forged handle past the table)", Want: fdtable.ErrStale, Setup: withOne(func(tb *tab, _ fdtable.Handle) error {
			_, err := tb.Delete(fdtable.Handle(1<<63 | fdtable.MaxFD))
			return err
		})},
		{Name: "fdtable/Delete(all bits set)", Want: fdtable.ErrStale, Setup: withOne(func(tb *tab, _ fdtable.Handle) error {
			_, err := tb.Delete(fdtable.Handle(math.MaxUint64))
			return err
		})},
		{Name: "fdtable/Delete on the zero Table", Want: fdtable.ErrStale, Setup: badinput.Call(func() error {
			var tb tab
			_, err := tb.Delete(fdtable.Handle(1 << 63))
			return err
		})},
		{Name: "fdtable/Get(zero Handle) → not found", OK: true, Setup: withOne(func(tb *tab, _ fdtable.Handle) error {
			_, ok := tb.Get(0)
			return notFound(ok)
		})},
		{Name: "fdtable/Get(all bits set) → not found", OK: true, Setup: withOne(func(tb *tab, _ fdtable.Handle) error {
			_, ok := tb.Get(fdtable.Handle(math.MaxUint64))
			return notFound(ok)
		})},
		{Name: "fdtable/Lookup(-1) → not found", OK: true, Setup: withOne(func(tb *tab, _ fdtable.Handle) error {
			_, _, ok := tb.Lookup(-1)
			return notFound(ok)
		})},
		{Name: "fdtable/Lookup(math.MaxInt) → not found", OK: true, Setup: withOne(func(tb *tab, _ fdtable.Handle) error {
			_, _, ok := tb.Lookup(math.MaxInt)
			return notFound(ok)
		})},
		{Name: "fdtable/New(-5) → an empty table of Cap 0", OK: true, Setup: badinput.Call(func() error {
			if tb := fdtable.New[int](-5); tb.Cap() != 0 || tb.Len() != 0 {
				return fmt.Errorf("Cap %d, Len %d; want 0, 0", tb.Cap(), tb.Len())
			}
			return nil
		})},
		{Name: "fdtable/New(math.MaxInt) → a usable table", OK: true,
			Setup: badinput.Call(func() error {
				fdtable.New[int](math.MaxInt)
				return nil
			})},
	}
}
