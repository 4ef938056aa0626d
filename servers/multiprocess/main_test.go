package multiprocess_test

import (
	"net"
	"os"
	"os/signal"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/servers"
	"github.com/muxkit/reactor/servers/multiprocess"
)

// TestMain is the re-exec hook: in a child started by a Server it serves
// with crashEcho and exits. In the parent it then starts what the Go
// runtime starts once and keeps, its netpoller (the tests' clients use
// package net) and os/signal's delivery goroutine (the Server watches
// SIGCHLD), so both are in every leak check's baseline.
func TestMain(m *testing.M) {
	multiprocess.ServeChild(crashEcho)
	if ln, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
		ln.Close()
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, unix.SIGCHLD)
	signal.Stop(ch)
	os.Exit(m.Run())
}

// crashMsg makes a child running crashEcho exit at once with status 3.
const crashMsg = "crash\n"

// crashEcho echoes, except that a read of exactly crashMsg ends the
// process with status 3: a child that crashes.
func crashEcho(c *servers.Conn) error {
	buf := make([]byte, 16<<10)
	for {
		n, err := c.Read(buf)
		if string(buf[:n]) == crashMsg {
			os.Exit(3)
		}
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err != nil {
			return err
		}
	}
}
