//go:build unix && !linux && !darwin && !dragonfly && !freebsd && !netbsd && !openbsd

package poller

import (
	"errors"
	"fmt"
)

// available is what every unix has.
var available = []Backend{Poll}

func newNative(b Backend) (Poller, error) {
	return nil, fmt.Errorf("poller: backend %v is not available on this OS: %w", b, errors.ErrUnsupported)
}

func newSelect() (Poller, error) { return newNative(Select) }
