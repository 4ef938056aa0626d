//go:build reactorcheck

package reactor

import "fmt"

// checkLoop panics if the calling goroutine is not the one running l:
// built with -tags reactorcheck, every method documented as belonging to
// the loop goroutine checks its caller, so a call from elsewhere (a data
// race that passes silently outside -race) fails at once, naming the
// method. A loop no goroutine runs (not started, or ended) is not checked.
// Without the tag checkLoop is empty and costs nothing.
func (l *Loop) checkLoop(method string) {
	id := l.gid.Load()
	if id == 0 || l.isDone() {
		return
	}
	if g := goroutineID(); g != id {
		panic(fmt.Sprintf("reactor: %s called on goroutine %d, not on its loop's goroutine %d", method, g, id))
	}
}

// isDone reports whether l's goroutine has returned.
func (l *Loop) isDone() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// checkingLoop reports whether checkLoop is built in.
const checkingLoop = true
