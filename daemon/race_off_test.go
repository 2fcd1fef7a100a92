//go:build !race

package daemon

// raceEnabled is true in a -race build of the tests.
const raceEnabled = false
