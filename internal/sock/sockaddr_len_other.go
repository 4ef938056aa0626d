//go:build unix && !darwin && !dragonfly && !freebsd && !netbsd && !openbsd

package sock

import "golang.org/x/sys/unix"

// Elsewhere a sockaddr carries no length of its own.

func setLen4(*unix.RawSockaddrAny)            {}
func setLen6(*unix.RawSockaddrAny)            {}
func setLenUnix(*unix.RawSockaddrAny, uint32) {}
