package netconn

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor"
	"github.com/muxkit/reactor/internal/sock"
)

// PacketConn is a datagram socket driven by a reactor loop: the
// net.PacketConn ListenPacket returns and the net.Conn Dial returns for
// udp and unixgram, with the methods a user calls on a *net.UDPConn
// (ReadFromUDPAddrPort, WriteToUDPAddrPort, ReadMsgUDP, WriteMsgUDP and
// their relatives, SetReadBuffer, SyscallConn) and the generic ones of a
// *net.UnixConn. Every method is safe from any goroutine; one read and
// one write run at a time, each kind serialized; a read or write parks the
// calling goroutine (never a thread or the loop) until the socket is
// ready, Close, or its deadline.
//
// Through SyscallConn, code that batches its own system calls on the fd
// (quic-go reads with recvmmsg through golang.org/x/net/ipv4 and sends
// with UDP_SEGMENT control messages) runs them with the loop doing the
// waiting, as with Go's own *net.UDPConn.
type PacketConn struct {
	fd           *fd
	network      string
	family       int
	laddr, raddr net.Addr
	release      func()
	rmu, wmu     sync.Mutex
	rb, wb       *sock.Batch // one datagram per call, reused
	rm, wm       [1]sock.Msg // what rb and wb move
}

var (
	_ net.PacketConn = (*PacketConn)(nil)
	_ net.Conn       = (*PacketConn)(nil)
	_ syscall.Conn   = (*PacketConn)(nil)
)

// ListenPacket announces on the local address like net.ListenPacket
// (network udp, udp4, udp6 or unixgram) on the shared loops; see
// Config.ListenPacket.
func ListenPacket(network, address string) (net.PacketConn, error) {
	return Config{}.ListenPacket(network, address)
}

// ListenPacket binds a datagram socket to address like net.ListenPacket
// (network udp, udp4, udp6 or unixgram; port 0 picks a free one) and
// returns a *PacketConn driven by one of cfg's loops.
func (cfg Config) ListenPacket(network, address string) (net.PacketConn, error) {
	g, release, err := cfg.group()
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	sysfd, family, err := sock.DatagramSocket(network, address, true, false)
	if err != nil {
		release()
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	p, err := newPacketConn(g.Next(), sysfd, family, network, release)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	return p, nil
}

// dialPacket connects a datagram socket to address (see DialContext).
func (cfg Config) dialPacket(network, address string) (net.Conn, error) {
	g, release, err := cfg.group()
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	sysfd, family, err := sock.DatagramSocket(network, address, false, false)
	if err != nil {
		release()
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	p, err := newPacketConn(g.Next(), sysfd, family, network, release)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	return p, nil
}

// newPacketConn watches sysfd on loop l; on failure it closes sysfd and
// drops the group reference.
func newPacketConn(l *reactor.Loop, sysfd, family int, network string, release func()) (*PacketConn, error) {
	f, err := newFD(l, sysfd)
	if err != nil {
		unix.Close(sysfd)
		release()
		return nil, err
	}
	p := &PacketConn{fd: f, network: network, family: family, release: release, rb: sock.NewBatch(1), wb: sock.NewBatch(1)}
	p.laddr, p.raddr = sock.LocalAddrOf(network, sysfd), sock.RemoteAddrOf(network, sysfd)
	return p, nil
}

func (p *PacketConn) opErr(op string, addr net.Addr, err error) error {
	if addr == nil {
		addr = p.raddr
	}
	return &net.OpError{Op: op, Net: p.network, Source: p.laddr, Addr: addr, Err: err}
}

// recv receives one datagram into b with control buffer oob, parking
// until one comes, Close or the read deadline; the sender is in p.rm.
func (p *PacketConn) recv(b, oob []byte) (n, oobn, flags int, err error) {
	f := p.fd
	f.r.prepare()
	ms := p.rm[:]
	m := &p.rm[0]
	for {
		if f.closing.Load() {
			return 0, 0, 0, net.ErrClosed
		}
		if f.r.expired() {
			return 0, 0, 0, os.ErrDeadlineExceeded
		}
		m.Buf, m.OOB = b, oob
		_, err := f.syscall(func(fd int) (int, error) { return p.rb.Recv(fd, ms) })
		switch {
		case err == nil:
			return m.N, m.OOBN, m.Flags, nil
		case err == unix.EAGAIN:
			if err := f.wait(&f.r); err != nil {
				return 0, 0, 0, err
			}
		case err == unix.EINTR:
		case errors.Is(err, net.ErrClosed):
			return 0, 0, 0, err
		default:
			return 0, 0, 0, os.NewSyscallError("recvmsg", err)
		}
	}
}

// send sends b (and oob) as one datagram to the sockaddr in p.wm, parking
// while the socket has no room.
func (p *PacketConn) send(b, oob []byte) (int, int, error) {
	f := p.fd
	f.w.prepare()
	ms := p.wm[:]
	m := &p.wm[0]
	for {
		if f.closing.Load() {
			return 0, 0, net.ErrClosed
		}
		if f.w.expired() {
			return 0, 0, os.ErrDeadlineExceeded
		}
		m.Buf, m.OOB = b, oob
		_, err := f.syscall(func(fd int) (int, error) { return p.wb.Send(fd, ms) })
		switch {
		case err == nil:
			return m.N, len(oob), nil
		case err == unix.EAGAIN:
			if err := f.wait(&f.w); err != nil {
				return 0, 0, err
			}
		case err == unix.EINTR:
		case errors.Is(err, net.ErrClosed):
			return 0, 0, err
		default:
			return 0, 0, os.NewSyscallError("sendmsg", err)
		}
	}
}

// fromAddrPort is the sender of the datagram just received.
func (p *PacketConn) fromAddrPort() netip.AddrPort {
	ap, _ := sock.AddrPortOf(&p.rm[0].Name)
	return ap
}

// ReadFromUDPAddrPort reads a datagram into b and returns its length and
// sender, like (*net.UDPConn).ReadFromUDPAddrPort; a datagram longer than
// b is cut to it. On linux it does not allocate.
func (p *PacketConn) ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error) {
	p.rmu.Lock()
	defer p.rmu.Unlock()
	n, _, _, err := p.recv(b, nil)
	if err != nil {
		return 0, netip.AddrPort{}, p.opErr("read", nil, err)
	}
	return n, p.fromAddrPort(), nil
}

// ReadFromUDP is ReadFromUDPAddrPort with a *net.UDPAddr (allocated).
func (p *PacketConn) ReadFromUDP(b []byte) (int, *net.UDPAddr, error) {
	n, ap, err := p.ReadFromUDPAddrPort(b)
	if err != nil {
		return 0, nil, err
	}
	return n, net.UDPAddrFromAddrPort(ap), nil
}

// ReadFrom reads a datagram, like net.PacketConn's ReadFrom: the sender is
// a *net.UDPAddr, or a *net.UnixAddr for unixgram (nil for an unnamed
// one).
func (p *PacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	p.rmu.Lock()
	defer p.rmu.Unlock()
	n, _, _, err := p.recv(b, nil)
	if err != nil {
		return 0, nil, p.opErr("read", nil, err)
	}
	return n, p.fromAddr(), nil
}

// fromAddr is the sender of the datagram just received, as a net.Addr.
func (p *PacketConn) fromAddr() net.Addr {
	if p.family == unix.AF_UNIX {
		path := sock.PathOf(&p.rm[0].Name, p.rm[0].NameLen)
		if len(path) == 0 {
			return nil
		}
		return &net.UnixAddr{Name: string(path), Net: p.network}
	}
	return net.UDPAddrFromAddrPort(p.fromAddrPort())
}

// ReadMsgUDPAddrPort reads a datagram into b and its control messages into
// oob, like (*net.UDPConn).ReadMsgUDPAddrPort; flags has MSG_TRUNC for a
// datagram longer than b.
func (p *PacketConn) ReadMsgUDPAddrPort(b, oob []byte) (n, oobn, flags int, addr netip.AddrPort, err error) {
	p.rmu.Lock()
	defer p.rmu.Unlock()
	n, oobn, flags, err = p.recv(b, oob)
	if err != nil {
		return 0, 0, 0, netip.AddrPort{}, p.opErr("read", nil, err)
	}
	return n, oobn, flags, p.fromAddrPort(), nil
}

// ReadMsgUDP is ReadMsgUDPAddrPort with a *net.UDPAddr (allocated).
func (p *PacketConn) ReadMsgUDP(b, oob []byte) (n, oobn, flags int, addr *net.UDPAddr, err error) {
	n, oobn, flags, ap, err := p.ReadMsgUDPAddrPort(b, oob)
	if err != nil {
		return 0, 0, 0, nil, err
	}
	return n, oobn, flags, net.UDPAddrFromAddrPort(ap), nil
}

// Read reads a datagram from the connected peer (a PacketConn from Dial).
func (p *PacketConn) Read(b []byte) (int, error) {
	p.rmu.Lock()
	defer p.rmu.Unlock()
	n, _, _, err := p.recv(b, nil)
	if err != nil {
		return 0, p.opErr("read", nil, err)
	}
	return n, nil
}

// putAddrPort sets the next datagram's destination.
func (p *PacketConn) putAddrPort(ap netip.AddrPort) error {
	var err error
	p.wm[0].NameLen, err = sock.PutAddrPort(&p.wm[0].Name, p.family, ap)
	return err
}

// WriteToUDPAddrPort sends b as one datagram to addr, like
// (*net.UDPConn).WriteToUDPAddrPort. On linux it does not allocate.
func (p *PacketConn) WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	n, _, err := p.WriteMsgUDPAddrPort(b, nil, addr)
	return n, err
}

// WriteToUDP is WriteToUDPAddrPort with a *net.UDPAddr.
func (p *PacketConn) WriteToUDP(b []byte, addr *net.UDPAddr) (int, error) {
	if addr == nil {
		return 0, p.opErr("write", nil, errMissingAddress)
	}
	return p.WriteToUDPAddrPort(b, addr.AddrPort())
}

// WriteMsgUDPAddrPort sends b as one datagram to addr with the control
// messages in oob (a UDP_SEGMENT one makes the kernel split b into
// datagrams), like (*net.UDPConn).WriteMsgUDPAddrPort; on a connected
// PacketConn addr must be the zero AddrPort.
func (p *PacketConn) WriteMsgUDPAddrPort(b, oob []byte, addr netip.AddrPort) (n, oobn int, err error) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	p.wm[0].NameLen = 0
	if addr.IsValid() {
		if p.raddr != nil {
			return 0, 0, p.opErr("write", net.UDPAddrFromAddrPort(addr), unix.EISCONN)
		}
		if err := p.putAddrPort(addr); err != nil {
			return 0, 0, p.opErr("write", net.UDPAddrFromAddrPort(addr), err)
		}
	} else if p.raddr == nil {
		return 0, 0, p.opErr("write", nil, errMissingAddress)
	}
	n, oobn, err = p.send(b, oob)
	if err != nil {
		return 0, 0, p.opErr("write", nil, err)
	}
	return n, oobn, nil
}

// WriteMsgUDP is WriteMsgUDPAddrPort with a *net.UDPAddr (nil on a
// connected PacketConn).
func (p *PacketConn) WriteMsgUDP(b, oob []byte, addr *net.UDPAddr) (n, oobn int, err error) {
	var ap netip.AddrPort
	if addr != nil {
		ap = addr.AddrPort()
	}
	return p.WriteMsgUDPAddrPort(b, oob, ap)
}

// WriteTo sends b as one datagram to addr, like net.PacketConn's WriteTo:
// a *net.UDPAddr, or a *net.UnixAddr for unixgram.
func (p *PacketConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	switch a := addr.(type) {
	case *net.UDPAddr:
		return p.WriteToUDP(b, a)
	case *net.UnixAddr:
		p.wmu.Lock()
		defer p.wmu.Unlock()
		var err error
		if p.wm[0].NameLen, err = sock.PutPath(&p.wm[0].Name, a.Name); err != nil {
			return 0, p.opErr("write", addr, err)
		}
		n, _, err := p.send(b, nil)
		if err != nil {
			return 0, p.opErr("write", addr, err)
		}
		return n, nil
	}
	return 0, p.opErr("write", addr, syscall.EINVAL)
}

// Write sends b as one datagram to the connected peer.
func (p *PacketConn) Write(b []byte) (int, error) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if p.raddr == nil {
		return 0, p.opErr("write", nil, errMissingAddress)
	}
	p.wm[0].NameLen = 0
	n, _, err := p.send(b, nil)
	if err != nil {
		return 0, p.opErr("write", nil, err)
	}
	return n, nil
}

// Close closes the socket; pending reads and writes return errors
// matching net.ErrClosed. A second Close returns one too.
func (p *PacketConn) Close() error {
	if err := p.fd.close(); err != nil {
		return p.opErr("close", nil, err)
	}
	p.release()
	return nil
}

// LocalAddr returns the address the socket is bound to.
func (p *PacketConn) LocalAddr() net.Addr { return p.laddr }

// RemoteAddr returns the connected peer, or nil.
func (p *PacketConn) RemoteAddr() net.Addr { return p.raddr }

// SetDeadline sets the read and write deadlines.
func (p *PacketConn) SetDeadline(t time.Time) error {
	if p.fd.closing.Load() {
		return p.opErr("set", nil, net.ErrClosed)
	}
	p.fd.setDeadline(&p.fd.r, t)
	p.fd.setDeadline(&p.fd.w, t)
	return nil
}

// SetReadDeadline sets the deadline of reads, pending ones included.
func (p *PacketConn) SetReadDeadline(t time.Time) error {
	if p.fd.closing.Load() {
		return p.opErr("set", nil, net.ErrClosed)
	}
	p.fd.setDeadline(&p.fd.r, t)
	return nil
}

// SetWriteDeadline sets the deadline of writes, pending ones included.
func (p *PacketConn) SetWriteDeadline(t time.Time) error {
	if p.fd.closing.Load() {
		return p.opErr("set", nil, net.ErrClosed)
	}
	p.fd.setDeadline(&p.fd.w, t)
	return nil
}

// SetReadBuffer sets the kernel's receive buffer (SO_RCVBUF).
func (p *PacketConn) SetReadBuffer(bytes int) error {
	return p.option(func(fd int) error { return sock.SetReadBuffer(fd, bytes) })
}

// SetWriteBuffer sets the kernel's send buffer (SO_SNDBUF).
func (p *PacketConn) SetWriteBuffer(bytes int) error {
	return p.option(func(fd int) error { return sock.SetWriteBuffer(fd, bytes) })
}

func (p *PacketConn) option(set func(fd int) error) error {
	_, err := p.fd.syscall(func(fd int) (int, error) { return 0, set(fd) })
	if err != nil {
		return p.opErr("set", nil, err)
	}
	return nil
}

// SyscallConn returns the raw connection, as (*net.UDPConn).SyscallConn:
// Control runs a function on the fd, Read and Write call theirs until it
// reports done, parking on the loop in between.
func (p *PacketConn) SyscallConn() (syscall.RawConn, error) {
	return rawConn{f: p.fd, rmu: &p.rmu, wmu: &p.wmu, opErr: func(op string, err error) error { return p.opErr(op, nil, err) }}, nil
}
