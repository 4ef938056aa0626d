package reactor

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/poller"
)

// seqpacketServer serves s on a unix SOCK_SEQPACKET listener and returns a
// connected client fd. On a seqpacket socket every write(2) or writev(2) is
// one message and every read returns one, so the client counts the
// server's write system calls exactly by counting what it reads.
func seqpacketServer(t *testing.T, s *Server) int {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s")
	ln, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(ln, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(ln, 8); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.ServeFD(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("ServeFD returned %v", err)
		}
		unix.Close(ln)
	})
	c, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(c) })
	if err := unix.Connect(c, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	tv := unix.NsecToTimeval(int64(10 * time.Second))
	unix.SetsockoptTimeval(c, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	return c
}

// readMsg reads one message.
func readMsg(t *testing.T, fd int) string {
	t.Helper()
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		return string(buf[:n])
	}
}

// TestWritesBatched: the writes of one callback leave in one system call:
// 16 pipelined requests answered by 16 Writes are one message; Writev's
// buffers join what is queued; Flush sends early; a batch of posted
// functions and a timer's writes leave in one call each.
func TestWritesBatched(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b poller.Backend) {
		checkLeaks(t)
		conns := make(chan *Conn, 1)
		s := &Server{Backend: b, Loops: 1, Handler: HandlerFuncs{
			Open: func(c *Conn) { conns <- c },
			Data: func(c *Conn, data []byte) {
				switch req := string(data); {
				case req == "writev":
					c.Write([]byte("head:"))
					c.Writev([]byte("a"), []byte("b"), nil, []byte("c"))
					c.Write([]byte(":tail"))
				case req == "flush":
					c.Write([]byte("1"))
					c.Flush()
					c.Write([]byte("2"))
				default:
					for _, line := range strings.SplitAfter(req, "\n") {
						if line != "" {
							c.Write([]byte("+" + line))
						}
					}
				}
			},
		}}
		fd := seqpacketServer(t, s)
		c := <-conns

		req := strings.Repeat("x\n", 16)
		unix.Write(fd, []byte(req))
		if got, want := readMsg(t, fd), strings.Repeat("+x\n", 16); got != want {
			t.Fatalf("16 pipelined requests: first message %q, want all 16 replies in one", got)
		}
		unix.Write(fd, []byte("writev"))
		if got := readMsg(t, fd); got != "head:abc" {
			t.Fatalf("Writev: message %q, want the queue and the buffers in one: head:abc", got)
		}
		if got := readMsg(t, fd); got != ":tail" {
			t.Fatalf("after Writev: message %q, want :tail", got)
		}
		unix.Write(fd, []byte("flush"))
		for _, want := range []string{"1", "2"} {
			if got := readMsg(t, fd); got != want {
				t.Fatalf("Flush: message %q, want %q", got, want)
			}
		}
		// One posted function writing three times: one message.
		if err := c.Loop().Post(func() {
			for _, p := range []string{"p", "q", "r"} {
				c.Write([]byte(p))
			}
		}); err != nil {
			t.Fatal(err)
		}
		if got := readMsg(t, fd); got != "pqr" {
			t.Fatalf("posted writes: message %q, want pqr", got)
		}
		c.Loop().Post(func() {
			c.Loop().AfterFunc(time.Millisecond, func() {
				c.Write([]byte("t1"))
				c.Write([]byte("t2"))
			})
		})
		if got := readMsg(t, fd); got != "t1t2" {
			t.Fatalf("a timer's writes: message %q, want t1t2", got)
		}
	})
}
