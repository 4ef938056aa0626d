package reactor

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/internal/sock"
)

// TestReusePortUnsupported: where ReusePort cannot keep its promise (a
// single caller-owned fd, a unix socket, an OS other than linux) the
// Server says so with an error matching errors.ErrUnsupported, opens
// nothing and leaves the caller's fd alone.
func TestReusePortUnsupported(t *testing.T) {
	checkLeaks(t)

	// ServeFD: one socket the caller owns; it must stay open.
	fd, _, err := sock.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	s := &Server{Handler: Echo, Loops: 2, ReusePort: true}
	if err := s.ServeFD(fd); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("ServeFD with ReusePort: %v, want an error matching errors.ErrUnsupported", err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
		t.Fatalf("ServeFD with ReusePort closed the caller's fd: %v", err)
	}
	if err := s.Serve(); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve after the refused ServeFD: %v, want ErrServerClosed", err)
	}

	// A unix socket cannot share its path.
	path := filepath.Join(t.TempDir(), "s")
	s = &Server{Handler: Echo, Loops: 2, ReusePort: true}
	if err := s.Listen("unix", path); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("Listen unix with ReusePort: %v, want an error matching errors.ErrUnsupported", err)
	}
	if _, err := os.Stat(path); err == nil {
		t.Fatalf("Listen unix with ReusePort created %s", path)
	}

	// tcp: linux serves, every other OS refuses.
	s = &Server{Handler: Echo, Loops: 2, ReusePort: true}
	err = s.Listen("tcp", "127.0.0.1:0")
	if runtime.GOOS != "linux" {
		if !errors.Is(err, errors.ErrUnsupported) {
			t.Fatalf("Listen with ReusePort on %s: %v, want an error matching errors.ErrUnsupported", runtime.GOOS, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("Listen with ReusePort on linux: %v", err)
	}
	if _, ok := s.Addr().(*net.TCPAddr); !ok || s.Addr().(*net.TCPAddr).Port == 0 {
		t.Fatalf("Addr %v, want the shared tcp address with its port", s.Addr())
	}
	// Turning ReusePort off between Listen and Serve is refused, not
	// served half one way; the listeners are closed (checkLeaks).
	s.ReusePort = false
	if err := s.Serve(); err == nil || errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve after ReusePort changed: %v, want an error", err)
	}
}
