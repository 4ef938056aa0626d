package reactor

import (
	"fmt"

	"github.com/muxkit/reactor/poller"
)

// Uring names the completion engine: a Server or Group with Backend Uring,
// or $REACTOR_BACKEND=uring, runs its loops on linux's io_uring instead of
// a readiness poller. Handlers cannot tell the difference; see the package
// documentation's section on the engine for what changes underneath (who
// waits where, how many system calls a message costs). It needs linux 5.19
// or later with io_uring allowed; elsewhere asking for it is an error
// matching errors.ErrUnsupported, never a quiet fallback to epoll.
const Uring = poller.Uring

// Backends lists the backends a Server or Group can run on here:
// poller.Available()'s, then Uring if UringSupport reports nil. The slice
// is a fresh copy.
func Backends() []poller.Backend {
	bs := poller.Available()
	if UringSupport() == nil {
		bs = append(bs, Uring)
	}
	return bs
}

// UringSupport returns nil if the completion engine can run on this
// machine, or why not, as an error matching errors.ErrUnsupported: not
// linux, io_uring missing or disabled (kernel.io_uring_disabled, a seccomp
// filter), or a kernel older than the features and operations it uses
// (receives into provided buffer rings: linux 5.19). The kernel is
// probed once per process; safe from any goroutine.
func UringSupport() error { return ringSupport() }

// checkBackend refuses, before any socket exists, a backend the engine
// cannot run.
func checkBackend(b poller.Backend) error {
	if b != Uring {
		return nil
	}
	if err := ringSupport(); err != nil {
		return fmt.Errorf("reactor: backend uring: %w", err)
	}
	return nil
}
