package reactor

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/internal/sock"
	"github.com/muxkit/reactor/poller"
)

// TestPacketSteadyStateAllocs: once warm, the loop turns that read
// datagrams, hand each to PacketEcho (From included) and send the replies
// allocate nothing, on every backend: for one datagram, and for a burst
// of 8 read in one batch and sent back in one (GSO where the kernel has
// it), over udp4 and unixgram (the sender's path interned; 8 stays below
// the 10 datagrams a unixgram socket queues by default).
func TestPacketSteadyStateAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("-race allocates on its own")
	}
	for _, network := range []string{"udp4", "unixgram"} {
		for _, burst := range []int{1, 8} {
			t.Run(fmt.Sprintf("%s/burst=%d", network, burst), func(t *testing.T) {
				forEachBackend(t, func(t *testing.T, b poller.Backend) {
					packetAllocs(t, b, network, burst)
				})
			})
		}
	}
}

func packetAllocs(t *testing.T, b poller.Backend, network string, burst int) {
	checkLeaks(t)
	l, err := newTestLoop(b)
	if err != nil {
		t.Fatal(err)
	}
	defer closeTestLoop(l)
	dir, err := os.MkdirTemp("", "pa") // short: a socket path has 107 bytes at most
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	address := "127.0.0.1:0"
	if network == "unixgram" {
		address = filepath.Join(dir, "s")
	}
	// No goroutine runs l: the test turns it with serveOnce.
	p, err := l.ListenPacket(network, address, PacketEcho, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.closeNow(nil)
	peer := packetPeer(t, network, filepath.Join(dir, "c"), p.LocalAddr())
	msg, buf := []byte("hello, datagrams"), make([]byte, 64)
	cycle := func() {
		for range burst {
			if _, err := unix.Write(peer, msg); err != nil {
				t.Fatal(err)
			}
		}
		// The engine sends what a turn wrote with the next turn's
		// io_uring_enter: turn until every echo is in.
		for got, turns := 0, 0; got < burst; {
			n, err := unix.Read(peer, buf)
			if err == nil {
				if !bytes.Equal(buf[:n], msg) {
					t.Fatalf("echo %q, want %q", buf[:n], msg)
				}
				got++
				continue
			}
			if err != unix.EAGAIN || turns == 100 {
				t.Fatalf("echo %d of %d: %v after %d turns", got, burst, err, turns)
			}
			if err := l.serveOnce(10 * time.Millisecond); err != nil {
				t.Fatal(err)
			}
			turns++
		}
	}
	for range 10 {
		cycle() // warm: the loop's datagram buffers, the queue, the dirty list
	}
	in := l.Stats().Datagrams.In
	if allocs := testing.AllocsPerRun(100, cycle); allocs != 0 {
		t.Errorf("%v allocations per cycle of %d datagrams, want 0", allocs, burst)
	}
	// AllocsPerRun runs cycle once more than it counts.
	if n := l.Stats().Datagrams.In - in; n != int64(101*burst) {
		t.Errorf("Stats.Datagrams.In went up by %d, want %d: the echoes came from elsewhere", n, 101*burst)
	}
}

// packetPeer returns a non-blocking socket connected to addr (bound to
// path first, for unixgram: an unnamed peer cannot be answered), closed
// when the test ends.
func packetPeer(t *testing.T, network, path string, addr Addr) int {
	t.Helper()
	var fd int
	var err error
	if network == "unixgram" {
		if fd, _, err = sock.DatagramSocket(network, path, true, false); err == nil {
			if err = unix.Connect(fd, &unix.SockaddrUnix{Name: addr.Path()}); err != nil {
				unix.Close(fd)
			}
		}
	} else {
		fd, _, err = sock.DatagramSocket(network, addr.String(), false, false)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}
