package fapp

import (
	"encoding/json"
	"fmt"
	"math/bits"
	"strings"
)

// The domain enums carry the names the profession uses (FAPP's wire and API
// speak German for the domain, English for the machinery). Every enum is a
// small integer starting at 1, so the zero value is "unset" and never
// mistaken for a real value; String returns the upper-case name used in JSON
// and on the command line, and ParseX accepts it in any case.

// Verfahren is a psychotherapy procedure: the four Richtlinienverfahren.
type Verfahren uint8

// The Verfahren.
const (
	Verhaltenstherapie          Verfahren = iota + 1 // VERHALTENSTHERAPIE, cognitive behavioural therapy
	TiefenpsychologischFundiert                      // TIEFENPSYCHOLOGISCH_FUNDIERT, psychodynamic
	Analytisch                                       // ANALYTISCH, psychoanalytic
	Systemisch                                       // SYSTEMISCH, systemic therapy
)

var verfahrenNames = []string{"", "VERHALTENSTHERAPIE", "TIEFENPSYCHOLOGISCH_FUNDIERT", "ANALYTISCH", "SYSTEMISCH"}

// Altersgruppe is the age group a therapist treats.
type Altersgruppe uint8

// The Altersgruppen.
const (
	Erwachsene        Altersgruppe = iota + 1 // ERWACHSENE, adults
	KinderJugendliche                         // KINDER_JUGENDLICHE, children < 14 and adolescents 14 to < 21
)

var altersgruppeNames = []string{"", "ERWACHSENE", "KINDER_JUGENDLICHE"}

// Setting is how many people take part in a session.
type Setting uint8

// The Settings.
const (
	Einzel       Setting = iota + 1 // EINZEL, one patient
	Gruppe                          // GRUPPE, 3-9 people (6-14 with two therapists)
	Mehrpersonen                    // MEHRPERSONEN, couples/families, systemic therapy only
)

var settingNames = []string{"", "EINZEL", "GRUPPE", "MEHRPERSONEN"}

// Modalitaet is where a session takes place. There is no telephone: a
// diagnosis by phone alone is not allowed.
type Modalitaet uint8

// The Modalitaeten.
const (
	Praxis Modalitaet = iota + 1 // PRAXIS, in person
	Video                        // VIDEO
)

var modalitaetNames = []string{"", "PRAXIS", "VIDEO"}

// Kostentraeger is who pays.
type Kostentraeger uint8

// The Kostentraeger.
const (
	GKV              Kostentraeger = iota + 1 // GKV, statutory health insurance
	PKV                                       // PKV, private health insurance
	Beihilfe                                  // BEIHILFE, civil servants' allowance
	Selbstzahler                              // SELBSTZAHLER, the patient pays
	Kostenerstattung                          // KOSTENERSTATTUNG, section 13(3) SGB V
)

var kostentraegerNames = []string{"", "GKV", "PKV", "BEIHILFE", "SELBSTZAHLER", "KOSTENERSTATTUNG"}

// Terminart is the appointment type along the patient pathway. Relapse
// prevention is for existing patients and is never announced, so it has no
// value here.
type Terminart uint8

// The Terminarten.
const (
	Sprechstunde          Terminart = iota + 1 // SPRECHSTUNDE, consultation, entry point, no referral
	Akutbehandlung                             // AKUTBEHANDLUNG, acute treatment, needs the PTV 11 form
	Probatorik                                 // PROBATORIK, trial sessions
	TherapieplatzKZT                           // THERAPIEPLATZ_KZT, weekly place, short-term therapy
	TherapieplatzLZT                           // THERAPIEPLATZ_LZT, weekly place, long-term therapy
	GruppeGrundversorgung                      // GRUPPE_GRUNDVERSORGUNG, basic group care
	Gruppentherapie                            // GRUPPENTHERAPIE, group therapy
)

var terminartNames = []string{"", "SPRECHSTUNDE", "AKUTBEHANDLUNG", "PROBATORIK", "THERAPIEPLATZ_KZT",
	"THERAPIEPLATZ_LZT", "GRUPPE_GRUNDVERSORGUNG", "GRUPPENTHERAPIE"}

// Berufsgruppe is the therapist's profession, as the credential states it.
type Berufsgruppe uint8

// The Berufsgruppen.
const (
	Psychotherapeut                   Berufsgruppe = iota + 1 // PSYCHOTHERAPEUT
	PsychologischerPsychotherapeut                            // PSYCHOLOGISCHER_PSYCHOTHERAPEUT
	KinderJugendlichenpsychotherapeut                         // KINDER_JUGENDLICHENPSYCHOTHERAPEUT
	AerztlicherPsychotherapeut                                // AERZTLICHER_PSYCHOTHERAPEUT
)

var berufsgruppeNames = []string{"", "PSYCHOTHERAPEUT", "PSYCHOLOGISCHER_PSYCHOTHERAPEUT",
	"KINDER_JUGENDLICHENPSYCHOTHERAPEUT", "AERZTLICHER_PSYCHOTHERAPEUT"}

// SlotStatus is the public state of a slot: FREI -> GEHALTEN -> VERGEBEN.
// A change is published as a new announce (batched, see Publisher).
type SlotStatus uint8

// The SlotStatus values.
const (
	SlotFrei     SlotStatus = iota + 1 // FREI, free
	SlotGehalten                       // GEHALTEN, held for a patient who asked
	SlotVergeben                       // VERGEBEN, taken
)

var slotStatusNames = []string{"", "FREI", "GEHALTEN", "VERGEBEN"}

// Voraussetzung is what a patient must bring to take a slot.
type Voraussetzung uint8

// The Voraussetzungen.
const (
	VoraussetzungKeine        Voraussetzung = iota + 1 // KEINE, none
	VoraussetzungPTV11                                 // PTV11, the PTV 11 form from a consultation
	VoraussetzungSprechstunde                          // SPRECHSTUNDE_ERFOLGT, a consultation took place
)

var voraussetzungNames = []string{"", "KEINE", "PTV11", "SPRECHSTUNDE_ERFOLGT"}

// Geschlecht is the therapist's gender, a filter patients use.
type Geschlecht uint8

// The Geschlecht values.
const (
	Weiblich  Geschlecht = iota + 1 // WEIBLICH
	Maennlich                       // MAENNLICH
	Divers                          // DIVERS
)

var geschlechtNames = []string{"", "WEIBLICH", "MAENNLICH", "DIVERS"}

// ReservationState is the state of one reservation, on both sides:
//
//	ANGEFRAGT -> GEHALTEN -> BESTAETIGT
//	    |           |            |
//	    +-> ABGELEHNT, ABGELAUFEN, STORNIERT_PATIENT, STORNIERT_THERAPEUT
//
// (Transition has the exact table.)
type ReservationState uint8

// The ReservationStates.
const (
	Angefragt          ReservationState = iota + 1 // ANGEFRAGT, requested
	Gehalten                                       // GEHALTEN, held until the hold expires
	Bestaetigt                                     // BESTAETIGT, confirmed (signed by the therapist)
	Abgelehnt                                      // ABGELEHNT, declined
	Abgelaufen                                     // ABGELAUFEN, the hold or request expired
	StorniertPatient                               // STORNIERT_PATIENT, cancelled by the patient
	StorniertTherapeut                             // STORNIERT_THERAPEUT, cancelled by the therapist
)

var reservationStateNames = []string{"", "ANGEFRAGT", "GEHALTEN", "BESTAETIGT", "ABGELEHNT", "ABGELAUFEN",
	"STORNIERT_PATIENT", "STORNIERT_THERAPEUT"}

func enumName(names []string, v uint8, kind string) string {
	if v != 0 && int(v) < len(names) {
		return names[v]
	}
	return fmt.Sprintf("%s(%d)", kind, v)
}

func parseEnum(names []string, kind, s string) (uint8, error) {
	u := strings.ToUpper(strings.TrimSpace(s))
	for i := 1; i < len(names); i++ {
		if names[i] == u {
			return uint8(i), nil
		}
	}
	return 0, fmt.Errorf("%s %q: want one of %s: %w", kind, s, strings.Join(names[1:], ", "), ErrMalformed)
}

func validEnum(names []string, v uint8) bool { return v != 0 && int(v) < len(names) }

// String returns the upper-case name, e.g. "VERHALTENSTHERAPIE".
func (v Verfahren) String() string { return enumName(verfahrenNames, uint8(v), "Verfahren") }

// Valid reports whether v is one of the Verfahren.
func (v Verfahren) Valid() bool { return validEnum(verfahrenNames, uint8(v)) }

// ParseVerfahren parses a name as String returns it, in any case.
func ParseVerfahren(s string) (Verfahren, error) {
	v, err := parseEnum(verfahrenNames, "Verfahren", s)
	return Verfahren(v), err
}

// String returns the upper-case name, e.g. "ERWACHSENE".
func (v Altersgruppe) String() string { return enumName(altersgruppeNames, uint8(v), "Altersgruppe") }

// Valid reports whether v is one of the Altersgruppen.
func (v Altersgruppe) Valid() bool { return validEnum(altersgruppeNames, uint8(v)) }

// ParseAltersgruppe parses a name as String returns it, in any case.
func ParseAltersgruppe(s string) (Altersgruppe, error) {
	v, err := parseEnum(altersgruppeNames, "Altersgruppe", s)
	return Altersgruppe(v), err
}

// String returns the upper-case name, e.g. "EINZEL".
func (v Setting) String() string { return enumName(settingNames, uint8(v), "Setting") }

// Valid reports whether v is one of the Settings.
func (v Setting) Valid() bool { return validEnum(settingNames, uint8(v)) }

// ParseSetting parses a name as String returns it, in any case.
func ParseSetting(s string) (Setting, error) {
	v, err := parseEnum(settingNames, "Setting", s)
	return Setting(v), err
}

// String returns the upper-case name, e.g. "PRAXIS".
func (v Modalitaet) String() string { return enumName(modalitaetNames, uint8(v), "Modalitaet") }

// Valid reports whether v is one of the Modalitaeten.
func (v Modalitaet) Valid() bool { return validEnum(modalitaetNames, uint8(v)) }

// ParseModalitaet parses a name as String returns it, in any case.
func ParseModalitaet(s string) (Modalitaet, error) {
	v, err := parseEnum(modalitaetNames, "Modalitaet", s)
	return Modalitaet(v), err
}

// String returns the upper-case name, e.g. "GKV".
func (v Kostentraeger) String() string {
	return enumName(kostentraegerNames, uint8(v), "Kostentraeger")
}

// Valid reports whether v is one of the Kostentraeger.
func (v Kostentraeger) Valid() bool { return validEnum(kostentraegerNames, uint8(v)) }

// ParseKostentraeger parses a name as String returns it, in any case.
func ParseKostentraeger(s string) (Kostentraeger, error) {
	v, err := parseEnum(kostentraegerNames, "Kostentraeger", s)
	return Kostentraeger(v), err
}

// String returns the upper-case name, e.g. "SPRECHSTUNDE".
func (v Terminart) String() string { return enumName(terminartNames, uint8(v), "Terminart") }

// Valid reports whether v is one of the Terminarten.
func (v Terminart) Valid() bool { return validEnum(terminartNames, uint8(v)) }

// ParseTerminart parses a name as String returns it, in any case.
func ParseTerminart(s string) (Terminart, error) {
	v, err := parseEnum(terminartNames, "Terminart", s)
	return Terminart(v), err
}

// IsGroup reports whether the Terminart is a group offer (Setting GRUPPE).
func (v Terminart) IsGroup() bool { return v == GruppeGrundversorgung || v == Gruppentherapie }

// IsWeeklyPlace reports whether the Terminart is a recurring place
// (therapy or group), the only kinds that may recur weekly.
func (v Terminart) IsWeeklyPlace() bool {
	return v == TherapieplatzKZT || v == TherapieplatzLZT || v.IsGroup()
}

// String returns the upper-case name, e.g. "PSYCHOTHERAPEUT".
func (v Berufsgruppe) String() string { return enumName(berufsgruppeNames, uint8(v), "Berufsgruppe") }

// Valid reports whether v is one of the Berufsgruppen.
func (v Berufsgruppe) Valid() bool { return validEnum(berufsgruppeNames, uint8(v)) }

// ParseBerufsgruppe parses a name as String returns it, in any case.
func ParseBerufsgruppe(s string) (Berufsgruppe, error) {
	v, err := parseEnum(berufsgruppeNames, "Berufsgruppe", s)
	return Berufsgruppe(v), err
}

// String returns the upper-case name, e.g. "FREI".
func (v SlotStatus) String() string { return enumName(slotStatusNames, uint8(v), "SlotStatus") }

// Valid reports whether v is one of the SlotStatus values.
func (v SlotStatus) Valid() bool { return validEnum(slotStatusNames, uint8(v)) }

// ParseSlotStatus parses a name as String returns it, in any case.
func ParseSlotStatus(s string) (SlotStatus, error) {
	v, err := parseEnum(slotStatusNames, "SlotStatus", s)
	return SlotStatus(v), err
}

// String returns the upper-case name, e.g. "PTV11".
func (v Voraussetzung) String() string {
	return enumName(voraussetzungNames, uint8(v), "Voraussetzung")
}

// Valid reports whether v is one of the Voraussetzungen.
func (v Voraussetzung) Valid() bool { return validEnum(voraussetzungNames, uint8(v)) }

// ParseVoraussetzung parses a name as String returns it, in any case.
func ParseVoraussetzung(s string) (Voraussetzung, error) {
	v, err := parseEnum(voraussetzungNames, "Voraussetzung", s)
	return Voraussetzung(v), err
}

// String returns the upper-case name, e.g. "WEIBLICH".
func (v Geschlecht) String() string { return enumName(geschlechtNames, uint8(v), "Geschlecht") }

// Valid reports whether v is one of the Geschlecht values.
func (v Geschlecht) Valid() bool { return validEnum(geschlechtNames, uint8(v)) }

// ParseGeschlecht parses a name as String returns it, in any case.
func ParseGeschlecht(s string) (Geschlecht, error) {
	v, err := parseEnum(geschlechtNames, "Geschlecht", s)
	return Geschlecht(v), err
}

// String returns the upper-case name, e.g. "BESTAETIGT".
func (v ReservationState) String() string {
	return enumName(reservationStateNames, uint8(v), "ReservationState")
}

// Valid reports whether v is one of the ReservationStates.
func (v ReservationState) Valid() bool { return validEnum(reservationStateNames, uint8(v)) }

// Terminal reports whether no transition leaves v.
func (v ReservationState) Terminal() bool {
	return v == Abgelehnt || v == Abgelaufen || v == StorniertPatient || v == StorniertTherapeut
}

// ParseReservationState parses a name as String returns it, in any case.
func ParseReservationState(s string) (ReservationState, error) {
	v, err := parseEnum(reservationStateNames, "ReservationState", s)
	return ReservationState(v), err
}

// enum is what Set needs of an element type.
type enum interface {
	~uint8
	Valid() bool
	String() string
	names() []string
}

// Set is a set of enum values as a bit set: value v is bit v (bit 0 is never
// set, because 0 is no value). Every enum has at most 7 values, so a set is
// one byte on the wire.
type Set[E enum] uint8

// SetOf returns the set holding vs. Invalid values are left out.
func SetOf[E enum](vs ...E) Set[E] {
	var s Set[E]
	for _, v := range vs {
		s = s.With(v)
	}
	return s
}

// With returns s plus v (s unchanged when v is not valid).
func (s Set[E]) With(v E) Set[E] {
	if !v.Valid() || v > 7 {
		return s
	}
	return s | 1<<v
}

// Has reports whether v is in s.
func (s Set[E]) Has(v E) bool { return v <= 7 && s&(1<<v) != 0 }

// Empty reports whether s holds nothing.
func (s Set[E]) Empty() bool { return s == 0 }

// Intersects reports whether s and t share a value.
func (s Set[E]) Intersects(t Set[E]) bool { return s&t != 0 }

// Len returns the number of values in s.
func (s Set[E]) Len() int { return bits.OnesCount8(uint8(s)) }

// Values returns the values in s in ascending order.
func (s Set[E]) Values() []E {
	var out []E
	for v := E(1); v <= 7; v++ {
		if s.Has(v) {
			out = append(out, v)
		}
	}
	return out
}

// valid reports whether s holds only valid values (what decoders check).
func (s Set[E]) valid() bool {
	if s&1 != 0 {
		return false
	}
	for v := E(1); v <= 7; v++ {
		if s.Has(v) && !v.Valid() {
			return false
		}
	}
	return true
}

// String returns the names joined by commas, e.g. "GKV,PKV".
func (s Set[E]) String() string {
	names := make([]string, 0, s.Len())
	for _, v := range s.Values() {
		names = append(names, v.String())
	}
	return strings.Join(names, ",")
}

// MarshalJSON encodes the set as a JSON array of names.
func (s Set[E]) MarshalJSON() ([]byte, error) {
	names := make([]string, 0, s.Len())
	for _, v := range s.Values() {
		names = append(names, v.String())
	}
	return json.Marshal(names)
}

// UnmarshalJSON decodes a JSON array of names (in any case).
func (s *Set[E]) UnmarshalJSON(b []byte) error {
	var names []string
	if err := json.Unmarshal(b, &names); err != nil {
		return fmt.Errorf("set: want an array of names: %w", ErrMalformed)
	}
	var out Set[E]
	for _, n := range names {
		v, err := parseEnum(E(0).names(), fmt.Sprintf("%T", E(0)), n)
		if err != nil {
			return err
		}
		out = out.With(E(v))
	}
	*s = out
	return nil
}

// ParseSet parses names separated by commas with parse (e.g.
// ParseSet("gkv,pkv", ParseKostentraeger)). The empty string is the empty set.
func ParseSet[E enum](s string, parse func(string) (E, error)) (Set[E], error) {
	var out Set[E]
	if strings.TrimSpace(s) == "" {
		return 0, nil
	}
	for _, part := range strings.Split(s, ",") {
		v, err := parse(part)
		if err != nil {
			return 0, err
		}
		out = out.With(v)
	}
	return out, nil
}

// Sets of each enum, named for readability.
type (
	VerfahrenSet     = Set[Verfahren]
	AltersgruppeSet  = Set[Altersgruppe]
	SettingSet       = Set[Setting]
	ModalitaetSet    = Set[Modalitaet]
	KostentraegerSet = Set[Kostentraeger]
	TerminartSet     = Set[Terminart]
	GeschlechtSet    = Set[Geschlecht]
)

// Text forms for JSON and configuration: every enum marshals to its name
// (the zero value, "unset", to the empty string) and unmarshals from a name
// in any case (and "" to the zero value).

func marshalEnum(names []string, v uint8, kind string) ([]byte, error) {
	if v == 0 {
		return []byte{}, nil
	}
	if !validEnum(names, v) {
		return nil, fmt.Errorf("%s(%d): %w", kind, v, ErrMalformed)
	}
	return []byte(names[v]), nil
}

func unmarshalEnum(names []string, kind string, b []byte) (uint8, error) {
	if len(b) == 0 {
		return 0, nil
	}
	return parseEnum(names, kind, string(b))
}

func (Verfahren) names() []string { return verfahrenNames }

// MarshalText implements encoding.TextMarshaler.
func (v Verfahren) MarshalText() ([]byte, error) {
	return marshalEnum(verfahrenNames, uint8(v), "Verfahren")
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (v *Verfahren) UnmarshalText(b []byte) error {
	u, err := unmarshalEnum(verfahrenNames, "Verfahren", b)
	*v = Verfahren(u)
	return err
}

func (Altersgruppe) names() []string { return altersgruppeNames }

// MarshalText implements encoding.TextMarshaler.
func (v Altersgruppe) MarshalText() ([]byte, error) {
	return marshalEnum(altersgruppeNames, uint8(v), "Altersgruppe")
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (v *Altersgruppe) UnmarshalText(b []byte) error {
	u, err := unmarshalEnum(altersgruppeNames, "Altersgruppe", b)
	*v = Altersgruppe(u)
	return err
}

func (Setting) names() []string { return settingNames }

// MarshalText implements encoding.TextMarshaler.
func (v Setting) MarshalText() ([]byte, error) { return marshalEnum(settingNames, uint8(v), "Setting") }

// UnmarshalText implements encoding.TextUnmarshaler.
func (v *Setting) UnmarshalText(b []byte) error {
	u, err := unmarshalEnum(settingNames, "Setting", b)
	*v = Setting(u)
	return err
}

func (Modalitaet) names() []string { return modalitaetNames }

// MarshalText implements encoding.TextMarshaler.
func (v Modalitaet) MarshalText() ([]byte, error) {
	return marshalEnum(modalitaetNames, uint8(v), "Modalitaet")
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (v *Modalitaet) UnmarshalText(b []byte) error {
	u, err := unmarshalEnum(modalitaetNames, "Modalitaet", b)
	*v = Modalitaet(u)
	return err
}

func (Kostentraeger) names() []string { return kostentraegerNames }

// MarshalText implements encoding.TextMarshaler.
func (v Kostentraeger) MarshalText() ([]byte, error) {
	return marshalEnum(kostentraegerNames, uint8(v), "Kostentraeger")
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (v *Kostentraeger) UnmarshalText(b []byte) error {
	u, err := unmarshalEnum(kostentraegerNames, "Kostentraeger", b)
	*v = Kostentraeger(u)
	return err
}

func (Terminart) names() []string { return terminartNames }

// MarshalText implements encoding.TextMarshaler.
func (v Terminart) MarshalText() ([]byte, error) {
	return marshalEnum(terminartNames, uint8(v), "Terminart")
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (v *Terminart) UnmarshalText(b []byte) error {
	u, err := unmarshalEnum(terminartNames, "Terminart", b)
	*v = Terminart(u)
	return err
}

func (Berufsgruppe) names() []string { return berufsgruppeNames }

// MarshalText implements encoding.TextMarshaler.
func (v Berufsgruppe) MarshalText() ([]byte, error) {
	return marshalEnum(berufsgruppeNames, uint8(v), "Berufsgruppe")
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (v *Berufsgruppe) UnmarshalText(b []byte) error {
	u, err := unmarshalEnum(berufsgruppeNames, "Berufsgruppe", b)
	*v = Berufsgruppe(u)
	return err
}

func (SlotStatus) names() []string { return slotStatusNames }

// MarshalText implements encoding.TextMarshaler.
func (v SlotStatus) MarshalText() ([]byte, error) {
	return marshalEnum(slotStatusNames, uint8(v), "SlotStatus")
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (v *SlotStatus) UnmarshalText(b []byte) error {
	u, err := unmarshalEnum(slotStatusNames, "SlotStatus", b)
	*v = SlotStatus(u)
	return err
}

func (Voraussetzung) names() []string { return voraussetzungNames }

// MarshalText implements encoding.TextMarshaler.
func (v Voraussetzung) MarshalText() ([]byte, error) {
	return marshalEnum(voraussetzungNames, uint8(v), "Voraussetzung")
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (v *Voraussetzung) UnmarshalText(b []byte) error {
	u, err := unmarshalEnum(voraussetzungNames, "Voraussetzung", b)
	*v = Voraussetzung(u)
	return err
}

func (Geschlecht) names() []string { return geschlechtNames }

// MarshalText implements encoding.TextMarshaler.
func (v Geschlecht) MarshalText() ([]byte, error) {
	return marshalEnum(geschlechtNames, uint8(v), "Geschlecht")
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (v *Geschlecht) UnmarshalText(b []byte) error {
	u, err := unmarshalEnum(geschlechtNames, "Geschlecht", b)
	*v = Geschlecht(u)
	return err
}

func (ReservationState) names() []string { return reservationStateNames }

// MarshalText implements encoding.TextMarshaler.
func (v ReservationState) MarshalText() ([]byte, error) {
	return marshalEnum(reservationStateNames, uint8(v), "ReservationState")
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (v *ReservationState) UnmarshalText(b []byte) error {
	u, err := unmarshalEnum(reservationStateNames, "ReservationState", b)
	*v = ReservationState(u)
	return err
}
