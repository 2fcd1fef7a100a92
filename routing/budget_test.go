package routing_test

import (
	"errors"
	"math"
	"testing"
	"time"

	"meshd.dev/meshd/routing"
)

// TestLinkBudgetFloodsYield: a radio whose duty-cycle budget is nearly
// spent does not rebroadcast other nodes' channel frames (its neighbours'
// rebroadcasts carry them); with budget left it does.
func TestLinkBudgetFloodsYield(t *testing.T) {
	key := floodChannel(t)
	a := newFloodNode(t, "a", nil)
	frame := a.broadcast(key, "radio", 5)
	for _, tc := range []struct {
		name      string
		remaining float64 // -1: never reported
		relay     bool
	}{
		{"never reported", -1, true},
		{"full budget", 1, true},
		{"half spent", 0.5, true},
		{"nearly spent", 0.1, false},
		{"spent", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newFloodNode(t, "b", nil)
			b.step(routing.LinkUp{Link: routing.LinkInfo{ID: 3, Kind: routing.LinkLoRa, Bitrate: 1760, DutyCycle: 0.01}})
			if tc.remaining >= 0 {
				if err := b.eng.Step(b.now, routing.LinkBudget{Link: 3, Remaining: tc.remaining}); err != nil {
					t.Fatal(err)
				}
			}
			b.out = nil
			b.step(routing.FrameReceived{Link: 3, Frame: frame, SNR: -12, HasSNR: true})
			relayedOnTCP := len(b.out)
			b.now = epoch.Add(2 * 32 * time.Duration(len(frame)*8) * time.Second / 1760)
			b.tick()
			if got := len(b.out) > relayedOnTCP; got != tc.relay {
				t.Fatalf("rebroadcast on the radio = %v, want %v (counters %+v)", got, tc.relay, b.eng.Counters())
			}
			if y := b.eng.Counters().FloodYielded; (y == 1) == tc.relay {
				t.Fatalf("FloodYielded = %d", y)
			}
		})
	}
}

func TestLinkBudgetBadInput(t *testing.T) {
	b := newFloodNode(t, "b", nil)
	b.step(routing.LinkUp{Link: routing.LinkInfo{ID: 3, Kind: routing.LinkLoRa, DutyCycle: 0.01}})
	for _, in := range []routing.LinkBudget{{Link: 3, Remaining: 1.5}, {Link: 3, Remaining: -0.1}, {Link: 3, Remaining: math.NaN()}, {Link: 9, Remaining: 0.5}} {
		if err := b.eng.Step(b.now, in); !errors.Is(err, routing.ErrBadInput) {
			t.Errorf("%+v: err %v, want ErrBadInput", in, err)
		}
	}
}

// TestFrameReceivedByPointer: Step takes a *FrameReceived as it takes the
// value (meshsim passes one it reuses, so that no reception boxes one).
func TestFrameReceivedByPointer(t *testing.T) {
	key := floodChannel(t)
	a := newFloodNode(t, "a", nil)
	frame := a.broadcast(key, "radio", 5)
	var outs [2]int
	var counters [2]routing.Counters
	for i := range 2 {
		b := newFloodNode(t, "b", nil)
		b.step(routing.LinkUp{Link: routing.LinkInfo{ID: 3, Kind: routing.LinkLoRa, Bitrate: 1760, DutyCycle: 0.01}})
		b.out = nil
		in := routing.FrameReceived{Link: 3, Frame: frame, SNR: -12, HasSNR: true}
		if i == 0 {
			b.step(in)
		} else {
			b.step(&in)
		}
		b.now = epoch.Add(2 * 32 * time.Duration(len(frame)*8) * time.Second / 1760)
		b.tick()
		outs[i], counters[i] = len(b.out), b.eng.Counters()
		if err := b.eng.Step(b.now, &routing.FrameReceived{Link: 9, Frame: frame}); !errors.Is(err, routing.ErrBadInput) {
			t.Errorf("pointer on an unknown link: err %v, want ErrBadInput", err)
		}
		if err := b.eng.Step(b.now, (*routing.FrameReceived)(nil)); !errors.Is(err, routing.ErrBadInput) {
			t.Errorf("nil pointer: err %v, want ErrBadInput", err)
		}
	}
	if outs[0] != outs[1] || counters[0] != counters[1] || counters[1].FramesIn != 1 || outs[1] == 0 {
		t.Fatalf("by value %d frames out, %+v; by pointer %d, %+v", outs[0], counters[0], outs[1], counters[1])
	}
}
