//go:build race

package radio

// raceEnabled: the race detector slows the medium about tenfold, and the
// LoRaSim reproduction runs one goroutine; the plain go test run, which
// CI makes too, runs it.
const raceEnabled = true
