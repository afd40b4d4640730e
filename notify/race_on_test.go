//go:build race

package notify_test

// raceEnabled reports whether the race detector is on: it makes sync.Pool
// drop items at random, so allocation counts are not stable under it.
const raceEnabled = true
