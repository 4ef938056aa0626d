package poller

import (
	"time"

	"golang.org/x/sys/unix"
)

// pollRdHup is linux's POLLRDHUP (0x2000 in <poll.h>, not in x/sys): a
// peer's shutdown shows as HangUp even while data is still queued, as with
// epoll's EPOLLRDHUP.
const pollRdHup = 0x2000

// poll calls ppoll, which takes nanoseconds; unix.Poll would allocate its
// timespec on every call.
func (p *pollBackend) poll(timeout time.Duration) (int, error) {
	ts := &p.ts
	if timeout < 0 {
		ts = nil
	} else {
		p.ts = unix.NsecToTimespec(int64(timeout))
	}
	return unix.Ppoll(p.fds, ts, nil)
}
