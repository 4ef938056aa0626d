// Package multiplex is the I/O multiplexing model: event loops, each one
// goroutine watching all of its clients' sockets with one poller (select,
// poll, epoll or kqueue) and reading only the ones that are ready. It is
// the reactor's Server, any backend, behind the same Serve and Shutdown as
// the other models.
//
// When it is the right choice: many clients, most of them idle at any
// moment, or more clients than threads could be afforded for. What it
// costs: every handler runs on the loop and must never block (a blocking
// call stops every client of that loop), so work is written as callbacks
// on events rather than as straight-line code; select and poll still scan
// every watched socket per wait, only epoll and kqueue pay for the ready
// ones alone.
package multiplex

import (
	"context"
	"errors"
	"sync"

	"github.com/muxkit/reactor"
	"github.com/muxkit/reactor/poller"
	"github.com/muxkit/reactor/servers"
)

// Server serves clients with event loops. Set the fields, then call Serve;
// call Shutdown from any goroutine.
type Server struct {
	// Handler receives the clients' events on the loop goroutines and must
	// not block; nil means reactor.Echo.
	Handler reactor.Handler
	// Backend is the poller backend; zero means $REACTOR_BACKEND, else
	// reactor.DefaultBackend.
	Backend poller.Backend
	// Loops is the number of event loops; zero means runtime.GOMAXPROCS(0).
	Loops int

	once sync.Once
	srv  *reactor.Server
	mu   sync.Mutex
	ln   *servers.Listener
}

func (s *Server) server() *reactor.Server {
	s.once.Do(func() {
		h := s.Handler
		if h == nil {
			h = reactor.Echo
		}
		s.srv = &reactor.Server{Handler: h, Backend: s.Backend, Loops: s.Loops}
	})
	return s.srv
}

// Serve serves ln with the reactor until Shutdown, then returns
// servers.ErrServerClosed. A second call, or a bad Backend or Loops, is an
// error.
func (s *Server) Serve(ln *servers.Listener) error {
	if ln == nil {
		return errNilListener
	}
	s.mu.Lock()
	if s.ln != nil {
		s.mu.Unlock()
		return errors.New("multiplex: Server already served")
	}
	s.ln = ln
	s.mu.Unlock()
	return s.server().ServeFD(ln.Fd())
}

// Shutdown stops accepting, flushes every client's queued writes and closes
// the clients (reactor.Server.Shutdown), then closes the Listener Serve was
// given.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.server().Shutdown(ctx)
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	return err
}

var errNilListener = errors.New("multiplex: Serve with a nil Listener")
