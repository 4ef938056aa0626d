package reactor_test

import (
	"os"
	"testing"

	"github.com/muxkit/reactor/internal/leakcheck"
	"github.com/muxkit/reactor/servers/multiprocess"
)

// TestMain is the re-exec hook for the multiprocess model's children and
// for the load generator of TestNeighborsRunBesideBusyLoop.
// Then, before any test counts fds and goroutines, it warms the runtime
// (leakcheck.Warm): its netpoller (the tests' clients use package net) and
// os/signal's delivery goroutine (the multiprocess server watches
// SIGCHLD) are then in every leak check's baseline.
func TestMain(m *testing.M) {
	multiprocess.ServeChild(nil)
	serveLoadgen()
	leakcheck.Warm()
	os.Exit(m.Run())
}
