package reactor

import (
	"runtime"
	"strconv"
)

// goroutineID returns the calling goroutine's id, read from the header
// line of its stack trace ("goroutine 18 [running]:"). It costs a
// microsecond or two, so it is for the rare calls that must know whether
// they run on a loop (Shutdown), never the event path. 0 if the header
// cannot be read.
func goroutineID() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	const prefix = "goroutine "
	if len(b) < len(prefix) || string(b[:len(prefix)]) != prefix {
		return 0
	}
	b = b[len(prefix):]
	end := 0
	for end < len(b) && b[end] >= '0' && b[end] <= '9' {
		end++
	}
	id, err := strconv.ParseUint(string(b[:end]), 10, 64)
	if err != nil {
		return 0
	}
	return id
}
