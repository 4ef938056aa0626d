package badinput

import (
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/internal/servertest"
	"github.com/muxkit/reactor/internal/sock"
	"github.com/muxkit/reactor/poller"
)

// UnusedFD returns an fd number that is not open: what a closed fd looks
// like to the kernel. It is high, so that nothing the test opens meanwhile
// takes it (the kernel hands out the lowest free fd), and below
// FD_SETSIZE, so that select gets as far as asking the kernel. With no
// such number free it fails the test.
func UnusedFD(t *testing.T) int {
	t.Helper()
	for fd := 900; fd < 1000; fd++ {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == unix.EBADF {
			return fd
		}
	}
	t.Fatal("no unused fd between 900 and 1000")
	return -1
}

// Socketpair returns a connected pair of unix stream sockets, closed when
// the test ends unless the test closed them already.
func Socketpair(t *testing.T) (a, b int) {
	t.Helper()
	a, b, err := sock.Socketpair()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		unix.Close(a)
		unix.Close(b)
	})
	return a, b
}

// UnavailableBackend returns a poller backend this OS lacks: kqueue on
// linux, epoll on the BSDs.
func UnavailableBackend() poller.Backend {
	have := map[poller.Backend]bool{}
	for _, b := range poller.Available() {
		have[b] = true
	}
	for _, b := range []poller.Backend{poller.Epoll, poller.Kqueue} {
		if !have[b] {
			return b
		}
	}
	return poller.Backend(99)
}

// Echo checks that the echo server at addr echoes one message; it fails
// the test if not.
func Echo(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := RoundTrip(c, "ping"); err != nil {
		t.Fatal(err)
	}
}

// RoundTrip sends msg on c and checks that it comes back, within 10 s.
func RoundTrip(c net.Conn, msg string) error {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return servertest.Echo(c, []byte(msg))
}
