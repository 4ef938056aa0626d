//go:build linux || darwin || freebsd

package sock

import (
	"os"

	"golang.org/x/sys/unix"
)

// ipTOSCmsg is the type of the control message carrying a received IPv4
// datagram's TOS byte.
const ipTOSCmsg = ipTOSCmsgType

func setReceiveTOS4(fd int) error {
	return os.NewSyscallError("setsockopt", unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_RECVTOS, 1))
}
