package stress

import (
	"net"
	"os"
	"os/signal"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/servers/multiprocess"
)

// TestMain is the multiprocess model's re-exec hook (a child started by a
// multiprocess Server serves with servers.Echo and exits), so that any
// test of this package may run that model. In the parent it then starts
// what the Go runtime starts once and keeps, before any test counts fds and
// goroutines: its netpoller, whose epoll and wake fds serve the tests'
// clients (package net), and os/signal's delivery goroutine (a multiprocess
// Server watches SIGCHLD). Both are then in every leak check's baseline.
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
