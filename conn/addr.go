package conn

import (
	"net"
	"strconv"

	"golang.org/x/sys/unix"
)

// addrs caches the addresses of a Conn once known. It is allocated by the
// first LocalAddr or RemoteAddr call, so a Conn whose addresses nobody asks
// for pays one pointer for them.
type addrs struct {
	local, remote net.Addr
}

// LocalAddr returns the local address, from getsockname(2): a *net.TCPAddr
// for an AF_INET or AF_INET6 socket, a *net.UnixAddr for an AF_UNIX one. It
// returns nil if the address is unavailable (not a socket, another family,
// closed). The first call that finds an address allocates it and caches it;
// later calls return the cached value without a syscall, even after Close.
// It does not block.
func (c *Conn) LocalAddr() net.Addr {
	if c.addrs != nil && c.addrs.local != nil {
		return c.addrs.local
	}
	if c.fd < 0 {
		return nil
	}
	sa, err := unix.Getsockname(c.fd)
	if err != nil {
		return nil
	}
	return c.cache(&c.addrsOrNew().local, sa)
}

// RemoteAddr returns the peer's address, from getpeername(2), as LocalAddr
// does: a *net.TCPAddr or *net.UnixAddr, nil if unavailable (for example not
// connected yet), computed by the first call that succeeds and cached. It
// does not block.
func (c *Conn) RemoteAddr() net.Addr {
	if c.addrs != nil && c.addrs.remote != nil {
		return c.addrs.remote
	}
	if c.fd < 0 {
		return nil
	}
	sa, err := unix.Getpeername(c.fd)
	if err != nil {
		return nil
	}
	return c.cache(&c.addrsOrNew().remote, sa)
}

func (c *Conn) addrsOrNew() *addrs {
	if c.addrs == nil {
		c.addrs = new(addrs)
	}
	return c.addrs
}

// cache converts sa and stores it in *slot, if it is of a known family.
func (c *Conn) cache(slot *net.Addr, sa unix.Sockaddr) net.Addr {
	a := sockaddrToAddr(sa)
	if a != nil {
		*slot = a
	}
	return a
}

// sockaddrToAddr converts sa to a net.Addr, or nil for an unknown family.
// An unnamed unix socket (one end of a socketpair, an unbound client) has
// the Name the kernel reports through x/sys: "" on the BSDs and darwin, "@"
// on linux, as in package net.
func sockaddrToAddr(sa unix.Sockaddr) net.Addr {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IPv4(sa.Addr[0], sa.Addr[1], sa.Addr[2], sa.Addr[3]), Port: sa.Port}
	case *unix.SockaddrInet6:
		a := &net.TCPAddr{IP: append(net.IP(nil), sa.Addr[:]...), Port: sa.Port}
		if sa.ZoneId != 0 {
			a.Zone = zoneName(sa.ZoneId)
		}
		return a
	case *unix.SockaddrUnix:
		return &net.UnixAddr{Name: sa.Name, Net: "unix"}
	}
	return nil
}

// zoneName returns the name of the interface with the given index, or the
// index in decimal if there is no such interface, as package net does.
func zoneName(id uint32) string {
	if ifi, err := net.InterfaceByIndex(int(id)); err == nil {
		return ifi.Name
	}
	return strconv.FormatUint(uint64(id), 10)
}
