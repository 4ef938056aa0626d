//go:build !linux

package servers_test

import (
	"errors"
	"net"
	"testing"
)

// acceptQueue needs /proc/net/tcp (linux).
func acceptQueue(string) (int, error) {
	return 0, errors.New("accept queue length is read from /proc/net/tcp: linux only")
}

// servedBy needs /proc (linux).
func servedBy(t *testing.T, _ net.Conn) int {
	t.Skip("finding a client's serving process needs /proc: linux only")
	return 0
}
