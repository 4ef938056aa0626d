package poller

import (
	"os"

	"golang.org/x/sys/unix"
)

// kqueueCloexec makes a kqueue that is close-on-exec from the start:
// kqueue1(O_CLOEXEC), so no exec can inherit it.
func kqueueCloexec() (int, error) {
	kq, _, errno := unix.Syscall(unix.SYS_KQUEUE1, unix.O_CLOEXEC, 0, 0)
	if errno != 0 {
		return -1, os.NewSyscallError("kqueue1", errno)
	}
	return int(kq), nil
}
