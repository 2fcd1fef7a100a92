package radio

import (
	"math/rand/v2"
	"testing"
	"time"
)

// usedScan and canTransmitScan are Used and CanTransmit as they were
// before the prefix sums: walks over the hour's records, the reference
// the binary searches must match to the nanosecond.
func usedScan(d *DutyCycle, at time.Time) time.Duration {
	from := at.Add(-DutyCycleWindow)
	var used time.Duration
	for i := d.recs.len() - 1; i >= 0; i-- {
		r := d.recs.at(i)
		s, e := d.start(r), d.end(r)
		if !e.After(from) {
			break
		}
		s, e = later(s, from), earlier(e, at)
		if e.After(s) {
			used += e.Sub(s)
		}
	}
	return used
}

func later(a, b time.Time) time.Time {
	if a.Before(b) {
		return b
	}
	return a
}

func earlier(a, b time.Time) time.Time {
	if a.After(b) {
		return b
	}
	return a
}

func canTransmitScan(d *DutyCycle, at time.Time, airtime time.Duration) (bool, time.Time) {
	if airtime > d.limit {
		return false, time.Time{}
	}
	budget := d.limit - max(airtime, 0)
	var sum time.Duration
	for i := d.recs.len() - 1; i >= 0; i-- {
		r := d.recs.at(i)
		if sum+r.air > budget {
			t := d.end(r).Add(-(budget - sum)).Add(DutyCycleWindow - max(airtime, 0))
			if t.After(at) {
				return false, t
			}
			return true, at
		}
		sum += r.air
	}
	return true, at
}

// TestDutyCycleSearchMatchesScan drives a duty cycle through busy and idle
// stretches and compares every answer with the walk over the records.
func TestDutyCycleSearchMatchesScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 17))
	d := NewDutyCycle(36 * time.Second)
	now := time.Unix(0, 0)
	for step := range 20000 {
		air := time.Duration(1+rng.Int64N(int64(2*time.Second))) / 7
		gap := time.Duration(rng.Int64N(int64(30 * time.Second)))
		if step%500 < 100 {
			gap /= 100 // a busy stretch, up to the limit
		}
		now = now.Add(gap)
		for _, at := range []time.Time{now, now.Add(-air / 2), now.Add(-time.Hour - gap/2), now.Add(time.Hour)} {
			if got, want := d.Used(at), usedScan(d, at); got != want {
				t.Fatalf("step %d: Used(%v) = %v, scan %v", step, at, got, want)
			}
		}
		ok, e := d.CanTransmit(now, air)
		wok, we := canTransmitScan(d, now, air)
		if ok != wok || !e.Equal(we) {
			t.Fatalf("step %d: CanTransmit = %v %v, scan %v %v", step, ok, e, wok, we)
		}
		if ok {
			if err := d.Record(now, air); err != nil {
				t.Fatal(err)
			}
			now = now.Add(air)
		}
	}
}
