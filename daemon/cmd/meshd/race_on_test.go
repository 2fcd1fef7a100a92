//go:build race

package main

// raceEnabled: the end-to-end tests run the daemons as separate binaries
// built without the race detector; the test process only orchestrates
// them, so a -race run of those tests finds nothing the plain run (which
// CI makes too) does not, and costs minutes. They skip under -race.
const raceEnabled = true
