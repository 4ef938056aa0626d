//go:build unix && !linux

package poller

import (
	"os"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/internal/sock"
)

// waker wakes a blocked Wait through a non-blocking self-pipe whose read end
// the backend watches. A byte left in the pipe keeps it readable, so a wake
// before Wait is not lost; a full pipe (EAGAIN) is a pending wake already.
type waker struct {
	r, w int
	buf  [64]byte // drain's read buffer, kept here so drain does not allocate
}

func newWaker() (*waker, error) {
	r, w, err := sock.Pipe()
	if err != nil {
		return nil, err
	}
	return &waker{r: r, w: w}, nil
}

// readFD is the fd the backend watches.
func (w *waker) readFD() int { return w.r }

// wake makes readFD readable.
func (w *waker) wake() error {
	one := [1]byte{1}
	_, err := unix.Write(w.w, one[:])
	if err != nil && err != unix.EAGAIN {
		return os.NewSyscallError("write", err)
	}
	return nil
}

// drain empties the pipe so readFD is no longer readable.
func (w *waker) drain() {
	for {
		n, err := unix.Read(w.r, w.buf[:])
		if n < len(w.buf) || err != nil {
			return
		}
	}
}

func (w *waker) close() error {
	err := unix.Close(w.r)
	if err2 := unix.Close(w.w); err == nil {
		err = err2
	}
	return err
}
