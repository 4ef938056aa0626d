package reactor

import (
	"net"
	"os"
	"testing"
)

// TestMain starts the Go runtime's own netpoller (the tests' clients use
// package net) before any test counts fds, so its epoll and wake fds are in
// every leak check's baseline.
func TestMain(m *testing.M) {
	if ln, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
		ln.Close()
	}
	os.Exit(m.Run())
}
