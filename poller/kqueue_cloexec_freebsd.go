package poller

import (
	"os"

	"golang.org/x/sys/unix"
)

// FreeBSD 14's kqueuex(2), which x/sys does not list yet.
const (
	sysKqueuex        = 583
	kqueueCloexecFlag = 1 // KQUEUE_CLOEXEC
)

// kqueueCloexec makes a kqueue that is close-on-exec from the start with
// kqueuex(KQUEUE_CLOEXEC) (FreeBSD 14 and later), so no exec can inherit
// it; before 14 (ENOSYS) it falls back to kqueue and FD_CLOEXEC, whose
// window matters only to an exec in place (a kqueue is never inherited
// by fork).
func kqueueCloexec() (int, error) {
	kq, _, errno := unix.Syscall(sysKqueuex, kqueueCloexecFlag, 0, 0)
	if errno == 0 {
		return int(kq), nil
	}
	if errno != unix.ENOSYS {
		return -1, os.NewSyscallError("kqueuex", errno)
	}
	return kqueueThenCloexec()
}
