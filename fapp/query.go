package fapp

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Query limits.
const (
	// DefaultQueryLimit is the number of results when Query.Limit is 0.
	DefaultQueryLimit = 100
	// MaxQueryLimit bounds Query.Limit.
	MaxQueryLimit = 1000
	// MaxTimeWindows bounds Query.Zeitfenster.
	MaxTimeWindows = 8
)

// WeekdaySet is a set of weekdays, bit time.Weekday (Sunday = 0).
type WeekdaySet uint8

// Weekday sets used often.
const (
	Werktage   WeekdaySet = 1<<time.Monday | 1<<time.Tuesday | 1<<time.Wednesday | 1<<time.Thursday | 1<<time.Friday
	Wochenende WeekdaySet = 1<<time.Saturday | 1<<time.Sunday
	AlleTage              = Werktage | Wochenende
)

// Has reports whether d is in s.
func (s WeekdaySet) Has(d time.Weekday) bool { return s&(1<<d) != 0 }

// TimeWindow is a recurring window of Europe/Berlin wall-clock time: a slot
// matches when it starts on one of Tage at or after Von and before Bis
// (minutes after midnight). "Weekday evenings" is
// TimeWindow{Tage: Werktage, Von: 17*60, Bis: 21*60}.
type TimeWindow struct {
	Tage WeekdaySet // 0 means every day
	Von  int        // minutes after midnight, 0..1439
	Bis  int        // minutes after midnight, Von < Bis <= 1440
}

// ParseTimeWindow parses "mo-fr 17:00-21:00", "sa 09:00-12:00" or
// "17:00-21:00" (every day). Days are German two-letter abbreviations
// (mo di mi do fr sa so), a range or a comma list.
func ParseTimeWindow(s string) (TimeWindow, error) {
	fields := strings.Fields(strings.ToLower(s))
	var w TimeWindow
	if len(fields) == 2 {
		days, err := parseDays(fields[0])
		if err != nil {
			return w, fmt.Errorf("time window %q: %w", s, err)
		}
		w.Tage, fields = days, fields[1:]
	}
	if len(fields) != 1 {
		return w, fmt.Errorf("time window %q: want [days] HH:MM-HH:MM: %w", s, ErrMalformed)
	}
	from, to, ok := strings.Cut(fields[0], "-")
	var err1, err2 error
	w.Von, err1 = parseClock(from)
	w.Bis, err2 = parseClock(to)
	if !ok || err1 != nil || err2 != nil {
		return w, fmt.Errorf("time window %q: want [days] HH:MM-HH:MM: %w", s, ErrMalformed)
	}
	return w, w.check()
}

var dayNames = map[string]time.Weekday{"so": time.Sunday, "mo": time.Monday, "di": time.Tuesday,
	"mi": time.Wednesday, "do": time.Thursday, "fr": time.Friday, "sa": time.Saturday}

func parseDays(s string) (WeekdaySet, error) {
	var set WeekdaySet
	for _, part := range strings.Split(s, ",") {
		from, to, isRange := strings.Cut(part, "-")
		a, ok1 := dayNames[from]
		b, ok2 := dayNames[to]
		if !ok1 || (isRange && !ok2) {
			return 0, fmt.Errorf("days %q: want mo,di,mi,do,fr,sa,so or a range like mo-fr: %w", s, ErrMalformed)
		}
		if !isRange {
			b = a
		}
		for d := a; ; d = (d + 1) % 7 {
			set |= 1 << d
			if d == b {
				break
			}
		}
	}
	return set, nil
}

func parseClock(s string) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || hh < 0 || hh > 24 || mm < 0 || mm > 59 || (hh == 24 && mm != 0) {
		return 0, fmt.Errorf("clock %q: %w", s, ErrMalformed)
	}
	return hh*60 + mm, nil
}

func (w TimeWindow) check() error {
	if w.Von < 0 || w.Bis > 24*60 || w.Von >= w.Bis || w.Tage&0x80 != 0 {
		return fmt.Errorf("time window %d-%d minutes: want 0 <= from < to <= 1440: %w", w.Von, w.Bis, ErrMalformed)
	}
	return nil
}

// contains reports whether a start on weekday d at minute m falls in w.
func (w TimeWindow) contains(d time.Weekday, m int) bool {
	return (w.Tage == 0 || w.Tage.Has(d)) && m >= w.Von && m < w.Bis
}

// Query selects free slots from an Index. Every empty field matches
// everything; a non-empty set matches a slot whose value is in it.
type Query struct {
	// PLZPrefix is 0 to 5 digits of the practice PLZ ("1", "10", "104",
	// "10437"). Privacy: the coarser, the less a query says about the asker.
	PLZPrefix     string
	Verfahren     VerfahrenSet
	Kostentraeger KostentraegerSet
	Terminart     TerminartSet
	Altersgruppe  AltersgruppeSet
	Setting       SettingSet
	Modalitaet    ModalitaetSet
	// Sprachen matches a therapist offering any of them.
	Sprachen   []Sprache
	Geschlecht GeschlechtSet
	// BarrierefreiZugang and BarrierefreiWC require barrier-free access.
	BarrierefreiZugang bool
	BarrierefreiWC     bool
	// Zeitfenster matches a slot starting in any of the windows
	// (Europe/Berlin wall-clock time).
	Zeitfenster []TimeWindow
	// Fruehestens and Spaetestens bound the start (zero: now, no bound).
	Fruehestens time.Time
	Spaetestens time.Time
	// NurZertifiziert keeps only therapists whose profile is cached and
	// whose credential verifies with the node's trusted issuers.
	NurZertifiziert bool
	// Limit bounds the results (0: DefaultQueryLimit; at most MaxQueryLimit).
	Limit int
}

// Check validates the query's fields.
func (q *Query) Check() error {
	if err := CheckPLZPrefix(q.PLZPrefix); err != nil {
		return fmt.Errorf("query: %w", err)
	}
	for _, ok := range []bool{q.Verfahren.valid(), q.Kostentraeger.valid(), q.Terminart.valid(),
		q.Altersgruppe.valid(), q.Setting.valid(), q.Modalitaet.valid(), q.Geschlecht.valid()} {
		if !ok {
			return fmt.Errorf("query: a set holds an invalid value: %w", ErrMalformed)
		}
	}
	for _, l := range q.Sprachen {
		if !l.Valid() {
			return fmt.Errorf("query: language %q: %w", l[:], ErrMalformed)
		}
	}
	if len(q.Zeitfenster) > MaxTimeWindows {
		return fmt.Errorf("query: %d time windows, limit %d: %w", len(q.Zeitfenster), MaxTimeWindows, ErrTooLarge)
	}
	for _, w := range q.Zeitfenster {
		if err := w.check(); err != nil {
			return fmt.Errorf("query: %w", err)
		}
	}
	if !q.Spaetestens.IsZero() && q.Spaetestens.Before(q.Fruehestens) {
		return fmt.Errorf("query: latest start %v before earliest %v: %w", q.Spaetestens, q.Fruehestens, ErrMalformed)
	}
	if q.Limit < 0 || q.Limit > MaxQueryLimit {
		return fmt.Errorf("query: limit %d, want 0..%d: %w", q.Limit, MaxQueryLimit, ErrMalformed)
	}
	return nil
}

// plzRange returns the PLZ interval [lo, hi) the prefix covers.
func (q *Query) plzRange() (lo, hi PLZ) {
	if q.PLZPrefix == "" {
		return 0, 100000
	}
	n, _ := strconv.Atoi(q.PLZPrefix)
	span := 1
	for range 5 - len(q.PLZPrefix) {
		n *= 10
		span *= 10
	}
	return PLZ(n), PLZ(n + span)
}

// matcher is a checked query prepared for a scan: times as Unix seconds,
// the PLZ prefix as an interval.
type matcher struct {
	q                *Query
	now, from, until int64 // until: 0 for no bound
	lo, hi           PLZ
}

func (q *Query) matcher(now, from time.Time) matcher {
	m := matcher{q: q, now: now.Unix(), from: from.Unix()}
	if !q.Spaetestens.IsZero() {
		m.until = q.Spaetestens.Unix()
	}
	m.lo, m.hi = q.plzRange()
	return m
}

// announce applies the filters that concern the therapist.
func (m *matcher) announce(r *annRec) bool {
	q := m.q
	switch {
	case r.withdrawn, r.expires <= m.now, r.plz < m.lo, r.plz >= m.hi:
		return false
	case q.NurZertifiziert && !r.credentialed:
		return false
	case !q.Kostentraeger.Empty() && !q.Kostentraeger.Intersects(KostentraegerSet(r.kost)):
		return false
	case !q.Altersgruppe.Empty() && !q.Altersgruppe.Intersects(AltersgruppeSet(r.alter)):
		return false
	case !q.Geschlecht.Empty() && !q.Geschlecht.Has(r.gender):
		return false
	case q.BarrierefreiZugang && !r.bfZugang, q.BarrierefreiWC && !r.bfWC:
		return false
	}
	return len(q.Sprachen) == 0 || speaksAny(r.langs[:r.nlang], q.Sprachen)
}

func speaksAny(have, want []Sprache) bool {
	for _, w := range want {
		for _, h := range have {
			if h == w {
				return true
			}
		}
	}
	return false
}

// slot applies the slot filters to slot i of a (whose record is s) and
// returns the first matching start in Unix seconds.
func (m *matcher) slot(s *slotRec, a *SlotAnnounce, i int) (int64, bool) {
	q := m.q
	switch {
	case s.status != SlotFrei:
		return 0, false
	case !q.Verfahren.Empty() && !q.Verfahren.Has(s.verfahren),
		!q.Terminart.Empty() && !q.Terminart.Has(s.terminart),
		!q.Setting.Empty() && !q.Setting.Has(s.setting),
		!q.Modalitaet.Empty() && !q.Modalitaet.Has(s.modalitaet):
		return 0, false
	}
	if len(q.Zeitfenster) > 0 && !inAnyWindow(q.Zeitfenster, s.weekday, int(s.minute)) {
		return 0, false
	}
	start := s.start
	if start < m.from {
		if s.count <= 1 {
			return 0, false
		}
		t, ok := a.Slots[i].firstFrom(time.Unix(m.from, 0).UTC(), int(s.count))
		if !ok {
			return 0, false
		}
		start = t.Unix()
	}
	if m.until != 0 && start > m.until {
		return 0, false
	}
	return start, true
}

// inAnyWindow checks the slot's Berlin weekday and minute, which are the
// same for every occurrence of a weekly slot (it recurs at the same wall
// clock time).
func inAnyWindow(ws []TimeWindow, d time.Weekday, minute int) bool {
	for _, w := range ws {
		if w.contains(d, minute) {
			return true
		}
	}
	return false
}

// firstFrom returns the first of the slot's n occurrences at or after from.
func (s *Slot) firstFrom(from time.Time, n int) (time.Time, bool) {
	if !s.Start.Before(from) {
		return s.Start, true
	}
	if n <= 1 {
		return time.Time{}, false
	}
	// Weeks are 168 h apart but for the DST hour, so the estimate is at
	// most one week short.
	k := int(from.Sub(s.Start) / (7 * 24 * time.Hour))
	for ; k < n; k++ {
		if t := s.Occurrence(k); !t.Before(from) {
			return t, true
		}
	}
	return time.Time{}, false
}
