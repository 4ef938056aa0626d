package reactor_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"time"

	"github.com/muxkit/reactor"
)

// An echo server on one event loop: every byte a client sends comes back.
// The handler runs on the loop goroutine and never blocks; Write queues
// what the kernel cannot take at once.
func ExampleServer() {
	srv := &reactor.Server{
		Handler: reactor.HandlerFuncs{
			Data: func(c *reactor.Conn, data []byte) { c.Write(data) },
		},
		Loops:       1,
		IdleTimeout: time.Minute,
	}
	if err := srv.Listen("tcp", "127.0.0.1:0"); err != nil {
		log.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()

	c, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	c.Write([]byte("hello, reactor"))
	reply := make([]byte, len("hello, reactor"))
	io.ReadFull(c, reply)
	c.Close()
	fmt.Println(string(reply))

	// Graceful: stop accepting, flush what is queued, close, return.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fmt.Println(srv.Shutdown(ctx), <-served)
	// Output:
	// hello, reactor
	// <nil> reactor: server closed
}
