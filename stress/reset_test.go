package stress

import (
	"errors"
	"github.com/muxkit/reactor"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/internal/leakcheck"
	"github.com/muxkit/reactor/servers"
	"github.com/muxkit/reactor/servers/iterative"
	"github.com/muxkit/reactor/servers/multiplex"
	"github.com/muxkit/reactor/servers/threadpool"
)

// resetModel is a server model made with a handler that records why it
// ended each client's connection.
type resetModel struct {
	name string
	new  func(e *ends) servers.Server
	// concurrent: it serves another client while one is being served, so a
	// bystander can stay connected throughout.
	concurrent bool
}

// resetModels are multiplex once per backend this OS has, a small thread
// pool, and the iterative model.
func resetModels() []resetModel {
	var ms []resetModel
	for _, b := range reactor.Backends() {
		ms = append(ms, resetModel{"multiplex-" + b.String(), func(e *ends) servers.Server {
			return &multiplex.Server{Handler: e.handler(), Backend: b, Loops: 1}
		}, true})
	}
	return append(ms,
		resetModel{"threadpool", func(e *ends) servers.Server {
			return &threadpool.Server{Handler: e.echo, Workers: 4}
		}, true},
		resetModel{"iterative", func(e *ends) servers.Server {
			return &iterative.Server{Handler: e.echo}
		}, false},
	)
}

// resetCase is one way for a client to reset its connection, and the
// error the server must end that connection with.
type resetCase struct {
	name string
	// run connects to addr, resets, and returns the client's address.
	run  func(t *testing.T, addr string) net.Addr
	want unix.Errno
	// raced: the check that the server is still stuck and the client's RST
	// are two steps, and between them a server the kernel let send a
	// little more (see tryMidWrite) can read everything and the FIN, and
	// end the connection with nil before the RST arrives. A client the
	// server ended with nil is then counted apart and another tries, up to
	// three in all; a server that ends every one with nil fails.
	raced bool
}

var resetCases = []resetCase{
	// The server waits for the rest of a message when the RST arrives: its
	// read fails.
	{"mid-read", midRead, unix.ECONNRESET, false},
	// The server is stuck writing a large echo to a client that does not
	// read when the RST arrives: its write fails. Linux reports a reset of
	// an established connection as ECONNRESET.
	{"mid-write", func(t *testing.T, addr string) net.Addr { return midWrite(t, addr, false) }, unix.ECONNRESET, false},
	// The same, but the client half-closed (FIN) before resetting, so the
	// server's socket was in CLOSE_WAIT: Linux reports that reset as EPIPE
	// (tcp_reset in net/ipv4/tcp_input.c), and a write(2) that fails with
	// EPIPE without MSG_NOSIGNAL also sends the writing thread SIGPIPE. The
	// process surviving it is part of the test: Go ignores SIGPIPE for fds
	// other than 1 and 2 (os/signal, "SIGPIPE"), on locked threads too.
	{"mid-write-after-fin", func(t *testing.T, addr string) net.Addr { return midWrite(t, addr, true) }, unix.EPIPE, true},
}

// TestReset: clients that reset mid-read and mid-write end only their own
// connection, with the error the kernel gives (ECONNRESET, or EPIPE after
// a half-close, whose SIGPIPE does not kill the process); the server keeps
// serving a bystander connected throughout (a new client, for iterative)
// and, shut down, leaves no fd and no goroutine behind.
func TestReset(t *testing.T) {
	perCase := 1
	if long() {
		perCase = 2
	}
	for _, m := range resetModels() {
		t.Run(m.name, func(t *testing.T) {
			leakcheck.Check(t)
			// A fixed send buffer: otherwise the kernel grows a socket's
			// send buffer up to tcp_wmem's maximum (4 MiB) even while the
			// client's window is shut, and a client has to send that much
			// before the server is stuck writing, slowly (loopback then
			// drops and retransmits), in a test that is about the errors.
			e := ends{sndbuf: 64 << 10}
			addr := start(t, m.new(&e))
			buf := make([]byte, 64)
			var bystander *net.TCPConn
			if m.concurrent {
				bystander = dial(t, addr)
				if err := roundTrip(bystander, []byte("before"), buf); err != nil {
					t.Fatalf("bystander: %v", err)
				}
			}
			for _, rc := range resetCases {
				t.Run(rc.name, func(t *testing.T) {
					seen, clients := map[string]int{}, 0
					for range perCase {
						var err error
						for try := 1; ; try++ {
							client := rc.run(t, addr)
							waitFor(t, "the server to end the reset connection", ioTimeout, func() bool {
								var done bool
								err, done = e.of(client)
								return done
							})
							seen[errnoOf(err)]++
							clients++
							if err != nil || !rc.raced || try == 3 {
								break
							}
							t.Logf("the server ended %v with nil: it drained the client before the RST arrived; trying again", client)
						}
						if !errors.Is(err, rc.want) {
							t.Errorf("server ended the connection with %v (%s), want %s", err, errnoOf(err), unix.ErrnoName(rc.want))
						}
						// Still serving: the bystander, or a new client.
						c := bystander
						if c == nil {
							c = dial(t, addr)
						}
						if err := roundTrip(c, []byte("still there"), buf); err != nil {
							t.Fatalf("after a reset: %v", err)
						}
						if bystander == nil {
							c.Close()
						}
					}
					t.Logf("%d clients reset; the server's reasons: %v", clients, seen)
				})
			}
			if t.Failed() {
				return
			}
			if err := roundTrip(dial(t, addr), []byte("new client at the end"), buf); err != nil {
				t.Fatalf("new client after the resets: %v", err)
			}
		})
	}
}

// midRead sends half a message, waits for its echo so that the server is
// waiting to read the rest, and resets.
func midRead(t *testing.T, addr string) net.Addr {
	t.Helper()
	c := dial(t, addr)
	if err := roundTrip(c, []byte("half a mess"), make([]byte, 64)); err != nil {
		t.Fatal(err)
	}
	client := c.LocalAddr()
	if err := reset(c); err != nil {
		t.Fatal(err)
	}
	return client
}

// midWrite sends without reading until the server is stuck writing it a
// large echo, and resets; with fin it half-closes first, and resets once
// the server's socket has the FIN (CLOSE_WAIT) while it is still stuck
// writing, with bytes from the client unread. It returns the client's
// address.
//
// Stuck writing, from the server socket's row in /proc/net/tcp: its
// zero-window probe timer is armed (it has bytes to send and the client's
// window is shut), at least 24 KiB from the client wait unread, and either
// the server's own window is full or that row does not change while the
// client sends nothing: a server blocked in write, or paused by its high
// watermark, reads nothing more; one that is not reads them at once (echo
// reads up to 16 KiB at a time, the reactor 64 KiB). The "does not change"
// is an observation window (three polls 20 ms apart), since nothing else
// can say that the server makes no progress.
//
// With fin the client's FIN must reach the server, so everything the
// client sent must fit in the server's receive window: the client sends in
// small writes once the probe timer is armed, each only when all it sent
// before has reached the server, and stops while that is so. A client
// whose server turns out to have drained everything by the time the FIN
// arrives (it should not, but the kernel lets a stuck sender make a little
// progress now and then) is reset uncounted, and a new one tries again.
func midWrite(t *testing.T, addr string, fin bool) net.Addr {
	t.Helper()
	for range 5 {
		if client, ok := tryMidWrite(t, addr, fin); ok {
			return client
		}
	}
	t.Fatal("five clients in a row: the server drained what they sent once they half-closed")
	return nil
}

// tryMidWrite is one attempt of midWrite. With fin it reports false, having
// reset the client, when the server was not stuck after all: once the FIN
// arrived it had read everything (the kernel sometimes lets a stuck sender
// send a little more, as it compacts the receiver's queue).
func tryMidWrite(t *testing.T, addr string, fin bool) (net.Addr, bool) {
	t.Helper()
	c := dial(t, addr)
	srv, client := c.RemoteAddr(), c.LocalAddr()
	chunk := make([]byte, 64<<10)
	for i := range chunk {
		chunk[i] = byte(i)
	}
	c.SetWriteDeadline(time.Now().Add(ioTimeout))
	n := len(chunk)
	var s tcpSocket
	end := time.Now().Add(ioTimeout)
	for sent := 0; ; {
		if time.Now().After(end) || sent > 64<<20 {
			t.Fatalf("sent %d KiB unread and the server is not stuck writing: its socket %+v", sent>>10, s)
		}
		ss, _ := tcpSockets(t, [2]net.Addr{srv, client}, [2]net.Addr{client, srv})
		s = ss[0]
		cs := ss[1]
		if s.timer == timerProbe0 {
			n = 8 << 10        // the server cannot send: from now on, small steps
			full := cs.txq > 0 // bytes the server has not taken yet
			if s.rxq >= 24<<10 && (full && !fin || !full && still(t, srv, client, s)) {
				break
			}
			if full && fin {
				// Let them in before sending more (the kernel may drop
				// and retransmit them), so the FIN finds room.
				time.Sleep(2 * time.Millisecond) // polling a condition, with a deadline
				continue
			}
		}
		if _, err := c.Write(chunk[:n]); err != nil {
			t.Fatalf("write after %d bytes: %v (the server's socket: %+v)", sent, err, s)
		}
		sent += n
	}
	if fin {
		if err := c.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the server's socket to get the FIN (CLOSE_WAIT)", ioTimeout, func() bool {
			s, _ = tcpSocketOf(t, srv, client)
			return s.state != tcpEstablished
		})
		// rx_queue counts the FIN as a byte.
		if s.state != tcpCloseWait || s.rxq <= 1 || s.txq == 0 {
			t.Logf("the server's socket after the client's FIN: %+v, not CLOSE_WAIT with bytes to read and to send; trying again", s)
			reset(c)
			return nil, false
		}
	}
	if err := reset(c); err != nil {
		t.Fatal(err)
	}
	return client, true
}

// still reports whether the socket from local to remote keeps the queues
// and timer of s for three polls 20 ms apart.
func still(t *testing.T, local, remote net.Addr, s tcpSocket) bool {
	for range 3 {
		time.Sleep(20 * time.Millisecond) // an observation window: see midWrite
		if now, _ := tcpSocketOf(t, local, remote); now != s {
			return false
		}
	}
	return true
}
