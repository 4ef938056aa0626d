package sock

import "time"

// The accept back-off's bounds: see AcceptBackoff.
const (
	MinAcceptBackoff = 10 * time.Millisecond
	MaxAcceptBackoff = time.Second
)

// AcceptBackoff is how long an accept loop that is out of file descriptors
// (IsFDExhausted) waits before it tries again: MinAcceptBackoff, doubling
// up to MaxAcceptBackoff, and from the start again once an accept
// succeeds or finds nobody waiting. Clients wait in the kernel's backlog
// meanwhile, rather than the loop spinning on a listener that stays
// readable. It is the one policy of every accept path (the reactor's
// acceptor, netconn's listener, servers.Listener); each waits in its own
// way. The zero AcceptBackoff is ready to use; it is not safe for
// concurrent use.
type AcceptBackoff struct{ d time.Duration }

// Next returns the next wait, doubling the one before.
func (b *AcceptBackoff) Next() time.Duration {
	b.d = min(max(2*b.d, MinAcceptBackoff), MaxAcceptBackoff)
	return b.d
}

// Last returns the wait Next returned last, 0 after Reset.
func (b *AcceptBackoff) Last() time.Duration { return b.d }

// Reset starts the doubling again from MinAcceptBackoff.
func (b *AcceptBackoff) Reset() { b.d = 0 }
