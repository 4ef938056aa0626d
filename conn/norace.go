//go:build !race

package conn

import "golang.org/x/sys/unix"

// raceOn reports a -race build (tests skip allocation counts under it).
const raceOn = false

// Without -race the annotations of race.go compile to nothing.

func raceReadIovecs([]unix.Iovec) {}
func raceRead([]byte)             {}
func raceWritten([]byte, int)     {}
