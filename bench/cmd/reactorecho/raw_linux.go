package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// serveRaw is bench/cepoll/echo.c in Go: one goroutine, level-triggered
// epoll, non-blocking sockets, one read into a 64 KiB buffer per ready
// client and the bytes written back, the rest of a short write kept until
// the client is writable. With park, a Wait that finds nothing ready parks
// the goroutine on the epoll fd's readability in Go's netpoller (the epoll
// fd is itself pollable) instead of blocking the thread in epoll_wait. A
// signal ends the process at once.
//
// With REACTORECHO_RAWSYSCALL=1 in the environment, read and write (on
// non-blocking sockets, so they never block) are made with
// syscall.RawSyscall, which skips the runtime's entersyscall/exitsyscall:
// the P is never seen in a system call, so sysmon never retakes it.
func serveRaw(addr string, park bool, sig <-chan os.Signal) error {
	lfd, port, ip, err := listenRaw(addr, true)
	if err != nil {
		return err
	}
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return os.NewSyscallError("epoll_create1", err)
	}
	if err := watch(ep, syscall.EPOLL_CTL_ADD, lfd, syscall.EPOLLIN); err != nil {
		return err
	}
	var wait func(evs []syscall.EpollEvent) (int, error)
	if park {
		// The netpoller registers a non-blocking fd given to os.NewFile.
		if err := syscall.SetNonblock(ep, true); err != nil {
			return os.NewSyscallError("fcntl", err)
		}
		rc, err := os.NewFile(uintptr(ep), "epoll").SyscallConn()
		if err != nil {
			return err
		}
		wait = func(evs []syscall.EpollEvent) (n int, err error) {
			if n, err = syscall.EpollWait(ep, evs, 0); n != 0 || err != nil {
				return n, err
			}
			err2 := rc.Read(func(uintptr) bool {
				n, err = syscall.EpollWait(ep, evs, 0)
				return n != 0 || (err != nil && err != syscall.EINTR)
			})
			return n, errors.Join(err, err2)
		}
	} else {
		wait = func(evs []syscall.EpollEvent) (int, error) { return syscall.EpollWait(ep, evs, -1) }
	}
	go func() {
		<-sig
		finish()
		os.Exit(0)
	}()
	fmt.Printf("listening on %s:%d\npid %d\n", ip, port, os.Getpid())

	read, write := syscall.Read, syscall.Write
	if os.Getenv("REACTORECHO_RAWSYSCALL") == "1" {
		read, write = rawRead, rawWrite
	}
	buf := make([]byte, 64<<10)
	evs := make([]syscall.EpollEvent, 256)
	var pending [][]byte // by fd
	for {
		n, err := wait(evs)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("epoll_wait", err)
		}
		for _, ev := range evs[:n] {
			fd := int(ev.Fd)
			if fd == lfd {
				for range 64 {
					c, _, err := syscall.Accept4(lfd, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
					if err != nil {
						break
					}
					if err := watch(ep, syscall.EPOLL_CTL_ADD, c, syscall.EPOLLIN); err != nil {
						return err
					}
				}
				continue
			}
			if fd < len(pending) && pending[fd] != nil {
				w, err := write(fd, pending[fd])
				switch {
				case err == syscall.EAGAIN || err == syscall.EINTR:
				case err != nil:
					pending[fd] = nil
					drop(ep, fd)
				case w < len(pending[fd]):
					pending[fd] = pending[fd][w:]
				default:
					pending[fd] = nil
					if err := watch(ep, syscall.EPOLL_CTL_MOD, fd, syscall.EPOLLIN); err != nil {
						return err
					}
				}
				continue
			}
			r, err := read(fd, buf)
			if err == syscall.EAGAIN || err == syscall.EINTR {
				continue
			}
			if r <= 0 {
				drop(ep, fd)
				continue
			}
			w, err := write(fd, buf[:r])
			if err != nil {
				if err != syscall.EAGAIN && err != syscall.EINTR {
					drop(ep, fd)
					continue
				}
				w = 0
			}
			if w < r {
				for fd >= len(pending) {
					pending = append(pending, nil)
				}
				pending[fd] = append([]byte(nil), buf[w:r]...)
				if err := watch(ep, syscall.EPOLL_CTL_MOD, fd, syscall.EPOLLOUT); err != nil {
					return err
				}
			}
		}
	}
}

func watch(ep, op, fd int, events uint32) error {
	ev := syscall.EpollEvent{Events: events, Fd: int32(fd)}
	return os.NewSyscallError("epoll_ctl", syscall.EpollCtl(ep, op, fd, &ev))
}

func drop(ep, fd int) {
	syscall.EpollCtl(ep, syscall.EPOLL_CTL_DEL, fd, nil)
	syscall.Close(fd)
}

// rawRead is read(2) without telling the scheduler; fd must not block.
func rawRead(fd int, p []byte) (int, error) {
	n, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	if e != 0 {
		return -1, e
	}
	return int(n), nil
}

// rawWrite is write(2) without telling the scheduler; fd must not block.
func rawWrite(fd int, p []byte) (int, error) {
	n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	if e != 0 {
		return -1, e
	}
	return int(n), nil
}

// listenRaw opens an IPv4 listening socket on addr for the bare models,
// non-blocking or not, and returns it with its port and IP.
func listenRaw(addr string, nonblock bool) (fd, port int, ip net.IP, err error) {
	ta, err := net.ResolveTCPAddr("tcp4", addr)
	if err != nil {
		return -1, 0, nil, err
	}
	typ := syscall.SOCK_STREAM | syscall.SOCK_CLOEXEC
	if nonblock {
		typ |= syscall.SOCK_NONBLOCK
	}
	lfd, err := syscall.Socket(syscall.AF_INET, typ, 0)
	if err != nil {
		return -1, 0, nil, os.NewSyscallError("socket", err)
	}
	syscall.SetsockoptInt(lfd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
	sa := &syscall.SockaddrInet4{Port: ta.Port}
	copy(sa.Addr[:], ta.IP.To4())
	if err := syscall.Bind(lfd, sa); err != nil {
		syscall.Close(lfd)
		return -1, 0, nil, os.NewSyscallError("bind", err)
	}
	if err := syscall.Listen(lfd, 4096); err != nil {
		syscall.Close(lfd)
		return -1, 0, nil, os.NewSyscallError("listen", err)
	}
	bound, err := syscall.Getsockname(lfd)
	if err != nil {
		syscall.Close(lfd)
		return -1, 0, nil, os.NewSyscallError("getsockname", err)
	}
	return lfd, bound.(*syscall.SockaddrInet4).Port, ta.IP, nil
}
