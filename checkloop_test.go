//go:build reactorcheck

package reactor

import (
	"strings"
	"testing"
	"time"
)

// TestCheckLoop: built with -tags reactorcheck, a loop-only method called
// from another goroutine panics, naming the method; on the loop it runs.
func TestCheckLoop(t *testing.T) {
	checkLeaks(t)
	conns := make(chan *Conn, 1)
	s := &Server{Loops: 1, Handler: HandlerFuncs{Open: func(c *Conn) { conns <- c }}}
	dial(t, serve(t, s))
	c := <-conns
	for _, tc := range []struct {
		method string
		call   func()
	}{
		{"Conn.Write", func() { c.Write([]byte("x")) }},
		{"Conn.Close", func() { c.Close() }},
		{"Conn.PauseRead", c.PauseRead},
		{"Conn.SetNoDelay", func() { c.SetNoDelay(true) }},
		{"Loop.AfterFunc", func() { c.Loop().AfterFunc(time.Second, func() {}) }},
		{"Loop.SetContext", func() { c.Loop().SetContext(1) }},
	} {
		func() {
			defer func() {
				msg, _ := recover().(string)
				if !strings.Contains(msg, tc.method) || !strings.Contains(msg, "not on its loop's goroutine") {
					t.Errorf("%s off the loop: panic %q, want one naming the method", tc.method, msg)
				}
			}()
			tc.call()
		}()
		onLoop(t, c.Loop(), tc.call) // on the loop: no panic
	}
}
