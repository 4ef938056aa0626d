//go:build darwin || dragonfly || freebsd || netbsd || openbsd

package sock

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The BSDs and darwin keep a sockaddr's length in its first byte.

func setLen4(raw *unix.RawSockaddrAny) {
	(*unix.RawSockaddrInet4)(unsafe.Pointer(raw)).Len = unix.SizeofSockaddrInet4
}

func setLen6(raw *unix.RawSockaddrAny) {
	(*unix.RawSockaddrInet6)(unsafe.Pointer(raw)).Len = unix.SizeofSockaddrInet6
}

func setLenUnix(raw *unix.RawSockaddrAny, n uint32) {
	(*unix.RawSockaddrUnix)(unsafe.Pointer(raw)).Len = uint8(n)
}
