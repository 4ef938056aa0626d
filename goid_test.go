package reactor

import (
	"testing"
)

// TestGoroutineID: the id read from the stack differs between goroutines
// and is stable within one.
func TestGoroutineID(t *testing.T) {
	a, b := goroutineID(), goroutineID()
	if a == 0 || a != b {
		t.Fatalf("goroutineID twice on one goroutine: %d, %d", a, b)
	}
	other := make(chan uint64)
	go func() { other <- goroutineID() }()
	if o := <-other; o == 0 || o == a {
		t.Fatalf("goroutineID on another goroutine: %d (this one: %d)", o, a)
	}
}
