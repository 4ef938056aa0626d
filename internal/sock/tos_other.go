//go:build unix && !linux && !darwin && !freebsd

package sock

import (
	"errors"
	"fmt"
)

// ipTOSCmsg matches no control message: these OSes do not report an IPv4
// datagram's TOS byte.
const ipTOSCmsg = -1

func setReceiveTOS4(int) error {
	return fmt.Errorf("sock: receiving an IPv4 datagram's TOS byte: %w", errors.ErrUnsupported)
}
