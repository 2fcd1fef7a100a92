package fapp

import (
	"errors"
	"testing"
)

func TestPLZTable(t *testing.T) {
	n := 0
	for p := PLZ(0); p < 100000; p++ {
		if p.Valid() {
			n++
		}
	}
	if n != plzCount || plzCount != 8210 {
		t.Fatalf("%d valid codes, generator counted %d, npm list has 8210", n, plzCount)
	}
	if len(Regions()) != 96 {
		t.Fatalf("%d regions, want 96", len(Regions()))
	}
}

func TestParsePLZ(t *testing.T) {
	for _, s := range []string{"01067", "10437", "80331", "99998", "20095", "01001"} {
		p, err := ParsePLZ(s)
		if err != nil || p.String() != s {
			t.Fatalf("%s: %v %v", s, p, err)
		}
	}
	for _, s := range []string{"", "1043", "104370", "1043a", "00000", "99999", "05000", "-1043", " 1043"} {
		if _, err := ParsePLZ(s); !errors.Is(err, ErrInvalidPLZ) {
			t.Fatalf("%q: %v, want ErrInvalidPLZ", s, err)
		}
	}
	if PLZ(100000).Valid() || PLZ(1<<30).Valid() {
		t.Fatal("PLZ beyond 5 digits valid")
	}
}

func TestRegionsAndPrefixes(t *testing.T) {
	p := mustPLZ(t, "01067")
	if p.Region() != 1 || p.Region().String() != "01" || !p.HasPrefix("010") || p.HasPrefix("1") || !p.HasPrefix("") {
		t.Fatalf("region/prefix of %v", p)
	}
	if r, err := ParseRegion("10"); err != nil || r != 10 {
		t.Fatalf("region 10: %v %v", r, err)
	}
	for _, s := range []string{"00", "05", "1", "100", "a1"} {
		if _, err := ParseRegion(s); !errors.Is(err, ErrInvalidPLZ) {
			t.Fatalf("region %q: %v", s, err)
		}
	}
	for _, ok := range []string{"", "1", "10", "104", "1043", "10437"} {
		if err := CheckPLZPrefix(ok); err != nil {
			t.Fatalf("prefix %q: %v", ok, err)
		}
	}
	for _, bad := range []string{"00", "000", "123456", "1a", "05"} {
		if err := CheckPLZPrefix(bad); !errors.Is(err, ErrInvalidPLZ) {
			t.Fatalf("prefix %q: %v", bad, err)
		}
	}
}
