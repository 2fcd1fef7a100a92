package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

var (
	weekdaysDE = [7]string{"So", "Mo", "Di", "Mi", "Do", "Fr", "Sa"}
	weekdaysEN = [7]string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}
)

// when shows t in Europe/Berlin with its weekday ("Di 12.01.2027 18:00"),
// "-" for the zero time.
func (o *options) when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	b := t.In(berlin)
	if o.lang == "de" {
		return weekdaysDE[b.Weekday()] + " " + b.Format("02.01.2006 15:04")
	}
	return weekdaysEN[b.Weekday()] + " " + b.Format("2006-01-02 15:04")
}

// date shows the date of t in Europe/Berlin.
func (o *options) date(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	if o.lang == "de" {
		return t.In(berlin).Format("02.01.2006")
	}
	return t.In(berlin).Format("2006-01-02")
}

// parseWhen reads a time typed by a person: RFC 3339 with a zone, or
// "2027-01-12 18:00", "2027-01-12T18:00", "12.01.2027 18:00" or a date
// alone (midnight), all in Europe/Berlin.
func parseWhen(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02 15:04", "2006-01-02T15:04", "02.01.2006 15:04", "2006-01-02", "02.01.2006"} {
		if t, err := time.ParseInLocation(layout, s, berlin); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("time %q: want e.g. \"2027-01-12 18:00\" or \"12.01.2027 18:00\" (Europe/Berlin) or RFC 3339", s)
}

// table writes rows under a header with aligned columns.
func table(w io.Writer, header string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// list joins names for a table cell, "-" when empty.
func list(names []string) string {
	if len(names) == 0 {
		return "-"
	}
	return strings.Join(names, ",")
}

// short abbreviates a long hex key for tables (the full key is in --json).
func short(hex string) string {
	if len(hex) <= 12 {
		return hex
	}
	return hex[:12] + "…"
}

func yes(o *options, b bool) string {
	if b {
		return o.t("ja", "yes")
	}
	return o.t("nein", "no")
}
