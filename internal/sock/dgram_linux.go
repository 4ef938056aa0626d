package sock

import (
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// datagramSocket returns a new non-blocking, close-on-exec datagram socket.
func datagramSocket(family int) (int, error) {
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	return fd, nil
}

// mmsghdr is struct mmsghdr: a msghdr and the bytes the call moved.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// Batch moves many datagrams per system call: recvmmsg and sendmmsg on
// linux, one recvmsg or sendmsg each elsewhere. Its arrays are reused
// from call to call; a Batch belongs to one goroutine. Recv and Send do
// not allocate on linux.
type Batch struct {
	hdrs []mmsghdr
	iovs []unix.Iovec
}

// NewBatch returns a Batch for up to n datagrams per call.
func NewBatch(n int) *Batch {
	return &Batch{hdrs: make([]mmsghdr, n), iovs: make([]unix.Iovec, n)}
}

// point makes hdrs[i] describe ms[i].
func (b *Batch) point(i int, m *Msg, recv bool) {
	Msghdr(&b.hdrs[i].hdr, &b.iovs[i], m, recv)
}

// Recv receives up to min(len(ms), the Batch's size) datagrams, one into
// each Msg, and returns how many. With none waiting the error is
// unix.EAGAIN; an error reported for an earlier datagram (an ICMP
// unreachable on a connected socket: ECONNREFUSED) is returned once, with
// no datagram.
func (b *Batch) Recv(fd int, ms []Msg) (int, error) {
	k := min(len(ms), len(b.hdrs))
	for i := range k {
		b.point(i, &ms[i], true)
	}
	for {
		n, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&b.hdrs[0])), uintptr(k), unix.MSG_DONTWAIT, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		for i := range int(n) {
			h := &b.hdrs[i]
			m := &ms[i]
			m.N = int(h.n)
			m.NameLen = h.hdr.Namelen
			m.OOBN = int(h.hdr.Controllen)
			m.Flags = int(h.hdr.Flags)
		}
		return int(n), nil
	}
}

// Send sends ms[0], ms[1]... as one datagram each (or, with a segment
// control message, as several) and returns how many Msgs went. An error is
// returned only when the first could not go; sending the rest again
// reports the error of the one that failed.
func (b *Batch) Send(fd int, ms []Msg) (int, error) {
	k := min(len(ms), len(b.hdrs))
	for i := range k {
		b.point(i, &ms[i], false)
	}
	if k == 1 {
		// One message: sendmsg, which costs less than a sendmmsg of one.
		for {
			n, _, e := unix.RawSyscall(unix.SYS_SENDMSG, uintptr(fd), uintptr(unsafe.Pointer(&b.hdrs[0].hdr)), unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
			if e == unix.EINTR {
				continue
			}
			if e != 0 {
				return 0, e
			}
			ms[0].N = int(n)
			return 1, nil
		}
	}
	for {
		n, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&b.hdrs[0])), uintptr(k), unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		for i := range int(n) {
			ms[i].N = int(b.hdrs[i].n)
		}
		return int(n), nil
	}
}

// Msghdr points h at m's buffer, name and control buffer, as a recvmsg
// (recv) or sendmsg with m would, through iov, which must outlive the call
// h is used for; for an io_uring operation.
func Msghdr(h *unix.Msghdr, iov *unix.Iovec, m *Msg, recv bool) {
	*h = unix.Msghdr{}
	if len(m.Buf) > 0 {
		iov.Base = &m.Buf[0]
	} else {
		iov.Base = nil
	}
	iov.SetLen(len(m.Buf))
	h.Iov = iov
	h.SetIovlen(1)
	if recv || m.NameLen > 0 {
		h.Name = (*byte)(unsafe.Pointer(&m.Name))
		h.Namelen = m.NameLen
		if recv {
			h.Namelen = unix.SizeofSockaddrAny
		}
	}
	if len(m.OOB) > 0 {
		h.Control = &m.OOB[0]
		h.SetControllen(len(m.OOB))
	}
}

// Offload says what this kernel offers a UDP socket: GSO (UDP_SEGMENT,
// linux 4.18) and GRO (UDP_GRO, linux 5.0), each probed once on a socket
// of its own, never assumed.
var Offload = sync.OnceValues(func() (gso, gro bool) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false, false
	}
	defer unix.Close(fd)
	_, err = unix.GetsockoptInt(fd, solUDP, udpSegment)
	gso = err == nil
	gro = unix.SetsockoptInt(fd, solUDP, udpGRO, 1) == nil
	return gso, gro
})

// SetGRO asks the kernel to coalesce a burst of same-sized datagrams from
// one peer into one receive, with a UDP_GRO control message giving the
// size of each.
func SetGRO(fd int) error {
	return os.NewSyscallError("setsockopt", unix.SetsockoptInt(fd, solUDP, udpGRO, 1))
}

// IsGSOError reports a send that failed because a segment size was given
// that the device or the route cannot do (the kernel's EIO for a device
// without checksum offload, EINVAL for a segment past the MTU): send those
// datagrams one by one instead.
func IsGSOError(err error) bool { return err == unix.EIO || err == unix.EINVAL }
