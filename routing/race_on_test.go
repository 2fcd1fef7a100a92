//go:build race

package routing_test

// raceEnabled: the race detector slows the engines about tenfold; the loop
// detector then runs a tenth of its sequences (the plain go test run, which
// CI makes too, runs them all).
const raceEnabled = true
