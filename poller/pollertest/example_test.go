package pollertest_test

import (
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/muxkit/reactor/poller"
	"github.com/muxkit/reactor/poller/pollertest"
)

// Readiness is what the test injects, reported once with the token given
// at Add; a scripted failure reaches the caller on the next Wait, once.
func Example() {
	p := pollertest.New()
	defer p.Close()

	// The fd need not exist: the fake never looks at it.
	if err := p.Add(7, 42, poller.Readable); err != nil {
		log.Fatal(err)
	}
	p.Inject(7, poller.Readable|poller.HangUp)

	events := make([]poller.Event, 16)
	n, err := p.Wait(events, time.Second)
	fmt.Println(n, err, events[0].Token, events[0].Events)

	p.FailNextWait(errors.New("injected failure"))
	_, err = p.Wait(events, -1) // returns at once
	fmt.Println(err)

	n, err = p.Wait(events, 0) // nothing left
	fmt.Println(n, err)
	// Output:
	// 1 <nil> 42 Readable|HangUp
	// injected failure
	// 0 <nil>
}
