//go:build race

package conn

import (
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The raw system calls of sys_raw.go and writev_raw.go bypass x/sys's
// wrappers, which tell the race detector what the kernel reads and writes;
// these do the same, so -race sees a handler that changes a buffer while
// it is being written, as it would with unix.Write.

// raceOn reports a -race build (tests skip allocation counts under it).
const raceOn = true

// ioSync orders what one goroutine wrote to an fd before another read it,
// as x/sys's own ioSync does.
var ioSync int64

// raceReadIovecs tells the race detector that the kernel reads iov.
func raceReadIovecs(iov []unix.Iovec) {
	runtime.RaceReleaseMerge(unsafe.Pointer(&ioSync))
	for _, v := range iov {
		runtime.RaceReadRange(unsafe.Pointer(v.Base), int(v.Len))
	}
}

// raceRead tells the race detector that the kernel read p (a write(2)).
func raceRead(p []byte) {
	runtime.RaceReleaseMerge(unsafe.Pointer(&ioSync))
	runtime.RaceReadRange(unsafe.Pointer(&p[0]), len(p))
}

// raceWritten tells the race detector that the kernel wrote p[:n] (a
// read(2) that returned n).
func raceWritten(p []byte, n int) {
	if n > 0 {
		runtime.RaceWriteRange(unsafe.Pointer(&p[0]), n)
	}
	runtime.RaceAcquire(unsafe.Pointer(&ioSync))
}
