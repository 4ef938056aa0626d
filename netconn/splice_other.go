//go:build !linux

package netconn

import "io"

// spliceFrom is linux's; elsewhere ReadFrom copies through a buffer.
func (c *Conn) spliceFrom(io.Reader) (int64, bool, error) { return 0, false, nil }
