package lorareg_test

import (
	"fmt"
	"time"

	"meshd.dev/meshd/daemon/lorareg"
)

// The airtime the ledger charges per link frame, and how many such frames
// fit in an hour at 1 % (EU868 g1: 36 s), against the same formula with
// LoRaWAN's 8-symbol preamble (what most airtime calculators show).
func ExamplePlan_Airtime() {
	for _, sf := range []int{9, 12} {
		p, err := lorareg.Check(lorareg.Settings{Region: lorareg.EU868, FrequencyHz: 868_300_000,
			BandwidthHz: 125_000, SF: sf, CR: 5, TxPowerDBm: 14})
		if err != nil {
			panic(err)
		}
		for _, n := range []int{50, 200} {
			air := p.Airtime(n)
			ref := p.Params
			ref.PreambleSymbols = 8
			air8, _ := ref.TimeOnAir(n + 1)
			budget := time.Duration(p.DutyCycle * float64(time.Hour))
			fmt.Printf("SF%d %3d B: %v (%d/h); 8-symbol preamble %v (%d/h)\n",
				sf, n, air, budget/air, air8, budget/air8)
		}
	}
	// Output:
	// SF9  50 B: 369.664ms (97/h); 8-symbol preamble 328.704ms (109/h)
	// SF9 200 B: 1.045504s (34/h); 8-symbol preamble 1.004544s (35/h)
	// SF12  50 B: 2.793472s (12/h); 8-symbol preamble 2.465792s (14/h)
	// SF12 200 B: 7.708672s (4/h); 8-symbol preamble 7.380992s (4/h)
}
