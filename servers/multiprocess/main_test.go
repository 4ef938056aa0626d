package multiprocess_test

import (
	"os"
	"testing"

	"github.com/muxkit/reactor/internal/leakcheck"
	"github.com/muxkit/reactor/servers"
	"github.com/muxkit/reactor/servers/multiprocess"
)

// TestMain is the re-exec hook: in a child started by a Server it serves
// with crashEcho and exits. In the parent it then warms the runtime
// (leakcheck.Warm) before any test counts fds and goroutines: the tests'
// clients use package net, and the Server watches SIGCHLD.
func TestMain(m *testing.M) {
	multiprocess.ServeChild(crashEcho)
	leakcheck.Warm()
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
