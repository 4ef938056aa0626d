//go:build !linux

package uring

import (
	"errors"
	"fmt"
)

// Ring is linux's io_uring; elsewhere New says there is none.
type Ring struct{}

// New returns an error matching errors.ErrUnsupported: io_uring is linux's.
func New(entries uint32, flags uint32) (*Ring, error) {
	return nil, fmt.Errorf("uring: io_uring is linux only: %w", errors.ErrUnsupported)
}
