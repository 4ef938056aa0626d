package poller_test

import (
	"fmt"
	"log"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/poller"
)

// Register one end of a socket pair, make it readable from the other end and
// collect the event: the token given at Add comes back with it.
func ExampleNew() {
	p, err := poller.New(poller.Available()[0]) // the OS's preferred backend
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		log.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])

	if err := p.Add(fds[0], 42, poller.Readable); err != nil {
		log.Fatal(err)
	}
	unix.Write(fds[1], []byte("ping"))

	events := make([]poller.Event, 16)
	n, err := p.Wait(events, time.Second)
	if err != nil {
		log.Fatal(err)
	}
	for _, ev := range events[:n] {
		fmt.Println(ev.Fd == fds[0], ev.Token, ev.Events)
	}
	// Output: true 42 Readable
}

// Wake ends a Wait that would otherwise block forever; it is safe from any
// goroutine, and a Wake made before the Wait is not lost.
func ExamplePoller_wake() {
	p, err := poller.New(poller.Poll)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	go p.Wake()
	n, err := p.Wait(make([]poller.Event, 1), -1)
	fmt.Println(n, err)
	// Output: 0 <nil>
}
