package fapp

import "time"

// Europe/Berlin in pure code. A pure package may not read tzdata files, and
// embedding the whole database for one zone is wasteful, so the German rule
// is written out: CET (UTC+1), and CEST (UTC+2) from the last Sunday of
// March 01:00 UTC to the last Sunday of October 01:00 UTC (the EU rule since
// 1996). Earlier years are outside anything FAPP schedules.

// Berlin offsets.
const (
	cet  = 1 * time.Hour
	cest = 2 * time.Hour
)

// BerlinOffset returns the UTC offset of Europe/Berlin at instant t.
func BerlinOffset(t time.Time) time.Duration {
	u := t.UTC()
	y := u.Year()
	start := lastSunday(y, time.March).Add(time.Hour)
	end := lastSunday(y, time.October).Add(time.Hour)
	if !u.Before(start) && u.Before(end) {
		return cest
	}
	return cet
}

// lastSunday returns 00:00 UTC of the last Sunday of month m of year y.
func lastSunday(y int, m time.Month) time.Time {
	last := time.Date(y, m+1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, -1)
	return last.AddDate(0, 0, -int(last.Weekday()))
}

var (
	zoneCET  = time.FixedZone("CET", int(cet/time.Second))
	zoneCEST = time.FixedZone("CEST", int(cest/time.Second))
)

// InBerlin returns t in Europe/Berlin (a fixed zone named CET or CEST), for
// display and for wall-clock filters such as "weekday evenings".
func InBerlin(t time.Time) time.Time {
	if BerlinOffset(t) == cest {
		return t.In(zoneCEST)
	}
	return t.In(zoneCET)
}

// BerlinTime returns the instant at which Berlin clocks show the given date
// and time. A wall time that occurs twice (the October fold, 02:00-03:00) is
// the first one (CEST); one that does not occur (the March gap, 02:00-03:00)
// is read as CET, i.e. one hour later on the clock, as time.Date does.
func BerlinTime(year int, month time.Month, day, hour, min int) time.Time {
	wall := time.Date(year, month, day, hour, min, 0, 0, time.UTC)
	if t := wall.Add(-cest); BerlinOffset(t) == cest {
		return t
	}
	return wall.Add(-cet)
}

// addBerlinWeeks returns t moved by k weeks at the same Berlin wall-clock
// time, so a weekly place stays at 18:00 across the DST switch.
func addBerlinWeeks(t time.Time, k int) time.Time {
	b := InBerlin(t)
	d := time.Date(b.Year(), b.Month(), b.Day()+7*k, 0, 0, 0, 0, time.UTC)
	return BerlinTime(d.Year(), d.Month(), d.Day(), b.Hour(), b.Minute())
}
