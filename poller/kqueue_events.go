package poller

// kevReadiness is the readiness one kqueue event reports, factored out of
// the BSD-only file so that it is tested on every OS: the filter's
// direction (read, write); EV_EOF (eof) is HangUp, and when the kernel
// puts a socket error in fflags beside it (a reset: the BSDs report the
// pending so_error there) it is Error as well; EV_ERROR (evErr, a failed
// change) is Error.
func kevReadiness(read, write, eof, evErr bool, fflags uint32) Events {
	var r Events
	switch {
	case read:
		r = Readable
	case write:
		r = Writable
	}
	if eof {
		r |= HangUp
		if fflags != 0 {
			r |= Error
		}
	}
	if evErr {
		r |= Error
	}
	return r
}
