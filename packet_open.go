package reactor

import (
	"errors"
	"fmt"
	"net"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/internal/sock"
)

// PacketEcho is a PacketHandler that sends every datagram back to its
// sender.
var PacketEcho PacketHandler = PacketHandlerFuncs{Packet: func(p *PacketConn, pkt *Packet) {
	if pkt.From.IsValid() {
		p.WriteTo(pkt.Data, pkt.From)
	} else if p.RemoteAddr().IsValid() {
		p.Write(pkt.Data)
	}
}}

// ListenPacket opens a datagram socket bound to address (network udp,
// udp4, udp6 or unixgram; port 0 picks a free port) on l, served by h with
// opt (nil for the defaults). Call it on l's goroutine (a callback, or a
// function given to Post); from elsewhere, Group.ListenPacket. With
// opt.ReusePort the socket has SO_REUSEPORT, so several can share the
// address (linux, udp; else an error matching errors.ErrUnsupported). It
// allocates the PacketConn, and with a loop's first datagram socket the
// loop's datagram buffers.
func (l *Loop) ListenPacket(network, address string, h PacketHandler, opt *PacketOptions) (*PacketConn, error) {
	return l.openPacket(network, address, true, h, opt)
}

// DialPacket opens a datagram socket on l connected to address (network
// udp, udp4, udp6 or unixgram), served by h with opt (nil for the
// defaults): it sends only to that peer (Write), receives only from it,
// and hears of ICMP errors about it (OnError; ECONNREFUSED when nothing
// listens at its port). Call it on l's goroutine. The address is an IP
// address and port, or a path: resolve host names before, off the loop.
func (l *Loop) DialPacket(network, address string, h PacketHandler, opt *PacketOptions) (*PacketConn, error) {
	return l.openPacket(network, address, false, h, opt)
}

// openPacket is ListenPacket (listen) or DialPacket.
func (l *Loop) openPacket(network, address string, listen bool, h PacketHandler, opt *PacketOptions) (*PacketConn, error) {
	l.checkLoop("Loop.ListenPacket")
	if l.exited {
		return nil, ErrLoopClosed
	}
	o, fd, family, err := bindPacket(network, address, listen, h, opt)
	if err != nil {
		return nil, err
	}
	var peer Addr
	if !listen {
		if sa, err := unix.Getpeername(fd); err == nil {
			peer = addrOfSockaddr(sa)
		}
	}
	p, err := l.newPacketConn(fd, family, peer, h, o)
	if err != nil {
		return nil, &net.OpError{Op: opName(listen), Net: network, Err: err}
	}
	return p, nil
}

// bindPacket checks the arguments and opens the socket.
func bindPacket(network, address string, listen bool, h PacketHandler, opt *PacketOptions) (PacketOptions, int, int, error) {
	op := opName(listen)
	if h == nil {
		return PacketOptions{}, -1, 0, &net.OpError{Op: op, Net: network, Err: errors.New("nil PacketHandler")}
	}
	o, err := opt.resolve()
	if err != nil {
		return o, -1, 0, err
	}
	if !listen && o.ReusePort {
		return o, -1, 0, &net.OpError{Op: op, Net: network, Err: fmt.Errorf("PacketOptions.ReusePort is for listening: %w", errors.ErrUnsupported)}
	}
	fd, family, err := sock.DatagramSocket(network, address, listen, o.ReusePort)
	if err != nil {
		return o, -1, 0, &net.OpError{Op: op, Net: network, Err: err}
	}
	return o, fd, family, nil
}

func opName(listen bool) string {
	if listen {
		return "listen"
	}
	return "dial"
}

// ListenPacket opens datagram sockets bound to address (network udp, udp4,
// udp6 or unixgram) on g's loops, served by h with opt (nil for the
// defaults): with opt.ReusePort one socket per loop, sharing the address,
// and the kernel spreads peers among them (linux, udp; else an error
// matching errors.ErrUnsupported); without, one socket, on the next loop
// (Group.Next). Safe from any goroutine but g's loops' own (it waits for
// them); with port 0 the first socket picks the port and the others take
// the same. On failure nothing is left open.
func (g *Group) ListenPacket(network, address string, h PacketHandler, opt *PacketOptions) ([]*PacketConn, error) {
	if onLoopOf(g.loops) {
		return nil, errors.New("reactor: Group.ListenPacket called on one of the group's loops: use Loop.ListenPacket")
	}
	o, err := opt.resolve()
	if err != nil {
		return nil, err
	}
	loops := []*Loop{g.Next()}
	if o.ReusePort {
		loops = g.loops
	}
	fds, family, err := bindPackets(network, address, len(loops), h, &o)
	if err != nil {
		return nil, err
	}
	var ps []*PacketConn
	for i, l := range loops {
		type made struct {
			p   *PacketConn
			err error
		}
		ch := make(chan made, 1)
		fd := fds[i]
		if err = l.Post(func() {
			p, err := l.newPacketConn(fd, family, Addr{}, h, o)
			ch <- made{p, err}
		}); err != nil {
			unix.Close(fd)
		} else if m := <-ch; m.err != nil {
			err = m.err
		} else {
			ps = append(ps, m.p)
			continue
		}
		for _, fd := range fds[i+1:] {
			unix.Close(fd)
		}
		for _, p := range ps {
			p.AsyncClose()
		}
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	return ps, nil
}

// bindPackets opens n sockets bound to address (n > 1 needs ReusePort),
// the first picking the port for the others.
func bindPackets(network, address string, n int, h PacketHandler, o *PacketOptions) (fds []int, family int, err error) {
	for i := range n {
		_, fd, fam, err := bindPacket(network, address, true, h, o)
		if err != nil {
			for _, fd := range fds {
				unix.Close(fd)
			}
			return nil, 0, err
		}
		if i == 0 && fam != unix.AF_UNIX {
			if sa, err := unix.Getsockname(fd); err == nil {
				address = addrOfSockaddr(sa).String() // the port the first got
			}
		}
		fds, family = append(fds, fd), fam
	}
	return fds, family, nil
}

// packetSpec is a datagram address a Server serves: its sockets, bound by
// ListenPacket, and how to serve them.
type packetSpec struct {
	fds    []int
	family int
	h      PacketHandler
	opt    PacketOptions
}

// ListenPacket binds datagram sockets on address (network udp, udp4, udp6
// or unixgram; port 0 picks a free one) for Serve to serve with h, beside
// or instead of Listen's stream listener, and returns the address bound.
// With opt.ReusePort (linux, udp) it binds one socket per loop (Loops, or
// GOMAXPROCS) sharing the address, and the kernel spreads peers among
// them; without, one socket, served by the first loop. Call it before
// Serve, as many times as there are addresses to serve. Shutdown sends
// what each socket has queued (for at most 500 ms) before closing it,
// with OnClose reason ErrServerClosed.
func (s *Server) ListenPacket(network, address string, h PacketHandler, opt *PacketOptions) (net.Addr, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case stateNew, stateListening:
	case stateDone:
		return nil, ErrServerClosed
	default:
		return nil, errors.New("reactor: ListenPacket on a Server that serves already")
	}
	if s.NewPoller == nil {
		b, err := ResolveBackend(s.Backend)
		if err != nil {
			return nil, err
		}
		if err := checkBackend(b); err != nil {
			return nil, err
		}
	}
	o, err := opt.resolve()
	if err != nil {
		return nil, err
	}
	n := 1
	if o.ReusePort {
		n = s.Loops
		if n <= 0 {
			n = runtime.GOMAXPROCS(0)
		}
	}
	fds, family, err := bindPackets(network, address, n, h, &o)
	if err != nil {
		return nil, err
	}
	sa, _ := unix.Getsockname(fds[0])
	s.packets = append(s.packets, packetSpec{fds: fds, family: family, h: h, opt: o})
	s.state = stateListening
	return addrOfSockaddr(sa).netAddr(network), nil
}

// netAddr is a as the net.Addr of network.
func (a Addr) netAddr(network string) net.Addr {
	if a.path != "" {
		return &net.UnixAddr{Name: a.path, Net: network}
	}
	return net.UDPAddrFromAddrPort(a.ap)
}

// startPackets makes the PacketConns of the sockets ListenPacket bound, on
// the loops of g; with s.mu held, before the loops run.
func (s *Server) startPackets(g *Group) error {
	for si, spec := range s.packets {
		for i, fd := range spec.fds {
			l := g.loops[i%len(g.loops)]
			p, err := l.newPacketConn(fd, spec.family, Addr{}, spec.h, spec.opt)
			if err != nil {
				for _, fd := range spec.fds[i+1:] {
					unix.Close(fd)
				}
				for _, later := range s.packets[si+1:] {
					for _, fd := range later.fds {
						unix.Close(fd)
					}
				}
				s.packets = nil
				return err
			}
			p.srv = s
		}
	}
	s.packets = nil // the PacketConns own the fds now
	return nil
}

// closePackets closes the sockets ListenPacket bound that no PacketConn
// owns; with s.mu held, when serving never starts.
func (s *Server) closePackets() {
	for _, spec := range s.packets {
		for _, fd := range spec.fds {
			unix.Close(fd)
		}
	}
	s.packets = nil
}
