package reactor

import "golang.org/x/sys/unix"

// quiet reports whether closing fd now loses nothing: its receive queue
// is empty (so close sends no reset) and the peer has acknowledged every
// byte sent (so nothing waits in the send queue for a reset to discard).
// Two ioctls; false when either fails.
func quiet(fd int) bool {
	in, err := unix.IoctlGetInt(fd, unix.SIOCINQ)
	if err != nil || in != 0 {
		return false
	}
	out, err := unix.IoctlGetInt(fd, unix.SIOCOUTQ)
	return err == nil && out == 0
}
