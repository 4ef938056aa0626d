// Package iterative is the simplest server model: one goroutine accepts a
// client, serves it until it leaves, then accepts the next.
//
// When it is the right choice: a tool, a test fixture, a service that has
// one client at a time by nature. What it costs: nothing beyond the one
// thread, but every other client waits, connected and unanswered in the
// kernel's accept queue, until the client being served leaves; one client
// that never leaves stops the service for everyone.
package iterative

import (
	"context"

	"github.com/muxkit/reactor/servers"
)

// Server serves one client at a time with Handler. Set Handler, then call
// Serve; call Shutdown from any goroutine.
type Server struct {
	// Handler serves each client; nil means servers.Echo.
	Handler servers.Handler

	base servers.Base
}

// Serve accepts and serves clients from ln, one at a time, on the calling
// goroutine, until Shutdown; then it returns servers.ErrServerClosed. A
// second call returns an error at once.
func (s *Server) Serve(ln *servers.Listener) error {
	h := s.Handler
	if h == nil {
		h = servers.Echo
	}
	return s.base.Serve("iterative", ln, 1, false, func(_ int, c *servers.Conn) {
		defer s.base.Clients.Done(c)
		h(c)
	})
}

// Shutdown closes the Listener Serve was given, ends the client being
// served (servers.Clients.Shutdown) and waits for Serve to return or ctx to
// end.
func (s *Server) Shutdown(ctx context.Context) error { return s.base.Shutdown(ctx) }
