// Package threadpool serves each client on an OS thread of its own, doing
// blocking read and write system calls on a blocking socket.
//
// Two variants. The pool (Workers > 0): a fixed set of goroutines, each
// locked to its own OS thread with runtime.LockOSThread, each accepting a
// client and serving it to the end; client Workers+1 waits, connected and
// unanswered in the kernel's accept queue, until a worker is free. Thread
// per client (PerClient): one acceptor starts a new locked goroutine, and so
// a new OS thread, for every client, without a cap.
//
// When it is the right choice: blocking code that cannot be rewritten as
// callbacks (a blocking driver, a library that keeps state on the stack),
// with a known, modest number of clients. What it costs: threads are cheaper
// to create than processes and share the server's memory, but each client
// holds one whole thread (its stack and a kernel task) for as long as it is
// connected, idle or not; the pool's size caps how many clients are served
// at once, and without a pool the thread count grows with the clients until
// the OS, or Go's own limit of 10,000 threads (runtime/debug.SetMaxThreads),
// stops it. A panic in one handler takes down every client: memory is
// shared, nothing is isolated.
//
// Go's net package is not used: it multiplexes internally (a blocked net
// Read parks a goroutine, not a thread), which would hide this model.
package threadpool

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/muxkit/reactor/servers"
)

// DefaultWorkers is the pool's size when Workers is zero: a pool is sized
// for how many clients may be served at once, not for the CPUs, since its
// threads spend their time blocked.
const DefaultWorkers = 128

// DefaultMaxThreads is PerClient's default cap on clients served at once:
// below Go's default limit of 10,000 OS threads, past which the runtime
// kills the process rather than return an error.
const DefaultMaxThreads = 9000

// Server serves each client on its own OS thread. Set the fields, then call
// Serve; call Shutdown from any goroutine.
type Server struct {
	// Handler serves each client; nil means servers.Echo.
	Handler servers.Handler
	// Workers is the pool's size: how many clients are served at once.
	// Zero means DefaultWorkers; ignored with PerClient.
	Workers int
	// PerClient starts a thread for every client instead of keeping a pool.
	PerClient bool
	// MaxThreads caps the clients PerClient serves at once; a client past it
	// is closed at once (accepting it would crash the process). Zero means
	// DefaultMaxThreads.
	MaxThreads int

	base   servers.Base
	served atomic.Bool    // Serve was called: a Server serves once
	active sync.WaitGroup // PerClient's client threads
}

// Serve serves clients from ln until Shutdown, then returns
// servers.ErrServerClosed once every worker has stopped. A second call, or
// a negative Workers or MaxThreads, is an error.
func (s *Server) Serve(ln *servers.Listener) error {
	if s.Workers < 0 || s.MaxThreads < 0 {
		return fmt.Errorf("threadpool: Workers %d, MaxThreads %d: want >= 0", s.Workers, s.MaxThreads)
	}
	if ln != nil && s.served.Swap(true) {
		return errors.New("threadpool: Server already served")
	}
	h := s.Handler
	if h == nil {
		h = servers.Echo
	}
	if s.PerClient {
		max := s.MaxThreads
		if max == 0 {
			max = DefaultMaxThreads
		}
		err := s.base.Serve("threadpool", ln, 1, false, func(_ int, c *servers.Conn) {
			if s.base.Clients.Len() > max {
				s.base.Clients.Done(c)
				return
			}
			s.active.Add(1)
			go func() {
				defer s.active.Done()
				// Never unlocked: the thread exits with the goroutine, so
				// each client has a thread created for it and destroyed
				// after it, which is this variant's cost.
				runtime.LockOSThread()
				defer s.base.Clients.Done(c)
				h(c)
			}()
		})
		s.active.Wait()
		return err
	}
	n := s.Workers
	if n == 0 {
		n = DefaultWorkers
	}
	return s.base.Serve("threadpool", ln, n, true, func(_ int, c *servers.Conn) {
		defer s.base.Clients.Done(c)
		h(c)
	})
}

// Shutdown closes the Listener Serve was given, ends the clients being
// served (servers.Clients.Shutdown) and waits for Serve to return or ctx to
// end.
func (s *Server) Shutdown(ctx context.Context) error { return s.base.Shutdown(ctx) }
