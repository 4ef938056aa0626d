package netconn

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor"
)

// packetTest runs fn per backend the reactor has here, the completion engine
// included, with a group of its own, checking for leaks as netTest does.
func packetTest(t *testing.T, fn func(t *testing.T, e *netEnv)) {
	t.Helper()
	for _, b := range reactor.Backends() {
		t.Run(b.String(), func(t *testing.T) {
			netCheckLeaks(t)
			g := startGroup(t, b, reactor.GroupConfig{Loops: 2, Backend: b})
			fn(t, &netEnv{b: b, g: g, cfg: Config{Group: g}})
		})
	}
}

// listenUDP returns a *PacketConn of the face on udp4 loopback.
func listenUDP(t *testing.T, e *netEnv) *PacketConn {
	t.Helper()
	pc, err := e.cfg.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.(*PacketConn)
}

// TestPacketConnEcho: the face's datagram socket answers net's client with
// every UDP call a *net.UDPConn user makes, each datagram whole.
func TestPacketConnEcho(t *testing.T) {
	packetTest(t, func(t *testing.T, e *netEnv) {
		p := listenUDP(t, e)
		go func() {
			buf, oob := make([]byte, 65536), make([]byte, 128)
			for i := 0; ; i++ {
				switch i % 4 {
				case 0:
					n, from, err := p.ReadFromUDPAddrPort(buf)
					if err != nil {
						return
					}
					p.WriteToUDPAddrPort(buf[:n], from)
				case 1:
					n, from, err := p.ReadFromUDP(buf)
					if err != nil {
						return
					}
					p.WriteToUDP(buf[:n], from)
				case 2:
					n, _, _, from, err := p.ReadMsgUDPAddrPort(buf, oob)
					if err != nil {
						return
					}
					p.WriteMsgUDPAddrPort(buf[:n], nil, from)
				case 3:
					n, from, err := p.ReadFrom(buf)
					if err != nil {
						return
					}
					p.WriteTo(buf[:n], from)
				}
			}
		}()
		c, err := net.DialUDP("udp4", nil, p.LocalAddr().(*net.UDPAddr))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 65536)
		for i, n := range []int{0, 1, 100, 1472, 9000, 65507, 64, 64} {
			msg := bytes.Repeat([]byte{byte(i)}, n)
			c.Write(msg)
			got, err := c.Read(buf)
			if err != nil || !bytes.Equal(buf[:got], msg) {
				t.Fatalf("datagram %d of %d bytes: echo of %d, %v", i, n, got, err)
			}
		}
	})
}

// TestPacketConnDialed: Dial("udp") gives a connected socket whose Read
// and Write carry datagrams, and whose peer's absence shows as
// ECONNREFUSED.
func TestPacketConnDialed(t *testing.T) {
	packetTest(t, func(t *testing.T, e *netEnv) {
		srv, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			buf := make([]byte, 100)
			for {
				n, from, err := srv.ReadFromUDPAddrPort(buf)
				if err != nil {
					return
				}
				srv.WriteToUDPAddrPort(buf[:n], from)
			}
		}()
		c, err := e.cfg.Dial("udp", srv.LocalAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		c.Write([]byte("hello"))
		buf := make([]byte, 16)
		if n, err := c.Read(buf); err != nil || string(buf[:n]) != "hello" {
			t.Fatalf("Read: %q, %v", buf[:n], err)
		}
		srv.Close()
		// The port is closed: a write draws an ICMP port unreachable,
		// which the next read or write reports.
		var got error
		for range 50 {
			c.Write([]byte("anyone?"))
			c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			if _, got = c.Read(buf); errors.Is(got, unix.ECONNREFUSED) {
				break
			}
		}
		if !errors.Is(got, unix.ECONNREFUSED) {
			t.Errorf("to a closed port: %v, want ECONNREFUSED", got)
		}
	})
}

// TestPacketConnDeadlines: a read deadline ends a pending read with an
// error matching os.ErrDeadlineExceeded, and Close ends one with
// net.ErrClosed.
func TestPacketConnDeadlines(t *testing.T) {
	packetTest(t, func(t *testing.T, e *netEnv) {
		p := listenUDP(t, e)
		p.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		buf := make([]byte, 8)
		if _, _, err := p.ReadFromUDPAddrPort(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read past its deadline: %v", err)
		}
		p.SetReadDeadline(time.Time{})
		done := make(chan error, 1)
		go func() {
			_, _, err := p.ReadFromUDPAddrPort(buf)
			done <- err
		}()
		p.Close()
		if err := <-done; !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read ended by Close: %v", err)
		}
	})
}

// TestPacketConnSyscallConn: code that makes its own system calls on the
// fd through SyscallConn (as golang.org/x/net/ipv4's batch reads do, and
// quic-go's sends with control messages) gets the loop's waiting: a
// Read whose function reports "not yet" parks until a datagram comes.
func TestPacketConnSyscallConn(t *testing.T) {
	packetTest(t, func(t *testing.T, e *netEnv) {
		p := listenUDP(t, e)
		rc, err := p.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan string, 1)
		go func() {
			buf := make([]byte, 64)
			var n int
			rc.Read(func(fd uintptr) bool {
				var err error
				n, _, err = unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT)
				return err != unix.EAGAIN
			})
			got <- string(buf[:n])
		}()
		c, err := net.DialUDP("udp4", nil, p.LocalAddr().(*net.UDPAddr))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("raw"))
		select {
		case s := <-got:
			if s != "raw" {
				t.Errorf("raw read %q", s)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the raw read never returned")
		}
		var typ int
		rc.Control(func(fd uintptr) { typ, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TYPE) })
		if typ != unix.SOCK_DGRAM {
			t.Errorf("Control's fd is of type %d, want SOCK_DGRAM", typ)
		}
	})
}

// TestPacketConnUnixgram: ListenPacket("unixgram") carries datagrams
// between paths with WriteTo and ReadFrom.
func TestPacketConnUnixgram(t *testing.T) {
	packetTest(t, func(t *testing.T, e *netEnv) {
		dir := t.TempDir()
		a, err := e.cfg.ListenPacket("unixgram", filepath.Join(dir, "a"))
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		b, err := e.cfg.ListenPacket("unixgram", filepath.Join(dir, "b"))
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if _, err := a.WriteTo([]byte("to b"), b.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 16)
		b.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, from, err := b.ReadFrom(buf)
		if err != nil || string(buf[:n]) != "to b" || from.String() != a.LocalAddr().String() {
			t.Fatalf("ReadFrom: %q from %v, %v", buf[:n], from, err)
		}
	})
}

// TestPacketConnAllocs: a datagram's read and write through the face do
// not allocate (linux: the raw batch calls).
func TestPacketConnAllocs(t *testing.T) {
	packetTest(t, func(t *testing.T, e *netEnv) {
		p := listenUDP(t, e)
		c, err := net.DialUDP("udp4", nil, p.LocalAddr().(*net.UDPAddr))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		to := netip.MustParseAddrPort(c.LocalAddr().String())
		msg, buf := []byte("ping"), make([]byte, 64)
		allocs := testing.AllocsPerRun(200, func() {
			c.Write(msg)
			p.ReadFromUDPAddrPort(buf)
			p.WriteToUDPAddrPort(msg, to)
			c.Read(buf)
		})
		if allocs > 0 {
			t.Errorf("%.1f allocations per round trip through the face", allocs)
		}
	})
}
