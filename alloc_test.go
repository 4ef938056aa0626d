package reactor

import (
	"bytes"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/poller"
)

// TestSteadyStateAllocs: once warm, a loop turn that reads a message,
// hands it to the handler and writes the reply allocates nothing: for
// Echo, and for a framing handler whose frames are split across reads
// (Keep's pooled buffer taken and given back every turn).
func TestSteadyStateAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("-race makes sync.Pool drop items at random")
	}
	frame := func(c *Conn, data []byte) {
		for {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				break
			}
			c.Write(data[:i+1])
			data = data[i+1:]
		}
		c.Keep(len(data))
	}
	for _, tc := range []struct {
		name string
		h    Handler
		msgs [][]byte // written by the peer in turn, one per loop turn
		want string   // read back after each cycle of msgs
	}{
		{"echo", Echo, [][]byte{[]byte("hello, loop")}, "hello, loop"},
		{"split frames", HandlerFuncs{Data: frame}, [][]byte{[]byte("first\nsec"), []byte("ond\n")}, "first\nsecond\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			forEachBackend(t, func(t *testing.T, b poller.Backend) {
				l, err := newTestLoop(b)
				if err != nil {
					t.Fatal(err)
				}
				defer closeTestLoop(l)
				a, peer := socketpairFDs(t)
				defer unix.Close(peer)
				if err := unix.SetNonblock(peer, true); err != nil {
					t.Fatal(err)
				}
				c, err := l.newConn(a, newService(tc.h, Limits{}, 0, 0, 0), poller.Readable)
				if err != nil {
					t.Fatal(err)
				}
				defer c.closeNow(nil)
				buf := make([]byte, 64)
				cycle := func() {
					for _, m := range tc.msgs {
						unix.Write(peer, m)
						if err := l.serveOnce(time.Second); err != nil {
							t.Fatal(err)
						}
					}
					// The engine sends what a turn wrote with the next
					// turn's io_uring_enter: turn until the reply is in.
					got := 0
					for turns := 0; got < len(tc.want); turns++ {
						n, err := unix.Read(peer, buf[got:])
						if n > 0 {
							got += n
							continue
						}
						if err != unix.EAGAIN || turns == 100 {
							t.Fatalf("peer read %q, then %v after %d turns; want %q", buf[:got], err, turns, tc.want)
						}
						if err := l.serveOnce(10 * time.Millisecond); err != nil {
							t.Fatal(err)
						}
					}
					if string(buf[:got]) != tc.want {
						t.Fatalf("peer read %q, want %q", buf[:got], tc.want)
					}
				}
				for range 10 {
					cycle() // warm: the queue's chunk pool, the dirty list
				}
				if allocs := testing.AllocsPerRun(200, cycle); allocs != 0 {
					t.Fatalf("%v allocations per cycle, want 0", allocs)
				}
			})
		})
	}
}
