//go:build unix && !linux

package sock

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// datagramSocket returns a new non-blocking, close-on-exec datagram socket.
func datagramSocket(family int) (int, error) {
	syscall.ForkLock.RLock()
	fd, err := unix.Socket(family, unix.SOCK_DGRAM, 0)
	if err == nil {
		unix.CloseOnExec(fd)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, os.NewSyscallError("fcntl", err)
	}
	return fd, nil
}

// Batch moves datagrams one recvmsg or sendmsg at a time here (linux has
// recvmmsg and sendmmsg); each call allocates its address.
type Batch struct{ n int }

// NewBatch returns a Batch for up to n datagrams per call.
func NewBatch(n int) *Batch { return &Batch{n: n} }

// Recv receives up to min(len(ms), the Batch's size) datagrams, one into
// each Msg, and returns how many (see the linux version).
func (b *Batch) Recv(fd int, ms []Msg) (int, error) {
	k := min(len(ms), b.n)
	for i := range k {
		m := &ms[i]
		n, oobn, flags, from, err := unix.Recvmsg(fd, m.Buf, m.OOB, unix.MSG_DONTWAIT)
		if err != nil {
			if i > 0 && err == unix.EAGAIN {
				return i, nil
			}
			if i > 0 {
				return i, nil // reported by the next call
			}
			return 0, err
		}
		m.N, m.OOBN, m.Flags = n, oobn, flags
		m.NameLen = putSockaddr(&m.Name, from)
	}
	return k, nil
}

// Send sends ms one at a time and returns how many went (see the linux
// version).
func (b *Batch) Send(fd int, ms []Msg) (int, error) {
	k := min(len(ms), b.n)
	for i := range k {
		m := &ms[i]
		var to unix.Sockaddr
		if m.NameLen > 0 {
			to = sockaddrOf(&m.Name)
		}
		n, err := unix.SendmsgN(fd, m.Buf, m.OOB, to, unix.MSG_DONTWAIT)
		if err != nil {
			if i > 0 {
				return i, nil
			}
			return 0, err
		}
		m.N = n
	}
	return k, nil
}

// putSockaddr writes sa into raw and returns its length (0 for none).
func putSockaddr(raw *unix.RawSockaddrAny, sa unix.Sockaddr) uint32 {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		n, _ := PutAddrPort(raw, unix.AF_INET, netipFrom4(sa))
		return n
	case *unix.SockaddrInet6:
		n, _ := PutAddrPort(raw, unix.AF_INET6, netipFrom6(sa))
		return n
	case *unix.SockaddrUnix:
		if sa.Name == "" {
			*raw = unix.RawSockaddrAny{}
			raw.Addr.Family = unix.AF_UNIX
			return 2
		}
		n, _ := PutPath(raw, sa.Name)
		return n
	}
	return 0
}

// sockaddrOf is the unix.Sockaddr in raw.
func sockaddrOf(raw *unix.RawSockaddrAny) unix.Sockaddr {
	if ap, ok := AddrPortOf(raw); ok {
		if ap.Addr().Is4() {
			return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
		}
		return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16(), ZoneId: zoneIndex(ap.Addr().Zone())}
	}
	if p := PathOf(raw, unix.SizeofSockaddrUnix); p != nil {
		return &unix.SockaddrUnix{Name: string(p)}
	}
	return nil
}

// Msghdr is linux's (for io_uring), which is linux only.
func Msghdr(h *unix.Msghdr, iov *unix.Iovec, m *Msg, recv bool) {}

// Offload: UDP GSO and GRO are linux's.
func Offload() (gso, gro bool) { return false, false }

// SetGRO refuses: GRO is linux's.
func SetGRO(int) error {
	return fmt.Errorf("sock: UDP GRO is linux only: %w", errors.ErrUnsupported)
}

// IsGSOError reports nothing here: there is no GSO to fail.
func IsGSOError(error) bool { return false }
