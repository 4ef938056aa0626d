//go:build darwin || dragonfly || freebsd

package poller

import (
	"os"

	"golang.org/x/sys/unix"
)

// The kqueue has EVFILT_USER here: Wake triggers a user event with ident 0,
// registered with EV_CLEAR so that collecting it resets it. No wake fd.

func (p *kqueue) initWake() error {
	var ch [1]unix.Kevent_t
	unix.SetKevent(&ch[0], 0, unix.EVFILT_USER, unix.EV_ADD|unix.EV_CLEAR)
	return os.NewSyscallError("kevent", p.apply(ch[:]))
}

func (p *kqueue) wake() error {
	var ch [1]unix.Kevent_t
	unix.SetKevent(&ch[0], 0, unix.EVFILT_USER, 0)
	ch[0].Fflags = unix.NOTE_TRIGGER
	return os.NewSyscallError("kevent", p.apply(ch[:]))
}

func (p *kqueue) isWake(e *unix.Kevent_t) bool {
	return int(e.Filter) == unix.EVFILT_USER
}

func (p *kqueue) closeWake() error { return nil }
