package fapp

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// enumCase checks String and Parse of every value of one enum.
func enumCase[E enum](t *testing.T, names []string, parse func(string) (E, error)) {
	t.Helper()
	for i := 1; i < len(names); i++ {
		v := E(i)
		if !v.Valid() || v.String() != names[i] {
			t.Fatalf("%d: String %q Valid %v, want %q", i, v.String(), v.Valid(), names[i])
		}
		for _, s := range []string{names[i], strings.ToLower(names[i]), " " + names[i] + " "} {
			if got, err := parse(s); err != nil || got != v {
				t.Fatalf("parse %q: %v, %v", s, got, err)
			}
		}
	}
	for _, bad := range []string{"", "0", "NOPE", names[1] + "X"} {
		if _, err := parse(bad); !errors.Is(err, ErrMalformed) {
			t.Fatalf("parse %q: %v, want ErrMalformed", bad, err)
		}
	}
	if E(0).Valid() || E(len(names)).Valid() {
		t.Fatal("0 or one past the last value is valid")
	}
	if s := E(len(names)).String(); !strings.Contains(s, "(") {
		t.Fatalf("invalid value prints as %q", s)
	}
}

func TestEnums(t *testing.T) {
	t.Run("Verfahren", func(t *testing.T) { enumCase(t, verfahrenNames, ParseVerfahren) })
	t.Run("Altersgruppe", func(t *testing.T) { enumCase(t, altersgruppeNames, ParseAltersgruppe) })
	t.Run("Setting", func(t *testing.T) { enumCase(t, settingNames, ParseSetting) })
	t.Run("Modalitaet", func(t *testing.T) { enumCase(t, modalitaetNames, ParseModalitaet) })
	t.Run("Kostentraeger", func(t *testing.T) { enumCase(t, kostentraegerNames, ParseKostentraeger) })
	t.Run("Terminart", func(t *testing.T) { enumCase(t, terminartNames, ParseTerminart) })
	t.Run("Berufsgruppe", func(t *testing.T) { enumCase(t, berufsgruppeNames, ParseBerufsgruppe) })
	t.Run("SlotStatus", func(t *testing.T) { enumCase(t, slotStatusNames, ParseSlotStatus) })
	t.Run("Voraussetzung", func(t *testing.T) { enumCase(t, voraussetzungNames, ParseVoraussetzung) })
	t.Run("Geschlecht", func(t *testing.T) { enumCase(t, geschlechtNames, ParseGeschlecht) })
	t.Run("ReservationState", func(t *testing.T) { enumCase(t, reservationStateNames, ParseReservationState) })
}

func TestEnumNamesAreTheDomainNames(t *testing.T) {
	for v, want := range map[string]string{
		Verhaltenstherapie.String(): "VERHALTENSTHERAPIE", TiefenpsychologischFundiert.String(): "TIEFENPSYCHOLOGISCH_FUNDIERT",
		Mehrpersonen.String(): "MEHRPERSONEN", Kostenerstattung.String(): "KOSTENERSTATTUNG",
		TherapieplatzLZT.String(): "THERAPIEPLATZ_LZT", SlotGehalten.String(): "GEHALTEN",
		StorniertTherapeut.String(): "STORNIERT_THERAPEUT", AerztlicherPsychotherapeut.String(): "AERZTLICHER_PSYCHOTHERAPEUT",
	} {
		if v != want {
			t.Errorf("%s, want %s", v, want)
		}
	}
}

func TestSet(t *testing.T) {
	s := SetOf(GKV, Beihilfe, Kostentraeger(0), Kostentraeger(9))
	if !s.Has(GKV) || !s.Has(Beihilfe) || s.Has(PKV) || s.Len() != 2 || s.Has(0) {
		t.Fatalf("set %v", s)
	}
	if s.String() != "GKV,BEIHILFE" {
		t.Fatalf("String %q", s.String())
	}
	j, _ := json.Marshal(s)
	if string(j) != `["GKV","BEIHILFE"]` {
		t.Fatalf("JSON %s", j)
	}
	p, err := ParseSet("gkv, beihilfe", ParseKostentraeger)
	if err != nil || p != s {
		t.Fatalf("ParseSet: %v %v", p, err)
	}
	if _, err := ParseSet("gkv,xyz", ParseKostentraeger); !errors.Is(err, ErrMalformed) {
		t.Fatalf("ParseSet bad: %v", err)
	}
	if e, _ := ParseSet("", ParseKostentraeger); !e.Empty() {
		t.Fatal("empty string is not the empty set")
	}
	if !s.Intersects(SetOf(Beihilfe)) || s.Intersects(SetOf(PKV)) {
		t.Fatal("Intersects")
	}
	if KostentraegerSet(1).valid() || KostentraegerSet(1<<6).valid() || !s.valid() {
		t.Fatal("valid")
	}
}

func TestSprache(t *testing.T) {
	l, err := ParseSprache("TR")
	if err != nil || l.String() != "tr" {
		t.Fatalf("%v %v", l, err)
	}
	for _, bad := range []string{"", "d", "deu", "d1", "ü"} {
		if _, err := ParseSprache(bad); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%q: %v", bad, err)
		}
	}
}

func TestEnumJSON(t *testing.T) {
	type doc struct {
		V  Verfahren        `json:"verfahren"`
		G  Geschlecht       `json:"geschlecht"`
		S  ReservationState `json:"state"`
		K  KostentraegerSet `json:"kostentraeger"`
		T  TerminartSet     `json:"terminart"`
		ID RequestID        `json:"id"`
	}
	in := doc{V: Systemisch, S: StorniertPatient, K: SetOf(GKV, Kostenerstattung), ID: RequestID{1}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"verfahren":"SYSTEMISCH","geschlecht":"","state":"STORNIERT_PATIENT","kostentraeger":["GKV","KOSTENERSTATTUNG"],"terminart":[],"id":"01000000000000000000000000000000"}`
	if string(b) != want {
		t.Fatalf("JSON %s", b)
	}
	var out doc
	if err := json.Unmarshal([]byte(`{"verfahren":"systemisch","geschlecht":"","state":"STORNIERT_PATIENT","kostentraeger":["gkv","KOSTENERSTATTUNG"],"terminart":[]}`), &out); err != nil {
		t.Fatal(err)
	}
	if out.ID != (RequestID{}) {
		t.Fatal("absent ID decoded")
	}
	out.ID = in.ID
	var back doc
	if err := json.Unmarshal(b, &back); err != nil || back != in {
		t.Fatalf("JSON round trip: %+v %v", back, err)
	}
	if out != in {
		t.Fatalf("round trip %+v", out)
	}
	for _, bad := range []string{`{"verfahren":"X"}`, `{"kostentraeger":["GKV","X"]}`, `{"kostentraeger":"GKV"}`} {
		if err := json.Unmarshal([]byte(bad), &out); err == nil {
			t.Fatalf("%s accepted", bad)
		}
	}
	if _, err := json.Marshal(doc{V: 9}); err == nil {
		t.Fatal("invalid enum marshalled")
	}
}

func TestCompactIdentityText(t *testing.T) {
	c := testIdentity(t, 1).Compact()
	got, err := ParseCompactIdentity(CompactIdentityString(c))
	if err != nil || got != c {
		t.Fatalf("%v %v", got, err)
	}
	for _, bad := range []string{"", "ab", strings.Repeat("zz", 64)} {
		if _, err := ParseCompactIdentity(bad); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%q: %v", bad, err)
		}
	}
}
