//go:build race

package conn_test

// raceEnabled is true when built with -race: sync.Pool then drops a random
// quarter of the chunks put back, and allocation counts mean nothing.
const raceEnabled = true
