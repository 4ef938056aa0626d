package conn_test

import (
	"errors"
	"fmt"
	"log"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/conn"
)

// What an event loop does with a Conn: read until ErrWouldBlock, write
// replies without blocking, watch for writability only while bytes are
// queued, and stop reading a client whose queue passes the high watermark.
func Example() {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		log.Fatal(err)
	}
	peer := fds[1] // the client's end
	defer unix.Close(peer)
	unix.SetNonblock(peer, true)
	unix.SetsockoptInt(fds[0], unix.SOL_SOCKET, unix.SO_SNDBUF, 16<<10)

	lim := &conn.Limits{HighWater: 256 << 10, LowWater: 64 << 10, MaxQueued: 1 << 20}
	c, err := conn.New(fds[0], lim) // c owns fds[0] now
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// The client sends a request; the loop reads until ErrWouldBlock.
	unix.Write(peer, []byte("GET /big"))
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if errors.Is(err, conn.ErrWouldBlock) {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("request %q\n", buf[:n])
	}

	// The reply is larger than the socket buffer: Write queues the rest.
	if _, err := c.Write(make([]byte, 512<<10)); err != nil {
		log.Fatal(err)
	}
	fmt.Println("watch for writability:", c.Pending() > 0)
	fmt.Println("pause reading this client:", c.AboveHighWater())

	// The client reads; on each writability event the loop flushes.
	for c.Pending() > 0 {
		for {
			if _, err := unix.Read(peer, buf); err != nil {
				break
			}
		}
		if err := c.Flush(); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println("resume reading:", c.BelowLowWater())
	fmt.Println("stop watching for writability:", c.Pending() == 0)
	// Output:
	// request "GET /big"
	// watch for writability: true
	// pause reading this client: true
	// resume reading: true
	// stop watching for writability: true
}
