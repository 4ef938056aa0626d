package reactor_test

import (
	"fmt"
	"log"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor"
)

// ExampleGroup runs event loops without a Server: a Group's loops carry
// whatever is put on them (Dialer connections, datagram sockets, watched
// fds, timers). Here a function is posted to loop 0, and the timer it
// sets fires on the same loop goroutine.
func ExampleGroup() {
	g, err := reactor.NewGroup(reactor.GroupConfig{Loops: 2})
	if err != nil {
		log.Fatal(err)
	}
	defer g.Close() // stops the loops; OnStop for whatever is still on them

	done := make(chan struct{})
	l := g.Loop(0)
	err = l.Post(func() { // runs on loop 0's goroutine
		l.AfterFunc(10*time.Millisecond, func() { // so does this
			fmt.Println("timer fired on loop 0")
			close(done)
		})
	})
	if err != nil {
		log.Fatal(err)
	}
	<-done
	// Output: timer fired on loop 0
}

// pipeReader is a Watcher: the loop calls OnReady when its pipe has bytes.
type pipeReader struct {
	fd  int
	got chan<- string
}

// Compile-time checks: a misspelled method would otherwise make the type
// something else, and Watch would not take it.
var _ reactor.Watcher = (*pipeReader)(nil)

func (r *pipeReader) OnReady(ev reactor.Events) {
	buf := make([]byte, 64)
	for { // level-triggered: read until EAGAIN
		n, err := unix.Read(r.fd, buf)
		if n <= 0 || err != nil {
			return
		}
		r.got <- string(buf[:n])
	}
}

func (r *pipeReader) OnStop(reason error) {}

// ExampleLoop_Watch puts an fd the reactor did not open (a pipe here; an
// eventfd, a signalfd, a device) on a loop, as mio's SourceFd or gnet's
// Register do: the loop calls the Watcher when the fd is ready.
func ExampleLoop_Watch() {
	var p [2]int
	if err := unix.Pipe(p[:]); err != nil {
		log.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	if err := unix.SetNonblock(p[0], true); err != nil { // Watch leaves the fd's flags alone
		log.Fatal(err)
	}

	g, err := reactor.NewGroup(reactor.GroupConfig{Loops: 1})
	if err != nil {
		log.Fatal(err)
	}
	defer g.Close()
	l := g.Loop(0)

	got := make(chan string, 1)
	watched := make(chan *reactor.Watch, 1)
	l.Post(func() { // Watch is called on the loop goroutine
		w, err := l.Watch(p[0], reactor.Readable, &pipeReader{fd: p[0], got: got})
		if err != nil {
			log.Fatal(err)
		}
		watched <- w
	})
	w := <-watched

	unix.Write(p[1], []byte("hello through a pipe"))
	fmt.Println(<-got)

	stopped := make(chan error, 1)
	l.Post(func() { stopped <- w.Stop() }) // before the fd is closed
	if err := <-stopped; err != nil {
		log.Fatal(err)
	}
	// Output: hello through a pipe
}
