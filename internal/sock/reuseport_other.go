//go:build unix && !linux

package sock

import (
	"errors"
	"fmt"
)

// setReusePort refuses: only linux balances connections among the sockets
// sharing a port (FreeBSD has SO_REUSEPORT_LB for that, not used here).
func setReusePort(int) error {
	return fmt.Errorf("sock: SO_REUSEPORT load balancing is linux only: %w", errors.ErrUnsupported)
}
