package sock

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Msg is one datagram for a Batch: its buffer, its peer's address and its
// control messages. Recv fills N (the datagram's bytes, at most len(Buf)),
// Name and NameLen, OOBN and Flags (MSG_TRUNC when the datagram was longer
// than Buf); Send sends Buf to Name (NameLen 0: the connected peer) with
// OOB as control messages, and sets N.
type Msg struct {
	Buf     []byte
	OOB     []byte
	Name    unix.RawSockaddrAny
	NameLen uint32
	N       int
	OOBN    int
	Flags   int
}

// DatagramSocket opens a non-blocking, close-on-exec datagram socket for
// network (udp, udp4, udp6 or unixgram) and address: bound to it
// (listen), or connected to it (dial). A udp address with port 0 gets a
// free port. With reusePort (linux, udp) SO_REUSEPORT is set before bind,
// so that several sockets can share the address and the kernel spreads
// peers among them by a hash of their addresses; elsewhere the error
// matches errors.ErrUnsupported.
func DatagramSocket(network, address string, listen, reusePort bool) (fd, family int, err error) {
	sa, family, err := ResolveDatagram(network, address)
	if err != nil {
		return -1, 0, err
	}
	if reusePort && family == unix.AF_UNIX {
		return -1, 0, fmt.Errorf("sock: SO_REUSEPORT on a unixgram socket: %w", errors.ErrUnsupported)
	}
	fd, err = datagramSocket(family)
	if err != nil {
		return -1, 0, err
	}
	if err := setupDatagram(fd, sa, listen, reusePort); err != nil {
		unix.Close(fd)
		return -1, 0, err
	}
	return fd, family, nil
}

// setupDatagram connects fd to sa (dial) or binds it there (listen), with
// SO_REUSEPORT first if asked.
func setupDatagram(fd int, sa unix.Sockaddr, listen, reusePort bool) error {
	if !listen {
		return os.NewSyscallError("connect", unix.Connect(fd, sa))
	}
	if reusePort {
		if err := setReusePort(fd); err != nil {
			return err
		}
	}
	return os.NewSyscallError("bind", unix.Bind(fd, sa))
}

// ResolveDatagram turns a datagram network and address into a sockaddr and
// its family; host names are resolved with net's resolver (set-up work,
// not the event path).
func ResolveDatagram(network, address string) (unix.Sockaddr, int, error) {
	switch network {
	case "unixgram":
		if address == "" {
			return nil, 0, errors.New("sock: unixgram needs a path")
		}
		return &unix.SockaddrUnix{Name: address}, unix.AF_UNIX, nil
	case "udp", "udp4", "udp6":
	default:
		return nil, 0, fmt.Errorf("sock: unsupported datagram network %q (want udp, udp4, udp6 or unixgram)", network)
	}
	ua, err := net.ResolveUDPAddr(network, address)
	if err != nil {
		return nil, 0, err
	}
	ip, ok := netip.AddrFromSlice(ua.IP)
	if !ok || ua.IP == nil {
		ip = netip.IPv4Unspecified()
		if network != "udp4" {
			ip = netip.IPv6Unspecified() // udp: dual-stack, as Go's net listens
		}
	}
	ip = ip.Unmap()
	switch {
	case ip.Is4() && network != "udp6" && !(network == "udp" && ua.IP == nil):
		return &unix.SockaddrInet4{Port: ua.Port, Addr: ip.As4()}, unix.AF_INET, nil
	case network == "udp4":
		return nil, 0, fmt.Errorf("sock: %s is not an IPv4 address", address)
	}
	if ip.Is4() {
		ip = netip.AddrFrom16(ip.As16())
	}
	return &unix.SockaddrInet6{Port: ua.Port, Addr: ip.As16(), ZoneId: zoneIndex(ip.Zone())}, unix.AF_INET6, nil
}

// zoneIndex is the interface index of an IPv6 zone, 0 if none or unknown.
func zoneIndex(zone string) uint32 {
	if zone == "" {
		return 0
	}
	if ifi, err := net.InterfaceByName(zone); err == nil {
		return uint32(ifi.Index)
	}
	return 0
}

// ErrAddrFamily is returned by PutAddrPort for an address the socket's
// family cannot reach: an IPv6 address on an IPv4 socket, an IP address on
// a unixgram socket.
var ErrAddrFamily = errors.New("sock: address of the wrong family for the socket")

// PutAddrPort writes ap into raw as a sockaddr of family (an IPv4 address
// on an AF_INET6 socket as an IPv4-mapped one) and returns its length. It
// does not allocate.
func PutAddrPort(raw *unix.RawSockaddrAny, family int, ap netip.AddrPort) (uint32, error) {
	ip := ap.Addr()
	switch family {
	case unix.AF_INET:
		ip = ip.Unmap()
		if !ip.Is4() {
			return 0, ErrAddrFamily
		}
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(raw))
		*sa = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: ip.As4()}
		putPort(&sa.Port, ap.Port())
		setLen4(raw)
		return unix.SizeofSockaddrInet4, nil
	case unix.AF_INET6:
		if !ip.IsValid() {
			return 0, ErrAddrFamily
		}
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(raw))
		*sa = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: ip.As16()}
		putPort(&sa.Port, ap.Port())
		if z := ip.Zone(); z != "" {
			sa.Scope_id = zoneIndex(z)
		}
		setLen6(raw)
		return unix.SizeofSockaddrInet6, nil
	}
	return 0, ErrAddrFamily
}

// PutPath writes a unix socket path into raw and returns its length.
func PutPath(raw *unix.RawSockaddrAny, path string) (uint32, error) {
	sa := (*unix.RawSockaddrUnix)(unsafe.Pointer(raw))
	if len(path) == 0 || len(path) >= len(sa.Path) {
		return 0, fmt.Errorf("sock: unix socket path of %d bytes", len(path))
	}
	*sa = unix.RawSockaddrUnix{Family: unix.AF_UNIX}
	for i := 0; i < len(path); i++ {
		sa.Path[i] = int8(path[i])
	}
	n := uint32(unsafe.Offsetof(sa.Path)) + uint32(len(path)) + 1
	setLenUnix(raw, n)
	return n, nil
}

// AddrPortOf returns the IP address and port in raw, and whether raw holds
// one. It does not allocate, except for an IPv6 zone's name.
func AddrPortOf(raw *unix.RawSockaddrAny) (netip.AddrPort, bool) {
	switch int(raw.Addr.Family) {
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(raw))
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), getPort(&sa.Port)), true
	case unix.AF_INET6:
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(raw))
		ip := netip.AddrFrom16(sa.Addr)
		if sa.Scope_id != 0 {
			ip = ip.WithZone(zoneName(sa.Scope_id))
		}
		return netip.AddrPortFrom(ip, getPort(&sa.Port)), true
	}
	return netip.AddrPort{}, false
}

// PathOf returns the path bytes of a unix sockaddr of length n in raw: nil
// for an unnamed peer. It does not allocate; the bytes alias raw.
func PathOf(raw *unix.RawSockaddrAny, n uint32) []byte {
	if int(raw.Addr.Family) != unix.AF_UNIX {
		return nil
	}
	sa := (*unix.RawSockaddrUnix)(unsafe.Pointer(raw))
	off := uint32(unsafe.Offsetof(sa.Path))
	if n <= off {
		return nil
	}
	p := unsafe.Slice((*byte)(unsafe.Pointer(&sa.Path[0])), min(int(n-off), len(sa.Path)))
	if p[0] != 0 { // an abstract address starts with a NUL and is not terminated
		for i, b := range p {
			if b == 0 {
				p = p[:i]
				break
			}
		}
	}
	return p
}

// zoneName is the name of interface index i, or its number.
func zoneName(i uint32) string {
	if ifi, err := net.InterfaceByIndex(int(i)); err == nil {
		return ifi.Name
	}
	return fmt.Sprint(i)
}

// putPort and getPort convert a port to and from network byte order as a
// sockaddr holds it.
func putPort(p *uint16, port uint16) {
	binary.BigEndian.PutUint16(unsafe.Slice((*byte)(unsafe.Pointer(p)), 2), port)
}

func getPort(p *uint16) uint16 {
	return binary.BigEndian.Uint16(unsafe.Slice((*byte)(unsafe.Pointer(p)), 2))
}

// Control message levels and types the datagram path reads and writes.
const (
	solUDP     = 17 // SOL_UDP, IPPROTO_UDP
	udpSegment = 103
	udpGRO     = 104
)

// Control is what a received datagram's control messages said: its TOS
// byte or traffic class (if the socket asked for it), and the segment
// size of a coalesced (GRO) receive, 0 if it was one datagram.
type Control struct {
	TOS    uint8
	HasTOS bool
	GRO    int
}

// ParseControl reads the control messages in oob. It does not allocate.
func ParseControl(oob []byte) Control {
	var c Control
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		n := int(h.Len)
		if n < unix.SizeofCmsghdr || n > len(oob) {
			break
		}
		data := oob[cmsgAlign(unix.SizeofCmsghdr):n]
		switch {
		case h.Level == unix.IPPROTO_IP && h.Type == ipTOSCmsg && len(data) >= 1:
			c.TOS, c.HasTOS = data[0], true
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_TCLASS && len(data) >= 4:
			c.TOS, c.HasTOS = uint8(*(*int32)(unsafe.Pointer(&data[0]))), true
		case h.Level == solUDP && h.Type == udpGRO && len(data) >= 2:
			if len(data) >= 4 {
				c.GRO = int(*(*int32)(unsafe.Pointer(&data[0])))
			} else {
				c.GRO = int(*(*uint16)(unsafe.Pointer(&data[0])))
			}
		}
		oob = oob[min(cmsgAlign(n), len(oob)):]
	}
	return c
}

// PutSegment appends to oob[:n] a UDP_SEGMENT control message (GSO: the
// kernel splits the payload into datagrams of seg bytes) and returns the
// new length. oob must have room (ControlSpace).
func PutSegment(oob []byte, n, seg int) int {
	return putCmsg(oob, n, solUDP, udpSegment, 2, func(d []byte) { *(*uint16)(unsafe.Pointer(&d[0])) = uint16(seg) })
}

// PutTOS appends an IP_TOS (AF_INET) or IPV6_TCLASS (AF_INET6) control
// message setting the datagram's TOS byte or traffic class.
func PutTOS(oob []byte, n, family int, tos uint8) int {
	if family == unix.AF_INET6 {
		return putCmsg(oob, n, unix.IPPROTO_IPV6, unix.IPV6_TCLASS, 4, func(d []byte) { *(*int32)(unsafe.Pointer(&d[0])) = int32(tos) })
	}
	return putCmsg(oob, n, unix.IPPROTO_IP, unix.IP_TOS, 4, func(d []byte) { *(*int32)(unsafe.Pointer(&d[0])) = int32(tos) })
}

// ControlSpace is room for the control messages a datagram sends or
// receives here: a segment size and a TOS byte, or a GRO segment size and
// a TOS byte.
var ControlSpace = 2*unix.CmsgSpace(4) + unix.CmsgSpace(4)

func putCmsg(oob []byte, n, level, typ, datalen int, fill func([]byte)) int {
	space := unix.CmsgSpace(datalen)
	b := oob[n : n+space]
	clear(b)
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = int32(level), int32(typ)
	h.SetLen(unix.CmsgLen(datalen))
	fill(b[cmsgAlign(unix.SizeofCmsghdr):])
	return n + space
}

// cmsgAlign rounds n up to the alignment of control messages
// (CmsgSpace(n) is the aligned header plus n aligned).
func cmsgAlign(n int) int { return unix.CmsgSpace(n) - unix.CmsgSpace(0) }

// LocalAddrOf is a datagram socket's own address as net's type for
// network (*net.UDPAddr, *net.UnixAddr), or nil.
func LocalAddrOf(network string, fd int) net.Addr {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return nil
	}
	return datagramAddr(network, sa)
}

// RemoteAddrOf is a connected datagram socket's peer, or nil.
func RemoteAddrOf(network string, fd int) net.Addr {
	sa, err := unix.Getpeername(fd)
	if err != nil {
		return nil
	}
	return datagramAddr(network, sa)
}

func datagramAddr(network string, sa unix.Sockaddr) net.Addr {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)))
	case *unix.SockaddrInet6:
		ip := netip.AddrFrom16(sa.Addr)
		if sa.ZoneId != 0 {
			ip = ip.WithZone(zoneName(sa.ZoneId))
		}
		return net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(sa.Port)))
	case *unix.SockaddrUnix:
		if sa.Name == "" {
			return nil
		}
		return &net.UnixAddr{Name: sa.Name, Net: network}
	}
	return nil
}

// SetReceiveTOS asks the kernel to report each datagram's TOS byte (IPv4)
// or traffic class (IPv6) in a control message; where the OS cannot for
// IPv4 (netbsd, openbsd, dragonfly) the error matches
// errors.ErrUnsupported.
func SetReceiveTOS(fd, family int) error {
	if family == unix.AF_INET6 {
		return os.NewSyscallError("setsockopt", unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_RECVTCLASS, 1))
	}
	return setReceiveTOS4(fd)
}
