//go:build !linux

package syscount

import (
	"errors"
	"fmt"
)

// Start reports that counting needs linux.
func Start() (*Counter, error) {
	return nil, fmt.Errorf("syscount: counting system calls needs linux's perf events: %w", errors.ErrUnsupported)
}

// Count returns 0.
func (c *Counter) Count() uint64 { return 0 }

// Close does nothing.
func (c *Counter) Close() {}
