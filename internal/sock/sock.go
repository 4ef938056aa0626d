// Package sock holds the raw socket calls the reactor and the reference
// servers share: listening, accepting and dialing on bare fds, and turning
// socket addresses into net.Addr values. Every fd it returns is
// close-on-exec; listening and accepted fds are non-blocking unless a
// function says otherwise.
package sock

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"
)

// Backlog is the listen(2) backlog; the kernel caps it at its own limit
// (somaxconn on linux).
const Backlog = 4096

// Listen opens a non-blocking listening socket. network is tcp, tcp4, tcp6
// or unix; a tcp address with port 0 gets a free port, which the returned
// net.Addr shows. SO_REUSEADDR is set on tcp sockets.
func Listen(network, address string) (fd int, addr net.Addr, err error) {
	return listen(network, address, false)
}

// ListenReusePort is Listen with SO_REUSEPORT set before bind, so that
// several sockets of one user can listen on the same tcp address and the
// kernel spreads incoming connections among them by a hash of the
// connection's addresses and ports. Linux only: elsewhere, and for the unix
// network, the error matches errors.ErrUnsupported (darwin and most BSDs
// accept the option but do not balance with it).
func ListenReusePort(network, address string) (fd int, addr net.Addr, err error) {
	if network == "unix" {
		return -1, nil, fmt.Errorf("sock: SO_REUSEPORT on a unix socket: %w", errors.ErrUnsupported)
	}
	return listen(network, address, true)
}

func listen(network, address string, reusePort bool) (fd int, addr net.Addr, err error) {
	sa, family, err := Resolve(network, address)
	if err != nil {
		return -1, nil, err
	}
	s, err := Socket(family)
	if err != nil {
		return -1, nil, err
	}
	defer func() {
		if err != nil {
			unix.Close(s) // not fd: every failing return sets that to -1
		}
	}()
	fd = s
	if family != unix.AF_UNIX {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return -1, nil, os.NewSyscallError("setsockopt", err)
		}
	}
	if reusePort {
		if err := setReusePort(fd); err != nil {
			return -1, nil, err
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return -1, nil, os.NewSyscallError("bind", err)
	}
	if err := unix.Listen(fd, Backlog); err != nil {
		return -1, nil, os.NewSyscallError("listen", err)
	}
	return fd, LocalAddr(fd), nil
}

// Resolve turns network and address into a sockaddr and its family. Host names are
// resolved with net's resolver; this is set-up work, not the event path.
func Resolve(network, address string) (unix.Sockaddr, int, error) {
	switch network {
	case "unix":
		return &unix.SockaddrUnix{Name: address}, unix.AF_UNIX, nil
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, 0, fmt.Errorf("sock: unsupported network %q (want tcp, tcp4, tcp6 or unix)", network)
	}
	ta, err := net.ResolveTCPAddr(network, address)
	if err != nil {
		return nil, 0, err
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	if !ok || ta.IP == nil {
		ip = netip.IPv4Unspecified()
		if network == "tcp6" {
			ip = netip.IPv6Unspecified()
		}
	}
	ip = ip.Unmap()
	if ip.Is4() && network != "tcp6" {
		return &unix.SockaddrInet4{Port: ta.Port, Addr: ip.As4()}, unix.AF_INET, nil
	}
	if ip.Is4() {
		ip = netip.AddrFrom16(ip.As16())
	}
	return &unix.SockaddrInet6{Port: ta.Port, Addr: ip.As16()}, unix.AF_INET6, nil
}

// Addr converts a sockaddr to a *net.TCPAddr or *net.UnixAddr; nil for
// other kinds.
func Addr(sa unix.Sockaddr) net.Addr {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(sa.Addr[:]).To16(), Port: sa.Port}
	case *unix.SockaddrInet6:
		zone := ""
		if sa.ZoneId != 0 {
			if ifi, err := net.InterfaceByIndex(int(sa.ZoneId)); err == nil {
				zone = ifi.Name
			}
		}
		return &net.TCPAddr{IP: append(net.IP(nil), sa.Addr[:]...), Port: sa.Port, Zone: zone}
	case *unix.SockaddrUnix:
		return &net.UnixAddr{Name: sa.Name, Net: "unix"}
	}
	return nil
}

// LocalAddr is fd's own address, or nil.
func LocalAddr(fd int) net.Addr {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return nil
	}
	return Addr(sa)
}

// RemoteAddr is fd's peer address, or nil.
func RemoteAddr(fd int) net.Addr {
	sa, err := unix.Getpeername(fd)
	if err != nil {
		return nil
	}
	return Addr(sa)
}

// IsTemporaryAcceptError reports an accept error that concerns one pending
// connection (it was reset or aborted before accept took it): retry at once.
func IsTemporaryAcceptError(err error) bool {
	return errors.Is(err, unix.ECONNABORTED) || errors.Is(err, unix.EPROTO) || errors.Is(err, unix.EINTR)
}

// IsFDExhausted reports accept failing for want of fds (EMFILE, ENFILE) or
// memory (ENOBUFS, ENOMEM): the pending connections stay in the backlog and
// accepting must back off rather than spin.
func IsFDExhausted(err error) bool {
	return errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) ||
		errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.ENOMEM)
}
