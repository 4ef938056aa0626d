package reactor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/poller"
)

// servePacket serves h on a udp (or unixgram) socket of a new Server on
// backend b and returns the address bound; the Server shuts down when the
// test ends, and Serve must return ErrServerClosed.
func servePacket(t *testing.T, b poller.Backend, network, address string, h PacketHandler, opt *PacketOptions) net.Addr {
	t.Helper()
	s := &Server{Backend: b, Loops: 2}
	addr, err := s.ListenPacket(network, address, h, opt)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return addr
}

// dialUDP returns a client socket connected to addr with a 4 MiB receive
// buffer and a 10 s deadline.
func dialUDP(t *testing.T, addr net.Addr) *net.UDPConn {
	t.Helper()
	c, err := net.DialUDP("udp", nil, addr.(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadBuffer(4 << 20)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

// TestPacketEchoSizes: every datagram, of every size a UDP datagram can
// have (0 to 65,507 bytes), comes back whole and alone, on every backend,
// over udp and unixgram, and the counts say so.
func TestPacketEchoSizes(t *testing.T) {
	sizes := []int{0, 1, 63, 64, 511, 1200, 1472, 1473, 4096, 9000, 16384, 32768, 65000, 65507}
	forEachBackend(t, func(t *testing.T, b poller.Backend) {
		checkLeaks(t)
		addr := servePacket(t, b, "udp4", "127.0.0.1:0", PacketEcho, nil)
		c := dialUDP(t, addr)
		buf := make([]byte, 65536)
		for _, n := range sizes {
			msg := bytes.Repeat([]byte{byte(n)}, n)
			if _, err := c.Write(msg); err != nil {
				t.Fatalf("size %d: %v", n, err)
			}
			got, err := c.Read(buf)
			if err != nil {
				t.Fatalf("size %d: %v", n, err)
			}
			if !bytes.Equal(buf[:got], msg) {
				t.Fatalf("size %d: echo of %d bytes, wrong", n, got)
			}
		}
	})
}

// TestPacketUnixgram: a unixgram socket echoes to a named peer's path,
// and the Addr a handler gets names it.
func TestPacketUnixgram(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b poller.Backend) {
		checkLeaks(t)
		dir := t.TempDir()
		var from atomic.Value
		h := PacketHandlerFuncs{Packet: func(p *PacketConn, pkt *Packet) {
			from.Store(pkt.From.Path())
			if _, err := p.WriteTo(pkt.Data, pkt.From); err != nil {
				t.Errorf("WriteTo %v: %v", pkt.From, err)
			}
		}}
		srv := filepath.Join(dir, "srv")
		servePacket(t, b, "unixgram", srv, h, nil)
		cli := filepath.Join(dir, "cli")
		c, err := net.DialUnix("unixgram", &net.UnixAddr{Name: cli, Net: "unixgram"}, &net.UnixAddr{Name: srv, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 100)
		for i := range 3 {
			msg := []byte(fmt.Sprint("ping ", i))
			c.Write(msg)
			n, err := c.Read(buf)
			if err != nil || !bytes.Equal(buf[:n], msg) {
				t.Fatalf("echo %q, %v; want %q", buf[:n], err, msg)
			}
		}
		if got := from.Load(); got != cli {
			t.Errorf("sender %q, want %q", got, cli)
		}
	})
}

// TestPacketTruncated: a datagram longer than MaxDatagram reaches OnPacket
// cut to MaxDatagram and marked Truncated, never as whole, and is counted.
func TestPacketTruncated(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b poller.Backend) {
		checkLeaks(t)
		type seen struct {
			n     int
			trunc bool
		}
		got := make(chan seen, 4)
		h := PacketHandlerFuncs{Packet: func(p *PacketConn, pkt *Packet) { got <- seen{len(pkt.Data), pkt.Truncated} }}
		s := &Server{Backend: b}
		addr, err := s.ListenPacket("udp4", "127.0.0.1:0", h, &PacketOptions{MaxDatagram: 100})
		if err != nil {
			t.Fatal(err)
		}
		go s.Serve()
		defer s.Shutdown(context.Background())
		c := dialUDP(t, addr)
		c.Write(make([]byte, 100))
		c.Write(make([]byte, 300))
		for i, want := range []seen{{100, false}, {100, true}} {
			select {
			case g := <-got:
				if g != want {
					t.Errorf("datagram %d: %+v, want %+v", i, g, want)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("datagram %d never arrived", i)
			}
		}
		if n := s.Stats().Datagrams.Truncated; n != 1 {
			t.Errorf("Stats.Datagrams.Truncated = %d, want 1", n)
		}
	})
}

// TestPacketWriteErrors: WriteTo refuses, with nothing queued, an address
// of the wrong family, a datagram too long for UDP, another peer than a
// connected socket's, and a full queue (counted); after Close, every
// write is net.ErrClosed.
func TestPacketWriteErrors(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b poller.Backend) {
		checkLeaks(t)
		g, err := NewGroup(GroupConfig{Loops: 1, Backend: b})
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		l := g.Loop(0)
		errs := make(chan error, 1)
		l.Post(func() { errs <- writeErrors(l) })
		if err := <-errs; err != nil {
			t.Error(err)
		}
		if n := g.Stats().Datagrams.Dropped; n != 6 {
			t.Errorf("Stats.Datagrams.Dropped = %d, want 6 (the full queue's refusals)", n)
		}
	})
}

// writeErrors runs TestPacketWriteErrors' calls on loop l.
func writeErrors(l *Loop) error {
	p, err := l.ListenPacket("udp4", "127.0.0.1:0", PacketHandlerFuncs{}, &PacketOptions{MaxQueued: 4})
	if err != nil {
		return err
	}
	defer p.Close()
	v6 := AddrFromAddrPort(netip.MustParseAddrPort("[::1]:9"))
	v4 := AddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:9"))
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"IPv6 address on an IPv4 socket", second(p.WriteTo([]byte("x"), v6)), ErrAddrFamily},
		{"a path on a udp socket", second(p.WriteTo([]byte("x"), AddrFromPath("/tmp/x"))), ErrAddrFamily},
		{"no address", second(p.WriteTo([]byte("x"), Addr{})), ErrAddrFamily},
		{"Write without a peer", second(p.Write([]byte("x"))), ErrNoPeer},
		{"65,508 bytes", second(p.WriteTo(make([]byte, 65508), v4)), ErrDatagramTooLong},
	} {
		if !errors.Is(tc.err, tc.want) {
			return fmt.Errorf("%s: %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	if p.Queued() != 0 {
		return fmt.Errorf("refused writes left %d queued", p.Queued())
	}
	full := 0
	for range 10 {
		if _, err := p.WriteTo([]byte("x"), v4); errors.Is(err, ErrQueueFull) {
			full++
		}
	}
	if full != 6 || p.Queued() != 4 {
		return fmt.Errorf("10 writes to a queue of 4: %d refused, %d queued; want 6, 4", full, p.Queued())
	}
	p.Close()
	if _, err := p.WriteTo([]byte("x"), v4); !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("WriteTo after Close: %v, want net.ErrClosed", err)
	}
	return nil
}

func second(_ int, err error) error { return err }

// TestPacketConnectedRefused: a connected datagram socket whose peer has
// no listener hears ECONNREFUSED (the ICMP port unreachable) through
// OnError, and stays open and usable.
func TestPacketConnectedRefused(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b poller.Backend) {
		checkLeaks(t)
		// A port nothing listens on: bind one, note it, close it.
		probe, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		dead := probe.LocalAddr().String()
		probe.Close()
		g, err := NewGroup(GroupConfig{Loops: 1, Backend: b})
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		errc := make(chan error, 8)
		l := g.Loop(0)
		h := PacketHandlerFuncs{Error: func(p *PacketConn, err error) { errc <- err }}
		var p *PacketConn
		done := make(chan error, 1)
		l.Post(func() {
			var err error
			if p, err = l.DialPacket("udp4", dead, h, nil); err == nil {
				_, err = p.Write([]byte("anyone?"))
			}
			done <- err
		})
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		deadline := time.After(10 * time.Second)
		for {
			// The error comes with the next receive or send after the
			// ICMP message: send again until it shows.
			select {
			case err := <-errc:
				if !errors.Is(err, unix.ECONNREFUSED) {
					t.Fatalf("OnError(%v), want ECONNREFUSED", err)
				}
				open := make(chan bool, 1)
				l.Post(func() { open <- p.Fd() >= 0 })
				if !<-open {
					t.Error("the socket closed on ECONNREFUSED")
				}
				return
			case <-deadline:
				t.Fatal("no ECONNREFUSED within 10 s")
			case <-time.After(50 * time.Millisecond):
				l.Post(func() { p.Write([]byte("anyone?")) })
			}
		}
	})
}

// TestPacketFairness: a peer flooding one socket of a loop does not hold
// up another socket of the same loop: its echoes go on, every one.
func TestPacketFairness(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b poller.Backend) {
		checkLeaks(t)
		g, err := NewGroup(GroupConfig{Loops: 1, Backend: b})
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		var flooded atomic.Int64
		arrived := make(chan struct{}) // closed at the flood's first datagram
		count := PacketHandlerFuncs{Packet: func(*PacketConn, *Packet) {
			if flooded.Add(1) == 1 {
				close(arrived)
			}
		}}
		a, err := g.ListenPacket("udp4", "127.0.0.1:0", count, nil)
		if err != nil {
			t.Fatal(err)
		}
		bsock, err := g.ListenPacket("udp4", "127.0.0.1:0", PacketEcho, nil)
		if err != nil {
			t.Fatal(err)
		}
		floodTo := a[0].LocalAddr().AddrPort()
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(floodTo))
			if err != nil {
				t.Error(err)
				return
			}
			defer f.Close()
			msg := make([]byte, 512)
			for {
				select {
				case <-stop:
					return
				default:
				}
				f.Write(msg)
			}
		}()
		select {
		case <-arrived:
		case <-time.After(10 * time.Second):
			t.Fatal("the flood never reached its socket")
		}
		before := flooded.Load()
		c := dialUDP(t, net.UDPAddrFromAddrPort(bsock[0].LocalAddr().AddrPort()))
		buf := make([]byte, 64)
		for i := range 200 {
			msg := []byte(fmt.Sprint("ping ", i))
			c.Write(msg)
			// A datagram lost to a full receive buffer is the kernel's
			// business, not the loop's: resend on a short wait.
			for {
				c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
				n, err := c.Read(buf)
				if err == nil && bytes.Equal(buf[:n], msg) {
					break
				}
				var ne net.Error
				if !errors.As(err, &ne) || !ne.Timeout() {
					if err == nil {
						continue // a late echo of an earlier ping
					}
					t.Fatalf("round trip %d: %v", i, err)
				}
				c.Write(msg)
			}
		}
		during := flooded.Load() - before
		close(stop)
		wg.Wait()
		if during == 0 {
			t.Error("the flooded socket got nothing while the other was served: no flood, the test shows nothing")
		}
		t.Logf("%d datagrams flooded one socket while the other echoed 200", during)
	})
}

// TestPacketCloseInBatch: a handler that closes its socket in the middle
// of a batch of datagrams gets no OnPacket after the Close, one OnClose,
// and the fd is released.
func TestPacketCloseInBatch(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b poller.Backend) {
		checkLeaks(t)
		var after, closes atomic.Int64
		closed := make(chan struct{})
		h := PacketHandlerFuncs{
			Packet: func(p *PacketConn, pkt *Packet) {
				if p.Fd() < 0 {
					after.Add(1)
				}
				if string(pkt.Data) == "close" {
					p.Close()
				}
			},
			Close: func(p *PacketConn, err error) {
				if closes.Add(1) == 1 {
					close(closed)
				}
			},
		}
		g, err := NewGroup(GroupConfig{Loops: 1, Backend: b})
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		ps, err := g.ListenPacket("udp4", "127.0.0.1:0", h, nil)
		if err != nil {
			t.Fatal(err)
		}
		c := dialUDP(t, net.UDPAddrFromAddrPort(ps[0].LocalAddr().AddrPort()))
		for i := range 20 {
			msg := "x"
			if i == 5 {
				msg = "close"
			}
			c.Write([]byte(msg))
		}
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			t.Fatal("no OnClose")
		}
		if n := after.Load(); n != 0 {
			t.Errorf("%d datagrams served after Close", n)
		}
		if n := closes.Load(); n != 1 {
			t.Errorf("OnClose ran %d times", n)
		}
	})
}

// TestPacketBatchedReplies: the replies written in one callback leave in
// order, every one, and with GSO (where the kernel has it) each still
// arrives as a datagram of its own.
func TestPacketBatchedReplies(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b poller.Backend) {
		checkLeaks(t)
		const k = 40
		h := PacketHandlerFuncs{Packet: func(p *PacketConn, pkt *Packet) {
			for i := range k {
				msg := bytes.Repeat([]byte{byte(i)}, 1200)
				if i == k-1 {
					msg = msg[:100] // a shorter last one ends a GSO run
				}
				if _, err := p.WriteTo(msg, pkt.From); err != nil {
					t.Errorf("WriteTo %d: %v", i, err)
				}
			}
		}}
		addr := servePacket(t, b, "udp4", "127.0.0.1:0", h, nil)
		c := dialUDP(t, addr)
		c.Write([]byte("go"))
		buf := make([]byte, 65536)
		for i := range k {
			n, err := c.Read(buf)
			if err != nil {
				t.Fatalf("reply %d: %v", i, err)
			}
			want := 1200
			if i == k-1 {
				want = 100
			}
			if n != want || slices.ContainsFunc(buf[:n], func(x byte) bool { return x != byte(i) }) {
				t.Fatalf("reply %d: %d bytes, first %d; want %d bytes of %d", i, n, buf[0], want, i)
			}
		}
	})
}

// TestPacketShutdownFlushes: what a handler queued is sent before the
// Server's shutdown closes the socket, with OnClose reason
// ErrServerClosed.
func TestPacketShutdownFlushes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b poller.Backend) {
		checkLeaks(t)
		reasons := make(chan error, 1)
		type first struct {
			p    *PacketConn
			from Addr
		}
		got := make(chan first, 1)
		h := PacketHandlerFuncs{
			Packet: func(p *PacketConn, pkt *Packet) {
				select {
				case got <- first{p, pkt.From}:
				default:
				}
			},
			Close: func(p *PacketConn, err error) { reasons <- err },
		}
		s := &Server{Backend: b, Loops: 1}
		addr, err := s.ListenPacket("udp4", "127.0.0.1:0", h, nil)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- s.Serve() }()
		c := dialUDP(t, addr)
		c.Write([]byte("hello"))
		var f first
		select {
		case f = <-got:
		case <-time.After(10 * time.Second):
			t.Fatal("no datagram reached the handler within 10s")
		}
		p, peer := f.p, f.from
		// Queue replies on the loop and, before the callback ends
		// (which would flush them), start the loop's part of a shutdown:
		// the socket closes gracefully with the replies still queued,
		// and sends them first.
		p.Loop().Post(func() {
			for i := range 10 {
				p.WriteTo([]byte(fmt.Sprint("bye ", i)), peer)
			}
			p.Loop().beginStop()
			if p.Queued() != 10 || !p.is(pClosing) {
				t.Errorf("after beginStop: %d queued, closing %v; want 10 waiting to go", p.Queued(), p.is(pClosing))
			}
			go s.Shutdown(context.Background())
		})
		buf := make([]byte, 64)
		for i := range 10 {
			n, err := c.Read(buf)
			if err != nil || string(buf[:n]) != fmt.Sprint("bye ", i) {
				t.Fatalf("reply %d: %q, %v", i, buf[:n], err)
			}
		}
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v", err)
		}
		if err := <-reasons; !errors.Is(err, ErrServerClosed) {
			t.Errorf("OnClose(%v), want ErrServerClosed", err)
		}
	})
}

// TestDgramQueueKeepsStorageForBursts: a queue that a burst grew past the
// small storage keeps it while bursts keep coming (no allocation per
// burst), and lets it go after queueLean flushes that did not need it.
func TestDgramQueueKeepsStorageForBursts(t *testing.T) {
	var q dgramQueue
	burst := func(n int) {
		for range n {
			q.push(make([]byte, 1200), Addr{}, 0)
		}
		q.pop(q.len())
	}
	burst(200) // 240,000 bytes
	big := cap(q.data)
	if big <= queueSmallData {
		t.Fatalf("a burst of 240,000 bytes left %d bytes of storage", big)
	}
	if allocs := testing.AllocsPerRun(10, func() { burst(200) }); allocs != 0 {
		t.Errorf("%v allocations per burst once grown, want 0", allocs)
	}
	for i := range queueLean - 1 {
		burst(1)
		if cap(q.data) != big {
			t.Fatalf("storage let go after %d small flushes, want it kept for %d", i+1, queueLean)
		}
	}
	burst(1)
	if cap(q.data) > queueSmallData {
		t.Errorf("%d bytes of storage kept after %d small flushes in a row", cap(q.data), queueLean)
	}
}

// TestDgramQueueCompacts: a queue that never empties (datagrams pushed as
// the first ones are sent, as on the completion engine) keeps its storage
// to about twice what is queued, and every datagram keeps its bytes.
func TestDgramQueueCompacts(t *testing.T) {
	var q dgramQueue
	next, sent := 0, 0
	push := func() {
		q.push(bytes.Repeat([]byte{byte(next)}, 1000), Addr{}, 0)
		next++
	}
	for range 10 {
		push()
	}
	for range 100000 {
		e := &q.ents[q.head]
		if b := q.payload(e); len(b) != 1000 || b[0] != byte(sent) || b[999] != byte(sent) {
			t.Fatalf("datagram %d: %d bytes of %d, want 1000 of %d", sent, len(b), b[0], byte(sent))
		}
		q.pop(1)
		sent++
		push()
		q.compact()
		if len(q.data) > 2*q.bytes+1000 {
			t.Fatalf("after %d datagrams %d bytes of storage hold %d queued", sent, len(q.data), q.bytes)
		}
	}
}
