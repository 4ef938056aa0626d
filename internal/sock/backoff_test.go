package sock

import (
	"testing"
	"time"
)

func TestAcceptBackoff(t *testing.T) {
	var b AcceptBackoff
	var got []time.Duration
	for range 9 {
		got = append(got, b.Next())
	}
	want := []time.Duration{10, 20, 40, 80, 160, 320, 640, 1000, 1000}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("waits %v, want %v ms", got, want)
		}
	}
	if b.Last() != time.Second {
		t.Fatalf("Last() = %v after reaching the cap", b.Last())
	}
	b.Reset()
	if b.Last() != 0 || b.Next() != MinAcceptBackoff {
		t.Fatal("Reset does not start the doubling again")
	}
}
