package fdtable_test

import (
	"errors"
	"fmt"

	"github.com/muxkit/reactor/fdtable"
)

// conn stands for the event loop's per-connection state.
type conn struct{ peer string }

func Example() {
	var tab fdtable.Table[*conn]

	// Accept returned fd 5: register it. The handle goes into the poller's
	// token for fd 5.
	token, _ := tab.Put(5, &conn{peer: "alice"})
	fmt.Println("registered", token)

	// An event for token arrives: deliver it to alice.
	if c, ok := tab.Get(token); ok {
		fmt.Println("event for", c.peer)
	}

	// Alice hangs up; fd 5 is closed and removed from the table.
	old, _ := tab.Delete(token)
	fmt.Println("closed", old.peer)

	// The kernel reuses fd 5 for the next client.
	token2, _ := tab.Put(5, &conn{peer: "bob"})
	fmt.Println("registered", token2)

	// A late event still carrying alice's token is not delivered to bob.
	if _, ok := tab.Get(token); !ok {
		fmt.Println("stale event for", token, "dropped")
	}
	if _, err := tab.Delete(token); errors.Is(err, fdtable.ErrStale) {
		fmt.Println(err)
	}
	c, _ := tab.Get(token2)
	fmt.Println("fd 5 belongs to", c.peer)

	// Output:
	// registered fd=5/gen=0
	// event for alice
	// closed alice
	// registered fd=5/gen=1
	// stale event for fd=5/gen=0 dropped
	// fdtable: stale handle
	// fd 5 belongs to bob
}
