//go:build race

package reactor

// raceEnabled is true under -race, which makes sync.Pool drop items at
// random: allocation counts do not hold then.
const raceEnabled = true
