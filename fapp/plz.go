package fapp

import (
	"fmt"
	"strconv"
)

//go:generate go run ../internal/plzgen -in ../internal/plzgen/german-postal-codes-2.0.0.json -out plz_table.go

// PLZ is a German postal code as a number (01067 is 1067). On the wire it
// takes 3 bytes. Only codes in use are valid (the list of the npm package
// german-postal-codes 2.0.0, 8,210 codes, generated into plz_table.go).
type PLZ uint32

// ParsePLZ parses a 5-digit postal code and checks that it is in use.
func ParsePLZ(s string) (PLZ, error) {
	if len(s) != 5 || !allDigits(s) {
		return 0, fmt.Errorf("PLZ %q: want 5 digits: %w", s, ErrInvalidPLZ)
	}
	n, _ := strconv.Atoi(s)
	p := PLZ(n)
	if !p.Valid() {
		return 0, fmt.Errorf("PLZ %s: not a postal code in use: %w", s, ErrInvalidPLZ)
	}
	return p, nil
}

// Valid reports whether p is a German postal code in use.
func (p PLZ) Valid() bool {
	return p < 100000 && plzSet[p/8]&(1<<(p%8)) != 0
}

// String returns the 5-digit form with leading zeros.
func (p PLZ) String() string { return fmt.Sprintf("%05d", uint32(p)) }

// Region returns the 2-digit prefix, the unit announces travel in (a gossip
// topic and a flooding scope per region).
func (p PLZ) Region() Region { return Region(p / 1000) }

// HasPrefix reports whether the 5-digit form of p starts with prefix (1 to 5
// digits; the empty prefix matches every PLZ).
func (p PLZ) HasPrefix(prefix string) bool {
	s := p.String()
	return len(prefix) <= 5 && s[:len(prefix)] == prefix
}

// Region is a 2-digit PLZ prefix (0..99); 01 is Dresden, 10 central Berlin.
type Region uint8

// String returns the 2-digit form with a leading zero.
func (r Region) String() string { return fmt.Sprintf("%02d", uint8(r)) }

// ParseRegion parses a 2-digit region and checks that some PLZ in use
// starts with it.
func ParseRegion(s string) (Region, error) {
	if len(s) != 2 || !allDigits(s) {
		return 0, fmt.Errorf("region %q: want 2 digits: %w", s, ErrInvalidPLZ)
	}
	n, _ := strconv.Atoi(s)
	r := Region(n)
	if !r.InUse() {
		return 0, fmt.Errorf("region %s: no postal code in use starts with it: %w", s, ErrInvalidPLZ)
	}
	return r, nil
}

// InUse reports whether some PLZ in use lies in r.
func (r Region) InUse() bool {
	if r > 99 {
		return false
	}
	for p := PLZ(r) * 1000; p < PLZ(r)*1000+1000; p++ {
		if p.Valid() {
			return true
		}
	}
	return false
}

// Regions returns every region in use, ascending.
func Regions() []Region {
	var out []Region
	for r := Region(0); r < 100; r++ {
		if r.InUse() {
			out = append(out, r)
		}
	}
	return out
}

// CheckPLZPrefix checks a query prefix: 0 to 5 digits, and some PLZ in use
// starts with it (so a typo is an error, not an empty result).
func CheckPLZPrefix(prefix string) error {
	if len(prefix) > 5 || !allDigits(prefix) {
		return fmt.Errorf("PLZ prefix %q: want up to 5 digits: %w", prefix, ErrInvalidPLZ)
	}
	if prefix == "" {
		return nil
	}
	lo, _ := strconv.Atoi(prefix)
	span := 1
	for range 5 - len(prefix) {
		lo *= 10
		span *= 10
	}
	for p := PLZ(lo); p < PLZ(lo+span); p++ {
		if p.Valid() {
			return nil
		}
	}
	return fmt.Errorf("PLZ prefix %q: no postal code in use starts with it: %w", prefix, ErrInvalidPLZ)
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
