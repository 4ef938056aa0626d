//go:build unix && !linux && !freebsd && !netbsd && !dragonfly && !darwin

package sock

// openbsd and the other systems here tune keep-alive only system-wide.

func setKeepAliveIdle(fd, sec int) error     { return errNoKeepAliveTuning }
func setKeepAliveInterval(fd, sec int) error { return errNoKeepAliveTuning }
func setKeepAliveCount(fd, n int) error      { return errNoKeepAliveTuning }
