package main

import (
	"fmt"
	"os"
	"runtime"
	"syscall"
	"time"
	"unsafe"

	"github.com/muxkit/reactor/internal/uring"
)

// The uring model's buffers: one provided ring shared by every client.
const (
	uringBufs    = 1024
	uringBufSize = 4096
)

// Operations, in the top byte of a submission's user data; the buffer id
// is in bits 32-47 and the fd in the low 32.
const (
	uringAccept = iota + 1
	uringRecv
	uringSend
)

func uringTag(op, fd, bid int) uint64 {
	return uint64(op)<<56 | uint64(uint16(bid))<<32 | uint64(uint32(fd))
}

// serveUring is bench/curing/echo.c in Go, over internal/uring: one
// goroutine, one ring (single issuer, deferred task running), a multishot
// accept, a multishot receive per client into one provided buffer ring,
// each buffer sent back from where it landed and recycled when the send
// completes, one io_uring_enter per turn. It is what Go costs on the
// completion model without the reactor, the way raw is for epoll. With
// REACTORECHO_URING_BATCH=1 it waits for half as many completions as
// the clients that received in this millisecond or the last (at most 128;
// with fewer than four, for one) for at most 100 us, then for any one
// (linux 6.12's minimum wait), as curing does with URING_BATCH=1. With
// REACTORECHO_URING_PARK=1 the ring is not single-issuer and the goroutine
// parks in Go's netpoller on the ring's fd when nothing is ready (see
// parkOnRing) instead of blocking its locked thread in io_uring_enter;
// with both, it parks when it waits for one completion and blocks in
// io_uring_enter with the minimum wait when it batches several.
func serveUring(addr string, sig <-chan os.Signal) error {
	batch := os.Getenv("REACTORECHO_URING_BATCH") == "1"
	park := os.Getenv("REACTORECHO_URING_PARK") == "1"
	var r *uring.Ring
	var err error
	if park {
		// Any thread may enter this ring (no single issuer), so the
		// goroutine can park in Go's netpoller on the ring's fd.
		r, err = uring.New(4096, uring.SetupCoopTaskrun)
	} else {
		// A single-issuer ring belongs to the thread that made it:
		// io_uring_enter from another fails with EEXIST, and Go moves
		// goroutines between threads.
		runtime.LockOSThread()
		r, err = uring.New(4096, uring.SetupSingleIssuer|uring.SetupDeferTaskrun)
		if err != nil {
			r, err = uring.New(4096, 0)
		}
	}
	if err != nil {
		return err
	}
	var parked func() error
	if park {
		if parked, err = parkOnRing(r); err != nil {
			return err
		}
	}
	p, err := r.Probe()
	if err != nil {
		return err
	}
	if err := p.Require(uring.OpAccept, uring.OpRecv, uring.OpSend); err != nil {
		return err
	}
	br, err := r.NewBufRing(0, uringBufs, uringBufSize, uringBufs)
	if err != nil {
		return err
	}
	lfd, port, ip, err := listenRaw(addr, false)
	if err != nil {
		return err
	}
	go func() {
		<-sig
		finish()
		os.Exit(0)
	}()
	fmt.Printf("listening on %s:%d\npid %d\n", ip, port, os.Getpid())

	var sendOff, sendLen [uringBufs]int
	get := func() *uring.SQE {
		e := r.Get()
		if e == nil {
			r.Submit()
			e = r.Get()
		}
		return e
	}
	armAccept := func() {
		e := get()
		e.Opcode, e.Fd, e.Ioprio, e.OpFlags, e.UserData = uring.OpAccept, int32(lfd), uring.AcceptMultishot, syscall.O_CLOEXEC, uringTag(uringAccept, lfd, 0)
	}
	armRecv := func(fd int) {
		e := get()
		e.Opcode, e.Fd, e.Flags, e.Ioprio, e.BufGroup, e.UserData = uring.OpRecv, int32(fd), uring.SqeBufferSelect, uring.RecvMultishot, 0, uringTag(uringRecv, fd, 0)
	}
	send := func(fd, bid int) {
		b := br.Buf(uint16(bid), sendLen[bid])[sendOff[bid]:]
		e := get()
		e.Opcode, e.Fd, e.Addr, e.Len, e.UserData = uring.OpSend, int32(fd), uint64(uintptr(unsafe.Pointer(&b[0]))), uint32(len(b)), uringTag(uringSend, fd, bid)
	}
	armAccept()
	// Clients active lately: those that received in the current
	// millisecond (epoch) and the one before it.
	start := time.Now()
	epochOf := make([]int64, 1<<16) // epoch+1 of an fd's last receive
	var epoch int64
	active, prev := 0, 0
	for {
		want := uint32(1)
		if w := max(active, prev) / 2; batch && w > 1 {
			want = uint32(min(w, 128))
		}
		switch {
		case park && want == 1:
			err = parked()
		case want > 1: // the minimum wait's timer would cost a lone client
			err = r.Wait(want, time.Second, 100*time.Microsecond)
		default:
			err = r.Wait(want, -1, 0)
		}
		if err != nil {
			return err
		}
		if ep := int64(time.Since(start) / time.Millisecond); batch && ep != epoch {
			prev = 0
			if ep == epoch+1 {
				prev = active
			}
			epoch, active = ep, 0
		}
		a, b := r.Ready()
		n := len(a) + len(b)
		recycled := false
		for _, cqes := range [2][]uring.CQE{a, b} {
			for i := range cqes {
				c := &cqes[i]
				op, fd, bid := int(c.UserData>>56), int(uint32(c.UserData)), int(uint16(c.UserData>>32))
				switch op {
				case uringAccept:
					if c.Res >= 0 {
						syscall.SetsockoptInt(int(c.Res), syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
						armRecv(int(c.Res))
					}
					if c.Flags&uring.CqeMore == 0 {
						armAccept()
					}
				case uringRecv:
					switch {
					case c.Res > 0:
						if batch && fd < len(epochOf) && epochOf[fd] != epoch+1 {
							epochOf[fd] = epoch + 1
							active++
						}
						got := int(c.Flags >> 16)
						sendOff[got], sendLen[got] = 0, int(c.Res)
						send(fd, got)
						if c.Flags&uring.CqeMore == 0 {
							armRecv(fd)
						}
					case c.Res == -int32(syscall.ENOBUFS):
						armRecv(fd)
					default:
						if c.Flags&uring.CqeBuffer != 0 {
							br.Recycle(uint16(c.Flags >> 16))
							recycled = true
						}
						syscall.Close(fd)
					}
				case uringSend:
					if c.Res > 0 && sendOff[bid]+int(c.Res) < sendLen[bid] {
						sendOff[bid] += int(c.Res)
						send(fd, bid)
						continue
					}
					br.Recycle(uint16(bid))
					recycled = true
				}
			}
		}
		r.Seen(n)
		if recycled {
			br.Publish()
		}
	}
}

// parkOnRing returns a wait that submits what is filled and, if no
// completion is ready, parks the goroutine in Go's netpoller on the ring's
// fd (readable while completions wait) instead of blocking its thread in
// io_uring_enter: the P stays free for other goroutines meanwhile, as in
// the readiness loops' park.go.
func parkOnRing(r *uring.Ring) (func() error, error) {
	fd, err := syscall.Dup(r.Fd())
	if err != nil {
		return nil, os.NewSyscallError("dup", err)
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		return nil, os.NewSyscallError("fcntl", err)
	}
	rc, err := os.NewFile(uintptr(fd), "io_uring").SyscallConn()
	if err != nil {
		return nil, err
	}
	return func() error {
		if _, err := r.Submit(); err != nil {
			return err
		}
		if a, _ := r.Ready(); len(a) > 0 {
			return nil
		}
		return rc.Read(func(uintptr) bool {
			a, _ := r.Ready()
			return len(a) > 0
		})
	}, nil
}
