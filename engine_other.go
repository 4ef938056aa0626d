//go:build !linux

package reactor

import (
	"errors"
	"fmt"
	"time"
)

// engine is the completion engine, linux's alone: elsewhere none is ever
// made (ringSupport refuses), so a Loop's eng is always nil and the methods
// below, which the shared code names, never run.
type engine struct {
	closed bool
	err    error
	note   string
}

// ringSupport is why the engine cannot run here.
func ringSupport() error {
	return fmt.Errorf("reactor: the io_uring engine is linux only: %w", errors.ErrUnsupported)
}

func newEngine(int, UringConfig) (*engine, error) { return nil, ringSupport() }
func (e *engine) close()                          {}
func (e *engine) start() error                    { return ringSupport() }
func (e *engine) fd() int                         { return -1 }
func (e *engine) readyNow() int                   { return 0 }
func (e *engine) submit()                         {}
func (l *Loop) serveRing(time.Duration) error     { return ringSupport() }
func (l *Loop) closeEngine()                      {}
func (c *Conn) armRecv()                          {}
func (c *Conn) ringSend()                         {}
func (c *Conn) updateRing()                       {}
func (c *Conn) cancelRing()                       {}
func (a *acceptor) armAccept()                    {}
func (a *acceptor) cancelAccept()                 {}
