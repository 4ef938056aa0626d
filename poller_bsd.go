//go:build (darwin || dragonfly || freebsd || netbsd || openbsd) && !reactor_poll && !reactor_select

package reactor

import "github.com/muxkit/reactor/poller"

// DefaultBackend is the backend a Server uses unless told otherwise: epoll
// on linux, kqueue on the BSDs and darwin, poll on other unix systems. The
// build tags reactor_poll and reactor_select force poll or select.
const DefaultBackend = poller.Kqueue
