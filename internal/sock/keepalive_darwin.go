package sock

import "golang.org/x/sys/unix"

// darwin names the idle time TCP_KEEPALIVE.
func setKeepAliveIdle(fd, sec int) error {
	return setInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPALIVE, sec)
}

func setKeepAliveInterval(fd, sec int) error {
	return setInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, sec)
}

func setKeepAliveCount(fd, n int) error {
	return setInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPCNT, n)
}
