// Package nettest runs golang.org/x/net/nettest's conformance suite for
// net.Conn against the reactor's net.Conn face (package netconn), on every
// backend this OS has. It lives in the bench module so that x/net never
// enters the library's go.mod.
package nettest

import (
	"net"
	"testing"

	"golang.org/x/net/nettest"

	"github.com/muxkit/reactor"
	"github.com/muxkit/reactor/netconn"
	"github.com/muxkit/reactor/poller"
)

// TestConn: nettest.TestConn over a TCP pair from netconn (one end
// accepted, one dialled) on each backend, and over a unix socket pair.
func TestConn(t *testing.T) {
	for _, b := range poller.Available() {
		t.Run(b.String(), func(t *testing.T) {
			g, err := reactor.NewGroup(reactor.GroupConfig{Loops: 2, Backend: b})
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			cfg := netconn.Config{Group: g}
			for _, network := range []string{"tcp", "unix"} {
				t.Run(network, func(t *testing.T) {
					nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
						return pair(t, cfg, network)
					})
				})
			}
		})
	}
}

// pair returns a connected pair of netconn conns.
func pair(t *testing.T, cfg netconn.Config, network string) (c1, c2 net.Conn, stop func(), err error) {
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = t.TempDir() + "/s"
	}
	ln, err := cfg.Listen(network, addr)
	if err != nil {
		return nil, nil, nil, err
	}
	defer ln.Close()
	type accepted struct {
		c   net.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		ch <- accepted{c, err}
	}()
	c1, err = cfg.Dial(network, ln.Addr().String())
	if err != nil {
		return nil, nil, nil, err
	}
	a := <-ch
	if a.err != nil {
		c1.Close()
		return nil, nil, nil, a.err
	}
	return c1, a.c, func() { c1.Close(); a.c.Close() }, nil
}
