//go:build !linux

package main

import (
	"errors"
	"time"
)

// canPin reports whether processes and threads can be pinned to CPUs here:
// not without sched_setaffinity.
func canPin() bool { return false }

func pinThread(int) error { return errors.ErrUnsupported }

// usage is a snapshot of a server's process tree; without /proc only
// throughput and latency are measured.
type usage struct {
	cpu     time.Duration
	rss     int64
	peak    int64
	threads int
	procs   int
	ok      bool
}

func snapshot(int) usage { return usage{} }
