//go:build !reactorcheck

package reactor

// checkLoop checks that the caller runs on l's goroutine when built with
// -tags reactorcheck (see checkloop.go); here it is empty and inlined away.
func (l *Loop) checkLoop(string) {}

// checkingLoop reports whether checkLoop is built in.
const checkingLoop = false
