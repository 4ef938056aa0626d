package poller

import (
	"os"

	"golang.org/x/sys/unix"
)

// waker wakes a blocked Wait through an fd that the backend watches for
// reading. On linux it is an eventfd: one fd, a counter that stays readable
// from the first write until drain, so a wake before Wait is not lost and
// many wakes coalesce into one.
type waker struct {
	fd  int
	one [8]byte // wake's value, kept here so wake does not allocate
	buf [8]byte // drain's read buffer, for the same reason
}

func newWaker() (*waker, error) {
	fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("eventfd", err)
	}
	// A counter of 1 in either byte order: any non-zero value wakes.
	return &waker{fd: fd, one: [8]byte{1}}, nil
}

// readFD is the fd the backend watches.
func (w *waker) readFD() int { return w.fd }

// wake makes readFD readable. EAGAIN means the counter is saturated, which
// is a pending wake already.
func (w *waker) wake() error {
	_, err := unix.Write(w.fd, w.one[:])
	if err != nil && err != unix.EAGAIN {
		return os.NewSyscallError("write", err)
	}
	return nil
}

// drain resets readFD to not readable.
func (w *waker) drain() {
	_, _ = unix.Read(w.fd, w.buf[:])
}

func (w *waker) close() error {
	return unix.Close(w.fd)
}
