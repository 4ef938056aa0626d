//go:build netbsd || openbsd

package poller

import (
	"os"

	"golang.org/x/sys/unix"
)

// x/sys has no EVFILT_USER here: Wake writes to a self-pipe whose read end
// the kqueue watches.

func (p *kqueue) initWake() error {
	w, err := newWaker()
	if err != nil {
		return err
	}
	var ch [1]unix.Kevent_t
	unix.SetKevent(&ch[0], w.readFD(), unix.EVFILT_READ, unix.EV_ADD)
	if err := p.apply(ch[:]); err != nil {
		w.close()
		return os.NewSyscallError("kevent", err)
	}
	p.w = w
	return nil
}

func (p *kqueue) wake() error { return p.w.wake() }

func (p *kqueue) isWake(e *unix.Kevent_t) bool {
	if int(e.Ident) != p.w.readFD() {
		return false
	}
	p.w.drain()
	return true
}

func (p *kqueue) closeWake() error {
	return os.NewSyscallError("close", p.w.close())
}
