package reactor_test

import (
	"net"
	"os"
	"os/signal"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/servers/multiprocess"
)

// TestMain is the re-exec hook for the multiprocess model's children.
// Then, before any test counts fds and goroutines, it starts what the Go
// runtime starts once and keeps: its own netpoller (the tests' clients use
// package net), whose epoll and wake fds, and os/signal's delivery
// goroutine (the multiprocess server watches SIGCHLD), so both are in
// every leak check's baseline.
func TestMain(m *testing.M) {
	multiprocess.ServeChild(nil)
	if ln, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
		ln.Close()
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, unix.SIGCHLD)
	signal.Stop(ch)
	os.Exit(m.Run())
}
