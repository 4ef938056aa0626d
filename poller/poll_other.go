//go:build unix && !linux

package poller

import (
	"time"

	"golang.org/x/sys/unix"
)

// pollRdHup is zero where poll has no POLLRDHUP: a peer's shutdown shows as
// Readable (a read returns end of file), and as HangUp once POLLHUP is set.
const pollRdHup = 0

func (p *pollBackend) poll(timeout time.Duration) (int, error) {
	return unix.Poll(p.fds, millis(timeout))
}
