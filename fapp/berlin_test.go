package fapp

import (
	"testing"
	"time"
	_ "time/tzdata" // the reference zone, embedded so the test reads no files
)

// TestBerlinMatchesTZData compares the coded rule with the IANA database
// every 30 minutes over 2020-2040 (DST switches at 01:00 UTC both ways).
func TestBerlinMatchesTZData(t *testing.T) {
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	end := time.Date(2041, 1, 1, 0, 0, 0, 0, time.UTC)
	for u := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC); u.Before(end); u = u.Add(30 * time.Minute) {
		_, off := u.In(loc).Zone()
		if got := BerlinOffset(u); got != time.Duration(off)*time.Second {
			t.Fatalf("%v: offset %v, tzdata %ds", u, got, off)
		}
		b, r := InBerlin(u), u.In(loc)
		if b.Hour() != r.Hour() || b.Day() != r.Day() || b.Weekday() != r.Weekday() {
			t.Fatalf("%v: %v, tzdata %v", u, b, r)
		}
	}
}

func TestBerlinTime(t *testing.T) {
	loc, _ := time.LoadLocation("Europe/Berlin")
	for d := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC); d.Year() < 2028; d = d.AddDate(0, 0, 1) {
		for _, hm := range [][2]int{{0, 0}, {1, 30}, {3, 0}, {9, 15}, {18, 0}, {23, 59}} {
			got := BerlinTime(d.Year(), d.Month(), d.Day(), hm[0], hm[1])
			want := time.Date(d.Year(), d.Month(), d.Day(), hm[0], hm[1], 0, 0, loc)
			if !got.Equal(want) {
				t.Fatalf("%v %02d:%02d: %v, want %v", d.Format("2006-01-02"), hm[0], hm[1], got, want)
			}
		}
	}
	// The gap: 2027-03-28 02:30 does not exist; read as CET, it is 03:30 CEST.
	if got := BerlinTime(2027, 3, 28, 2, 30); !got.Equal(time.Date(2027, 3, 28, 1, 30, 0, 0, time.UTC)) {
		t.Fatalf("gap: %v", got)
	}
	// The fold: 2027-10-31 02:30 happens twice; the first (CEST) is taken.
	if got := BerlinTime(2027, 10, 31, 2, 30); !got.Equal(time.Date(2027, 10, 31, 0, 30, 0, 0, time.UTC)) {
		t.Fatalf("fold: %v", got)
	}
}

// TestWeeklyAcrossDST: a weekly place at 18:00 stays at 18:00 Berlin time
// when the clocks change.
func TestWeeklyAcrossDST(t *testing.T) {
	s := Slot{Start: BerlinTime(2027, 3, 23, 18, 0), Woechentlich: true, Bis: BerlinTime(2027, 4, 6, 18, 0)}
	if s.Occurrences() != 3 {
		t.Fatalf("occurrences %d", s.Occurrences())
	}
	for k := range 3 {
		b := InBerlin(s.Occurrence(k))
		if b.Hour() != 18 || b.Weekday() != time.Tuesday {
			t.Fatalf("occurrence %d at %v", k, b)
		}
	}
	if d := s.Occurrence(1).Sub(s.Occurrence(0)); d != 7*24*time.Hour-time.Hour {
		t.Fatalf("week across the spring switch lasts %v", d)
	}
}
