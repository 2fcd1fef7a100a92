package sim

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// TestRunningDeliveryIgnoresInFlight: the running delivery ratio leaves
// out messages still under way, so a slow delivery does not pull the
// curve down before it arrives; a message never delivered counts from
// its sending.
func TestRunningDeliveryIgnoresInFlight(t *testing.T) {
	at := func(m int) time.Time { return Epoch.Add(time.Duration(m) * time.Minute) }
	s := &Sim{msgs: []*message{
		{sent: at(0), delivered: true, at: at(50)}, // slow: in flight until minute 50
		{sent: at(1), delivered: true, at: at(2)},
		{sent: at(5)}, // lost
	}}
	got := s.runningDelivered(6, 10*time.Minute, time.Minute)
	want := []float64{0.5, 0.5, 0.5, 0.5, 2.0 / 3, 2.0 / 3} // at 10, 20, ..., 60 min (the slow one arrives at 50)
	if len(got) != len(want) {
		t.Fatalf("%d points, want %d: %v", len(got), len(want), got)
	}
	for i, p := range got {
		if p.X != float64(10*(i+1)) || p.Y != want[i] {
			t.Errorf("point %d: (%v, %v), want (%d, %v)", i, p.X, p.Y, 10*(i+1), want[i])
		}
	}
}

// TestBroadcastRowsInMessages: messages.csv lists the numbered broadcasts
// with their reach, and summary.json has the same mean reach.
func TestBroadcastRowsInMessages(t *testing.T) {
	sc := parse(t, lineScenario(4, ""))
	s := runScenario(t, sc, nil)
	dir := t.TempDir()
	if err := s.WriteOutputs(dir); err != nil {
		t.Fatal(err)
	}
	rows := readCSVFile(t, filepath.Join(dir, "messages.csv"))
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	n, sum := 0, 0.0
	for _, r := range rows[1:] {
		if r[col["kind"]] != "broadcast" {
			continue
		}
		n++
		var v float64
		if _, err := fmt.Sscan(r[col["reach"]], &v); err != nil || r[col["destination"]] != "*" {
			t.Fatalf("row %v", r)
		}
		sum += v
	}
	sm := s.Summary()
	if n == 0 || uint64(n) != sm.Broadcasts {
		t.Fatalf("%d broadcast rows for %d broadcasts", n, sm.Broadcasts)
	}
	if d := sum/float64(n) - sm.BroadcastReach; d > 1e-3 || d < -1e-3 {
		t.Errorf("mean reach %v in messages.csv, %v in summary.json", sum/float64(n), sm.BroadcastReach)
	}
	if sm.BroadcastTxPer <= 0 || sm.BroadcastAirtimeS <= 0 || sm.AirtimeByKind["lora/bulk"] != sm.BroadcastAirtimeS {
		t.Errorf("broadcast figures: %v per broadcast, %v s, by kind %v", sm.BroadcastTxPer, sm.BroadcastAirtimeS, sm.AirtimeByKind)
	}
}
