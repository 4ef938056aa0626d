package reactor_test

import (
	"os"
	"testing"

	"github.com/muxkit/reactor/internal/leakcheck"
)

// TestMain is the re-exec hook for the load generator of
// TestNeighborsRunBesideBusyLoop. Then, before any test counts fds and
// goroutines, it warms the runtime (leakcheck.Warm): its netpoller (the
// tests' clients use package net) is then in every leak check's baseline.
func TestMain(m *testing.M) {
	serveLoadgen()
	leakcheck.Warm()
	os.Exit(m.Run())
}
