package syscount

import (
	"errors"
	"os"
	"testing"
)

// TestCount: a thousand getppid calls count as a thousand (and a few more:
// the runtime's own calls), or Start says counting is unsupported.
func TestCount(t *testing.T) {
	c, err := Start()
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	before := c.Count()
	for range 1000 {
		os.Getppid()
	}
	got := c.Count() - before
	if got < 1000 || got > 1100 {
		t.Fatalf("counted %d system calls for 1000 getppid, want 1000..1100", got)
	}
}
