//go:build !race

package notify_test

// raceEnabled reports whether the race detector is on.
const raceEnabled = false
