//go:build darwin || freebsd

package sock

import "golang.org/x/sys/unix"

// darwin and freebsd report a received TOS byte as IP_RECVTOS.
const ipTOSCmsgType = unix.IP_RECVTOS
