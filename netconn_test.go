package reactor

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/poller"
)

// The tests in this file check that Listen and Dial give connections that
// keep the whole net.Conn contract on every backend this OS has. Each runs
// through netTest, which starts the shared loop group on one backend, checks
// the loops really use it, and checks after the test that the group stopped
// and no goroutine or fd leaked.

// netTest runs fn as a subtest per backend in poller.Available.
func netTest(t *testing.T, fn func(t *testing.T)) {
	t.Helper()
	for _, b := range poller.Available() {
		t.Run(b.String(), func(t *testing.T) {
			t.Setenv(BackendEnv, b.String())
			waitGroupStopped(t)
			netCheckLeaks(t)
			// Hold the group for the whole subtest, so it runs on b from
			// start to end and its loops can be checked now.
			if _, err := group.acquire(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(group.release)
			for i, got := range groupBackends() {
				if got != b {
					t.Fatalf("loop %d runs on %v, want %v", i, got, b)
				}
			}
			fn(t)
		})
	}
}

// groupBackends returns the backend of every loop of the running group.
func groupBackends() []poller.Backend {
	group.mu.Lock()
	defer group.mu.Unlock()
	var bs []poller.Backend
	for _, l := range group.loops {
		bs = append(bs, l.p.Backend())
	}
	return bs
}

// waitGroupStopped fails t unless the group is released and its loops have
// returned within 5s.
func waitGroupStopped(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := group.waitStopped(ctx); err != nil {
		t.Fatalf("loop group did not stop: %v", err)
	}
}

// netOpenFDs counts this process's open fds, or -1 where /proc/self/fd does
// not exist (the fd check is then skipped).
func netOpenFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// netCheckLeaks records the goroutine and fd counts now and, when the test
// ends (after the cleanups registered later), waits for the loop group to
// stop and both counts to be back, failing after 5s.
func netCheckLeaks(t *testing.T) {
	t.Helper()
	gs, fds := runtime.NumGoroutine(), netOpenFDs()
	t.Cleanup(func() {
		waitGroupStopped(t)
		end := time.Now().Add(5 * time.Second)
		for {
			ng, nf := runtime.NumGoroutine(), netOpenFDs()
			if ng <= gs && nf <= fds {
				return
			}
			if time.Now().After(end) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("leak: goroutines %d -> %d, fds %d -> %d\n%s", gs, ng, fds, nf, buf)
				return
			}
			time.Sleep(5 * time.Millisecond) // polling a condition, with a deadline
		}
	})
}

// within runs fn and fails t if it has not returned after d: a hang shows
// as a failure naming what hung, not as the test binary's timeout.
func within[T any](t *testing.T, d time.Duration, what string, fn func() T) T {
	t.Helper()
	ch := make(chan T, 1)
	go func() { ch <- fn() }()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
		panic("unreachable")
	}
}

// ioResult is what a Read or Write returned.
type ioResult struct {
	n   int
	err error
}

// netAddr returns a listening address for network: a free loopback port,
// or a socket path in a fresh temporary directory.
func netAddr(t *testing.T, network string) string {
	t.Helper()
	if network != "unix" {
		return "127.0.0.1:0"
	}
	dir := t.TempDir()
	if len(dir) > 90 { // sun_path holds 104 bytes on the BSDs
		var err error
		if dir, err = os.MkdirTemp("", "rx"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
	}
	return filepath.Join(dir, "s")
}

// netListen calls Listen and closes the listener when the test ends.
func netListen(t *testing.T, network string) net.Listener {
	t.Helper()
	ln, err := Listen(network, netAddr(t, network))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// netDial calls Dial and closes the connection when the test ends.
func netDial(t *testing.T, network, addr string) net.Conn {
	t.Helper()
	c, err := Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// netPair returns the two ends of one connection: client from Dial, server
// from Accept. Both are closed when the test ends.
func netPair(t *testing.T, network string) (client, server net.Conn) {
	t.Helper()
	ln, err := Listen(network, netAddr(t, network))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type accepted struct {
		c   net.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		ch <- accepted{c, err}
	}()
	client = netDial(t, network, ln.Addr().String())
	a := within(t, 5*time.Second, "Accept", func() accepted { return <-ch })
	if a.err != nil {
		t.Fatal(a.err)
	}
	t.Cleanup(func() { a.c.Close() })
	return client, a.c
}

// netServe accepts on ln until it is closed, running handle for every
// connection in its own goroutine and closing the connection after. When
// the test ends it closes ln and waits for every handler.
func netServe(t *testing.T, ln net.Listener, handle func(c net.Conn)) {
	t.Helper()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					t.Errorf("Accept: %v", err)
				}
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		within(t, 10*time.Second, "server handlers", func() bool { wg.Wait(); return true })
	})
}

// echoConn copies everything c reads back to c, then shuts down c's sending
// side so the peer reads end of file.
func echoConn(c net.Conn) {
	io.Copy(c, c)
	c.(*netConn).CloseWrite()
}

// pfdOf returns the pollFD behind a connection or listener of this package.
func pfdOf(t *testing.T, x any) *pollFD {
	t.Helper()
	switch x := x.(type) {
	case *netConn:
		return x.pfd
	case *listener:
		return x.pfd
	}
	t.Fatalf("%T is not a reactor connection or listener", x)
	return nil
}

// onLoopOf runs fn on p's loop and waits for it.
func onLoopOf(t *testing.T, p *pollFD, fn func()) {
	t.Helper()
	done := make(chan struct{})
	if err := p.loop.Post(func() { fn(); close(done) }); err != nil {
		t.Fatal(err)
	}
	<-done
}

// waitArmed waits until p's loop watches p for dir: a goroutine has found
// the fd not ready and parked (or is about to park) on it.
func waitArmed(t *testing.T, x any, dir poller.Events) {
	t.Helper()
	p := pfdOf(t, x)
	end := time.Now().Add(5 * time.Second)
	for {
		var want poller.Events
		onLoopOf(t, p, func() { want = p.want })
		if want&dir != 0 {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("nothing parked for %v within 5s", dir)
		}
		time.Sleep(time.Millisecond) // polling a condition, with a deadline
	}
}

// randomBytes returns n bytes of a fixed pseudo-random sequence.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := mrand.NewChaCha8([32]byte{1, 2, 3})
	r.Read(b)
	return b
}

// checkTimeout fails t unless err is a deadline error as net's are.
func checkTimeout(t *testing.T, op string, err error) {
	t.Helper()
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("%s: err = %v, want os.ErrDeadlineExceeded", op, err)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("%s: err = %v is not a net.Error with Timeout() true", op, err)
	}
}

// checkClosed fails t unless err matches net.ErrClosed.
func checkClosed(t *testing.T, op string, err error) {
	t.Helper()
	if !errors.Is(err, net.ErrClosed) {
		t.Fatalf("%s: err = %v, want net.ErrClosed", op, err)
	}
}

var streamNetworks = []string{"tcp", "unix"}

func TestNetConnEcho(t *testing.T) {
	netTest(t, func(t *testing.T) {
		for _, network := range streamNetworks {
			t.Run(network, func(t *testing.T) {
				ln := netListen(t, network)
				if ln.Addr() == nil || ln.Addr().Network() != network {
					t.Fatalf("Addr() = %v, want a %s address", ln.Addr(), network)
				}
				netServe(t, ln, echoConn)
				var wg sync.WaitGroup
				for i := range 8 {
					c := netDial(t, network, ln.Addr().String())
					if network == "tcp" && c.RemoteAddr().String() != ln.Addr().String() {
						t.Errorf("RemoteAddr() = %v, want %v", c.RemoteAddr(), ln.Addr())
					}
					wg.Add(1)
					go func() {
						defer wg.Done()
						for j := range 20 {
							msg := fmt.Appendf(nil, "client %d message %d", i, j)
							if _, err := c.Write(msg); err != nil {
								t.Errorf("Write: %v", err)
								return
							}
							got := make([]byte, len(msg))
							if _, err := io.ReadFull(c, got); err != nil {
								t.Errorf("Read: %v", err)
								return
							}
							if !bytes.Equal(got, msg) {
								t.Errorf("echo: got %q, want %q", got, msg)
							}
						}
					}()
				}
				wg.Wait()
			})
		}
	})
}

func TestNetConnPartialReads(t *testing.T) {
	netTest(t, func(t *testing.T) {
		for _, network := range streamNetworks {
			t.Run(network, func(t *testing.T) {
				c, s := netPair(t, network)
				want := randomBytes(100_000)
				go func() {
					s.Write(want)
					s.Close()
				}()
				var got []byte
				buf := make([]byte, 7)
				for {
					n, err := c.Read(buf)
					if n > len(buf) || n < 0 {
						t.Fatalf("Read returned n = %d for a %d-byte buffer", n, len(buf))
					}
					got = append(got, buf[:n]...)
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatalf("Read: %v", err)
					}
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("read %d bytes, not the %d written", len(got), len(want))
				}
				// A zero-length read returns at once.
				if n, err := c.Read(nil); n != 0 || (err != nil && err != io.EOF) {
					t.Fatalf("Read(nil) = %d, %v", n, err)
				}
			})
		}
	})
}

func TestNetConnLargeWrite(t *testing.T) {
	netTest(t, func(t *testing.T) {
		for _, network := range streamNetworks {
			t.Run(network, func(t *testing.T) {
				c, s := netPair(t, network)
				want := randomBytes(32 << 20)
				got := make([]byte, len(want))
				read := make(chan ioResult, 1)
				go func() {
					n, err := io.ReadFull(s, got)
					read <- ioResult{n, err}
				}()
				n, err := within(t, 30*time.Second, "Write", func() ioResult {
					n, err := c.Write(want)
					return ioResult{n, err}
				}).unpack()
				if err != nil || n != len(want) {
					t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(want))
				}
				r := within(t, 30*time.Second, "ReadFull", func() ioResult { return <-read })
				if r.err != nil {
					t.Fatalf("ReadFull: %v after %d bytes", r.err, r.n)
				}
				if !bytes.Equal(got, want) {
					t.Fatal("the bytes read differ from the bytes written")
				}
			})
		}
	})
}

func (r ioResult) unpack() (int, error) { return r.n, r.err }

// TestNetConnReadWhileWrite has one goroutine writing 8 MiB and another
// reading the echo of it on the same connection, so both park on the same
// fd at once, one for each direction.
func TestNetConnReadWhileWrite(t *testing.T) {
	netTest(t, func(t *testing.T) {
		for _, network := range streamNetworks {
			t.Run(network, func(t *testing.T) {
				c, s := netPair(t, network)
				go echoConn(s)
				want := randomBytes(8 << 20)
				wrote := make(chan error, 1)
				go func() {
					_, err := c.Write(want)
					if err == nil {
						err = c.(*netConn).CloseWrite()
					}
					wrote <- err
				}()
				got := within(t, 30*time.Second, "ReadAll", func() []byte {
					b, err := io.ReadAll(c)
					if err != nil {
						t.Errorf("ReadAll: %v", err)
					}
					return b
				})
				if err := <-wrote; err != nil {
					t.Fatalf("Write: %v", err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("read back %d bytes, differing from the %d written", len(got), len(want))
				}
			})
		}
	})
}

func TestNetConnReadDeadline(t *testing.T) {
	netTest(t, func(t *testing.T) {
		c, s := netPair(t, "tcp")
		buf := make([]byte, 16)

		// In the past: fails at once, even with data waiting, as net does.
		s.Write([]byte("x"))
		c.SetReadDeadline(time.Now().Add(-time.Second))
		_, err := c.Read(buf)
		checkTimeout(t, "Read past deadline", err)

		// A timeout leaves the connection usable: clear it and read.
		c.SetReadDeadline(time.Time{})
		if n, err := c.Read(buf); n != 1 || err != nil {
			t.Fatalf("Read after clearing the deadline = %d, %v", n, err)
		}

		// In the future: blocks until then.
		start := time.Now()
		c.SetReadDeadline(start.Add(50 * time.Millisecond))
		_, err = within(t, 5*time.Second, "Read", func() ioResult {
			n, err := c.Read(buf)
			return ioResult{n, err}
		}).unpack()
		checkTimeout(t, "Read future deadline", err)
		if el := time.Since(start); el < 45*time.Millisecond {
			t.Fatalf("Read timed out after %v, before its 50ms deadline", el)
		}

		// Moved to the past while a Read is parked: it returns.
		c.SetReadDeadline(time.Time{})
		res := make(chan ioResult, 1)
		go func() { n, err := c.Read(buf); res <- ioResult{n, err} }()
		waitArmed(t, c, poller.Readable)
		c.SetReadDeadline(time.Now().Add(-time.Second))
		r := within(t, 5*time.Second, "parked Read", func() ioResult { return <-res })
		checkTimeout(t, "parked Read, deadline moved to the past", r.err)

		// Extended while a Read is parked: the first deadline passes
		// without effect and the data that comes later is read.
		first := time.Now().Add(50 * time.Millisecond)
		c.SetReadDeadline(first)
		go func() { n, err := c.Read(buf); res <- ioResult{n, err} }()
		waitArmed(t, c, poller.Readable)
		c.SetReadDeadline(time.Now().Add(time.Minute))
		time.Sleep(time.Until(first) + 50*time.Millisecond) // let the first deadline pass
		s.Write([]byte("late"))
		r = within(t, 5*time.Second, "parked Read", func() ioResult { return <-res })
		if r.err != nil || string(buf[:r.n]) != "late" {
			t.Fatalf("Read after extending the deadline = %q, %v; want \"late\", nil", buf[:r.n], r.err)
		}

		// Cleared while a Read is parked: same.
		first = time.Now().Add(50 * time.Millisecond)
		c.SetReadDeadline(first)
		go func() { n, err := c.Read(buf); res <- ioResult{n, err} }()
		waitArmed(t, c, poller.Readable)
		c.SetReadDeadline(time.Time{})
		time.Sleep(time.Until(first) + 50*time.Millisecond) // let the old deadline pass
		s.Write([]byte("later"))
		r = within(t, 5*time.Second, "parked Read", func() ioResult { return <-res })
		if r.err != nil || string(buf[:r.n]) != "later" {
			t.Fatalf("Read after clearing the deadline = %q, %v; want \"later\", nil", buf[:r.n], r.err)
		}

		// Many short deadlines in a row: every one fires, none is lost.
		for i := range 20 {
			c.SetReadDeadline(time.Now().Add(time.Duration(i%3) * time.Millisecond))
			_, err := within(t, 5*time.Second, "Read", func() ioResult {
				n, err := c.Read(buf)
				return ioResult{n, err}
			}).unpack()
			checkTimeout(t, fmt.Sprintf("Read %d", i), err)
		}
	})
}

func TestNetConnWriteDeadline(t *testing.T) {
	netTest(t, func(t *testing.T) {
		for _, network := range streamNetworks {
			t.Run(network, func(t *testing.T) {
				c, _ := netPair(t, network) // the peer never reads
				big := make([]byte, 32<<20)
				c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
				n, err := within(t, 5*time.Second, "Write", func() ioResult {
					n, err := c.Write(big)
					return ioResult{n, err}
				}).unpack()
				checkTimeout(t, "Write", err)
				if n <= 0 || n >= len(big) {
					t.Fatalf("Write timed out with n = %d, want 0 < n < %d", n, len(big))
				}
				// In the past: fails at once, writing nothing.
				c.SetWriteDeadline(time.Now().Add(-time.Second))
				n, err = c.Write([]byte("x"))
				checkTimeout(t, "Write past deadline", err)
				if n != 0 {
					t.Fatalf("Write past deadline wrote %d bytes", n)
				}
				// Moved to the past while a Write is parked.
				c.SetWriteDeadline(time.Time{})
				res := make(chan ioResult, 1)
				go func() { n, err := c.Write(big); res <- ioResult{n, err} }()
				waitArmed(t, c, poller.Writable)
				c.SetWriteDeadline(time.Now().Add(-time.Second))
				r := within(t, 5*time.Second, "parked Write", func() ioResult { return <-res })
				checkTimeout(t, "parked Write", r.err)
			})
		}
	})
}

func TestNetConnSetDeadline(t *testing.T) {
	netTest(t, func(t *testing.T) {
		c, _ := netPair(t, "tcp")
		c.SetDeadline(time.Now().Add(-time.Second))
		_, err := c.Read(make([]byte, 1))
		checkTimeout(t, "Read", err)
		_, err = c.Write([]byte("x"))
		checkTimeout(t, "Write", err)

		c.SetDeadline(time.Now().Add(30 * time.Millisecond))
		_, err = within(t, 5*time.Second, "Read", func() ioResult {
			n, err := c.Read(make([]byte, 1))
			return ioResult{n, err}
		}).unpack()
		checkTimeout(t, "Read", err)
		_, err = within(t, 5*time.Second, "Write", func() ioResult {
			n, err := c.Write(make([]byte, 32<<20))
			return ioResult{n, err}
		}).unpack()
		checkTimeout(t, "Write", err)

		c.SetDeadline(time.Time{})
		if _, err := c.Write([]byte("x")); err != nil {
			// The buffer may still be full of the timed-out write; a
			// clear deadline must not report a timeout.
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("Write after clearing the deadline: %v", err)
			}
		}
	})
}

func TestNetConnCloseUnblocks(t *testing.T) {
	netTest(t, func(t *testing.T) {
		t.Run("Read", func(t *testing.T) {
			c, _ := netPair(t, "tcp")
			res := make(chan ioResult, 1)
			go func() { n, err := c.Read(make([]byte, 8)); res <- ioResult{n, err} }()
			waitArmed(t, c, poller.Readable)
			if err := c.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			r := within(t, 5*time.Second, "parked Read", func() ioResult { return <-res })
			checkClosed(t, "parked Read", r.err)
		})
		t.Run("Write", func(t *testing.T) {
			c, _ := netPair(t, "tcp")
			res := make(chan ioResult, 1)
			go func() { n, err := c.Write(make([]byte, 32<<20)); res <- ioResult{n, err} }()
			waitArmed(t, c, poller.Writable)
			c.Close()
			r := within(t, 5*time.Second, "parked Write", func() ioResult { return <-res })
			checkClosed(t, "parked Write", r.err)
			if r.n <= 0 {
				t.Fatalf("parked Write reported n = %d, want the bytes it wrote", r.n)
			}
		})
		t.Run("Accept", func(t *testing.T) {
			ln := netListen(t, "tcp")
			res := make(chan error, 1)
			go func() { _, err := ln.Accept(); res <- err }()
			waitArmed(t, ln, poller.Readable)
			if err := ln.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			checkClosed(t, "parked Accept", within(t, 5*time.Second, "parked Accept", func() error { return <-res }))
			_, err := ln.Accept()
			checkClosed(t, "Accept after Close", err)
			checkClosed(t, "second Close", ln.Close())
		})
		t.Run("ConcurrentAccept", func(t *testing.T) {
			// Several goroutines in Accept at once: each connection goes to
			// one of them, and Close ends the others.
			ln := netListen(t, "tcp")
			const n = 4
			res := make(chan net.Conn, n)
			errc := make(chan error, n)
			for range n {
				go func() {
					c, err := ln.Accept()
					if err != nil {
						errc <- err
						return
					}
					res <- c
				}()
			}
			for range n - 1 {
				netDial(t, "tcp", ln.Addr().String())
				c := within(t, 5*time.Second, "Accept", func() net.Conn { return <-res })
				c.Close()
			}
			ln.Close()
			checkClosed(t, "Accept", within(t, 5*time.Second, "Accept", func() error { return <-errc }))
		})
		t.Run("AfterClose", func(t *testing.T) {
			c, _ := netPair(t, "tcp")
			if err := c.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			_, err := c.Read(make([]byte, 1))
			checkClosed(t, "Read", err)
			_, err = c.Write([]byte("x"))
			checkClosed(t, "Write", err)
			checkClosed(t, "SetDeadline", c.SetDeadline(time.Now()))
			checkClosed(t, "SetReadDeadline", c.SetReadDeadline(time.Now()))
			checkClosed(t, "SetWriteDeadline", c.SetWriteDeadline(time.Now()))
			checkClosed(t, "second Close", c.Close())
			var ne *net.OpError
			if err := c.Close(); !errors.As(err, &ne) {
				t.Fatalf("second Close: %T is not a *net.OpError", err)
			}
		})
		t.Run("CloseRace", func(t *testing.T) {
			// Close racing with reads, writes and deadline changes in
			// flight: everything returns, nothing panics.
			for range 20 {
				c, s := netPair(t, "tcp")
				var wg sync.WaitGroup
				for _, f := range []func(){
					func() { c.Read(make([]byte, 10)) },
					func() { c.Write(make([]byte, 1<<20)) },
					func() { c.SetDeadline(time.Now().Add(time.Millisecond)) },
					func() { s.Write([]byte("hello")) },
					func() { c.Close() },
					func() { c.Close() },
				} {
					wg.Add(1)
					go func() { defer wg.Done(); f() }()
				}
				within(t, 5*time.Second, "racing calls", func() bool { wg.Wait(); return true })
				c.Close()
				s.Close()
			}
		})
	})
}

func TestNetConnPeerClose(t *testing.T) {
	netTest(t, func(t *testing.T) {
		for _, network := range streamNetworks {
			t.Run(network, func(t *testing.T) {
				c, s := netPair(t, network)
				// Data then end of file, with the reader parked first.
				res := make(chan ioResult, 1)
				buf := make([]byte, 64)
				go func() { n, err := c.Read(buf); res <- ioResult{n, err} }()
				waitArmed(t, c, poller.Readable)
				s.Write([]byte("bye"))
				s.Close()
				r := within(t, 5*time.Second, "Read", func() ioResult { return <-res })
				if r.err != nil || string(buf[:r.n]) != "bye" {
					t.Fatalf("Read = %q, %v; want \"bye\", nil", buf[:r.n], r.err)
				}
				for range 2 {
					if n, err := c.Read(buf); n != 0 || err != io.EOF {
						t.Fatalf("Read after the peer closed = %d, %v; want 0, io.EOF", n, err)
					}
				}
				// A parked Read sees end of file too.
				c2, s2 := netPair(t, network)
				go func() { n, err := c2.Read(buf); res <- ioResult{n, err} }()
				waitArmed(t, c2, poller.Readable)
				s2.Close()
				r = within(t, 5*time.Second, "parked Read", func() ioResult { return <-res })
				if r.n != 0 || r.err != io.EOF {
					t.Fatalf("parked Read after the peer closed = %d, %v; want 0, io.EOF", r.n, r.err)
				}
				// CloseWrite: the peer reads end of file and can still write.
				c3, s3 := netPair(t, network)
				if err := c3.(*netConn).CloseWrite(); err != nil {
					t.Fatalf("CloseWrite: %v", err)
				}
				if n, err := s3.Read(buf); n != 0 || err != io.EOF {
					t.Fatalf("Read after CloseWrite = %d, %v; want 0, io.EOF", n, err)
				}
				s3.Write([]byte("still"))
				if n, err := io.ReadFull(c3, buf[:5]); err != nil || string(buf[:n]) != "still" {
					t.Fatalf("Read after CloseWrite = %q, %v", buf[:n], err)
				}
			})
		}
	})
}

// resetOnClose makes Close of c send a reset (SO_LINGER 0).
func resetOnClose(t *testing.T, c net.Conn) {
	t.Helper()
	fd := pfdOf(t, c).fd
	if err := unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0}); err != nil {
		t.Fatal(err)
	}
}

// checkReset fails t unless err is what a read after a reset may give:
// ECONNRESET, or end of file.
func checkReset(t *testing.T, op string, err error) {
	t.Helper()
	if !errors.Is(err, unix.ECONNRESET) && err != io.EOF {
		t.Fatalf("%s: err = %v, want ECONNRESET or io.EOF", op, err)
	}
}

func TestNetConnPeerReset(t *testing.T) {
	netTest(t, func(t *testing.T) {
		buf := make([]byte, 64)
		t.Run("parked", func(t *testing.T) {
			c, s := netPair(t, "tcp")
			res := make(chan ioResult, 1)
			go func() { n, err := c.Read(buf); res <- ioResult{n, err} }()
			waitArmed(t, c, poller.Readable)
			resetOnClose(t, s)
			s.Close()
			r := within(t, 5*time.Second, "parked Read", func() ioResult { return <-res })
			checkReset(t, "parked Read", r.err)
			_, err := within(t, 5*time.Second, "Read", func() ioResult {
				n, err := c.Read(buf)
				return ioResult{n, err}
			}).unpack()
			checkReset(t, "Read after reset", err)
		})
		t.Run("unread", func(t *testing.T) {
			// Unread data and a reset: the reset wins (ECONNRESET), or
			// the data then end of file; never a hang.
			c, s := netPair(t, "tcp")
			c.Write([]byte("unread by the peer"))
			s.Write([]byte("data"))
			resetOnClose(t, s)
			// Wait until s has the bytes, so its close is a reset.
			sb := make([]byte, 18)
			if _, err := io.ReadFull(s, sb[:1]); err != nil {
				t.Fatal(err)
			}
			s.Close()
			var err error
			for i := 0; err == nil; i++ {
				if i > 10 {
					t.Fatal("Read keeps succeeding after a reset")
				}
				_, err = within(t, 5*time.Second, "Read", func() ioResult {
					n, err := c.Read(buf)
					return ioResult{n, err}
				}).unpack()
			}
			checkReset(t, "Read", err)
			// Writing fails too, at once or after a few tries.
			for i := 0; ; i++ {
				_, err := within(t, 5*time.Second, "Write", func() ioResult {
					n, err := c.Write([]byte("x"))
					return ioResult{n, err}
				}).unpack()
				if err != nil {
					if !errors.Is(err, unix.EPIPE) && !errors.Is(err, unix.ECONNRESET) {
						t.Fatalf("Write after reset: %v, want EPIPE or ECONNRESET", err)
					}
					break
				}
				if i > 10 {
					t.Fatal("Write keeps succeeding after a reset")
				}
			}
		})
		t.Run("nospin", func(t *testing.T) {
			// A reset connection nobody reads must not make its loop spin
			// on a hang-up it cannot clear (epoll and poll report one
			// whatever the interest). The rate of events is measured over
			// a fixed period, so this waits that period.
			c, s := netPair(t, "tcp")
			resetOnClose(t, s)
			s.Close()
			p := pfdOf(t, c)
			var before, after int
			onLoopOf(t, p, func() { before = p.nevents })
			time.Sleep(200 * time.Millisecond)
			onLoopOf(t, p, func() { after = p.nevents })
			if after-before > 5 {
				t.Fatalf("the loop served %d events in 200ms for a reset connection nobody reads", after-before)
			}
			_, err := c.Read(buf)
			checkReset(t, "Read", err)
		})
	})
}

func TestDialContext(t *testing.T) {
	netTest(t, func(t *testing.T) {
		ln := netListen(t, "tcp")
		addr := ln.Addr().String()
		t.Run("cancelled", func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			c, err := DialContext(ctx, "tcp", addr)
			if err == nil {
				c.Close()
				t.Fatal("DialContext with a cancelled context succeeded")
			}
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
		})
		t.Run("expired", func(t *testing.T) {
			ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
			defer cancel()
			c, err := DialContext(ctx, "tcp", addr)
			if err == nil {
				c.Close()
				t.Fatal("DialContext past its deadline succeeded")
			}
			var ne net.Error
			if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("err = %v, want context.DeadlineExceeded and a timeout", err)
			}
		})
		t.Run("live", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, err := DialContext(ctx, "tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
		})
		t.Run("inflight", func(t *testing.T) {
			// A listener whose backlog is full leaves a connect in flight;
			// the context ends it.
			full := fullBacklog(t)
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			c, err := within(t, 5*time.Second, "DialContext", func() dialResult {
				c, err := DialContext(ctx, "tcp", full)
				return dialResult{c, err}
			}).unpack()
			if err == nil {
				c.Close()
				t.Skip("the kernel completed a connect to a full backlog")
			}
			var ne net.Error
			if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("err = %v, want context.DeadlineExceeded and a timeout", err)
			}
			if el := time.Since(start); el < 90*time.Millisecond {
				t.Fatalf("DialContext gave up after %v, before its 100ms deadline", el)
			}
			ctx, cancel = context.WithCancel(context.Background())
			time.AfterFunc(50*time.Millisecond, cancel)
			_, err = within(t, 5*time.Second, "DialContext", func() dialResult {
				c, err := DialContext(ctx, "tcp", full)
				return dialResult{c, err}
			}).unpack()
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
		})
		t.Run("refused", func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			closed := l.Addr().String()
			l.Close()
			c, err := Dial("tcp", closed)
			if err == nil {
				c.Close()
				t.Fatal("Dial to a closed port succeeded")
			}
			if !errors.Is(err, unix.ECONNREFUSED) {
				t.Fatalf("err = %v, want ECONNREFUSED", err)
			}
			var oe *net.OpError
			if !errors.As(err, &oe) || oe.Op != "dial" || !strings.Contains(err.Error(), closed) {
				t.Fatalf("err = %v, want a *net.OpError for dial naming %s", err, closed)
			}
			if _, err := Dial("unix", filepath.Join(t.TempDir(), "none")); err == nil {
				t.Fatal("Dial to a missing unix socket succeeded")
			}
			if _, err := Dial("udp", closed); err == nil {
				t.Fatal("Dial udp succeeded")
			}
		})
	})
}

type dialResult struct {
	c   net.Conn
	err error
}

func (r dialResult) unpack() (net.Conn, error) { return r.c, r.err }

// fullBacklog returns the address of a listener that never accepts and
// whose backlog is full, so a further connect stays in flight. It skips t
// where the kernel accepts such connects anyway.
func fullBacklog(t *testing.T) string {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*unix.SockaddrInet4).Port)
	for range 16 {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err != nil {
			return addr
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Skip("the kernel keeps accepting connects to a full backlog")
	return ""
}

func TestNetHTTP(t *testing.T) {
	netTest(t, func(t *testing.T) {
		ln := netListen(t, "tcp")
		big := randomBytes(4 << 20)
		mux := http.NewServeMux()
		mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "hello %s", r.URL.Query().Get("n"))
		})
		mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) { w.Write(big) })
		mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) { io.Copy(w, r.Body) })
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ln) }()

		stock := &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}
		ours := &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return DialContext(ctx, network, addr)
			},
		}, Timeout: 30 * time.Second}
		base := "http://" + ln.Addr().String()
		for name, client := range map[string]*http.Client{"stock": stock, "reactor": ours} {
			var wg sync.WaitGroup
			for i := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for j := range 4 {
						path, want := fmt.Sprintf("/hello?n=%d", i*10+j), []byte(fmt.Sprintf("hello %d", i*10+j))
						var body io.Reader
						method := "GET"
						switch (i + j) % 3 {
						case 1:
							path, want = "/big", big
						case 2:
							method, path, want = "POST", "/echo", big[:1<<20]
							body = bytes.NewReader(want)
						}
						req, err := http.NewRequest(method, base+path, body)
						if err != nil {
							t.Error(err)
							return
						}
						resp, err := client.Do(req)
						if err != nil {
							t.Errorf("%s client: %s %s: %v", name, method, path, err)
							return
						}
						got, err := io.ReadAll(resp.Body)
						resp.Body.Close()
						if err != nil {
							t.Errorf("%s client: %s %s: reading the body: %v", name, method, path, err)
							return
						}
						if resp.StatusCode != 200 || !bytes.Equal(got, want) {
							t.Errorf("%s client: %s %s: status %d, %d-byte body, want 200 and %d bytes", name, method, path, resp.StatusCode, len(got), len(want))
						}
					}
				}()
			}
			wg.Wait()
			client.CloseIdleConnections()
		}

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Fatalf("Serve returned %v, want http.ErrServerClosed", err)
		}
	})
}

// selfSigned returns a TLS certificate for 127.0.0.1 and a pool trusting it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "reactor test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, pool
}

func TestNetTLS(t *testing.T) {
	netTest(t, func(t *testing.T) {
		cert, pool := selfSigned(t)
		ln := tls.NewListener(netListen(t, "tcp"), &tls.Config{Certificates: []tls.Certificate{cert}})
		netServe(t, ln, func(c net.Conn) {
			io.Copy(c, c)
		})
		raw := netDial(t, "tcp", ln.Addr().String())
		c := tls.Client(raw, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.HandshakeContext(ctx); err != nil {
			t.Fatalf("handshake: %v", err)
		}
		if st := c.ConnectionState(); !st.HandshakeComplete || len(st.PeerCertificates) == 0 {
			t.Fatalf("handshake state: %+v", st)
		}
		for _, size := range []int{1, 100, 1 << 20} {
			want := randomBytes(size)
			go c.Write(want)
			got := make([]byte, size)
			if _, err := within(t, 10*time.Second, "ReadFull", func() ioResult {
				n, err := io.ReadFull(c, got)
				return ioResult{n, err}
			}).unpack(); err != nil {
				t.Fatalf("echo of %d bytes: %v", size, err)
			}
			if !bytes.Equal(got, want) { // cmp.Diff walks 1 MiB slowly; only for the report
				t.Fatalf("echo of %d bytes differs (-want +got):\n%.500s", size, cmp.Diff(want, got))
			}
		}
		// A read deadline works through TLS as well.
		c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		_, err := c.Read(make([]byte, 1))
		checkTimeout(t, "TLS Read", err)
	})
}

// TestNetConnAllocs measures the steady state: a Read that finds data
// waiting and a Write the kernel takes at once allocate nothing.
func TestNetConnAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	netTest(t, func(t *testing.T) {
		for _, network := range streamNetworks {
			t.Run(network, func(t *testing.T) {
				c, s := netPair(t, network)
				b := []byte{'x'}
				write := func() {
					if n, err := c.Write(b); n != 1 || err != nil {
						t.Fatalf("Write = %d, %v", n, err)
					}
				}
				read := func() {
					if n, err := s.Read(b); n != 1 || err != nil {
						t.Fatalf("Read = %d, %v", n, err)
					}
				}
				// AllocsPerRun calls f runs+1 times. A unix socket holds
				// only a few hundred one-byte writes, so at most 101 wait
				// unread at a time.
				w := testing.AllocsPerRun(100, write)
				r := testing.AllocsPerRun(100, read)
				wr := testing.AllocsPerRun(1000, func() { write(); read() })
				d := testing.AllocsPerRun(1000, func() { s.SetReadDeadline(time.Now().Add(time.Hour)) })
				s.SetReadDeadline(time.Time{})
				// A Read that parks until another goroutine writes: the
				// arm, the poller event and the wake-up, end to end. The
				// reader goroutine reads again at once after each byte, so
				// it is usually parked by the time the next byte comes;
				// the loop's event count tells how often it was.
				got := make(chan struct{})
				go func() {
					rb := []byte{0}
					for {
						if _, err := s.Read(rb); err != nil {
							close(got)
							return
						}
						got <- struct{}{}
					}
				}()
				sp := pfdOf(t, s)
				var ev0, ev1 int
				onLoopOf(t, sp, func() { ev0 = sp.nevents })
				const parkRuns = 200
				pr := testing.AllocsPerRun(parkRuns, func() {
					write()
					<-got
				})
				onLoopOf(t, sp, func() { ev1 = sp.nevents })
				s.SetReadDeadline(time.Now()) // ends the reader
				<-got
				s.SetReadDeadline(time.Time{})
				t.Logf("allocs per call: Write %v, Read %v, Write+Read %v, SetReadDeadline %v; Read parked until a Write %v (%d of %d parked)", w, r, wr, d, pr, ev1-ev0, parkRuns+1)
				// The parked Read is only logged: it is 0 in a normal build,
				// but under -race the poller's Wake allocates (x/sys's race
				// annotations make its stack buffer escape).
				if w != 0 || r != 0 || wr != 0 || d != 0 {
					t.Errorf("allocs per call: Write %v, Read %v, Write+Read %v, SetReadDeadline %v; want 0", w, r, wr, d)
				}
			})
		}
	})
}

// TestNetGroupLifecycle checks the loops start with the first listener or
// connection and stop with the last, and that the environment picks the
// backend of the next start.
func TestNetGroupLifecycle(t *testing.T) {
	waitGroupStopped(t)
	for _, b := range poller.Available() {
		t.Setenv(BackendEnv, b.String())
		ln, err := Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		bs := groupBackends()
		if len(bs) != runtime.GOMAXPROCS(0) {
			t.Fatalf("%d loops, want GOMAXPROCS = %d", len(bs), runtime.GOMAXPROCS(0))
		}
		for _, got := range bs {
			if got != b {
				t.Fatalf("loop on %v, want %v", got, b)
			}
		}
		c, err := Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		ln.Close()
		if len(groupBackends()) == 0 {
			t.Fatal("the group stopped while a connection is open")
		}
		c.Close()
		waitGroupStopped(t)
	}
	t.Setenv(BackendEnv, "nonsense")
	if _, err := Listen("tcp", "127.0.0.1:0"); err == nil || !strings.Contains(err.Error(), BackendEnv) {
		t.Fatalf("Listen with %s=nonsense: %v, want an error naming %s", BackendEnv, err, BackendEnv)
	}
	waitGroupStopped(t)
}

// TestListenSelectFDSetSize checks a connection the select backend cannot
// watch (fd >= FD_SETSIZE): Dial fails, Accept returns a temporary error
// (so net/http keeps serving) and the listener goes on accepting.
func TestListenSelectFDSetSize(t *testing.T) {
	if !slices.Contains(poller.Available(), poller.Select) {
		t.Skip("no select backend")
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < 1200 {
		t.Skipf("RLIMIT_NOFILE %d is too low to reach FD_SETSIZE", lim.Cur)
	}
	t.Setenv(BackendEnv, poller.Select.String())
	waitGroupStopped(t)
	netCheckLeaks(t)
	ln := netListen(t, "tcp")
	// Take every fd below 1024 (FD_SETSIZE on every OS this test runs on),
	// so the next socket gets a larger one.
	var fill []int
	release := func() {
		for _, fd := range fill {
			unix.Close(fd)
		}
		fill = nil
	}
	t.Cleanup(release)
	null, err := unix.Open(os.DevNull, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	fill = append(fill, null)
	for {
		fd, err := unix.Dup(null)
		if err != nil {
			t.Fatal(err)
		}
		fill = append(fill, fd)
		if fd >= 1023 {
			break
		}
	}
	if c, err := Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Fatal("Dial succeeded with an fd select cannot watch")
	} else if !errors.Is(err, poller.ErrFDTooLarge) {
		t.Fatalf("Dial: %v, want poller.ErrFDTooLarge", err)
	}
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	_, err = within(t, 5*time.Second, "Accept", func() dialResult {
		c, err := ln.Accept()
		return dialResult{c, err}
	}).unpack()
	var te interface{ Temporary() bool }
	if !errors.Is(err, poller.ErrFDTooLarge) || !errors.As(err, &te) || !te.Temporary() {
		t.Fatalf("Accept: %v, want a temporary error matching poller.ErrFDTooLarge", err)
	}
	// The client sees its connection closed.
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := client.Read(make([]byte, 1)); err == nil {
		t.Fatal("the refused connection is still open")
	}
	release()
	c := netDial(t, "tcp", ln.Addr().String())
	s := within(t, 5*time.Second, "Accept", func() dialResult {
		c, err := ln.Accept()
		return dialResult{c, err}
	})
	if s.err != nil {
		t.Fatalf("Accept after freeing fds: %v", s.err)
	}
	defer s.c.Close()
	go s.c.Write([]byte("ok"))
	buf := make([]byte, 2)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ok" {
		t.Fatalf("Read = %q, %v", buf, err)
	}
}

// TestNetConnLoopFailure checks that goroutines parked on a loop whose
// poller fails are woken with an error instead of hanging, and that the
// connections can still be closed.
func TestNetConnLoopFailure(t *testing.T) {
	netTest(t, func(t *testing.T) {
		c, _ := netPair(t, "tcp")
		res := make(chan ioResult, 1)
		go func() { n, err := c.Read(make([]byte, 1)); res <- ioResult{n, err} }()
		waitArmed(t, c, poller.Readable)
		pfdOf(t, c).loop.p.Close() // the loop's next Wait fails
		r := within(t, 5*time.Second, "parked Read", func() ioResult { return <-res })
		if !errors.Is(r.err, ErrServerClosed) {
			t.Fatalf("parked Read on a failed loop: %v, want ErrServerClosed", r.err)
		}
		if err := c.Close(); err != nil {
			t.Fatalf("Close on a failed loop: %v", err)
		}
	})
}
