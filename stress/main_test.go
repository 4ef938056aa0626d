package stress

import (
	"os"
	"testing"

	"github.com/muxkit/reactor/internal/leakcheck"
	"github.com/muxkit/reactor/servers/multiprocess"
)

// TestMain is the multiprocess model's re-exec hook (a child started by a
// multiprocess Server serves with servers.Echo and exits), so that any
// test of this package may run that model. In the parent it then warms the
// runtime before any test counts fds and goroutines (leakcheck.Warm): its
// netpoller serves the tests' clients (package net), and a multiprocess
// Server watches SIGCHLD, which os/signal's goroutine delivers.
func TestMain(m *testing.M) {
	multiprocess.ServeChild(nil)
	leakcheck.Warm()
	os.Exit(m.Run())
}
