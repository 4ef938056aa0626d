package reactor

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/poller"
)

// exhaustFDs lowers RLIMIT_NOFILE and fills every free fd below it, then
// frees exactly spare of them; restore undoes both.
func exhaustFDs(t *testing.T, spare int) (restore func()) {
	t.Helper()
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	maxFD := 0
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			maxFD = max(maxFD, n)
		}
	}
	low := lim
	low.Cur = uint64(maxFD + 1 + spare + 4)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	var dummies []int
	for {
		fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			break
		}
		dummies = append(dummies, fd)
	}
	for _, fd := range dummies[len(dummies)-spare:] {
		unix.Close(fd)
	}
	dummies = dummies[:len(dummies)-spare]
	return func() {
		for _, fd := range dummies {
			unix.Close(fd)
		}
		unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
	}
}

// TestAcceptBacksOffWithoutFDs: with no fd free, accept fails with EMFILE;
// the acceptor must back off rather than spin on the listener that stays
// readable, and serve the waiting clients once fds are free again.
// With ReusePort the loop's own acceptor backs off the same way.
func TestAcceptBacksOffWithoutFDs(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b poller.Backend) {
		for _, reuse := range []bool{false, true} {
			t.Run(fmt.Sprintf("reuseport=%v", reuse), func(t *testing.T) {
				acceptBacksOff(t, &Server{Handler: Echo, Backend: b, Loops: 1, ReusePort: reuse})
			})
		}
	})
}

// acceptBacksOff runs the test with s, which has one loop.
func acceptBacksOff(t *testing.T, s *Server) {
	checkLeaks(t)
	addr := serve(t, s)
	l := loopsOf(t, s)[0]
	tries := func() (n int, paused bool) {
		onLoop(t, l, func() { paused = s.accs[0].paused })
		return int(s.Stats().FDExhausted), paused
	}
	const clients = 6
	restore := exhaustFDs(t, clients)
	restored := false
	defer func() {
		if !restored {
			restore()
		}
	}()
	// All client sockets first, taking every spare fd; then connect, so
	// the server finds none left when it accepts.
	var fds []int
	for range clients {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatalf("client socket: %v", err)
		}
		fds = append(fds, fd)
	}
	for _, fd := range fds {
		sa := &unix.SockaddrInet4{Port: s.Addr().(*net.TCPAddr).Port, Addr: [4]byte{127, 0, 0, 1}}
		if err := unix.Connect(fd, sa); err != nil {
			t.Fatalf("connect: %v", err)
		}
	}
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	end := time.Now().Add(5 * time.Second)
	for {
		if _, paused := tries(); paused {
			break
		}
		if time.Now().After(end) {
			t.Fatal("acceptor did not back off within 5s of EMFILE")
		}
		time.Sleep(time.Millisecond) // polling a condition, with a deadline
	}
	// Watch the acceptor for a while: backing off 10ms, 20ms, 40ms...
	// it tries a handful of times; a spinning one tries thousands.
	before, _ := tries()
	time.Sleep(300 * time.Millisecond) // an observation window, not synchronisation
	after, _ := tries()
	if after-before > 50 {
		t.Fatalf("acceptor made %d accept calls in 300ms without fds: spinning", after-before)
	}
	t.Logf("%d accept calls in 300ms while out of fds", after-before)

	restore()
	restored = true
	for i, fd := range fds { // every waiting client is served now
		msg := []byte("resumed " + strconv.Itoa(i))
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 10})
		if _, err := unix.Write(fd, msg); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		n, err := unix.Read(fd, got)
		for err == unix.EINTR {
			// With SO_RCVTIMEO set, a signal (the runtime's preemption
			// SIGURG) interrupts read instead of restarting it.
			n, err = unix.Read(fd, got)
		}
		if err != nil || string(got[:n]) != string(msg) {
			t.Fatalf("client %d after fds freed: %q, %v", i, got[:max(n, 0)], err)
		}
	}
	_ = addr
}
