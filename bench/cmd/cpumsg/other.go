//go:build !linux

// Command cpumsg measures server CPU time per echoed message; it reads
// /proc and pins with taskset, so it runs on linux only.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "cpumsg: linux only (reads /proc/PID/stat, pins with taskset)")
	os.Exit(2)
}
