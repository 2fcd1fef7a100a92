package radio_test

import (
	"fmt"
	"math/rand/v2"
	"time"

	"meshd.dev/meshd/simulations/radio"
)

func ExampleParams_TimeOnAir() {
	p := radio.NewParams(9, 125000, radio.CR45) // explicit header, CRC, 8 preamble symbols
	toa, err := p.TimeOnAir(13)
	if err != nil {
		panic(err)
	}
	fmt.Println(toa, p.LowDataRateOn())

	p12 := radio.NewParams(12, 125000, radio.CR45)
	toa, _ = p12.TimeOnAir(20)
	fmt.Println(toa, p12.LowDataRateOn())
	// Output:
	// 164.864ms false
	// 1.318912s true
}

func ExampleModel_MaxRange() {
	m := radio.DefaultModel()
	dev := radio.Device{TxPowerDBm: 14}
	for _, sf := range []int{7, 12} {
		fmt.Printf("SF%d: %.0f m\n", sf, m.MaxRange(radio.NewParams(sf, 125000, radio.CR45), dev, dev))
	}
	// Output:
	// SF7: 129 m
	// SF12: 545 m
}

// A scheduler's use of the medium: start a frame, and at its end ask what
// each candidate receiver got.
func ExampleMedium() {
	nodes := []radio.Node{
		{X: 0, Y: 0, Device: radio.Device{TxPowerDBm: 14}},
		{X: 60, Y: 0, Device: radio.Device{TxPowerDBm: 14}},
		{X: 0, Y: 80, Device: radio.Device{TxPowerDBm: 14}},
	}
	m, err := radio.NewMedium(nodes, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		panic(err)
	}
	p := radio.NewParams(7, 125000, radio.CR45)
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	a, endA, _ := m.StartTx(0, start, 868_100_000, p, 20)
	// Node 1 answers too early, while node 0 is still on the air.
	b, endB, _ := m.StartTx(1, start.Add(30*time.Millisecond), 868_100_000, p, 20)

	for _, tx := range []struct {
		id  radio.TxID
		end time.Time
	}{{a, endA}, {b, endB}} {
		if err := m.Advance(tx.end); err != nil { // the scheduler's end event
			panic(err)
		}
		rx, _ := m.Outcomes(tx.id, nil)
		for _, r := range rx {
			fmt.Printf("tx %d at node %d: %v\n", tx.id, r.Receiver, r.Status)
		}
	}
	// Output:
	// tx 1 at node 1: half-duplex
	// tx 1 at node 2: collision
	// tx 2 at node 0: half-duplex
	// tx 2 at node 2: collision
}

// Duty-cycle accounting defers a node that used up its hour.
func ExampleLedger() {
	l := radio.NewLedger(radio.EU868())
	air, _ := radio.NewParams(12, 125000, radio.CR45).TimeOnAir(20)
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	sent := 0
	for {
		ok, earliest, err := l.CanTransmit(at, 868_100_000, 125000, air)
		if err != nil {
			panic(err)
		}
		if !ok {
			fmt.Printf("%d frames, then wait until %s\n", sent, earliest.Format("15:04:05.000"))
			break
		}
		_ = l.Record(at, 868_100_000, 125000, air)
		sent++
		at = at.Add(air)
	}
	// Output:
	// 27 frames, then wait until 00:59:59.610
}
