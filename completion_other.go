//go:build !linux

package reactor

import (
	"errors"
	"fmt"
)

// completion is the completion engine, linux's alone: elsewhere none is ever
// made (ringSupport refuses), so no loop has one.
type completion struct{ engine }

// ringSupport is why the engine cannot run here.
func ringSupport() error {
	return fmt.Errorf("reactor: the completion engine is linux only: %w", errors.ErrUnsupported)
}

// newCompletion refuses: the engine is linux's.
func newCompletion(*Loop, UringConfig) (*completion, error) {
	return nil, ringSupport()
}

// ringBufsMin is what UringConfig.Buffers' bounds are checked against.
const ringBufsMin = 64

// ringDgram is the completion engine's state of a datagram socket; there
// is none here.
type ringDgram struct{}
