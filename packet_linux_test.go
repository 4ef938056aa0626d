package reactor

import (
	"testing"

	"golang.org/x/sys/unix"

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
