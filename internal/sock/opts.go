package sock

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Go's net defaults for a TCP connection's keep-alive probes, which the
// reactor's connections follow: the first probe after 15 s idle, then one
// every 15 s, and the connection is dropped after 9 unanswered.
const (
	KeepAliveIdle     = 15 * time.Second
	KeepAliveInterval = 15 * time.Second
	KeepAliveCount    = 9
)

// errNoKeepAliveTuning is returned where the OS has no per-socket keep-alive
// timing (openbsd and others: only the system-wide sysctls).
var errNoKeepAliveTuning = fmt.Errorf("sock: per-socket keep-alive timing: %w", errors.ErrUnsupported)

// SetNoDelay turns Nagle's algorithm off (on = true) or on for a TCP
// socket.
func SetNoDelay(fd int, on bool) error {
	return setBool(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, on)
}

// SetKeepAlive turns keep-alive probes on or off.
func SetKeepAlive(fd int, on bool) error {
	return setBool(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, on)
}

// SetKeepAliveIdle sets how long a connection stays idle before the first
// probe, rounded up to a second; d <= 0 is KeepAliveIdle.
func SetKeepAliveIdle(fd int, d time.Duration) error {
	if d <= 0 {
		d = KeepAliveIdle
	}
	return setKeepAliveIdle(fd, seconds(d))
}

// SetKeepAliveInterval sets the time between probes, rounded up to a
// second; d <= 0 is KeepAliveInterval.
func SetKeepAliveInterval(fd int, d time.Duration) error {
	if d <= 0 {
		d = KeepAliveInterval
	}
	return setKeepAliveInterval(fd, seconds(d))
}

// SetKeepAliveCount sets how many unanswered probes drop the connection;
// n <= 0 is KeepAliveCount.
func SetKeepAliveCount(fd int, n int) error {
	if n <= 0 {
		n = KeepAliveCount
	}
	return setKeepAliveCount(fd, n)
}

// SetTCPDefaults gives a new TCP connection what Go's net gives its own:
// TCP_NODELAY, and keep-alive probes at the default timing unless idle is
// negative (Go's net.Dialer.KeepAlive and net.ListenConfig.KeepAlive
// meaning: 0 is the default 15 s, negative turns probes off). Where the OS
// cannot tune the timing per socket the probes run at its own.
func SetTCPDefaults(fd int, idle time.Duration) error {
	if err := SetNoDelay(fd, true); err != nil {
		return err
	}
	if idle < 0 {
		return nil
	}
	if err := SetKeepAlive(fd, true); err != nil {
		return err
	}
	for _, err := range [...]error{
		SetKeepAliveIdle(fd, idle),
		SetKeepAliveInterval(fd, 0),
		SetKeepAliveCount(fd, 0),
	} {
		if err != nil && !errors.Is(err, errors.ErrUnsupported) {
			return err
		}
	}
	return nil
}

// SetLinger sets SO_LINGER as net.TCPConn.SetLinger does: sec < 0 is the
// default (close returns at once, the kernel sends what is left in the
// background), 0 discards unsent data and resets the connection on close,
// sec > 0 makes close wait up to sec seconds for the data to be sent.
func SetLinger(fd int, sec int) error {
	l := unix.Linger{}
	if sec >= 0 {
		l.Onoff, l.Linger = 1, int32(sec)
	}
	return os.NewSyscallError("setsockopt", unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &l))
}

// SetReadBuffer sets the socket's receive buffer size (SO_RCVBUF).
func SetReadBuffer(fd int, bytes int) error {
	return os.NewSyscallError("setsockopt", unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, bytes))
}

// SetWriteBuffer sets the socket's send buffer size (SO_SNDBUF).
func SetWriteBuffer(fd int, bytes int) error {
	return os.NewSyscallError("setsockopt", unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, bytes))
}

func setBool(fd, level, opt int, on bool) error {
	v := 0
	if on {
		v = 1
	}
	return os.NewSyscallError("setsockopt", unix.SetsockoptInt(fd, level, opt, v))
}

func setInt(fd, level, opt, v int) error {
	return os.NewSyscallError("setsockopt", unix.SetsockoptInt(fd, level, opt, v))
}

// seconds rounds d up to whole seconds, at least 1.
func seconds(d time.Duration) int {
	return int(max((d+time.Second-1)/time.Second, 1))
}
