// Package badinput runs the bad-input tables of the packages' tests: each
// row is a misuse of an exported function and the answer it must get, a
// clear error (or the documented success), never a panic or a hang. Its
// fixtures (UnusedFD, Socketpair, Echo, ...) are the ones the rows of
// several packages share; a fixture of one package's rows stays with them.
package badinput

import (
	"errors"
	"fmt"
	"net"
	"testing"
	"time"
)

// Row is one misuse and what it must answer.
type Row struct {
	Name string
	// Setup runs on the test goroutine (it may call t.Fatal and register
	// cleanups) and returns the call under test, which runs on its own
	// goroutine under Deadline, a panic in it recovered.
	Setup func(t *testing.T) func() error
	// Want is the sentinel the error must match with errors.Is; nil means
	// any non-nil error. With OK the call must return nil instead: the
	// documented answer to that input is success (a no-op, a zero-length
	// write); the row's name says so.
	Want error
	OK   bool
}

// Deadline bounds every call: longer is a hang.
const Deadline = 5 * time.Second

// Run runs every row as a subtest of t; two rows with one name fail t.
func Run(t *testing.T, rows []Row) {
	t.Helper()
	seen := map[string]bool{}
	for _, r := range rows {
		if seen[r.Name] {
			t.Fatalf("two rows named %q", r.Name)
		}
		seen[r.Name] = true
		t.Run(r.Name, func(t *testing.T) {
			err, panicked, hung := guarded(r.Setup(t))
			switch {
			case hung:
				t.Fatalf("did not return within %v", Deadline)
			case panicked != nil:
				t.Fatalf("panicked: %v", panicked)
			case r.OK:
				if err != nil {
					t.Fatalf("got %v, want success", err)
				}
			case err == nil:
				t.Fatalf("got nil, want an error (%v)", r.Want)
			case r.Want != nil && !errors.Is(err, r.Want):
				t.Fatalf("got %v, want an error matching %v", err, r.Want)
			}
			if err != nil {
				t.Logf("%v", err)
			}
		})
	}
}

// guarded runs fn on its own goroutine: a panic is returned, not raised,
// and fn not returning within Deadline is reported as hung (fn's goroutine
// is then left behind; the test fails anyway).
func guarded(fn func() error) (err error, panicked any, hung bool) {
	type result struct {
		err error
		p   any
	}
	done := make(chan result, 1)
	go func() {
		var r result
		returned := false
		defer func() {
			r.p = recover()
			if r.p == nil && !returned {
				r.p = "runtime.Goexit (t.FailNow off the test goroutine?)"
			}
			done <- r
		}()
		r.err = fn()
		returned = true
	}()
	select {
	case r := <-done:
		return r.err, r.p, false
	case <-time.After(Deadline):
		return nil, nil, true
	}
}

// Call makes a row's Setup of a call that needs none.
func Call(fn func() error) func(*testing.T) func() error {
	return func(*testing.T) func() error { return fn }
}

// ZeroN turns an (n, err) result whose documented answer is 0, nil into
// the error of an OK row: err, or an error if n is not 0.
func ZeroN(n int, err error) error {
	if err != nil {
		return err
	}
	if n != 0 {
		return fmt.Errorf("n = %d, want 0", n)
	}
	return nil
}

// NilOr turns err into the error of an OK row whose documented answer is
// nil or an error matching want: nil for either, else err.
func NilOr(err, want error) error {
	if err == nil || errors.Is(err, want) {
		return nil
	}
	return err
}

// ErrNetOp is the Want of a row whose documented answer is the
// *net.OpError package net's calls return; NetOp turns such an error into
// it.
var ErrNetOp = errors.New("a *net.OpError of the op and network called")

// NetOp returns err wrapped in ErrNetOp if it is a *net.OpError of op on
// network (as net's Listen, ListenPacket, Dial, ReadFrom and WriteTo
// return) that also matches want, unless want is nil; otherwise err as it
// is, which fails the row.
func NetOp(err error, op, network string, want error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == op && oe.Net == network && (want == nil || errors.Is(err, want)) {
		return fmt.Errorf("%w: %w", ErrNetOp, err)
	}
	return err
}
