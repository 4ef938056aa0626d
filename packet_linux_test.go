package reactor

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/internal/sock"
	"github.com/muxkit/reactor/poller"
)

// TestPacketTOS: a socket opened with ReceiveTOS reports the TOS byte a
// datagram came with, and WriteToTOS sets it on the way out.
func TestPacketTOS(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b poller.Backend) {
		checkLeaks(t)
		h := PacketHandlerFuncs{Packet: func(p *PacketConn, pkt *Packet) {
			p.WriteToTOS([]byte{pkt.TOS}, pkt.From, pkt.TOS|0x01) // ECN(1) on the reply
		}}
		addr := servePacket(t, b, "udp4", "127.0.0.1:0", h, &PacketOptions{ReceiveTOS: true})
		c := dialUDP(t, addr)
		rc, _ := c.SyscallConn()
		rc.Control(func(fd uintptr) {
			unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TOS, 0x20|0x02) // CS1, ECT(0)
			unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_RECVTOS, 1)
		})
		c.Write([]byte("x"))
		buf, oob := make([]byte, 8), make([]byte, 64)
		n, oobn, _, _, err := c.ReadMsgUDP(buf, oob)
		if err != nil {
			t.Fatal(err)
		}
		if n != 1 || buf[0] != 0x22 {
			t.Errorf("the server saw TOS %#x, want 0x22", buf[0])
		}
		msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		got := -1
		for _, m := range msgs {
			if m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_TOS && len(m.Data) > 0 {
				got = int(m.Data[0])
			}
		}
		if got != 0x23 {
			t.Errorf("the reply came with TOS %#x, want 0x23", got)
		}
	})
}

// gsoSend sends the segments of b, each seg bytes (the last may be
// shorter), as one UDP_SEGMENT send on the connected socket fd.
func gsoSend(t *testing.T, fd int, b []byte, seg int) {
	t.Helper()
	oob := make([]byte, sock.ControlSpace)
	n := sock.PutSegment(oob, 0, seg)
	if err := unix.Sendmsg(fd, b, oob[:n], nil, 0); err != nil {
		t.Fatalf("sendmsg with UDP_SEGMENT: %v", err)
	}
}

// segments returns k datagrams of seg bytes and a last one of last bytes,
// back to back, datagram i filled with byte i.
func segments(k, seg, last int) []byte {
	var b []byte
	for i := range k {
		b = append(b, bytes.Repeat([]byte{byte(i)}, seg)...)
	}
	return append(b, bytes.Repeat([]byte{byte(k)}, last)...)
}

// TestPacketGROSplits: where the kernel coalesces a GSO burst into one
// receive (UDP_GRO), OnPacket still gets each datagram, whole and in
// order, on every backend. A probe on raw sockets first checks that the
// kernel here does coalesce on loopback, so that the test shows the
// split and not only datagrams that came one by one.
func TestPacketGROSplits(t *testing.T) {
	gso, gro := sock.Offload()
	if !gso || !gro {
		t.Skipf("the kernel has GSO %v, GRO %v: nothing to coalesce", gso, gro)
	}
	const k, seg, last = 10, 1000, 500
	burst := segments(k, seg, last)
	// The probe: one recvmsg gets the whole burst, with a segment size.
	rfd, _, err := sock.DatagramSocket("udp4", "127.0.0.1:0", true, false)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(rfd)
	if err := sock.SetGRO(rfd); err != nil {
		t.Fatal(err)
	}
	rsa, _ := unix.Getsockname(rfd)
	sfd, _, err := sock.DatagramSocket("udp4", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(rsa.(*unix.SockaddrInet4).Port)).String(), false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(sfd)
	gsoSend(t, sfd, burst, seg)
	buf, oob := make([]byte, 65536), make([]byte, sock.ControlSpace)
	unix.SetNonblock(rfd, false)
	n, oobn, _, _, err := unix.Recvmsg(rfd, buf, oob, 0)
	if err != nil {
		t.Fatal(err)
	}
	if ctl := sock.ParseControl(oob[:oobn]); n != len(burst) || ctl.GRO != seg {
		t.Skipf("the kernel did not coalesce a GSO burst on loopback (%d bytes, segment %d): nothing to split", n, ctl.GRO)
	}

	forEachBackend(t, func(t *testing.T, b poller.Backend) {
		checkLeaks(t)
		type seen struct {
			n     int
			first byte
			whole bool
		}
		got := make(chan seen, 2*k)
		var offload atomic.Bool
		h := PacketHandlerFuncs{Packet: func(p *PacketConn, pkt *Packet) {
			_, g := p.Offload()
			offload.Store(g)
			d := pkt.Data
			got <- seen{len(d), d[0], !bytes.ContainsFunc(d, func(r rune) bool { return byte(r) != d[0] })}
		}}
		addr := servePacket(t, b, "udp4", "127.0.0.1:0", h, nil)
		c := dialUDP(t, addr)
		rc, _ := c.SyscallConn()
		rc.Write(func(fd uintptr) bool {
			gsoSend(t, int(fd), burst, seg)
			return true
		})
		for i := range k + 1 {
			want := seen{seg, byte(i), true}
			if i == k {
				want.n = last
			}
			select {
			case s := <-got:
				if s != want {
					t.Fatalf("datagram %d: %+v, want %+v", i, s, want)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("datagram %d of %d never reached OnPacket", i, k+1)
			}
		}
		if !offload.Load() {
			t.Error("Offload reports no GRO on a socket of a kernel that has it")
		}
	})
}

// TestPacketReusePortSpreads: with ReusePort a Group binds one socket
// per loop on one address, and the kernel spreads peers among them: 64
// clients on their own ports reach both loops' sockets (all 64 hashing to
// one of two has odds of 2^-63), and each gets its echo.
func TestPacketReusePortSpreads(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b poller.Backend) {
		checkLeaks(t)
		g, err := NewGroup(GroupConfig{Loops: 2, Backend: b})
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		var served [2]atomic.Int64 // counted before the echo leaves
		h := PacketHandlerFuncs{Packet: func(p *PacketConn, pkt *Packet) {
			if p.Loop() == g.Loop(0) {
				served[0].Add(1)
			} else {
				served[1].Add(1)
			}
			p.WriteTo(pkt.Data, pkt.From)
		}}
		ps, err := g.ListenPacket("udp4", "127.0.0.1:0", h, &PacketOptions{ReusePort: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) != 2 || ps[0].LocalAddr() != ps[1].LocalAddr() || ps[0].Loop() == ps[1].Loop() {
			t.Fatalf("%d sockets; want 2 on one address, on two loops", len(ps))
		}
		to := net.UDPAddrFromAddrPort(ps[0].LocalAddr().AddrPort())
		buf := make([]byte, 64)
		for i := range 64 {
			c := dialUDP(t, to)
			msg := []byte(fmt.Sprint("client ", i))
			if _, err := c.Write(msg); err != nil {
				t.Fatal(err)
			}
			n, err := c.Read(buf)
			if err != nil || !bytes.Equal(buf[:n], msg) {
				t.Fatalf("client %d: %q, %v", i, buf[:n], err)
			}
		}
		if served[0].Load() == 0 || served[1].Load() == 0 || served[0].Load()+served[1].Load() != 64 {
			t.Errorf("the loops' sockets served %d and %d datagrams; want both some, 64 in all", served[0].Load(), served[1].Load())
		}
	})
}
