package netconn_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"

	"github.com/muxkit/reactor"
	"github.com/muxkit/reactor/netconn"
)

// ExampleListen serves net/http over a listener whose connections are
// driven by reactor event loops instead of Go's runtime netpoller; the
// http.Server needs no change.
func ExampleListen() {
	ln, err := netconn.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s %s", r.Method, r.URL.Path)
	})}
	go srv.Serve(ln)

	resp, err := http.Get("http://" + ln.Addr().String() + "/reactor")
	if err != nil {
		log.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.Status)
	fmt.Println(string(body))

	// Shutdown closes the listener and the idle connections; the shared
	// loops stop with the last of them.
	http.DefaultClient.CloseIdleConnections()
	if err := srv.Shutdown(context.Background()); err != nil {
		log.Fatal(err)
	}
	// Output:
	// 200 OK
	// hello from GET /reactor
}

// ExampleDial connects with Dial to an echo server listening with Listen:
// both ends run on the shared loops.
func ExampleDial() {
	ln, err := netconn.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()

	c, err := netconn.Dial("tcp", ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("ping")); err != nil {
		log.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(buf))
	// Output: ping
}

// ExampleConfig runs a listener and its connections on a group of loops
// of one's own: one loop here, ended with the group once the connections
// are closed.
func ExampleConfig() {
	g, err := reactor.NewGroup(reactor.GroupConfig{Loops: 1})
	if err != nil {
		log.Fatal(err)
	}
	defer g.Close()
	cfg := netconn.Config{Group: g}

	ln, err := cfg.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		fmt.Fprintf(c, "served by a group of %d loop", g.Len())
	}()

	c, err := cfg.Dial("tcp", ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	msg, err := io.ReadAll(c)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(msg))
	// Output: served by a group of 1 loop
}
