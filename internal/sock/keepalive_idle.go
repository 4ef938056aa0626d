//go:build linux || freebsd || netbsd || dragonfly

package sock

import "golang.org/x/sys/unix"

func setKeepAliveIdle(fd, sec int) error {
	return setInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, sec)
}

func setKeepAliveInterval(fd, sec int) error {
	return setInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, sec)
}

func setKeepAliveCount(fd, n int) error {
	return setInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPCNT, n)
}
