//go:build unix && !linux

package sock

import (
	"net/netip"

	"golang.org/x/sys/unix"
)

func netipFrom4(sa *unix.SockaddrInet4) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
}

func netipFrom6(sa *unix.SockaddrInet6) netip.AddrPort {
	ip := netip.AddrFrom16(sa.Addr)
	if sa.ZoneId != 0 {
		ip = ip.WithZone(zoneName(sa.ZoneId))
	}
	return netip.AddrPortFrom(ip, uint16(sa.Port))
}
