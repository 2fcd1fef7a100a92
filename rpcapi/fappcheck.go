package rpcapi

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"meshd.dev/meshd/fapp"
	"meshd.dev/meshd/protocol"
)

// The API speaks fapp's enum names (VERHALTENSTHERAPIE, GKV, ...); this file
// turns them into fapp's types with fapp's parsers, so the server refuses
// bad values with a reason before the node sees them and the node converts
// with the same functions.

// ErrFAPPParams wraps every validation error of this file.
var ErrFAPPParams = errors.New("rpcapi: invalid FAPP value")

// checkDomain is a fixed valid PLZ used to validate a slot on its own
// inside a stand-in announce (see FAPPSlot.Parse).
const checkDomain = 10115

func paramErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrFAPPParams, fmt.Sprintf(format, args...))
}

// parseNames parses a list of enum names with parse and hands each value
// to add (which puts it in a fapp set); field names the JSON field in
// errors.
func parseNames[E any](field string, names []string, parse func(string) (E, error), add func(E)) error {
	for _, n := range names {
		v, err := parse(n)
		if err != nil {
			return paramErr("%s: %v", field, err)
		}
		add(v)
	}
	return nil
}

// parseOne parses an optional enum name: "" gives def.
func parseOne[E any](field, name string, def E, parse func(string) (E, error)) (E, error) {
	if name == "" {
		return def, nil
	}
	v, err := parse(name)
	if err != nil {
		return def, paramErr("%s: %v", field, err)
	}
	return v, nil
}

func parseSprachen(field string, codes []string) ([]fapp.Sprache, error) {
	if len(codes) > fapp.MaxSprachen {
		return nil, paramErr("%s: %d languages, at most %d", field, len(codes), fapp.MaxSprachen)
	}
	var out []fapp.Sprache
	for _, c := range codes {
		l, err := fapp.ParseSprache(c)
		if err != nil {
			return nil, paramErr("%s: %v", field, err)
		}
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b fapp.Sprache) int { return strings.Compare(a.String(), b.String()) })
	return slices.Compact(out), nil
}

// checkText refuses text over max bytes, invalid UTF-8 and control
// characters (what fapp's encodings refuse too).
func checkText(field, s string, max int) error {
	switch {
	case len(s) > max:
		return paramErr("%s has %d bytes, at most %d", field, len(s), max)
	case !utf8.ValidString(s):
		return paramErr("%s is not valid UTF-8", field)
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return paramErr("%s contains a control character", field)
	}
	return nil
}

// Parse checks the profile and returns its parts as fapp values: an
// announce template with the facts every announce carries (PLZ, sets,
// languages, gender, accessibility, waiting list) and a profile with the
// name and focus areas. The caller fills keys, sequences, times, slots and
// the credential.
func (p *FAPPProfile) Parse() (fapp.SlotAnnounce, fapp.Profile, error) {
	var a fapp.SlotAnnounce
	var pr fapp.Profile
	if strings.TrimSpace(p.Name) == "" {
		return a, pr, paramErr("name is required: the display name patients see")
	}
	if err := checkText("name", p.Name, fapp.MaxNameLen); err != nil {
		return a, pr, err
	}
	plz, err := fapp.ParsePLZ(p.PLZ)
	if err != nil {
		return a, pr, paramErr("plz: %v", err)
	}
	a.PLZ = plz
	if err = parseNames("verfahren", p.Verfahren, fapp.ParseVerfahren, func(v fapp.Verfahren) { a.Verfahren = a.Verfahren.With(v) }); err != nil {
		return a, pr, err
	}
	if err = parseNames("kostentraeger", p.Kostentraeger, fapp.ParseKostentraeger, func(v fapp.Kostentraeger) { a.Kostentraeger = a.Kostentraeger.With(v) }); err != nil {
		return a, pr, err
	}
	if err = parseNames("altersgruppen", p.Altersgruppen, fapp.ParseAltersgruppe, func(v fapp.Altersgruppe) { a.Altersgruppen = a.Altersgruppen.With(v) }); err != nil {
		return a, pr, err
	}
	switch {
	case a.Verfahren.Empty():
		return a, pr, paramErr("verfahren is required: at least one of VERHALTENSTHERAPIE, TIEFENPSYCHOLOGISCH_FUNDIERT, ANALYTISCH, SYSTEMISCH")
	case a.Kostentraeger.Empty():
		return a, pr, paramErr("kostentraeger is required: at least one of GKV, PKV, BEIHILFE, SELBSTZAHLER, KOSTENERSTATTUNG")
	case a.Altersgruppen.Empty():
		return a, pr, paramErr("altersgruppen is required: at least one of ERWACHSENE, KINDER_JUGENDLICHE")
	}
	if a.Sprachen, err = parseSprachen("sprachen", p.Sprachen); err != nil {
		return a, pr, err
	}
	if a.Geschlecht, err = parseOne("geschlecht", p.Geschlecht, 0, fapp.ParseGeschlecht); err != nil {
		return a, pr, err
	}
	a.BarrierefreiZugang, a.BarrierefreiWC, a.Warteliste = p.BarrierefreiZugang, p.BarrierefreiWC, p.Warteliste
	if len(p.Schwerpunkte) > fapp.MaxSchwerpunkte {
		return a, pr, paramErr("schwerpunkte: %d focus areas, at most %d", len(p.Schwerpunkte), fapp.MaxSchwerpunkte)
	}
	for _, s := range p.Schwerpunkte {
		if err := checkText("schwerpunkte", s, fapp.MaxSchwerpunktLen); err != nil {
			return a, pr, err
		}
	}
	pr.Name, pr.Schwerpunkte = p.Name, slices.Clone(p.Schwerpunkte)
	return a, pr, nil
}

// Parse checks the slot on its own (enum names, duration, seats, the
// domain's combinations: MEHRPERSONEN only with SYSTEMISCH, a GRUPPE with
// seats, weekly only for places) and returns it as a fapp.Slot with the
// defaults filled in: Setting EINZEL (GRUPPE for group Terminarten),
// Modalitaet PRAXIS, Voraussetzung KEINE, Status FREI. Whether the
// Verfahren is among the profile's and the start is ahead of the clock is
// for the node to check.
func (s *FAPPSlot) Parse() (fapp.Slot, error) {
	var out fapp.Slot
	var err error
	out.ID = s.ID
	if s.Terminart == "" {
		return out, paramErr("terminart is required: SPRECHSTUNDE, AKUTBEHANDLUNG, PROBATORIK, THERAPIEPLATZ_KZT, THERAPIEPLATZ_LZT, GRUPPE_GRUNDVERSORGUNG or GRUPPENTHERAPIE")
	}
	if out.Terminart, err = parseOne("terminart", s.Terminart, 0, fapp.ParseTerminart); err != nil {
		return out, err
	}
	if s.Verfahren == "" {
		return out, paramErr("verfahren is required: one of the profile's Verfahren")
	}
	if out.Verfahren, err = parseOne("verfahren", s.Verfahren, 0, fapp.ParseVerfahren); err != nil {
		return out, err
	}
	def := fapp.Einzel
	if out.Terminart.IsGroup() {
		def = fapp.Gruppe
	}
	if out.Setting, err = parseOne("setting", s.Setting, def, fapp.ParseSetting); err != nil {
		return out, err
	}
	if out.Modalitaet, err = parseOne("modalitaet", s.Modalitaet, fapp.Praxis, fapp.ParseModalitaet); err != nil {
		return out, err
	}
	if out.Voraussetzung, err = parseOne("voraussetzung", s.Voraussetzung, fapp.VoraussetzungKeine, fapp.ParseVoraussetzung); err != nil {
		return out, err
	}
	if out.Status, err = parseOne("status", s.Status, fapp.SlotFrei, fapp.ParseSlotStatus); err != nil {
		return out, err
	}
	if err := s.parseTimes(&out); err != nil {
		return out, err
	}
	return out, checkSlotDomain(out)
}

func (s *FAPPSlot) parseTimes(out *fapp.Slot) error {
	switch {
	case s.Start.IsZero():
		return paramErr("start is required: the first occurrence, e.g. 2027-01-12T18:00:00+01:00")
	case s.Start.Second() != 0 || s.Start.Nanosecond() != 0:
		return paramErr("start %s is not in whole minutes", s.Start.Format(time.RFC3339Nano))
	case s.Dauer != 25 && s.Dauer != 50 && s.Dauer != 100:
		return paramErr("dauer %d: want 25, 50 or 100 minutes", s.Dauer)
	case s.Plaetze < 0 || s.Plaetze > fapp.MaxGroupSeats:
		return paramErr("plaetze %d: want 1 to %d for a group, 0 otherwise", s.Plaetze, fapp.MaxGroupSeats)
	}
	out.Start, out.Dauer, out.Woechentlich, out.Bis, out.Plaetze = s.Start.UTC(), uint8(s.Dauer), s.Woechentlich, s.Bis.UTC(), uint8(s.Plaetze)
	if s.Bis.IsZero() {
		out.Bis = time.Time{}
	}
	return nil
}

// checkSlotDomain runs fapp's own announce rules on the slot alone, in a
// stand-in announce issued at the slot's start that offers every Verfahren,
// so the API refuses exactly what fapp would refuse, with fapp's reason.
func checkSlotDomain(s fapp.Slot) error {
	a := fapp.SlotAnnounce{
		PLZ:           checkDomain,
		Verfahren:     fapp.SetOf(fapp.Verhaltenstherapie, fapp.TiefenpsychologischFundiert, fapp.Analytisch, fapp.Systemisch),
		Kostentraeger: fapp.SetOf(fapp.GKV),
		Altersgruppen: fapp.SetOf(fapp.Erwachsene),
		Issued:        s.Start,
		Expires:       s.Start.Add(time.Hour),
		Slots:         []fapp.Slot{s},
	}
	if s.ID == 0 {
		a.Slots[0].ID = 1 // a new slot: the node picks the ID
	}
	if _, err := a.MarshalBinary(); err != nil {
		msg := err.Error()
		msg = strings.TrimPrefix(msg, "announce: ")
		if _, rest, ok := strings.Cut(msg, ": "); ok && strings.HasPrefix(msg, "slot ") {
			msg = rest
		}
		return paramErr("%s", msg)
	}
	return nil
}

// checkPublishSlots validates fapp.publish's slots and puts them in
// canonical form.
func checkPublishSlots(slots []FAPPSlot) error {
	if len(slots) > fapp.MaxSlots {
		return invalidParams("%d slots, at most %d per announce", len(slots), fapp.MaxSlots)
	}
	seen := map[uint16]bool{}
	for i := range slots {
		s, err := slots[i].Parse()
		if err != nil {
			return invalidParams("slots[%d]: %v", i, err)
		}
		// The node sees canonical names, the defaults filled in and UTC.
		slots[i] = FAPPSlotOf(s)
		if s.Status != fapp.SlotFrei {
			return invalidParams("slots[%d]: status %v: a published slot is FREI; GEHALTEN and VERGEBEN follow from reservations", i, s.Status)
		}
		if s.ID != 0 && seen[s.ID] {
			return invalidParams("slots[%d]: id %d appears twice", i, s.ID)
		}
		seen[s.ID] = true
	}
	return nil
}

// checkSlotIDs validates fapp.withdraw's slot IDs.
func checkSlotIDs(ids []uint16) error {
	if len(ids) > fapp.MaxSlots {
		return invalidParams("%d slot IDs, a therapist has at most %d slots", len(ids), fapp.MaxSlots)
	}
	for i, id := range ids {
		if id == 0 {
			return invalidParams("slots[%d]: 0 is no slot ID (IDs start at 1)", i)
		}
		if slices.Contains(ids[:i], id) {
			return invalidParams("slots[%d]: id %d appears twice", i, id)
		}
	}
	return nil
}

// Parse checks the query and returns it as a fapp.Query.
func (q *FAPPQueryParams) Parse() (fapp.Query, error) {
	var out fapp.Query
	var err error
	if q.PLZPrefix == "" {
		return out, paramErr("plz_prefix is required: 1 to 5 digits of the practice PLZ, e.g. \"10\" (coarser prefixes say less about you)")
	}
	if err := fapp.CheckPLZPrefix(q.PLZPrefix); err != nil {
		return out, paramErr("plz_prefix: %v", err)
	}
	out.PLZPrefix = q.PLZPrefix
	if err = parseNames("verfahren", q.Verfahren, fapp.ParseVerfahren, func(v fapp.Verfahren) { out.Verfahren = out.Verfahren.With(v) }); err != nil {
		return out, err
	}
	if err = parseNames("kostentraeger", q.Kostentraeger, fapp.ParseKostentraeger, func(v fapp.Kostentraeger) { out.Kostentraeger = out.Kostentraeger.With(v) }); err != nil {
		return out, err
	}
	if err = parseNames("terminart", q.Terminart, fapp.ParseTerminart, func(v fapp.Terminart) { out.Terminart = out.Terminart.With(v) }); err != nil {
		return out, err
	}
	if err = parseNames("altersgruppe", q.Altersgruppe, fapp.ParseAltersgruppe, func(v fapp.Altersgruppe) { out.Altersgruppe = out.Altersgruppe.With(v) }); err != nil {
		return out, err
	}
	if err = parseNames("setting", q.Setting, fapp.ParseSetting, func(v fapp.Setting) { out.Setting = out.Setting.With(v) }); err != nil {
		return out, err
	}
	if err = parseNames("modalitaet", q.Modalitaet, fapp.ParseModalitaet, func(v fapp.Modalitaet) { out.Modalitaet = out.Modalitaet.With(v) }); err != nil {
		return out, err
	}
	if err = parseNames("geschlecht", q.Geschlecht, fapp.ParseGeschlecht, func(v fapp.Geschlecht) { out.Geschlecht = out.Geschlecht.With(v) }); err != nil {
		return out, err
	}
	if out.Sprachen, err = parseSprachen("sprachen", q.Sprachen); err != nil {
		return out, err
	}
	if err := q.parseRest(&out); err != nil {
		return out, err
	}
	if err := out.Check(); err != nil {
		return out, paramErr("%v", err)
	}
	return out, nil
}

func (q *FAPPQueryParams) parseRest(out *fapp.Query) error {
	if len(q.Zeitfenster) > fapp.MaxTimeWindows {
		return paramErr("zeitfenster: %d windows, at most %d", len(q.Zeitfenster), fapp.MaxTimeWindows)
	}
	for _, s := range q.Zeitfenster {
		w, err := fapp.ParseTimeWindow(s)
		if err != nil {
			return paramErr("zeitfenster: %v", err)
		}
		out.Zeitfenster = append(out.Zeitfenster, w)
	}
	if !q.Spaetestens.IsZero() && q.Spaetestens.Before(q.Fruehestens) {
		return paramErr("spaetestens %s is before fruehestens %s", q.Spaetestens.Format(time.RFC3339), q.Fruehestens.Format(time.RFC3339))
	}
	if q.Limit < 0 || q.Limit > fapp.MaxQueryLimit {
		return paramErr("limit %d: want 0 (default %d) to %d", q.Limit, fapp.DefaultQueryLimit, fapp.MaxQueryLimit)
	}
	out.BarrierefreiZugang, out.BarrierefreiWC = q.BarrierefreiZugang, q.BarrierefreiWC
	out.Fruehestens, out.Spaetestens = q.Fruehestens.UTC(), q.Spaetestens.UTC()
	if q.Fruehestens.IsZero() {
		out.Fruehestens = time.Time{}
	}
	if q.Spaetestens.IsZero() {
		out.Spaetestens = time.Time{}
	}
	out.NurZertifiziert, out.Limit = q.NurZertifiziert, q.Limit
	return nil
}

// ParseFAPPSlotRef parses a slot reference, "<therapist key>/<slot ID>"
// (64 hex characters, '/', 1 to 65535).
func ParseFAPPSlotRef(s string) (fapp.SlotRef, error) {
	key, id, ok := strings.Cut(s, "/")
	if !ok {
		return fapp.SlotRef{}, paramErr("slot %q: want <therapist key>/<slot ID> as fapp.query's ref gives it", s)
	}
	k, err := fapp.ParseTherapistKey(key)
	if err != nil {
		return fapp.SlotRef{}, paramErr("slot: %v", err)
	}
	n, err := strconv.ParseUint(id, 10, 16)
	if err != nil || n == 0 || strconv.FormatUint(n, 10) != id {
		return fapp.SlotRef{}, paramErr("slot %q: the slot ID is not a number from 1 to 65535", s)
	}
	return fapp.SlotRef{Therapist: k, Slot: uint16(n)}, nil
}

// FormatFAPPSlotRef is the inverse of ParseFAPPSlotRef.
func FormatFAPPSlotRef(r fapp.SlotRef) string { return r.String() }

func checkReserve(p *FAPPReserveParams) error {
	if p.Slot == "" {
		return invalidParams("slot is required: a ref from fapp.query, <therapist key>/<slot ID>")
	}
	if _, err := ParseFAPPSlotRef(p.Slot); err != nil {
		return invalidParams("%v", err)
	}
	if p.Start.Second() != 0 || p.Start.Nanosecond() != 0 {
		return invalidParams("start %s is not in whole minutes", p.Start.Format(time.RFC3339Nano))
	}
	if err := checkText("kontakt", p.Kontakt, fapp.MaxKontaktLen); err != nil {
		return invalidParams("%v", err)
	}
	if err := checkText("ptv11", p.PTV11, fapp.MaxPTV11Len); err != nil {
		return invalidParams("%v", err)
	}
	if p.StampBits < 0 || p.StampBits > fapp.MaxRequestStampBits {
		return invalidParams("stamp_bits %d is not between 0 and %d", p.StampBits, fapp.MaxRequestStampBits)
	}
	return nil
}

func checkReservationID(id string) error {
	if id == "" {
		return invalidParams("id is required: the reservation's ID (32 hex characters) from fapp.reservations")
	}
	if _, err := fapp.ParseRequestID(id); err != nil {
		return invalidParams("id: %v", err)
	}
	return nil
}

func checkReservationsFilter(p *FAPPReservationsParams) error {
	switch p.Role {
	case "", FAPPRolePatient, FAPPRoleTherapist:
	default:
		return invalidParams("role %q: want %q, %q or nothing for both", p.Role, FAPPRolePatient, FAPPRoleTherapist)
	}
	for _, s := range p.States {
		if _, err := fapp.ParseReservationState(s); err != nil {
			return invalidParams("states: %v", err)
		}
	}
	return nil
}

func checkRespond(p *FAPPRespondParams) error {
	if err := checkReservationID(p.ID); err != nil {
		return err
	}
	switch p.Action {
	case FAPPConfirm, FAPPDecline:
		if !p.Until.IsZero() {
			return invalidParams("until is only for action %q", FAPPHold)
		}
	case FAPPHold:
	case "":
		return invalidParams("action is required: %q, %q or %q", FAPPConfirm, FAPPDecline, FAPPHold)
	default:
		return invalidParams("action %q: want %q, %q or %q", p.Action, FAPPConfirm, FAPPDecline, FAPPHold)
	}
	if err := checkText("nachricht", p.Nachricht, fapp.MaxNachrichtLen); err != nil {
		return invalidParams("%v", err)
	}
	return nil
}

// maxRegions is more than the 2-digit PLZ regions in use.
const maxRegions = 100

func checkRegions(regions []string) error {
	switch {
	case len(regions) == 0:
		return invalidParams("regions is required: 2-digit PLZ regions such as [\"10\", \"12\"]")
	case len(regions) > maxRegions:
		return invalidParams("%d regions, at most %d", len(regions), maxRegions)
	}
	for _, r := range regions {
		if _, err := fapp.ParseRegion(r); err != nil {
			return invalidParams("regions: %v", err)
		}
	}
	return nil
}

func checkCredential(raw []byte) error {
	_, err := fapp.ParseCredential(raw)
	return err
}

func checkRevocation(raw []byte) error {
	_, err := fapp.ParseRevocation(raw)
	return err
}

// FAPPNames returns the names of a fapp set (e.g. fapp.VerfahrenSet) as the
// API lists them; never nil.
func FAPPNames(set fmt.Stringer) []string {
	s := set.String()
	if s == "" {
		return []string{}
	}
	return strings.Split(s, ",")
}

// FAPPProfileOf returns the profile facts of an announce and a profile as
// the API shows them (the inverse of FAPPProfile.Parse).
func FAPPProfileOf(a fapp.SlotAnnounce, p fapp.Profile) FAPPProfile {
	out := FAPPProfile{
		Name: p.Name, PLZ: a.PLZ.String(), Verfahren: FAPPNames(a.Verfahren), Kostentraeger: FAPPNames(a.Kostentraeger),
		Altersgruppen: FAPPNames(a.Altersgruppen), BarrierefreiZugang: a.BarrierefreiZugang, BarrierefreiWC: a.BarrierefreiWC,
		Warteliste: a.Warteliste, Schwerpunkte: slices.Clone(p.Schwerpunkte),
	}
	for _, l := range a.Sprachen {
		out.Sprachen = append(out.Sprachen, l.String())
	}
	if a.Geschlecht != 0 {
		out.Geschlecht = a.Geschlecht.String()
	}
	return out
}

// FAPPSlotOf returns a fapp.Slot as the API shows it.
func FAPPSlotOf(s fapp.Slot) FAPPSlot {
	return FAPPSlot{
		ID:            s.ID,
		Terminart:     s.Terminart.String(),
		Verfahren:     s.Verfahren.String(),
		Setting:       s.Setting.String(),
		Modalitaet:    s.Modalitaet.String(),
		Voraussetzung: s.Voraussetzung.String(),
		Start:         s.Start,
		Dauer:         int(s.Dauer),
		Woechentlich:  s.Woechentlich,
		Bis:           s.Bis,
		Plaetze:       int(s.Plaetze),
		Status:        s.Status.String(),
	}
}

// FormatFAPPIdentity returns the text form of a therapist node's keys:
// FAPPIdentityPrefix and fapp's hex form of the compact identity (signing
// key and KEM key hash, fapp.CompactIdentityString). fapp.credential.status
// shows it; an issuer passes it to `fapp issuer issue`.
func FormatFAPPIdentity(c protocol.CompactIdentity) string {
	return FAPPIdentityPrefix + fapp.CompactIdentityString(c)
}

// ParseFAPPIdentity parses FormatFAPPIdentity's form (white space around
// it and line breaks inside it are ignored). Errors wrap ErrBadFAPPText.
func ParseFAPPIdentity(s string) (protocol.CompactIdentity, error) {
	s = strings.Join(strings.Fields(s), "")
	rest, ok := strings.CutPrefix(s, FAPPIdentityPrefix)
	if !ok {
		return protocol.CompactIdentity{}, fmt.Errorf("%w: want a string starting with %q", ErrBadFAPPText, FAPPIdentityPrefix)
	}
	c, err := fapp.ParseCompactIdentity(rest)
	if err != nil {
		return c, fmt.Errorf("%w: %v", ErrBadFAPPText, err)
	}
	return c, nil
}

// FAPPCredentialStatusOf describes the node's identity, its credential (nil
// when it has none) and the result of verifying it with the node's trusted
// issuers at the node's time (fapp.TrustStore.Verify) as
// fapp.credential.status shows them.
func FAPPCredentialStatusOf(me protocol.CompactIdentity, c *fapp.Credential, verifyErr error) FAPPCredentialStatus {
	st := FAPPCredentialStatus{Identity: FormatFAPPIdentity(me), Therapist: fapp.TherapistKeyOf(me).String()}
	if c == nil {
		st.Status = FAPPCredMissing
		st.Detail = "no credential: give identity to an issuer (fapp issuer issue) and import what it returns"
		return st
	}
	st.Serial, st.Berufsgruppe, st.RegistryID = c.Serial, c.Berufsgruppe.String(), c.RegistryID
	st.ValidFrom, st.ValidTo, st.Issuer = c.ValidFrom, c.ValidTo, c.Issuer.String()
	st.Status = credStatus(verifyErr)
	if verifyErr != nil {
		st.Detail = verifyErr.Error()
	}
	return st
}

func credStatus(err error) string {
	switch {
	case err == nil:
		return FAPPCredValid
	case errors.Is(err, fapp.ErrNotYetValid):
		return FAPPCredNotYetValid
	case errors.Is(err, fapp.ErrExpired):
		return FAPPCredExpired
	case errors.Is(err, fapp.ErrRevoked):
		return FAPPCredRevoked
	}
	// An unknown issuer, and a signature that does not verify with a
	// trusted one: either way no trusted issuer vouches for it.
	return FAPPCredUntrusted
}

// FAPPIssuerOf describes a trusted issuer key and its newest revocation
// list (nil for none).
func FAPPIssuerOf(k fapp.IssuerKey, r *fapp.Revocation) FAPPIssuer {
	is := FAPPIssuer{Key: k.String(), ID: k.ID().String()}
	if r != nil {
		is.RevocationSequence, is.Revoked = r.Sequence, len(r.Serials)
	}
	return is
}
